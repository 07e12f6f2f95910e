"""Choose the latency provider for a prediction — the one place that does: a measured profile when
one is given or shipped for the GPU (perfmodel/data/manifest.json, role profile), the analytical
roofline otherwise; for tp > 1 the GPU's shipped TP tables and all-reduce curves on top; a
calibration on top of all.

Compiled mode (torch.compile + CUDA graphs) is answered, at tp = 1, from the GPU's separate shipped
compiled table (a manifest profile whose modes are compiled) where one exists; every other
provider answers it with graph-mode latency and says so (perfmodel.latency.measured).

Key assumption: a shipped profile applies only to the GPU it was measured on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.base import ALLREDUCE_NOT_COMPILED, ComponentTimes, LatencyProvider
from specperf.perfmodel.latency.measured import MeasuredLatency
from specperf.perfmodel.latency.tp_provider import TPMeasuredLatency, shipped_curves, shipped_tp_tables
from specperf.perfmodel.shipped import DATA_DIR, find, find_one
from specperf.perfmodel.specs.hardware import HardwareProfile
from specperf.perfmodel.specs.models import SpecError

DATA = DATA_DIR


def shipped_profile(gpu: str, data_dir: Path = DATA) -> Path | None:
    """The graph/eager profile shipped for catalog GPU `gpu` (manifest role profile), or None."""
    return find_one("profile", gpu=gpu, mode="graph", data_dir=data_dir)


def shipped_compiled_profile(gpu: str, data_dir: Path = DATA) -> Path | None:
    """The compiled-mode table shipped for catalog GPU `gpu` (kept apart from its graph/eager
    profile), or None."""
    hits = [e for e in find("profile", gpu=gpu, mode="compiled", data_dir=data_dir) if "graph" not in e.modes]
    return hits[0].path if hits else None


class CompiledSplit:
    """`base` for every mode but compiled, which `compiled` answers (the shipped compiled table's
    measured rows, else operator-composed compiled layers and heads, chain.with_operators). At tp > 1
    the all-reduce stays `base`'s graph-mode time: engines run NCCL outside the compiled graph (a
    custom op / split point), captured in the same CUDA graph, so it is what graph mode measures."""

    def __init__(self, base: LatencyProvider, compiled: LatencyProvider):
        self.base, self.compiled = base, compiled
        self.name = f"{base.name}; compiled mode: {compiled.name}"
        self.hw = getattr(base, "hw", compiled.hw)

    def forward(self, spec, batch, new_tokens, context, tp=1, mode="graph"):
        if mode != "compiled":
            return self.base.forward(spec, batch, new_tokens, context, tp, mode)
        ct = self.compiled.forward(spec, batch, new_tokens, context, tp, mode)
        if tp == 1:
            return ct
        g = self.base.forward(spec, batch, new_tokens, context, tp, "graph")
        shape = np.broadcast(np.asarray(ct.layer_s), np.asarray(g.allreduce_s)).shape
        return ComponentTimes(ct.layer_s + np.zeros(shape), g.allreduce_s + np.zeros(shape),
                              ct.lm_head_s + np.zeros(shape), ct.n_layers,
                              dict(ct.sources, allreduce=g.sources["allreduce"].with_note(ALLREDUCE_NOT_COMPILED)))

    def overhead_s(self, spec, batch, gamma, mode="graph"):
        return self.base.overhead_s(spec, batch, gamma, mode)  # the sampler is never compiled


def with_tp_data(provider: LatencyProvider, hw: HardwareProfile, data_dir: Path = DATA,
                 exclude: Path | None = None) -> LatencyProvider:
    """`provider` with the shipped TP tables and all-reduce curves of `hw` for tp > 1 (unchanged
    when none ship). `exclude`: a table not to add (the base profile itself)."""
    tables = {tp: p for tp, p in shipped_tp_tables(hw.name, str(data_dir)).items()
              if exclude is None or p.resolve() != Path(exclude).resolve()}
    curves = shipped_curves(hw.name, str(data_dir))
    if not tables and not curves:
        return provider
    return TPMeasuredLatency(provider, {tp: MeasuredLatency(p, hw) for tp, p in tables.items()}, curves)


@dataclass(frozen=True)
class Providers:
    """The target-side and draft-side providers of one prediction (they differ only under a
    calibration, which corrects drafts and verification with different factors)."""
    target: LatencyProvider
    draft: LatencyProvider

    @property
    def name(self) -> str:
        return self.target.name


def build_provider(hw: HardwareProfile, profile: str | None = None, analytical: bool = False,
                   calibration: str | None = None, modes=("graph",), data_dir: Path = DATA,
                   hint: str = "", allow_gpu_mismatch: bool = False) -> Providers:
    """The providers for a prediction on `hw`: `profile` (a LatencyTable file) or the shipped one
    unless `analytical`; shipped TP data for tp > 1; `calibration` (from `specperf calibrate
    latency`) on top, which must hold an entry for every mode in `modes`. A given profile passes
    perfmodel.latency.integrity.check_profile first (its GPU must be `hw` unless allow_gpu_mismatch)."""
    if analytical and profile is not None:
        raise SpecError(f"--analytical ignores profiles, but profile={str(profile)!r} was given; drop one")
    from specperf.perfmodel.latency.chain import OperatorChain, with_operators

    if profile is not None:
        if Path(profile).is_dir():
            raise SpecError(f"profile {str(profile)!r} is a directory; give a LatencyTable CSV file")
        if not Path(profile).is_file():
            raise SpecError(f"profile {str(profile)!r} does not exist")
        from specperf.perfmodel.latency.integrity import check_profile

        check_profile(profile, hw.name, allow_gpu_mismatch)
        base: LatencyProvider = MeasuredLatency(profile, hw)
    else:
        p = None if analytical else shipped_profile(hw.name, data_dir)
        base = MeasuredLatency(p, hw) if p is not None else AnalyticalLatency(hw)
        if not analytical and data_dir == DATA:  # measured row > operator-composed > analytical
            base = with_operators(base, hw)
    prov = base if analytical else with_tp_data(base, hw, data_dir, exclude=profile)
    cp = None if analytical or profile is not None else shipped_compiled_profile(hw.name, data_dir)
    if cp is not None:
        prov = CompiledSplit(prov, with_operators(MeasuredLatency(cp, hw), hw))
    elif isinstance(base, OperatorChain) and base.operators.compiled_glue() is not None:
        # no compiled rows for this GPU, but operator tables that compose compiled layers (the
        # source GPU's, rescaled within one architecture): those, flagged unvalidated, beat graph
        # rows standing in for compiled ones
        prov = CompiledSplit(prov, base)
    if calibration is None:
        return Providers(prov, prov)
    from specperf.perfmodel.latency.corrected import apply_correction

    target, draft = apply_correction(prov, calibration, hw.name, list(modes), hint)
    return Providers(target, draft)


def latency_provider(hw: HardwareProfile, profile: str | None = None, use_shipped: bool = True) -> LatencyProvider:
    """The target-side provider of build_provider (no calibration): `use_shipped=False` means
    analytical when no profile is given. The profile's GPU is not checked against `hw` here (library
    callers such as `specperf validate` pair a device profile with a catalog GPU for the fallback)."""
    if profile is not None or use_shipped:
        return build_provider(hw, profile=profile, allow_gpu_mismatch=True).target
    return build_provider(hw, analytical=True).target
