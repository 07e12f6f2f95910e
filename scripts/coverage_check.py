"""Coverage of the stated 90 % latency intervals on the project's shipped validation tables, through
the same Monte Carlo that `predict` uses (perfmodel.specdec.uncertainty.propagate).

For every ok row of validation_h100_{graph,eager,smoke}.csv (own speculative-decoding loop) a
one-cell Prediction is rebuilt from the row's predicted components, its sources marked 'measured'
with the band of error_bands.json (in-sample) or with a band recomputed without the row's draft
(leave-one-draft-out, out-of-sample); the measured iteration time and the latency-only speedup
(measured tokens/s at expected tokens per iteration over measured baseline) are checked against the
interval. Also: the TP forward check (curve band) and the composition check (measured band).

    PYTHONPATH=. python scripts/coverage_check.py            # markdown table for docs/accuracy.md
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from specperf.perfmodel.data_build.bands import band_of as _band, loop_errors as _loop_errors  # noqa: E402
from specperf.perfmodel.shipped import EVIDENCE_DIR as DATA  # noqa: E402

from specperf.perfmodel.latency.bands import load_bands  # noqa: E402
from specperf.perfmodel.latency.source import Provenance  # noqa: E402
from specperf.perfmodel.specdec.acceptance import AcceptanceModel  # noqa: E402
from specperf.perfmodel.specdec.predict import Prediction  # noqa: E402
from specperf.perfmodel.specdec.uncertainty import propagate  # noqa: E402


LOOP = ("validation_h100_graph.csv", "validation_h100_eager.csv", "validation_h100_smoke.csv")  # evidence/


def _rows():
    out = []
    for f in LOOP:
        with open(DATA / f, newline="") as fh:
            out += [r for r in csv.DictReader(fh) if r["status"] == "ok"]
    return out


def _cell(r, b: float) -> Prediction:
    a = lambda k: np.array([[[float(r[k])]]])  # noqa: E731
    g, tpi = int(r["gamma"]), float(r["expected_tokens_per_iteration"])
    it = a("predicted_iteration_s")
    base = a("predicted_baseline_tok_s")
    batch = int(r["batch"])
    t_target = batch / base - a("predicted_overhead_s")  # baseline = batch / (t_target + overhead at γ=0)
    src = Provenance.of("measured", "h100-sxm.csv", band=b)
    return Prediction(gamma=np.array([g]), batch=np.array([batch]), context=np.array([int(r["context"])]),
                      tokens_per_iteration=np.full((1, 1, 1), tpi), t_draft_s=a("predicted_t_draft_s"),
                      t_verify_s=a("predicted_t_verify_s"), t_target_s=t_target, overhead_s=a("predicted_overhead_s"),
                      baseline_overhead_s=a("predicted_overhead_s"), iteration_s=it,
                      throughput_tok_s=batch * tpi / it, baseline_tok_s=base, speedup=batch * tpi / it / base,
                      mode=r["mode"], sources={"draft_layer": src, "target_layer": src, "overhead": src})


def loop_coverage(leave_one_draft_out: bool, seed: int = 0) -> dict:
    """{mode: {n, iteration coverage, speedup coverage, mean relative width}}."""
    bands = load_bands()
    errs = _loop_errors([DATA / f for f in LOOP], DATA / "validation_h200_compiled.csv")
    out = {}
    for r in _rows():
        mode = r["mode"]
        if leave_one_draft_out:
            b, _ = _band([e for d, e in errs[mode] if d != r["draft"]])
        else:
            b = bands["measured"][mode]["band"]
        p = _cell(r, b)
        u = propagate(p, AcceptanceModel(alpha=float(r["alpha"])), n=4000, seed=seed)
        meas_it = float(r["measured_iteration_s"])
        meas_sp = float(r["measured_tok_s_expected"]) / float(r["measured_baseline_tok_s"])
        s = out.setdefault(mode, {"n": 0, "it": 0, "sp": 0, "w_it": 0.0, "w_sp": 0.0})
        s["n"] += 1
        s["it"] += int(u.iteration_s_lo[0, 0, 0] <= meas_it <= u.iteration_s_hi[0, 0, 0])
        s["sp"] += int(u.speedup_lo[0, 0, 0] <= meas_sp <= u.speedup_hi[0, 0, 0])
        s["w_it"] += float((u.iteration_s_hi - u.iteration_s_lo)[0, 0, 0] / p.iteration_s[0, 0, 0])
        s["w_sp"] += float((u.speedup_hi - u.speedup_lo)[0, 0, 0] / p.speedup[0, 0, 0])
    return {m: {"n": s["n"], "iteration_coverage": s["it"] / s["n"], "speedup_coverage": s["sp"] / s["n"],
                "iteration_mean_rel_width": s["w_it"] / s["n"], "speedup_mean_rel_width": s["w_sp"] / s["n"]}
            for m, s in out.items()}


def forward_coverage() -> dict:
    """Whole-forward checks: composition (measured band) and TP forward (curve band), in-sample for curve."""
    bands = load_bands()
    out = {}
    for name, f, kind in (("composition", "composition_h100.csv", "measured"),
                          ("tp2 forward", "h100-sxm_tp2_validation.csv", "curve")):
        with open(DATA / f, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("status", "ok") == "ok"]
        for mode in ("graph", "eager"):
            b = bands[kind][mode]["band"]
            pred = np.array([float(r["composed_s"]) for r in rows if r["mode"] == mode])
            meas = np.array([float(r["measured_s"]) for r in rows if r["mode"] == mode])
            lo, hi = pred / (1 + b), pred * (1 + b)  # the log-normal's 90 % interval
            out[(name, kind, mode)] = {"n": int(pred.size), "coverage": float(((meas >= lo) & (meas <= hi)).mean()),
                                       "mean_rel_width": float(np.mean((hi - lo) / pred))}
    return out


def main() -> int:
    print("| check | mode | n | band source | iteration coverage | speedup coverage | mean rel. width (iteration / speedup) |")
    print("|---|---|---|---|---|---|---|")
    for label, lodo in (("own loop, in-sample band", False), ("own loop, leave-one-draft-out band", True)):
        for mode, s in loop_coverage(lodo).items():
            print(f"| {label} | {mode} | {s['n']} | measured | {s['iteration_coverage']:.3f} | {s['speedup_coverage']:.3f} | "
                  f"{s['iteration_mean_rel_width']:.3f} / {s['speedup_mean_rel_width']:.3f} |")
    for (name, kind, mode), s in forward_coverage().items():
        print(f"| {name} (forward time) | {mode} | {s['n']} | {kind} | {s['coverage']:.3f} | — | {s['mean_rel_width']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
