"""specperf's predictions against the independent references of scripts/reference_check.py (CPU only):
per measured whole-model forward, the shipped providers' prediction for the same shape, batch, new
tokens, context and mode on the reference's GPU, the signed error, and summaries by implementation,
mode, grouped-query or not, and new tokens.

    PYTHONPATH=. python scripts/reference_report.py evidence/engine_kernels/reference_h100.csv --gpu h100-sxm
    PYTHONPATH=. python scripts/reference_report.py FILE --gpu h200 --errors-out errors.csv --markdown

Ends with one JSON line (medians and p90s of |error| per implementation × mode).
Key assumption: the reference models are in no shipped profile (their names start with `r`; checked),
so every prediction is operator-composed or analytical — what a user with a new model gets.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.data_build.reference import predictions, read, summarise  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference")
    ap.add_argument("--gpu", required=True)
    ap.add_argument("--errors-out")
    ap.add_argument("--markdown", action="store_true", help="print the summary as a markdown table")
    a = ap.parse_args(argv)
    rows = read(a.reference)
    if not rows:
        sys.exit(f"{a.reference}: no measured rows")
    errs = predictions(rows, a.gpu)
    if a.errors_out:
        with open(a.errors_out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(errs[0]))
            w.writeheader()
            w.writerows(errs)
    by = summarise(errs, lambda e: (e["impl"], e["mode"],
                                    "gqa" if e["n_heads"] != e["n_kv_heads"] else "mha", f"n{e['new_tokens']}"))
    top = summarise(errs, lambda e: f"{e['impl']}/{e['mode']}")
    if a.markdown:
        print("| impl | mode | attention | new tokens | n | median abs error | p90 | max |")
        print("|---|---|---|---|---|---|---|---|")
        for (impl, mode, kind, n), s in by.items():
            print(f"| {impl} | {mode} | {kind} | {n[1:]} | {s['n']} | {s['median']:.1%} | {s['p90']:.1%} | {s['max']:.1%} |")
    else:
        for k, s in by.items():
            print(f"{'/'.join(k):28s} n={s['n']:3d}  median {s['median']:6.1%}  p90 {s['p90']:6.1%}  max {s['max']:6.1%}")
        signed = {k: float(np.median([e["error"] for e in errs if f"{e['impl']}/{e['mode']}" == k])) for k in top}
        for k, s in top.items():
            print(f"{k:28s} n={s['n']:3d}  median {s['median']:6.1%}  p90 {s['p90']:6.1%}  (median signed {signed[k]:+.1%})")
    print(json.dumps({"gpu": a.gpu, "reference": a.reference, "summary": top}))


if __name__ == "__main__":
    main()
