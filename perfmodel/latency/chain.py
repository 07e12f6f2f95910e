"""Precedence per component and per point: a measured (or interpolated) whole-layer / LM-head row
where the profile has the shape and the point lies inside its grid, the operator-composed time
everywhere else (shapes never profiled, points outside the grid, tp shards the profile lacks);
the analytical model only where no operator table exists for the GPU (build_provider never builds
a chain then). All-reduces and the per-iteration overhead stay with the base provider, and so does
compiled mode when the operator table carries no compiled glue (fitted on measured compiled layers).

Key assumption: operator composition beats the fitted roofline off the measured grid (validated by
scripts/shape_check.py: docs/accuracy.md), and a measured row beats both on it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from specperf.perfmodel.latency.bands import band
from specperf.perfmodel.latency.base import ComponentTimes, stand_in_forward
from specperf.perfmodel.latency.source import Provenance, Source
from specperf.perfmodel.latency.table import head_shape_key, layer_shape_key


class OperatorChain:
    """measured row > operator-composed (> analytical inside the base provider, never reached here)."""

    def __init__(self, base, operators):
        self.base, self.operators = base, operators
        self.name = f"{base.name}, else {operators.name}"
        self.hw = getattr(base, "hw", operators.hw)
        self._superseded = None  # decided on first use: it reads both tables' metadata

    def _measured(self, component, key, tp, mode, by, coords, skip=False):
        """(values, kinds, edge values, clamped coords) of the base profile's grid at coords: NaN where
        it has no row to use; `edge` is the grid at the nearest in-grid point (NaN without a grid)."""
        grid = getattr(self.base, "grid", None)
        if skip:
            grid = None
        g = grid(component, key, tp, mode, by) if grid is not None else None
        shape = np.broadcast(*[np.asarray(c) for c in coords]).shape
        if g is None:
            return np.full(shape, np.nan), None, np.full(shape, np.nan), None
        val, kind = g(*coords)
        clamped = g.clamp(*np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in coords]))
        edge, _ = g(*clamped)
        kinds = np.where(np.isfinite(val), np.where(kind == 0, "measured", "interpolated"),
                         np.where(np.isfinite(edge), "anchored", "operator"))
        return val, kinds, edge, clamped

    def superseded(self, spec) -> bool:
        """Whether `spec`'s measured layer rows yield to the operator table: the profile was timed with
        plain attention kernels, the table with engine kernels, and the layer is grouped-query (where
        the plain kernels' folded, repeated-mask attention is 2-25x the engine kernels' at long context,
        scripts/attention_bench.py; one KV head per query head was within 5 %, docs/accuracy.md)."""
        if spec.n_heads == spec.n_kv_heads:
            return False
        if self._superseded is None:
            self._superseded = bool(getattr(self.operators, "engine_kernels", False)) and \
                profile_kernels(self.base) not in (None, "engine", "packed")
        return self._superseded

    def forward(self, spec, batch, new_tokens, context, tp=1, mode="graph") -> ComponentTimes:
        stand_in = stand_in_forward(self.forward, self.operators.compiled_glue() is not None, spec, batch,
                                    new_tokens, context, tp, mode)
        if stand_in is not None:  # no compiled glue: this chain's graph answer stands in, said so, no band
            return stand_in
        by = spec.dtype_bytes
        parts = {"layer": ("layer_s", layer_shape_key(spec), (batch, new_tokens, context)),
                 "lm_head": ("lm_head_s", head_shape_key(spec), (batch, new_tokens))}
        sup = self.superseded(spec)
        found = {comp: self._measured(comp, key, tp, mode, by, coords, skip=comp == "layer" and sup)
                 for comp, (_, key, coords) in parts.items()}
        if tp == 1 and all(np.isnan(f[0]).all() and np.isnan(f[2]).all() for f in found.values()):
            return self.operators.forward(spec, batch, new_tokens, context, tp, mode)  # never profiled
        ft = self.base.forward(spec, batch, new_tokens, context, tp, mode)
        fields, sources, op = {}, dict(ft.sources), None
        for comp, (attr, key, coords) in parts.items():
            val, kinds, edge, clamped = found[comp]
            if np.isfinite(val).all():
                continue
            op = op or self.operators.forward(spec, batch, new_tokens, context, tp, mode)
            shape = np.broadcast(np.asarray(getattr(ft, attr)), val).shape
            opv = np.asarray(getattr(op, attr), dtype=float) + np.zeros(shape)
            if clamped is not None and np.isfinite(edge).any():
                # off the grid of a measured shape: the operator time scaled to agree with the nearest
                # measured point, so crossing the grid's edge never jumps (a 10-token verify costs
                # no less than the measured 9-token one just because another source answers it)
                at = clamped if comp == "layer" else (clamped[0], clamped[1], context)
                op_edge = np.asarray(getattr(self.operators.forward(spec, *at, tp, mode), attr), dtype=float)
                opv = np.where(np.isfinite(edge), opv * edge / op_edge, opv) + np.zeros(shape)
            fields[attr] = np.where(np.isfinite(val), val, opv) + np.zeros(shape)
            if np.isnan(val).all() and np.isnan(edge).all():
                sources[comp] = op.sources[comp]
                if comp == "layer" and sup:
                    sources[comp] = sources[comp].with_note(SUPERSEDED_NOTE)
                continue
            src = op.sources[comp].parts[0]
            base_prov = ft.sources[comp]  # the base's own Sources for its rows: their bands and notes
            own = {x.kind: dataclasses.replace(x, count=0) for m in (base_prov.members or (base_prov,))
                   for x in m.parts}
            f = getattr(self.base, "file", "")
            labels = {"measured": own.get("measured") or Source("measured", f, band=band("measured", mode)),
                      "interpolated": own.get("interpolated") or Source("interpolated", f,
                                                                         band=band("interpolated", mode)),
                      "operator": src,
                      "anchored": dataclasses.replace(src, detail=(src.detail + "; " if src.detail else "")
                                                      + "scaled to the nearest measured point")}
            prov = Provenance.from_kinds(np.broadcast_to(kinds, shape), labels)
            for note in base_prov.notes:
                prov = prov.with_note(note)
            sources[comp] = prov
        if not fields:
            return ft
        vals = {f: fields.get(f, getattr(ft, f)) for f in ("layer_s", "allreduce_s", "lm_head_s")}
        shape = np.broadcast(*vals.values()).shape
        return ComponentTimes(**{f: v + np.zeros(shape) for f, v in vals.items()}, n_layers=spec.n_layers,
                              sources=sources)

    def overhead_s(self, spec, batch, gamma, mode="graph"):
        return self.base.overhead_s(spec, batch, gamma, mode)


# Cross-GPU: a catalog GPU with no operator table of its own borrows this one's, rescaled by datasheet
# ratios (perfmodel.latency.crossgpu) — validated H200 → H100 on the H100's measured layers
# (scripts/cross_gpu_check.py; the errors: docs/accuracy.md, "Cross-GPU"). NVIDIA only: the kernels and
# launch path are CUDA's.
CROSS_GPU_SOURCE = "h200"
CROSS_GPU_NOT_VALIDATED = "rescaled across GPUs by datasheet ratios, validated H200 → H100 only"


SUPERSEDED_NOTE = ("grouped-query layer rows of the profile timed with plain attention kernels: "
                   "engine-kernel operator composition")


def profile_kernels(base) -> str | None:
    """The attention kernels a measured provider's table was timed with (metadata `kernels`; tables
    from before the engine kernels are 'plain'); None for a provider without a table file."""
    meta = getattr(base, "_meta", None)  # MeasuredLatency's cached sidecar
    return None if meta is None else meta().get("kernels", "plain")


def same_arch(a, b) -> bool:
    """GPUs of one architecture (Hopper: the H200 is the H100's GH100 die with HBM3e, per NVIDIA's H200
    datasheet) also share compiled-mode glue — the same inductor kernels, unvalidated."""
    return a.arch == b.arch and a.vendor != "unknown"


def with_operators(base, hw, dtype: str = "fp16", cross_gpu: bool = True):
    """`base` chained with the operator table of `hw`, or — `cross_gpu` and an NVIDIA GPU — with
    CROSS_GPU_SOURCE's table rescaled to `hw` (graph and eager mode only: compiled glue is not carried
    across GPUs); `base` unchanged when neither exists."""
    from specperf.perfmodel.latency.operators import operator_provider, operator_table_for

    ops = operator_provider(hw, dtype, fallback=base)
    if ops is None and cross_gpu and hw.name != CROSS_GPU_SOURCE and hw.vendor == "nvidia":
        from specperf.perfmodel.latency.crossgpu import rescaled
        from specperf.perfmodel.specs.hardware import GPUS

        found = operator_table_for(CROSS_GPU_SOURCE, dtype)
        if found is not None:
            ops = rescaled(found[0], GPUS[CROSS_GPU_SOURCE], hw, found[1],
                           fallback=base, keep_compiled=same_arch(hw, GPUS[CROSS_GPU_SOURCE]))
    return base if ops is None else OperatorChain(base, ops)


__all__ = ["OperatorChain", "with_operators"]
