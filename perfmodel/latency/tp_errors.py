"""Error tables of a shipped TP profile (no GPU needed), the logic of scripts/tp_error_table.py:
1. whole TP model measured vs composed by the measured provider (n_layers·(layer + allreduce) +
lm_head on the shipped TP table), per mode; 2. per layer: layer measured WITH its all-reduces vs
layer without + the all-reduce pair; 3. the all-reduce curve fits.

Key assumption: the TP table, its curve and its evidence files (the manifest entry's `evidence`:
validation, with_allreduce, in the checkout's evidence/) are the manifest's (perfmodel.shipped).
"""
from __future__ import annotations

import csv

import numpy as np

from specperf.perfmodel.latency.measured import MeasuredLatency
from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.latency.tp import AllreduceModel, load_curves
from specperf.perfmodel.shipped import EVIDENCE_DIR, find, find_one
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS


def _shipped(role: str, gpu: str, tp: int):
    p = find_one(role, gpu=gpu, tp=tp)
    if p is None:
        raise FileNotFoundError(f"no shipped {role} for gpu={gpu} tp={tp} in perfmodel/data/manifest.json")
    return p


def _evidence(gpu: str, tp: int, name: str):
    """The TP table's evidence file `name` (manifest entry's `evidence`) in the checkout's evidence/."""
    ev = [e.evidence[name] for e in find("tp_profile", gpu=gpu, tp=tp) if name in e.evidence]
    if not ev:
        raise FileNotFoundError(f"the manifest names no {name} evidence for gpu={gpu} tp={tp}")
    return EVIDENCE_DIR / ev[0]


def whole_model(gpu: str, tp: int) -> list[dict]:
    prov = MeasuredLatency(_shipped("tp_profile", gpu, tp), GPUS[gpu])
    out = []
    with open(_evidence(gpu, tp, "validation"), newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] != "ok":
                continue
            spec = resolve_model(r["model"])
            b, n, c = int(r["batch"]), int(r["new_tokens"]), int(r["context"])
            ft = prov.forward(spec, b, n, c, tp, r["mode"])
            meas = float(r["measured_s"])
            out.append({"model": r["model"], "mode": r["mode"], "batch": b, "new_tokens": n, "context": c,
                        "measured_s": meas, "composed_s": float(ft.total_s), "rel_err": float(ft.total_s) / meas - 1,
                        "rel_err_in_layer": float(r["rel_err_in_layer"]),
                        "sources": sorted({str(ft.sources[k]) for k in ("layer", "allreduce", "lm_head")})})
    return out


def per_layer(gpu: str, tp: int) -> dict:
    t = LatencyTable.load(_shipped("tp_profile", gpu, tp))
    w = LatencyTable.load(_evidence(gpu, tp, "with_allreduce"))
    ar = {(r["shape"], r["mode"], r["batch"], r["new_tokens"]): r["median_s"] for r in t.select(component="allreduce")}
    lay = {(r["shape"], r["mode"], r["batch"], r["new_tokens"], r["context"]): r for r in t.select(component="layer")}
    out: dict = {}
    for r in w.select(component="layer"):
        k = (r["shape"], r["mode"], r["batch"], r["new_tokens"], r["context"])
        if k not in lay or k[:4] not in ar:
            continue
        comp = lay[k]["median_s"] + ar[k[:4]]
        d = out.setdefault((r["model"], r["mode"]), {"err": [], "share": []})
        d["err"].append(comp / r["median_s"] - 1)
        d["share"].append(ar[k[:4]] / comp)
    return {f"{m} {mode}": {"n": len(d["err"]), "median_abs_rel_err": float(np.median(np.abs(d["err"]))),
                            "allreduce_share_median": float(np.median(d["share"])),
                            "allreduce_share_max": float(np.max(d["share"]))}
            for (m, mode), d in sorted(out.items())}


def error_tables(gpu: str = "h100-sxm", tp: int = 2) -> dict:
    """{gpu, tp, whole_model (per-mode summary), per_layer, allreduce_fits, points}."""
    wm = whole_model(gpu, tp)
    summary = {}
    for mode in ("graph", "eager"):
        e = np.array([r["rel_err"] for r in wm if r["mode"] == mode])
        e2 = np.array([r["rel_err_in_layer"] for r in wm if r["mode"] == mode])
        if e.size:
            summary[mode] = {"n": int(e.size), "median_abs_rel_err": float(np.median(np.abs(e))),
                             "max_abs_rel_err": float(np.max(np.abs(e))),
                             "median_abs_rel_err_in_layer": float(np.median(np.abs(e2)))}
    fits = {}
    for c in load_curves(_shipped("allreduce", gpu, tp)):
        m = AllreduceModel.from_curve(c)
        fits[c.mode] = {"fit": m.fit.describe(), "tp4_over_tp2_at_16KiB": float(m.one_s(16384, 4) / m.one_s(16384, 2)),
                        "tp8_over_tp2_at_16KiB": float(m.one_s(16384, 8) / m.one_s(16384, 2))}
    return {"gpu": gpu, "tp": tp, "whole_model": summary, "per_layer": per_layer(gpu, tp),
            "allreduce_fits": fits, "points": wm}
