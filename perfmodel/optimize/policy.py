"""Lookahead policy and break-even map: for one deployed draft, γ* over batch × context and the
region where speculation loses (speedup < 1), with its margin and the acceptance interval.

Key assumption: an engine runs one draft for all load levels; the policy draft is the candidate
with the highest geometric-mean speedup over the batch × context grid (deployable drafts first:
same vocabulary as the target), unless the user names one. A cell is "speculate" when even the
low end of the speedup interval is ≥ 1, "off" when the high end is < 1, else "uncertain"; the
interval is the ranked rows' 95 % range (optimize.confidence: the cell's own latency bands ×
acceptance, γ re-optimised per draw).
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.optimize.confidence import confidence
from specperf.perfmodel.optimize.search import speedup_curve
from specperf.perfmodel.optimize.report import OptimizeResult, describe_candidate


def _geomean(s: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(np.where(np.isfinite(s) & (s > 0), s, 1e-12)), axis=(-2, -1)))


def policy_draft(res: OptimizeResult, mode: str) -> int:
    gm = _geomean(res.modes[mode].speedup)
    deployable = np.array([res.cands.shape_specs[s].vocab == res.target.vocab for s in res.cands.shape_index])
    if deployable.any():
        gm = np.where(deployable, gm, -np.inf)
    return int(np.argmax(gm))


def verdict(lo: float, hi: float) -> str:
    if lo >= 1.0:
        return "speculate"
    if hi < 1.0:
        return "off"
    return "uncertain"


def policy(res: OptimizeResult, mode: str, draft: int) -> dict:
    """γ* table and break-even map for `draft`; also the best any candidate reaches per cell."""
    m = res.modes[mode]
    cells = []
    best_any = np.max(m.speedup, axis=0)
    for bi, b in enumerate(res.batch):
        for ci, c in enumerate(res.context):
            s = float(m.speedup[draft, bi, ci])
            rng = confidence(res, mode, bi, ci, [draft], None)[0][0]
            lo, hi = rng["speedup_lo"], rng["speedup_hi"]
            g = int(res.gammas[m.gamma_index[draft, bi, ci]])
            cells.append({"batch": int(b), "context": int(c), "gamma": g,
                          "fits_memory": res.fits(draft, int(b), int(c), g),
                          "memory_needed_bytes": res.memory_needed_bytes(draft, int(b), int(c), g),
                          "speedup": s, "speedup_lo": lo, "speedup_hi": hi, "range_exact": rng["range_exact"],
                          "margin": s - 1.0,
                          "verdict": verdict(lo, hi), "best_any_speedup": float(best_any[bi, ci]),
                          "optimal_gamma": g if s > 1.0 else 0,
                          "advice": "speculate" if s > 1.0 else "do not speculate"})
    lose = [c for c in cells if c["verdict"] == "off"]
    win_batches = sorted({c["batch"] for c in cells if c["verdict"] != "off"})
    lose_batches = sorted({c["batch"] for c in cells if all(
        x["verdict"] == "off" for x in cells if x["batch"] == c["batch"])})
    return {"mode": mode, "draft": describe_candidate(res, draft), "draft_index": draft,
            "alpha": float(res.acc.alpha[draft]), "alpha_kind": res.acc.kind(draft),
            "cells": cells, "gamma_table": [[c["gamma"] for c in cells if c["batch"] == int(b)]
                                           for b in res.batch],
            "break_even": {"n_off": len(lose), "n_cells": len(cells),
                           "n_exceed_memory": sum(not c["fits_memory"] for c in cells),
                           "largest_winning_batch": win_batches[-1] if win_batches else None,
                           "batches_off_at_every_context": lose_batches},
            "export_gamma": export_gamma(res, mode, draft)}


def export_gamma(res: OptimizeResult, mode: str, draft: int) -> int:
    """One γ for engines that take a single lookahead: the γ with the highest geometric-mean
    speedup over the cells where the draft wins and fits in memory (all cells if there are none)."""
    m = res.modes[mode]
    curves = np.stack([np.stack([speedup_curve(res.tpi[[draft]], res.cands.shape_index[[draft]],
                                               res.cands.n_layers[[draft]].astype(float), m.costs,
                                               res.gammas, bi, ci)[0]
                                 for ci in range(res.context.size)]) for bi in range(res.batch.size)])
    fits = np.array([[res.fits(draft, int(b), int(c), int(res.gammas[m.gamma_index[draft, bi, ci]]))
                      for ci, c in enumerate(res.context)] for bi, b in enumerate(res.batch)])
    wins = (m.speedup[draft] >= 1.0) & fits
    sel = curves[wins] if wins.any() else curves.reshape(-1, res.gammas.size)
    with np.errstate(divide="ignore"):
        score = np.mean(np.log(np.maximum(sel, 1e-12)), axis=0)
    return int(res.gammas[int(np.argmax(score))])


def mode_comparison(res: OptimizeResult, reference: int | None = None) -> list[dict]:
    """Per (batch, context): the best draft in each mode, and the reference draft in each mode —
    so "use CUDA graphs" (same draft, other mode) and "use a shallower draft" sit side by side."""
    out = []
    for bi, b in enumerate(res.batch):
        for ci, c in enumerate(res.context):
            row = {"batch": int(b), "context": int(c)}
            for mode, m in res.modes.items():
                i = int(np.argmax(m.speedup[:, bi, ci]))
                b_tok = float(b) / float(m.costs.base_s[bi, ci])
                row[mode] = {"best_draft": res.cands.name(i),
                             "gamma": int(res.gammas[m.gamma_index[i, bi, ci]]),
                             "speedup": float(m.speedup[i, bi, ci]),
                             "throughput_tok_s": float(m.speedup[i, bi, ci]) * b_tok,
                             "baseline_tok_s": b_tok}
                if reference is not None:
                    r = float(m.speedup[reference, bi, ci])
                    row[mode].update({"reference_draft": res.cands.name(reference), "reference_speedup": r,
                                      "reference_tok_s": r * b_tok,
                                      "reference_gamma": int(res.gammas[m.gamma_index[reference, bi, ci]])})
            if reference is not None and {"graph", "eager"} <= set(res.modes):
                g, e = row["graph"], row["eager"]
                row["gain_over_reference_in_eager"] = {  # the two competing fixes, and both together
                    "use_cuda_graphs": g["reference_tok_s"] / e["reference_tok_s"] - 1.0,
                    "use_best_draft": e["throughput_tok_s"] / e["reference_tok_s"] - 1.0,
                    "both": g["throughput_tok_s"] / e["reference_tok_s"] - 1.0}
            out.append(row)
    return out
