"""The tensor-parallel provider: for tp > 1, measured TP tables (one provider per tp) replace the
base provider's components where it had no measured rows, and the shipped NCCL all-reduce curve
nearest in TP degree (its extrapolation stated) replaces the all-reduce. Also finds the shipped
curves and TP tables of a GPU in the data manifest (perfmodel.shipped).

Key assumption: tables and curves are passed in (build_provider reads them); a curve measured at
p0 ranks extrapolates to p as perfmodel.latency.tp's AllreduceModel says.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from specperf.perfmodel.latency.bands import band
from specperf.perfmodel.latency.source import Provenance
from specperf.perfmodel.latency.tp import AllreduceModel, load_curves
from specperf.perfmodel.shipped import DATA_DIR, find
from specperf.perfmodel.specs.models import ModelSpec

def shipped_curves(gpu: str, data_dir: str = str(DATA_DIR)) -> tuple:
    """Every all-reduce curve shipped for `gpu` (manifest role allreduce)."""
    out = []
    for e in sorted(find("allreduce", gpu=gpu, data_dir=data_dir), key=lambda e: e.tp):
        out.extend(c for c in load_curves(e.path) if c.gpu == gpu)
    return tuple(out)


def nearest_curve_model(curves, tp: int, mode: str) -> AllreduceModel | None:
    """The curve for `mode` measured at the TP degree nearest to `tp` (exact first), fitted."""
    cands = [c for c in curves if c.mode == mode and c.tp > 1]
    if not cands:
        return None
    best = min(cands, key=lambda c: (abs(math.log2(c.tp) - math.log2(tp)), -c.tp))
    return AllreduceModel.from_curve(best)


def curve_model(gpu: str, tp: int, mode: str, data_dir: str = str(DATA_DIR)) -> AllreduceModel | None:
    """The shipped curve for (gpu, mode) nearest to `tp`, fitted (reads the files each call)."""
    return nearest_curve_model(shipped_curves(gpu, data_dir), tp, mode)


def shipped_tp_tables(gpu: str, data_dir: str = str(DATA_DIR)) -> dict[int, Path]:
    """{tp: path} of the TP profiles shipped for `gpu`: rows measured with tp processes on tp GPUs."""
    return {e.tp: e.path for e in find("tp_profile", gpu=gpu, data_dir=data_dir)}


class TPMeasuredLatency:
    """A LatencyProvider for tp > 1: the base provider's components, replaced — where the base had
    no measured rows — by a measured TP table's (one provider per tp, passed in) and then, for the
    all-reduce, by the measured NCCL curve nearest in TP degree (its extrapolation stated)."""

    def __init__(self, base, tables: dict | None = None, curves: tuple = ()):
        self.base, self.tables, self.curves = base, dict(tables or {}), tuple(curves)
        self.name = getattr(base, "name", type(base).__name__)
        self._models: dict = {}

    def _curve(self, tp: int, mode: str):
        if (tp, mode) not in self._models:
            self._models[(tp, mode)] = nearest_curve_model(self.curves, tp, mode)
        return self._models[(tp, mode)]

    def forward(self, spec: ModelSpec, batch, new_tokens, context, tp=1, mode="graph"):
        ft = self.base.forward(spec, batch, new_tokens, context, tp, mode)
        if tp == 1:
            return ft
        fields, sources = {}, dict(ft.sources)
        prov = self.tables.get(tp)
        if prov is not None:
            ft_tp = prov.forward(spec, batch, new_tokens, context, tp, mode)
            for comp, f in (("layer", "layer_s"), ("lm_head", "lm_head_s"), ("allreduce", "allreduce_s")):
                if not sources[comp].measured_only and ft_tp.sources[comp].measured_only:
                    fields[f], sources[comp] = getattr(ft_tp, f), ft_tp.sources[comp]
        if not sources["allreduce"].measured_only:
            model = self._curve(tp, mode)
            if model is not None:
                shape = np.broadcast(np.asarray(ft.allreduce_s), np.asarray(batch), np.asarray(new_tokens)).shape
                fields["allreduce_s"] = np.broadcast_to(model.layer_s(spec, batch, new_tokens, tp), shape).copy()
                msg = (np.asarray(batch, dtype=float) * np.asarray(new_tokens, dtype=float)
                       * spec.d_model * spec.dtype_bytes)
                sources["allreduce"] = Provenance.of("curve", file=Path(model.curve.path).name,
                                                     detail=model.describe(tp, msg), band=band("curve", mode))
        return dataclasses.replace(ft, sources=sources, **fields) if fields else ft

    def overhead_s(self, spec, batch, gamma, mode="graph"):
        return self.base.overhead_s(spec, batch, gamma, mode)
