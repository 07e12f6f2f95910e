"""Analytical forward-time model: roofline time per kernel with a per-kernel floor, composed into
one decoder layer, the LM head, tensor-parallel all-reduces and the per-iteration overhead.

Key assumption: a forward pass is a fixed sequence of kernels; each takes the larger of its
compute time (FLOPs / efficient peak), its memory time (bytes / efficient bandwidth) and a floor
(launch cost in eager mode, minimum kernel time under CUDA graphs). The floor makes small-batch
latency grow with depth rather than with size — the effect the study found. Compiled mode (fused
kernels under CUDA graphs) uses a floor and a fused small-kernel count fitted to measured compiled rows;
without them it answers graph mode's time, and its provenance says "compiled not measured".
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.specs.families import FAMILIES
from specperf.perfmodel.specs.hardware import HardwareProfile
from specperf.perfmodel.specs.models import ModelSpec

from .base import COMPILED_NOT_MEASURED, MODES, ComponentTimes, answered_as, check_mode, check_tp  # noqa: F401  (re-exported)
from .bands import band, load_bands
from .source import NONE_TP1, Provenance

# Small (elementwise/normalisation) kernels per decoder layer: perfmodel.specs.families (with the count)
SMALL_KERNELS = {name: f.small_kernels for name, f in FAMILIES.items()}
SMALL_KERNEL_BYTES_PER_TOKEN_D = 4  # each small kernel reads+writes ~2 activations of d_model
_check_mode = check_mode


class AnalyticalLatency:
    """Roofline-plus-floor latency from a HardwareProfile's datasheet rates and efficiencies."""

    def __init__(self, hw: HardwareProfile):
        self.hw = hw
        self.name = f"analytical ({hw.name} datasheet roofline)"
        self.source = Provenance.of("datasheet", detail=hw.name)
        bands = load_bands()
        self._sources = {m: Provenance.of("datasheet", detail=hw.name, band=band("datasheet", m, bands))
                         for m in ("graph", "eager")}
        # compiled: fitted constants when a profile had compiled rows, else graph mode, said so, no band
        self._sources["compiled"] = (Provenance.of("datasheet", detail=hw.name) if self.compiled_fitted
                                     else Provenance.of("datasheet", detail=hw.name).with_note(COMPILED_NOT_MEASURED))

    @property
    def compiled_fitted(self) -> bool:
        """Whether `hw` carries compiled-mode constants fitted to measured compiled rows."""
        return self.hw.kernel_floor_compiled_s is not None and self.hw.compiled_small_kernels is not None

    def _floor(self, mode: str) -> float:
        mode = answered_as(mode, self.compiled_fitted)  # unfitted compiled: graph's constants, noted
        if mode == "compiled":
            return self.hw.kernel_floor_compiled_s
        return self.hw.kernel_floor_eager_s if mode == "eager" else self.hw.kernel_floor_graph_s

    def _small_kernels(self, spec: ModelSpec, mode: str) -> float:
        if answered_as(mode, self.compiled_fitted) == "compiled":
            return self.hw.compiled_small_kernels
        return SMALL_KERNELS[spec.family]

    def _kernel(self, flops, nbytes, floor):
        t_c = flops / (self.hw.peak_flops_per_s * self.hw.matmul_efficiency)
        t_m = nbytes / (self.hw.hbm_bytes_per_s * self.hw.bandwidth_efficiency)
        return np.maximum(np.maximum(t_c, t_m), floor)

    def layer_s(self, spec: ModelSpec, batch, new_tokens, context, tp=1, mode="graph"):
        _check_mode(mode)
        b, n, ctx = (np.asarray(x, dtype=float) for x in (batch, new_tokens, context))
        T = b * n
        by, d = spec.dtype_bytes, spec.d_model
        H, KV, _ = spec.shard(tp)
        qd, kvd = H * spec.head_dim, KV * spec.head_dim
        fl = self._floor(mode)
        t = 0.0
        for _, k_in, k_out in spec.layer_matmuls(tp):
            t = t + self._kernel(2 * T * k_in * k_out, by * (k_in * k_out + T * (k_in + k_out)), fl)
        # attention over the cache: QK^T and PV, reading the whole KV cache of each sequence
        kv_len = ctx + n
        att_flops = 4 * T * kv_len * qd
        att_bytes = by * (b * kv_len * 2 * kvd + 2 * T * qd)
        t = t + self._kernel(att_flops, att_bytes, fl)
        small = self._small_kernels(spec, mode)
        t = t + small * self._kernel(0.0, SMALL_KERNEL_BYTES_PER_TOKEN_D * by * T * d, fl)
        return t

    def allreduce_s(self, spec: ModelSpec, batch, new_tokens, tp=1, mode="graph"):
        b, n = np.asarray(batch, dtype=float), np.asarray(new_tokens, dtype=float)
        if tp == 1:
            return np.zeros(np.broadcast(b, n).shape)
        msg = b * n * spec.d_model * spec.dtype_bytes
        one = self.hw.allreduce_latency_s + 2 * (tp - 1) / tp * msg / self.hw.interconnect_bytes_per_s
        return 2 * np.maximum(one, self._floor(mode))  # attention output and MLP output

    def lm_head_s(self, spec: ModelSpec, batch, new_tokens, tp=1, mode="graph"):
        b, n = np.asarray(batch, dtype=float), np.asarray(new_tokens, dtype=float)
        T = b * n
        e = spec.embed_dim or spec.d_model
        fl = self._floor(mode)
        head = self._kernel(2 * T * e * spec.vocab / tp, spec.dtype_bytes * (e * spec.vocab / tp + T * spec.vocab), fl)
        embed_norm = 5 * self._kernel(0.0, 2 * spec.dtype_bytes * T * spec.d_model, fl)
        return head + embed_norm

    def forward(self, spec: ModelSpec, batch, new_tokens, context, tp=1, mode="graph") -> ComponentTimes:
        check_tp(spec, tp)
        return ComponentTimes(
            layer_s=self.layer_s(spec, batch, new_tokens, context, tp, mode),
            allreduce_s=self.allreduce_s(spec, batch, new_tokens, tp, mode),
            lm_head_s=self.lm_head_s(spec, batch, new_tokens, tp, mode),
            n_layers=spec.n_layers,
            sources={"layer": self._sources[mode], "lm_head": self._sources[mode],
                     "allreduce": self._sources[mode] if tp > 1 else NONE_TP1})

    def overhead_s(self, spec: ModelSpec, batch, gamma, mode="graph"):
        """Per-iteration work outside forwards: sampling over the vocabulary, accept/reject, sync."""
        base = self.hw.overhead_eager_s if mode == "eager" else self.hw.overhead_graph_s
        b, g = np.asarray(batch, dtype=float), np.asarray(gamma, dtype=float)
        sample_bytes = 4 * b * (g + 1) * spec.vocab  # fp32 logits read once by argmax/softmax
        return base + sample_bytes / (self.hw.hbm_bytes_per_s * self.hw.bandwidth_efficiency), self._sources.get(mode, self.source)
