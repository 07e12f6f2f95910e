"""The `predict` answer as one JSON-ready document, built here so the CLI, notebooks and the
explorer share it: the optimal γ and its numbers, every γ row, sources (text) and provenance (data).

Key assumption: one (batch, context) cell per document — the CLI's `predict` asks for one; sweeps
use `Prediction` arrays directly.
"""
from __future__ import annotations

from perfmodel.specdec.acceptance import AcceptanceModel
from perfmodel.specdec.predict import Prediction
from perfmodel.specdec.uncertainty import gamma_summary, propagate
from perfmodel.specs.models import ModelSpec


INTERVAL_FIELDS = ("iteration_s", "throughput_tok_s", "speedup")


def prediction_document(p: Prediction, target: ModelSpec, draft: ModelSpec, gpu: str, tp: int,
                        acc: AcceptanceModel, bi: int = 0, ci: int = 0, seed: int = 0) -> dict:
    """{target, draft, gpu, ..., optimal_gamma, speedup, ..., sources, provenance, notes, rows};
    each row and the optimum carry 90 % intervals `<field>_lo/_hi` of iteration_s,
    throughput_tok_s and speedup (Monte Carlo, perfmodel.specdec.uncertainty), and `uncertainty`
    says how sure the γ choice is."""
    ng = len(p.gamma)
    rows = p.rows()[(bi * len(p.context) + ci) * ng:(bi * len(p.context) + ci + 1) * ng]
    best = rows[int(p.optimal_index[bi, ci])]
    u = propagate(p, acc, seed=seed)
    for k, r in enumerate(rows):
        r["extrapolated_acceptance"] = acc.extrapolated(r["gamma"])
        for f in INTERVAL_FIELDS:
            r[f"{f}_lo"] = float(getattr(u, f"{f}_lo")[bi, ci, k])
            r[f"{f}_hi"] = float(getattr(u, f"{f}_hi")[bi, ci, k])
    unc = {"level": u.level, "draws": u.draws, "latency_bands": u.latency, **gamma_summary(p, u, bi, ci),
           "notes": list(u.notes)}
    return {"target": target.name, "draft": draft.name, "gpu": gpu, "tp": tp, "mode": p.mode,
            "batch": int(p.batch[bi]), "context": int(p.context[ci]), "alpha": acc.alpha,
            "alpha_by_position": list(acc.alpha_by_position) if acc.alpha_by_position else None,
            "optimal_gamma": best["gamma"], "speedup": best["speedup"],
            "tokens_per_iteration": best["tokens_per_iteration"], "throughput_tok_s": best["throughput_tok_s"],
            "iteration_s": best["iteration_s"], "baseline_tok_s": best["baseline_tok_s"],
            "cost_ratio": best["t_draft_s"] / best["t_target_s"],
            "sources": {k: str(v) for k, v in p.sources.items()},
            "provenance": {k: v.to_dict() for k, v in p.sources.items() if hasattr(v, "to_dict")},
            **{f"{f}_{e}": best[f"{f}_{e}"] for f in INTERVAL_FIELDS for e in ("lo", "hi")},
            "uncertainty": unc, "notes": list(p.notes), "rows": rows}
