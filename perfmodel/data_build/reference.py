"""specperf's whole-model predictions against independent reference models (scripts/reference_check.py:
a plain-PyTorch decoder and Hugging Face transformers models written apart from profiler/blocks.py,
timed on a GPU): per measured forward, the shipped providers' prediction for the same shape, batch,
new tokens, context and mode, and the signed relative error. The errors widen the operator-composed
error band (perfmodel.data_build.bands) where they exceed the unseen-shape checks against specperf's
own blocks.

Key assumption: the reference models are in no shipped profile, so every prediction is
operator-composed — what a user with a new model gets.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from specperf.perfmodel.specs.models import ModelSpec


# a reference mode → the specperf mode that prices it: `piecewise` (scripts/reference_check.py: a layer
# compiled with the KV write and attention opaque, vLLM's scheme) is what `--mode compiled` claims to run
PRICED_AS = {"piecewise": "compiled"}


def spec_of(r: dict) -> ModelSpec:
    return ModelSpec(name=r["model"], family="llama", n_layers=int(r["n_layers"]), d_model=int(r["d_model"]),
                     n_heads=int(r["n_heads"]), n_kv_heads=int(r["n_kv_heads"]), d_ff=int(r["d_ff"]),
                     vocab=int(r["vocab"]))


def read(path) -> list[dict]:
    with Path(path).open(newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("median_s")]


def predictions(rows, gpu: str, data_dir=None) -> list[dict]:
    """One dict per reference row: its keys, measured_s, predicted_s, error = predicted/measured − 1,
    and the kinds of source that answered."""
    from specperf.perfmodel.latency.providers import DATA, build_provider
    from specperf.perfmodel.specs.hardware import resolve_gpu

    hw = resolve_gpu(gpu)
    provs, out = {}, []
    for r in rows:
        m = PRICED_AS.get(r["mode"], r["mode"])
        if m not in provs:
            provs[m] = build_provider(hw, modes=(m,), data_dir=Path(data_dir) if data_dir else DATA).target
        ct = provs[m].forward(spec_of(r), int(r["batch"]), int(r["new_tokens"]), int(r["context"]), 1, m)
        pred, meas = float(np.asarray(ct.total_s)), float(r["median_s"])
        kinds = sorted({getattr(p, "coarse", "") for p in ct.sources.values()} - {"", "none"})
        out.append({**{k: r[k] for k in ("impl", "model", "family", "mode", "batch", "new_tokens", "context",
                                          "n_heads", "n_kv_heads")},
                    "measured_s": meas, "predicted_s": pred, "error": pred / meas - 1, "source": "+".join(kinds)})
    return out


def table_errors(rows, gpu: str, table) -> list[dict]:
    """{mode, rel_err} per reference row, predicted by operator composition from `table` alone (the
    provider that answers every reference shape), so a rebuild into another folder agrees."""
    from specperf.perfmodel.latency.operators import OperatorLatency
    from specperf.perfmodel.specs.hardware import resolve_gpu

    ops = OperatorLatency(table, resolve_gpu(gpu))
    out = []
    for r in rows:
        mode = PRICED_AS.get(r["mode"], r["mode"])
        t = float(np.asarray(ops.forward(spec_of(r), int(r["batch"]), int(r["new_tokens"]), int(r["context"]), 1,
                                         mode).total_s))
        out.append({"mode": mode, "rel_err": t / float(r["median_s"]) - 1, "impl": r["impl"]})
    return out


def summarise(errs, key) -> dict:
    groups: dict = {}
    for e in errs:
        groups.setdefault(key(e), []).append(abs(e["error"]))
    return {k: {"n": len(v), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
                "max": float(np.max(v))} for k, v in sorted(groups.items())}


__all__ = ["spec_of", "read", "predictions", "table_errors", "summarise"]
