"""Re-time the shipped H100 profile's eager rows that the physical-consistency check flags (issue 26:
e.g. llama-65b's eager tp 4 shard, batch 4, slower at context 128 than at 512): copy
perfmodel/data/h100-sxm.csv into OUT, drop its eager layer rows and resume scripts/profile_h100.py's
plan (eager points timed interleaved across new-token counts, one host for every group), then write
the consistency report before and after (OUT/retime_report.json). Resumable: rerun with the same OUT
to time what a deadline left out. GPU (an H100), about 4 minutes:

    PYTHONPATH=. python3 scripts/retime_flagged.py --out $OUT [--deadline-s 170]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.latency.integrity import consistency_report  # noqa: E402
from specperf.perfmodel.latency.providers import shipped_profile  # noqa: E402
from specperf.perfmodel.latency.table import LatencyTable  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder to write h100-sxm.csv (+ .meta.json) and the report into")
    ap.add_argument("--deadline-s", type=float, default=170.0, help="start no sweep job after this many seconds")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / "h100-sxm.csv"
    src = shipped_profile("h100-sxm")
    resumed = dst.exists()
    if not resumed:
        for suffix in ("", ".meta.json"):
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")
    before = consistency_report(LatencyTable.load(src).rows)
    import profile_h100

    t0 = time.perf_counter()
    profile_h100.main(["--out", str(dst), "--deadline-s", str(a.deadline_s), "--quiet"]
                      + ([] if resumed else ["--drop-mode", "eager"]))
    after_rows = LatencyTable.load(dst).rows
    report = {"wall_s": time.perf_counter() - t0, "rows": len(after_rows), "resumed": resumed,
              "before": before, "after": consistency_report(after_rows)}
    (out / "retime_report.json").write_text(json.dumps(report, indent=1) + "\n")
    for mode in ("graph", "eager"):
        b, e = before.get(mode, {}), report["after"].get(mode, {})
        print(f"{mode}: flagged groups {b.get('flagged_groups')} of {b.get('groups')} before, "
              f"{e.get('flagged_groups')} of {e.get('groups')} after ({e.get('pairs')} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
