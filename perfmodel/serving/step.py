"""Engine step model: the time of one continuous-batching engine step (decode of b sequences with
lookahead γ, plus prefill tokens chunked into the same step) and the tokens each decoding sequence
gains, built from the latency providers (perfmodel.latency) and perfmodel.specdec.maths.

Key assumptions: a decode step costs the speculation method's iteration (perfmodel.specdec.methods:
proposal + catch-up + verification of γ+1 tokens + overhead; γ = 0: the autoregressive step, one
target forward over 1 token + overhead) at the batch's mean context
(every term of a layer is affine in context, so the mean is exact for the batch's total); prefill
tokens scheduled into a step with decodes add their *marginal* cost t(1, P, ctx) − t(1, 1, ctx) of
the target (and of the draft, which must prefill too), so a mixed step shares one forward's fixed
costs, as a chunked-prefill scheduler (vLLM V1) runs it; a step of prefill alone costs t(1, P, ctx).
An engine may add a fixed cost per step and per scheduled sequence (scheduler, input preparation,
sampling) that the profile does not hold: `EngineOverhead`, zero unless calibrated.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from specperf.perfmodel.serving.proposer import Speculation, max_band

CONTEXT_POINTS = 16  # context grid points of the step table (geometric); between them: linear
PREFILL_POINTS = 12  # prefill-token grid points (geometric, 1 .. the step token budget)


@dataclass(frozen=True)
class EngineOverhead:
    """Engine costs outside the forwards and specperf's per-iteration overhead, in seconds."""
    per_step_s: float = 0.0
    per_seq_s: float = 0.0
    per_proposal_s: float = 0.0  # per proposal forward (γ per speculative step): engines prepare each
    per_seq_proposal_s: float = 0.0  # per decoding sequence per proposal forward (the proposer's per-row work)

    def step_s(self, n_seq: int, n_decode: int, gamma: int) -> tuple[float, float]:
        """(target-side, proposer-side) engine cost of one step with n_seq scheduled sequences of
        which n_decode decode at lookahead γ."""
        spec = gamma if n_decode else 0
        return (self.per_step_s + self.per_seq_s * n_seq,
                spec * (self.per_proposal_s + self.per_seq_proposal_s * n_decode))


@runtime_checkable
class StepModel(Protocol):
    """What the event loop asks: seconds of one step, and tokens per decoding sequence."""
    name: str

    def step_s(self, n_decode: int, mean_context: float, gamma: int, prefill_tokens: int,
               prefill_context: float) -> float: ...

    def tokens(self, rng: np.random.Generator, n: int, gamma: int) -> np.ndarray: ...


