"""Merge measured latency tables (profiles) of one GPU and dtype into one table, then refit its
analytical constants (thin wrapper: perfmodel.data_build.profiles; a shipped merged table is a
manifest `merge` step, rebuilt by `python -m specperf.perfmodel.data_build`).

    python scripts/merge_profiles.py --mode compiled --out OUT.csv A.csv B.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.data_build.profiles import merge, refit  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="graph,eager,compiled", help="modes to keep (comma list)")
    ap.add_argument("--note", default="")
    a = ap.parse_args(argv)
    t = merge(a.inputs, set(a.mode.split(",")), "python scripts/merge_profiles.py " + " ".join(argv or sys.argv[1:]),
              a.note)
    t.save(a.out)
    rep = refit(a.out)
    print(f"{len(t.rows)} rows from {len(a.inputs)} tables into {a.out}; fit: "
          f"{ {k: round(v, 9) for k, v in rep['params'].items()} }")
    return 0


if __name__ == "__main__":
    sys.exit(main())
