"""Run-to-run spread of a profile's eager layer rows: the same points timed in an earlier run (a git
revision of the same file) against now, stored in the profile's metadata as `eager_run_to_run`
({median, p90, n}: of |ln(now/before)|, as relative errors), which MeasuredLatency turns into the
eager band of that profile's rows (the wider of it and the loop's band) with a note.

    PYTHONPATH=. python scripts/eager_run_to_run.py perfmodel/data/h200.csv --before 77e6d8c \
        --now evidence/h200_eager_run2.csv

Key assumption: eager time is host time, and a user's host differs from the profiling host at least
as much as the profiling host differed from itself between two runs. CPU only; needs git.
"""
from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.latency.table import LatencyTable  # noqa: E402


def eager_rows(text: str) -> dict:
    return {(r["shape"], r["tp"], r["batch"], r["context"], r["new_tokens"]): float(r["median_s"])
            for r in csv.DictReader(io.StringIO(text))
            if r["component"] == "layer" and r["mode"] == "eager" and r.get("status", "ok") == "ok"}


def spread(before: dict, now: dict) -> dict:
    r = np.abs([np.log(now[k] / before[k]) for k in now if k in before])
    return {"median": float(np.expm1(np.median(r))), "p90": float(np.expm1(np.percentile(r, 90))), "n": int(r.size)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--before", required=True, help="git revision holding the earlier run of the same file")
    ap.add_argument("--now", default=None, help="the later run's rows (default: the profile itself)")
    a = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    rel = Path(a.profile).resolve().relative_to(root)
    old = subprocess.run(["git", "show", f"{a.before}:{rel.as_posix()}"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    t = LatencyTable.load(a.profile)
    now = eager_rows(Path(a.now or a.profile).read_text())
    d = spread(eager_rows(old), now)
    d.update(evidence=f"eager layer rows of {rel.name} timed twice on one card type: {a.before} vs now",
             command="PYTHONPATH=. python scripts/eager_run_to_run.py " + " ".join(argv or sys.argv[1:]))
    t.meta["eager_run_to_run"] = d
    t.save(a.profile)
    print(f"{d['n']} eager layer points: run-to-run median {d['median']:.1%}, p90 {d['p90']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
