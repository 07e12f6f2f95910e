"""Operator tables of one GPU rescaled to another by datasheet ratios, and the analytical model's
constants fitted per architecture from operator tables — for GPUs never profiled.

Analytical constants per architecture: the analytical model (roofline + per-kernel floor) refitted
to layers composed from the operator table over a grid of shapes (the table teaches, since it
covers shapes no layer profile has), then used with another GPU's datasheet rates.

Rescaling: each operator's time on the measured GPU is t; the bytes it must move take
bytes / B_src of it, with B_src the best streaming rate the table achieved (OperatorLatency.
ceilings) and B_dst = B_src × (datasheet HBM_dst / HBM_src); likewise for FLOPs with the matrix
rate. t_dst = t + bytes·(1/B_dst − 1/B_src) + flops·(1/F_dst − 1/F_src): a kernel bound by
bandwidth or arithmetic moves with that ratio, a latency-bound one (launch, tiny ops) keeps its
time. Key assumption: same architecture (kernels, clocks, launch costs), only the datasheet rates
differ — true for H200 → H100 (one Hopper die, HBM3e vs HBM3); across architectures it is a lead,
which is why every such prediction carries the error band measured on H100 (docs/accuracy.md).
numpy only.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.latency.operators import AXES, OperatorLatency, work
from specperf.perfmodel.latency.source import Provenance
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key
from specperf.perfmodel.specs.models import ModelSpec


def rescaled(src_path, src_hw, dst_hw, dtype: str = "fp16", fallback=None,
             keep_compiled: bool = False) -> OperatorLatency:
    """An OperatorLatency that answers for `dst_hw` from `src_hw`'s operator table; its compiled-mode
    glue only with `keep_compiled` (same architecture: the same inductor kernels)."""
    base = OperatorLatency(src_path, src_hw, dtype)
    bw_src, fl_src = base.ceilings()
    bw_dst = bw_src * dst_hw.hbm_bytes_per_s / src_hw.hbm_bytes_per_s
    fl_dst = fl_src * dst_hw.peak_flops_per_s / src_hw.peak_flops_per_s

    def scale(op, t, nbytes, flops):
        return t + nbytes * (1 / bw_dst - 1 / bw_src) + flops * (1 / fl_dst - 1 / fl_src)

    prov = OperatorLatency(src_path, dst_hw, dtype, fallback=fallback, scale=scale)
    prov.name = f"operator-composed ({base.file} rescaled {src_hw.name}→{dst_hw.name} by datasheet)"
    band = prov.table.meta.get("cross_gpu_band", {}).get(dst_hw.name, {})

    def provenance(mode):
        p = Provenance.of("operator", base.file, detail=f"rescaled {src_hw.name}→{dst_hw.name} by datasheet ratios"
                          + (f", 90 % band ±{band[mode]:.0%} on {dst_hw.name} layers" if mode in band else ""),
                          band=band.get(mode))
        # no measurement on this GPU backs the band: said in the answer, and the Monte Carlo's wide
        # fallback band applies (perfmodel.specdec.uncertainty)
        return p if mode in band else p.with_note(f"not validated on {dst_hw.name}: no error band measured")
    prov.provenance = provenance  # type: ignore[method-assign]
    if not keep_compiled:
        prov.compiled_glue = lambda: None  # type: ignore[method-assign]  # compiled glue: the source GPU's only
    return prov


TEACH_WIDTHS = (512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)


def teaching_table(prov: OperatorLatency, gpu: str) -> LatencyTable:
    """Layer and LM-head rows composed by `prov` over a grid of LLaMA-style shapes (widths 512–8192,
    MHA and GQA 4/8, FFN 2.75×, vocab 32k/128k, batch 1–64, 1 or 5 new tokens, context 512/2048)."""
    t = LatencyTable(meta={"gpu": gpu})
    for d in TEACH_WIDTHS:
        H = d // 128 if d >= 1024 else d // 64
        for grp in (1, 4, 8):
            if H % grp:
                continue
            spec = ModelSpec(name=f"t{d}g{grp}", family="llama", n_layers=1, d_model=d, n_heads=H,
                             n_kv_heads=H // grp, d_ff=int(2.75 * d) // 64 * 64, vocab=32000 if grp < 8 else 128256)
            for mode in ("graph", "eager"):
                for b in (1, 4, 16, 64):
                    for n in (1, 5):
                        for comp, c in (("layer", 512), ("layer", 2048), ("lm_head", 0)):
                            v = prov.layer_s(spec, b, n, c, 1, mode) if comp == "layer" else \
                                prov.lm_head_s(spec, b, n, 1, mode)
                            t.add({"gpu": gpu, "model": spec.name, "shape": layer_shape_key(spec) if comp == "layer" else "",
                                   "head_shape": head_shape_key(spec) if comp == "lm_head" else "", "component": comp,
                                   "mode": mode, "dtype": "fp16", "tp": 1, "batch": b, "new_tokens": n, "context": c,
                                   "median_s": float(v), "p10_s": float(v), "p90_s": float(v), "repeats": 1,
                                   "status": "ok", "reason": ""})
    return t


def fit_analytical(prov: OperatorLatency, dst_hw):
    """`dst_hw` with the analytical model's efficiencies and kernel floors fitted (perfmodel.latency.fit)
    to layers composed from `prov`'s operator table — the constants of that architecture — applied
    to `dst_hw`'s datasheet rates. Returns (HardwareProfile, fit stats)."""
    from specperf.perfmodel.latency.fit import PARAMS, fit_profile

    hw, stats = fit_profile(teaching_table(prov, prov.hw.name), prov.hw)
    return dst_hw.replace(**{k: getattr(hw, k) for k in PARAMS}), stats


__all__ = ["rescaled", "fit_analytical", "AXES", "work"]