@dataclass(frozen=True)
class StepTable:
    """Step-time tables over batch 1..max_batch × a context grid × γ in 0..γmax, split into the part
    the proposer costs and the part the target costs (so latency bands scale each side)."""
    name: str
    contexts: np.ndarray  # (C,)
    gammas: np.ndarray  # (G,), 0 first
    propose_s: np.ndarray  # (B, C, G): γ·t_draft (+ catch-up); 0 at γ = 0
    target_s: np.ndarray  # (B, C, G): t_verify(γ+1) + overhead(γ)
    prefill_tokens: np.ndarray  # (P,)
    prefill_target_s: np.ndarray  # (P, C): t_target(1, P, ctx)
    prefill_target_1_s: np.ndarray  # (C,): t_target(1, 1, ctx)
    prefill_propose_s: np.ndarray  # (P, C): the proposer's prefill of P tokens (0 without one)
    prefill_propose_1_s: np.ndarray  # (C,)
    overhead0_s: np.ndarray  # (C,): the per-iteration overhead of a step at batch 1, γ = 0 (prefill alone)
    proposer: Speculation | None
    overhead: EngineOverhead = EngineOverhead()
    band_target: float = 0.0  # relative 90 % half-width of the target-side latency (largest over batches)
    band_propose: float = 0.0
    band_batches: tuple = ()  # batches the bands were read at, and the bands there
    band_target_by: tuple = ()
    band_propose_by: tuple = ()
    scale_target: float = 1.0
    scale_propose: float = 1.0
    sources: dict = None  # display text per component

    @property
    def max_batch(self) -> int:
        return self.propose_s.shape[0]

    def bands_at(self, batch: float) -> tuple[float, float]:
        """(target, proposer) bands covering decode batches 1..batch: the largest read at the band
        batches up to the first one ≥ batch."""
        if not self.band_batches:
            return self.band_target, self.band_propose
        k = int(np.searchsorted(self.band_batches, batch)) + 1
        return max(self.band_target_by[:k]), max(self.band_propose_by[:k])

    def scaled(self, target: float, propose: float) -> "StepTable":
        """The same engine with target-side times × `target` and proposer times × `propose`."""
        return replace(self, scale_target=target, scale_propose=propose)

    def _ctx(self, table_bc: np.ndarray, c: float) -> float:
        return float(np.interp(c, self.contexts, table_bc))

    def decode_s(self, n: int, c: float, gamma: int) -> float:
        gi = int(np.searchsorted(self.gammas, gamma))
        b = min(max(n, 1), self.max_batch) - 1
        return (self.scale_propose * self._ctx(self.propose_s[b, :, gi], c)
                + self.scale_target * self._ctx(self.target_s[b, :, gi], c))

    def _prefill(self, tab: np.ndarray, p: int, c: float) -> float:
        col = np.array([self._ctx(tab[i], c) for i in range(len(self.prefill_tokens))])
        return float(np.interp(p, self.prefill_tokens, col))

    def prefill_s(self, p: int, c: float, alone: bool) -> float:
        """Target (+ proposer) prefill of p tokens at context c: its whole cost when `alone`, else the
        marginal cost added to a decode step."""
        if p <= 0:
            return 0.0
        t = self._prefill(self.prefill_target_s, p, c)
        d = self._prefill(self.prefill_propose_s, p, c) if self.proposer is not None else 0.0
        if not alone:
            t -= self._ctx(self.prefill_target_1_s, c)
            d -= self._ctx(self.prefill_propose_1_s, c) if self.proposer is not None else 0.0
        return self.scale_target * max(t, 0.0) + self.scale_propose * max(d, 0.0)

    def step_s(self, n_decode, mean_context, gamma, prefill_tokens, prefill_context) -> float:
        n_seq = n_decode + (1 if prefill_tokens > 0 else 0)
        ft, fp = self.overhead.step_s(n_seq, n_decode, gamma)
        fixed = self.scale_target * ft + self.scale_propose * fp
        if n_decode == 0:
            return fixed + self.prefill_s(prefill_tokens, prefill_context, alone=True) + \
                self.scale_target * self._ctx(self.overhead0_s, prefill_context)
        return fixed + self.decode_s(n_decode, mean_context, gamma) + \
            self.prefill_s(prefill_tokens, prefill_context, alone=False)

    def tokens(self, rng, n, gamma):
        if gamma == 0 or self.proposer is None:
            return np.ones(n, dtype=int)
        return self.proposer.sample_tokens(rng, n, gamma)

    def expected_tokens(self, gamma) -> np.ndarray:
        g = np.asarray(gamma)
        if self.proposer is None:
            return np.ones_like(g, dtype=float)
        return np.where(g == 0, 1.0, self.proposer.tokens_per_iteration(np.maximum(g, 1)))

    def best_gamma(self, n: int, c: float) -> int:
        """γ maximising expected tokens per second of a decode step at batch n, context c (0: off),
        the engine's own costs (EngineOverhead) included: they move with γ and batch too."""
        rates = [self.expected_tokens(g) / self.step_s(n, c, int(g), 0, 0.0) for g in self.gammas]
        return int(self.gammas[int(np.argmax(rates))])


