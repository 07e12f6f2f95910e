"""Error tables of the shipped TP profile (no GPU needed) — a thin wrapper; the logic is
perfmodel.latency.tp_errors:

  python scripts/tp_error_table.py [--gpu h100-sxm --tp 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.latency.tp_errors import error_tables  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    doc = error_tables(a.gpu, a.tp)
    wm, summary, fits = doc["points"], doc["whole_model"], doc["allreduce_fits"]
    if a.json:
        print(json.dumps(doc, indent=1))
        return doc
    print(f"whole TP={a.tp} model on {a.gpu}: measured vs composed (measured provider on {a.gpu}_tp{a.tp}.csv)")
    print(f"{'mode':6s} {'model':10s} {'b':>3s} {'n':>2s} {'ctx':>5s} {'measured ms':>12s} {'composed ms':>12s} {'err':>7s} {'in-layer':>9s}")
    for r in wm:
        print(f"{r['mode']:6s} {r['model']:10s} {r['batch']:3d} {r['new_tokens']:2d} {r['context']:5d} "
              f"{r['measured_s'] * 1e3:12.3f} {r['composed_s'] * 1e3:12.3f} {r['rel_err']:+7.1%} {r['rel_err_in_layer']:+9.1%}")
    for mode, s in summary.items():
        print(f"{mode}: median |err| {s['median_abs_rel_err']:.1%} (max {s['max_abs_rel_err']:.1%}, n={s['n']}); "
              f"composing layers measured with their all-reduces: median |err| {s['median_abs_rel_err_in_layer']:.1%}")
    print("\nper layer: (layer without all-reduces + allreduce row) vs layer with its all-reduces "
          "(eager allreduce rows are in situ, so eager agrees by construction up to the context median)")
    for k, v in doc["per_layer"].items():
        print(f"  {k:18s} n={v['n']:4d} median |err| {v['median_abs_rel_err']:.1%}  all-reduce share of the "
              f"layer: median {v['allreduce_share_median']:.1%}, max {v['allreduce_share_max']:.1%}")
    print("\nall-reduce curve fits")
    for mode, f in fits.items():
        print(f"  {mode}: {f['fit']}; extrapolated at 16 KiB: TP=4 ×{f['tp4_over_tp2_at_16KiB']:.2f}, "
              f"TP=8 ×{f['tp8_over_tp2_at_16KiB']:.2f} the TP=2 time")
    return doc


if __name__ == "__main__":
    main()
