"""Print the latency error bands' out-of-sample checks as the shipped error_bands.json has them,
recomputed from the evidence the manifest names (thin wrapper: the logic is
perfmodel.data_build.bands; `python -m specperf.perfmodel.data_build` rebuilds the shipped file itself).

    PYTHONPATH=. python scripts/error_bands.py [--out FILE]   # --out: write the whole document
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.data_build.bands import dumps  # noqa: E402
from specperf.perfmodel.data_build.rebuild import _resolver, error_bands  # noqa: E402
from specperf.perfmodel.shipped import DATA_DIR, EVIDENCE_DIR, load_manifest  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    spec = next(e.build["bands"] for e in load_manifest() if "bands" in e.build)
    doc = error_bands(spec, _resolver(DATA_DIR, EVIDENCE_DIR), DATA_DIR)
    if a.out:
        Path(a.out).write_text(dumps(doc))
    print(json.dumps(doc["checks"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
