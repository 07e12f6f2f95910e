"""The `predict` answer as one JSON-ready document, built here so the CLI, notebooks and the
explorer share it: the optimal γ and its numbers, every γ row with 90 % intervals, sources (text)
and provenance (data), the verdict and the GPU-memory check.

Key assumptions: one (batch, context) cell per document (`cells_document` lists several); when no
γ beats autoregressive decoding, the answer is γ = 0 with verdict "do not speculate" and the
baseline's numbers (the rows still show every γ's loss).
"""
from __future__ import annotations

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.predict import Prediction
from specperf.perfmodel.specdec.uncertainty import gamma_summary, propagate
from specperf.perfmodel.specs.memory import memory_needed_bytes, memory_note
from specperf.perfmodel.specs.models import ModelSpec

INTERVAL_FIELDS = ("iteration_s", "throughput_tok_s", "speedup")
SHARED_KEYS = ("target", "draft", "gpu", "tp", "mode", "alpha", "alpha_by_position")


def prediction_document(p: Prediction, target: ModelSpec, draft: ModelSpec | None, gpu: str, tp: int,
                        acc: AcceptanceModel, bi: int = 0, ci: int = 0, seed: int = 0,
                        memory_bytes: float | None = None, u=None) -> dict:
    """{target, draft, gpu, ..., optimal_gamma, verdict, speedup, ..., fits_memory, sources, provenance,
    uncertainty, notes, rows}; each row and the optimum carry 90 % intervals `<field>_lo/_hi` of
    iteration_s, throughput_tok_s and speedup (Monte Carlo, perfmodel.specdec.uncertainty; pass `u`
    from one `propagate(p, acc)` when documenting several cells of one prediction)."""
    rows = p.rows(cell=(bi, ci))
    best = rows[int(p.optimal_index[bi, ci])]
    u = propagate(p, acc, seed=seed) if u is None else u
    for k, r in enumerate(rows):
        r["extrapolated_acceptance"] = acc.extrapolated(r["gamma"])
        for f in INTERVAL_FIELDS:
            r[f"{f}_lo"] = float(getattr(u, f"{f}_lo")[bi, ci, k])
            r[f"{f}_hi"] = float(getattr(u, f"{f}_hi")[bi, ci, k])
        r["latency_bands"] = u.cell_latency(bi, ci, k)  # this row's own sources (issue 26)
    k_best = int(p.optimal_index[bi, ci])
    unc = {"level": u.level, "draws": u.draws, "latency_bands": rows[k_best]["latency_bands"],
           **gamma_summary(p, u, bi, ci), "notes": list(u.notes) + band_notes(rows, k_best)}
    batch, context = int(p.batch[bi]), int(p.context[ci])
    notes = list(p.notes)
    speculate = best["speedup"] > 1.0
    if not speculate:
        for r in rows:
            r["optimal"] = False
        notes.append(f"no γ in {rows[0]['gamma']}..{rows[-1]['gamma']} beats autoregressive decoding "
                     f"(best speedup {best['speedup']:.3f} at γ={best['gamma']}): do not speculate")
    g_opt = best["gamma"] if speculate else 0
    need = memory_needed_bytes(target, draft, tp, batch, context, g_opt)
    fits = memory_bytes is None or need <= memory_bytes
    if not fits:
        notes.append(memory_note(need, memory_bytes, f"{target.name} (tp={tp})"
                                 + (f" + {draft.name}" if draft is not None else "") + f" at batch {batch}, context {context}"))
    base_it = best["t_target_s"] + best["baseline_overhead_s"]
    return {"target": target.name, "draft": draft.name if draft is not None else None, "method": p.method,
            "gpu": gpu, "tp": tp, "mode": p.mode,
            "batch": batch, "context": context, "alpha": acc.alpha,
            "alpha_by_position": list(acc.alpha_by_position) if acc.alpha_by_position else None,
            "optimal_gamma": g_opt, "verdict": "speculate" if speculate else "do not speculate",
            "speedup": best["speedup"] if speculate else 1.0,
            "tokens_per_iteration": best["tokens_per_iteration"] if speculate else 1.0,
            "throughput_tok_s": best["throughput_tok_s"] if speculate else best["baseline_tok_s"],
            "iteration_s": best["iteration_s"] if speculate else base_it, "baseline_tok_s": best["baseline_tok_s"],
            "best_gamma": best["gamma"], "best_gamma_speedup": best["speedup"],
            "cost_ratio": best["t_draft_s"] / best["t_target_s"],
            "fits_memory": fits, "memory_needed_bytes": need, "memory_bytes": memory_bytes,
            "sources": {k: str(v) for k, v in p.sources.items()},
            "provenance": {k: v.to_dict() for k, v in p.sources.items() if hasattr(v, "to_dict")},
            **{f"{f}_{e}": best[f"{f}_{e}"] for f in INTERVAL_FIELDS for e in ("lo", "hi")},
            "uncertainty": unc, "notes": notes, "rows": rows}


def band_notes(rows: list[dict], k_best: int) -> list[str]:
    """One note per group of rows whose latency bands differ from the optimal row's (each row's
    interval uses its own)."""
    ref, groups = rows[k_best]["latency_bands"], {}
    for r in rows:
        diff = tuple((role, v["kind"], round(v["band"], 6)) for role, v in r["latency_bands"].items()
                     if v != ref.get(role))
        if diff:
            groups.setdefault(diff, []).append(r["gamma"])
    return [f"γ {_span(gs)}: latency bands {', '.join(f'{role} {k} ±{b:.1%}' for role, k, b in diff)} "
            f"(γ={rows[k_best]['gamma']}'s differ; each row's interval uses its own)" for diff, gs in groups.items()]


def _span(gs: list[int]) -> str:
    return str(gs[0]) if len(gs) == 1 else (f"{gs[0]}–{gs[-1]}" if gs[-1] - gs[0] == len(gs) - 1
                                             else ", ".join(map(str, gs)))


def cells_document(docs: list[dict]) -> dict:
    """Several cells: today's single-cell document when there is one, else the shared keys + `cells`."""
    if len(docs) == 1:
        return docs[0]
    return {**{k: docs[0][k] for k in SHARED_KEYS}, "fits_memory": all(d["fits_memory"] for d in docs),
            "cells": docs}
