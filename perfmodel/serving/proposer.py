"""The proposer side of a speculating engine, as the serving simulation needs it: the cost of
proposing γ tokens for a batch, of prefilling a prompt into the proposer, and the tokens each
sequence gains per iteration. Two proposers: a separate draft model (latency from a provider, as
perfmodel.specdec.predict times it) and n-gram prompt lookup (a host cost per step, given).

Key assumption: acceptance is i.i.d. across sequences and iterations at the AcceptanceModel's
rates by position (perfmodel.specdec.maths.simulate_tokens_per_iteration); it does not depend on
batch size or load. This is the small interface the simulation is written against; a method seam
with the same three costs can stand in for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from perfmodel.specdec.acceptance import AcceptanceModel
from perfmodel.specdec.maths import draft_context, simulate_tokens_per_iteration


@runtime_checkable
class Proposer(Protocol):
    name: str
    acceptance: AcceptanceModel
    band: float  # relative 90 % band of the proposal cost (0: none known)
    sources: dict

    def step_s(self, batch, context, gamma): ...  # one proposal step (1 token per sequence), seconds

    def prefill_s(self, tokens, context): ...  # prefilling `tokens` prompt tokens for one sequence

    def tokens_per_iteration(self, gamma): ...

    def sample_tokens(self, rng: np.random.Generator, n: int, gamma: int) -> np.ndarray: ...


def max_band(sources: dict) -> float:
    """Largest relative 90 % band among the provenance parts of one forward (0 where none is known)."""
    out = 0.0
    for prov in sources.values():
        for part in getattr(prov, "parts", ()):
            if part.band is not None:
                out = max(out, float(part.band))
    return out


class _Acceptance:
    acceptance: AcceptanceModel

    def tokens_per_iteration(self, gamma):
        return self.acceptance.tokens_per_iteration(np.asarray(gamma))

    def sample_tokens(self, rng, n, gamma):
        ab = self.acceptance.alpha_by_position or (self.acceptance.alpha,)
        return simulate_tokens_per_iteration(ab, int(gamma), int(n), rng)


@dataclass(frozen=True)
class DraftModelProposer(_Acceptance):
    """A separate draft model on one GPU, timed by `latency` (a LatencyProvider) in `mode`."""
    draft: object  # ModelSpec
    latency: object
    acceptance: AcceptanceModel
    mode: str = "graph"
    band: float = 0.0
    sources: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"draft model {self.draft.name}"

    def step_s(self, batch, context, gamma):
        return self.latency.forward(self.draft, batch, 1, draft_context(context, gamma), 1, self.mode).total_s

    def prefill_s(self, tokens, context):
        return self.latency.forward(self.draft, 1, tokens, context, 1, self.mode).total_s


def draft_proposer(draft, latency, acceptance: AcceptanceModel, mode: str = "graph") -> DraftModelProposer:
    """A DraftModelProposer with its band and sources read from one forward of the draft."""
    ft = latency.forward(draft, 1, 1, 512, 1, mode)
    return DraftModelProposer(draft, latency, acceptance, mode, max_band(ft.sources),
                              {f"draft_{k}": str(v) for k, v in ft.sources.items()})


@dataclass(frozen=True)
class NgramProposer(_Acceptance):
    """Prompt lookup on the host: `per_step_s` per proposal step for the whole batch (given, not
    modelled), no prefill cost, acceptance as measured (e.g. from the engine's /metrics)."""
    acceptance: AcceptanceModel
    per_step_s: float = 0.0
    band: float = 0.0
    sources: dict = field(default_factory=dict)
    name: str = "n-gram prompt lookup"

    def step_s(self, batch, context, gamma):
        shape = np.broadcast(np.asarray(batch), np.asarray(context), np.asarray(gamma)).shape
        # the lookup proposes all γ tokens in one pass; iteration_s multiplies a step by γ
        return np.full(shape, self.per_step_s) / np.maximum(np.asarray(gamma, dtype=float), 1.0)

    def prefill_s(self, tokens, context):
        return np.zeros(np.broadcast(np.asarray(tokens), np.asarray(context)).shape)
