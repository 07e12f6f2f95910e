"""The latency interface every provider implements, and the value it returns.

`LatencyProvider` is the one interface for "how long does one forward of this model take": the
analytical roofline, measured profiles, operator composition, tensor-parallel measurements and
calibrated corrections all implement it explicitly (checked by tests with `isinstance`). A provider
returns `ComponentTimes`: seconds per component, broadcast over (batch, new_tokens, context), each
component with its `Provenance` as data. Key assumption: a forward is n_layers identical decoder
layers (each with its all-reduces) plus one head (embedding + final norm + LM head).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from specperf.perfmodel.specs.models import ModelSpec, SpecError
from specperf.perfmodel.specs.modes import MODES, answered_as, check_mode  # noqa: F401  (re-exported)

from .source import Provenance

# the modes and the compiled → graph fall-back: perfmodel.specs.modes (re-exported here)
COMPILED_NOT_MEASURED = "compiled not measured: graph-mode latency"
SAMPLER_NOT_COMPILED = "the sampler is not compiled: graph-mode overhead"  # engines compile the model only
ALLREDUCE_NOT_COMPILED = "the all-reduce is not compiled: graph-mode time"  # NCCL stays a graph-captured call


@dataclass(frozen=True)
class ComponentTimes:
    """Seconds for one forward, by component; arrays broadcast over (batch, new_tokens, context)."""
    layer_s: np.ndarray  # one decoder layer, without its all-reduces
    allreduce_s: np.ndarray  # the all-reduces of one layer (0 at tp = 1)
    lm_head_s: np.ndarray  # embedding + final norm + LM head
    n_layers: int
    sources: dict = field(default_factory=dict)  # {"layer"|"lm_head"|"allreduce": Provenance}

    @property
    def layers_s(self):
        return self.n_layers * (self.layer_s + self.allreduce_s)

    @property
    def total_s(self):
        return self.layers_s + self.lm_head_s


@runtime_checkable
class LatencyProvider(Protocol):
    """Seconds of one forward and of the per-iteration overhead, with provenance."""
    name: str

    def forward(self, spec: ModelSpec, batch, new_tokens, context, tp: int = 1,
                mode: str = "graph") -> ComponentTimes: ...

    def overhead_s(self, spec: ModelSpec, batch, gamma, mode: str = "graph") -> tuple[np.ndarray, Provenance]: ...


def stand_in_forward(forward, has_compiled: bool, spec, batch, new_tokens, context, tp, mode):
    """A provider's answer when `mode` is answered by another mode's data (perfmodel.specs.modes.
    answered_as: compiled without compiled data → graph), flagged by graph_stand_in; None when the
    provider answers `mode` from its own data."""
    other = answered_as(mode, has_compiled)
    return None if other == mode else graph_stand_in(forward(spec, batch, new_tokens, context, tp, other))


def graph_stand_in(ct: ComponentTimes) -> ComponentTimes:
    """Graph-mode times answering compiled mode where no compiled data exists: every source (but a
    'none' one, as tp = 1's all-reduce) noted COMPILED_NOT_MEASURED, and no error band claimed."""
    def strip(p: Provenance) -> Provenance:
        return Provenance(tuple(dataclasses.replace(x, band=None) for x in p.parts),
                          p.notes + (COMPILED_NOT_MEASURED,), tuple(strip(m) for m in p.members))
    return dataclasses.replace(ct, sources={k: v if v.kinds == ("none",) else strip(v) for k, v in ct.sources.items()})


def check_tp(spec: ModelSpec, tp: int) -> int:
    if not isinstance(tp, (int, np.integer)) or tp <= 0:
        raise SpecError(f"tp={tp!r} is not allowed; tensor parallelism must be a positive integer")
    spec.check_tp(int(tp))
    return int(tp)
