"""The speculation-method seam: one interface (`SpeculationMethod`) for every way of proposing
tokens — a separate draft model, EAGLE / EAGLE-3 / MTP feature heads, Medusa heads, n-gram prompt
lookup — and the one iteration-time formula every caller (predict, the optimiser, the Monte Carlo
of uncertainty and confidence, the explorer's exported arrays, the load simulator) uses.

A method answers two questions: what one iteration costs (`costs` → `IterationCosts`: proposal,
catch-up, verification of γ+1 tokens, overhead, and the autoregressive baseline; each with its
latency provenance) and how many tokens one iteration yields from its acceptance
(`tokens_per_iteration`). Key assumption: an iteration's time is the sum of its parts,

    iteration_s = proposal_s + catchup_s + verify_s + overhead_s          (iteration_time_s)

with proposal and catch-up answered by the proposer's latency (one error draw, the 'draft' role),
verification by the target's and overhead by the engine's; the baseline is one target forward over
one token plus the overhead at γ = 0. Arrays are (batch, context, γ); baselines (batch, context).

Example — a step cost for one method (what `predict` and a load simulator call)::

    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel
    from specperf.perfmodel.specdec.registry import make_method
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    lat = build_provider(resolve_gpu("h100-sxm")).target
    target = resolve_model("llama-7b")
    m = make_method("draft_model", draft=resolve_model("llama-7b:n_layers=2"))   # or "eagle3", "ngram" …
    c = m.costs(lat, target, batch=[1, 8], context=[512], gammas=[1, 2, 3, 4], tp=1, mode="graph")
    c.iteration_s()                       # (2, 1, 4) seconds per iteration
    c.at(1, 0).iteration_s()              # (4,) at batch 8, context 512
    m.tokens_per_iteration(AcceptanceModel(alpha=0.7), [1, 2, 3, 4])
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np

from specperf.perfmodel.specdec.maths import chain_proposal_s, iteration_time_s
from specperf.perfmodel.specs.models import ModelSpec

__all__ = ["IterationCosts", "SpeculationMethod", "chain_proposal_s", "iteration_time_s", "target_costs"]


@dataclass(frozen=True)
class IterationCosts:
    """Seconds of one iteration's parts over (batch, context, γ) (or (γ,) after `at`).

    step_s: one sequential proposal step (predict reports it as t_draft_s); proposal_s: all proposal
    work of the iteration; catchup_s: the proposer's extra work on the tokens the last iteration
    accepted; verify_s: the target over γ+1 tokens; overhead_s: sampling, accept/reject, host sync.
    target_s / baseline_overhead_s: the autoregressive step (batch, context)."""
    gamma: np.ndarray
    step_s: np.ndarray
    proposal_s: np.ndarray
    catchup_s: np.ndarray
    verify_s: np.ndarray
    overhead_s: np.ndarray
    target_s: np.ndarray
    baseline_overhead_s: np.ndarray
    sources: dict = field(default_factory=dict)
    notes: tuple = ()

    def iteration_s(self, proposer=1.0, target=1.0, overhead=1.0):
        """Seconds per iteration; the factors scale each role (Monte Carlo draws broadcast in front)."""
        return iteration_time_s(self.proposal_s * proposer, self.catchup_s * proposer,
                                self.verify_s * target, self.overhead_s * overhead)

    def baseline_s(self, factor=1.0):
        """One autoregressive step: target over one token + the γ = 0 overhead."""
        return (self.target_s + self.baseline_overhead_s) * factor

    def at(self, bi: int, ci: int) -> "IterationCosts":
        """One (batch, context) cell: arrays over γ, baselines scalars."""
        return replace(self, step_s=self.step_s[bi, ci], proposal_s=self.proposal_s[bi, ci],
                       catchup_s=self.catchup_s[bi, ci], verify_s=self.verify_s[bi, ci],
                       overhead_s=self.overhead_s[bi, ci], target_s=self.target_s[bi, ci],
                       baseline_overhead_s=self.baseline_overhead_s[bi, ci])


@runtime_checkable
class SpeculationMethod(Protocol):
    """A way of proposing tokens: its per-iteration costs and its tokens per iteration."""
    name: str  # registry key (perfmodel.specdec.registry.METHODS)

    def costs(self, latency, target: ModelSpec, batch, context, gammas, tp: int = 1, mode: str = "graph",
              proposer_latency=None) -> IterationCosts: ...

    def tokens_per_iteration(self, acceptance, gammas) -> np.ndarray: ...

    def describe(self) -> str: ...

    def engine_config(self, target: ModelSpec, gamma: int, tp: int) -> dict: ...

    def proposer_spec(self, target: ModelSpec) -> ModelSpec | None: ...  # weights on the GPU (None: none)


def grid(batch, context, gammas):
    """(B, C, G) broadcast views of 1-D batch, context and γ, and a zero array of the full shape."""
    b, c, g = (np.atleast_1d(np.asarray(v)) for v in (batch, context, gammas))
    zero = np.zeros((b.size, c.size, g.size))
    return b[:, None, None], c[None, :, None], g[None, None, :], zero


def target_costs(latency, target: ModelSpec, batch, context, gammas, tp: int, mode: str,
                 step_s, proposal_s, catchup_s, sources: dict, notes=()) -> IterationCosts:
    """Complete a method's proposal parts with the target side every method shares: verification of
    γ+1 tokens (a chain, or a tree of γ tokens under a tree mask: the same token count), the overhead
    at γ and the autoregressive baseline."""
    B, C, G, zero = grid(batch, context, gammas)
    vf = latency.forward(target, B, G + 1, C, tp, mode)
    t1 = latency.forward(target, B, 1, C, tp, mode)
    ov, ov_src = latency.overhead_s(target, B, G, mode)
    ov0, _ = latency.overhead_s(target, B, 0, mode)
    src = dict(sources)
    src.update({f"target_{k}": v for k, v in vf.sources.items()})
    src["overhead"] = ov_src
    return IterationCosts(gamma=np.atleast_1d(np.asarray(gammas)), step_s=step_s + zero, proposal_s=proposal_s + zero,
                          catchup_s=catchup_s + zero, verify_s=vf.total_s + zero, overhead_s=ov + zero,
                          target_s=(t1.total_s + zero)[..., 0], baseline_overhead_s=(ov0 + zero)[..., 0],
                          sources=src, notes=tuple(notes))


def chain_tokens(acceptance, gammas) -> np.ndarray:
    """Tokens per iteration of a chain of γ proposals: 1 + Σ_k Π_{i≤k} α_i (AcceptanceModel)."""
    return np.asarray(acceptance.tokens_per_iteration(np.asarray(gammas)), dtype=float)