def build_step_table(target, proposer: Speculation | None, latency, *, max_batch: int, max_context: int,
                     max_prefill: int, gamma_max: int, tp: int = 1, mode: str = "graph",
                     overhead: EngineOverhead = EngineOverhead(), typical_context: float | None = None) -> StepTable:
    """Tables for one engine: `latency` serves the target (a LatencyProvider); `proposer` (None: no
    speculation) the method, its acceptance and the proposer-side provider. Iteration costs come
    from the method's `costs` (perfmodel.specdec.methods), the autoregressive step from its baseline.
    Bands are read per power-of-two batch at `typical_context` (default half of max_context), so a
    load is given the band of the sources answering the batches it runs at (StepTable.bands_at)."""
    ctx = np.unique(np.geomspace(16, max(max_context, 32), CONTEXT_POINTS).round())
    gam = np.arange(0, (gamma_max if proposer is not None else 0) + 1)
    batch = np.arange(1, max_batch + 1)
    c_typ = float(typical_context if typical_context is not None else max_context / 2)
    band_b = tuple(int(x) for x in np.unique(np.minimum(2 ** np.arange(0, int(np.log2(max_batch)) + 2), max_batch)))
    if proposer is not None:
        m = proposer.method
        cost = m.costs(latency, target, batch, ctx, gam[1:], tp, mode, proposer_latency=proposer.latency)
        bands = []
        for bb in band_b:
            bc = m.costs(latency, target, [bb], [c_typ], [1, gamma_max], tp, mode, proposer_latency=proposer.latency)
            bands.append((max(max_band(bc.sources, "target_"), max_band({"o": bc.sources.get("overhead")})),
                          max_band(bc.sources, "draft_")))
        base = (cost.target_s + cost.baseline_overhead_s)[..., None]
        target_s = np.concatenate([base, cost.verify_s + cost.overhead_s], axis=-1)
        propose_s = np.concatenate([np.zeros_like(base), cost.proposal_s + cost.catchup_s], axis=-1)
        src = cost.sources
    else:
        B, C = batch[:, None, None], ctx[None, :, None]
        ft = latency.forward(target, B, 1, C, tp, mode)
        ov, ov_src = latency.overhead_s(target, B, 0, mode)
        target_s = np.broadcast_to(ft.total_s + ov, (len(batch), len(ctx), 1)).astype(float)
        propose_s = np.zeros_like(target_s)
        src = {**{f"target_{k}": v for k, v in ft.sources.items()}, "overhead": ov_src}
        bands = []
        for bb in band_b:
            at = latency.forward(target, bb, 1, c_typ, tp, mode)
            bands.append((max(max_band(at.sources), max_band({"o": latency.overhead_s(target, bb, 0, mode)[1]})), 0.0))
    ptok = np.unique(np.geomspace(1, max(max_prefill, 2), PREFILL_POINTS).round())
    pre = latency.forward(target, 1, ptok[:, None], ctx[None, :], tp, mode)
    pre1 = latency.forward(target, 1, 1, ctx, tp, mode)
    pre_t = np.broadcast_to(pre.total_s, (len(ptok), len(ctx))).astype(float)
    pre_t1 = np.broadcast_to(pre1.total_s, ctx.shape).astype(float)
    if proposer is not None:
        pre_d = np.broadcast_to(proposer.prefill_s(ptok[:, None], ctx[None, :]), pre_t.shape).astype(float)
        pre_d1 = np.broadcast_to(proposer.prefill_s(1, ctx), ctx.shape).astype(float)
    else:
        pre_d, pre_d1 = np.zeros_like(pre_t), np.zeros_like(pre_t1)
    ov0 = np.broadcast_to(latency.overhead_s(target, 1, 0, mode)[0], ctx.shape).astype(float)
    name = f"{target.name} ({getattr(latency, 'name', type(latency).__name__)})"
    return StepTable(name=name, contexts=ctx, gammas=gam, propose_s=np.ascontiguousarray(propose_s, dtype=float),
                     target_s=np.ascontiguousarray(target_s, dtype=float), prefill_tokens=ptok,
                     prefill_target_s=pre_t, prefill_target_1_s=pre_t1, prefill_propose_s=pre_d,
                     prefill_propose_1_s=pre_d1, overhead0_s=ov0, proposer=proposer, overhead=overhead,
                     band_target=max(b[0] for b in bands), band_propose=max(b[1] for b in bands), band_batches=band_b,
                     band_target_by=tuple(b[0] for b in bands), band_propose_by=tuple(b[1] for b in bands),
                     sources={k: str(v) for k, v in src.items()})
