"""Predicted throughput and speedup of speculative decoding over a sweep of lookahead, batch and
context, from a target, a draft, a latency provider and an acceptance model.

Key assumption: one iteration = γ sequential draft forwards (1 new token each, on one GPU) + one
target forward over γ+1 tokens (tensor-parallel over `tp` GPUs) + a per-iteration overhead; the
autoregressive baseline pays one target forward over 1 token plus the same overhead at γ = 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perfmodel.specdec.acceptance import AcceptanceModel
from perfmodel.specdec.maths import GAMMA_MAX, draft_context, iteration_s, throughput_tok_s
from perfmodel.specs.models import ModelSpec, SpecError

ARRAY_FIELDS = ("tokens_per_iteration", "t_draft_s", "t_verify_s", "t_target_s", "overhead_s",
                "baseline_overhead_s", "iteration_s", "throughput_tok_s", "baseline_tok_s", "speedup",
                "draft_catchup_s")


@dataclass(frozen=True)
class Prediction:
    """Arrays of shape (len(batch), len(context), len(gamma))."""
    gamma: np.ndarray
    batch: np.ndarray
    context: np.ndarray
    tokens_per_iteration: np.ndarray
    t_draft_s: np.ndarray
    t_verify_s: np.ndarray
    t_target_s: np.ndarray
    overhead_s: np.ndarray
    baseline_overhead_s: np.ndarray
    iteration_s: np.ndarray
    throughput_tok_s: np.ndarray
    baseline_tok_s: np.ndarray
    speedup: np.ndarray
    mode: str = "graph"
    sources: dict = field(default_factory=dict)
    notes: tuple = ()
    draft_catchup_s: np.ndarray | float = 0.0  # extra cost of a 2-token first draft step (0: none)

    @property
    def optimal_index(self) -> np.ndarray:
        return np.argmax(self.speedup, axis=-1)

    @property
    def optimal_gamma(self) -> np.ndarray:
        return self.gamma[self.optimal_index]

    @property
    def optimal_speedup(self) -> np.ndarray:
        return np.take_along_axis(self.speedup, self.optimal_index[..., None], axis=-1)[..., 0]

    def rows(self) -> list[dict]:
        out = []
        for i, b in enumerate(self.batch):
            for j, c in enumerate(self.context):
                for k, g in enumerate(self.gamma):
                    r = {"batch": int(b), "context": int(c), "gamma": int(g)}
                    r.update({f: float(np.broadcast_to(getattr(self, f), self.speedup.shape)[i, j, k])
                              for f in ARRAY_FIELDS})
                    r["optimal"] = bool(k == self.optimal_index[i, j])
                    out.append(r)
        return out

    def to_frame(self):
        import pandas as pd  # optional dependency

        return pd.DataFrame(self.rows())


def _positive_ints(values, what: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values))
    for v in arr.ravel().tolist():  # Python scalars: errors say batch=0, not np.int64(0)
        if not float(v).is_integer() or v <= 0:
            raise SpecError(f"{what}={v!r} is not allowed; {what} must be a positive integer")
    return arr.astype(int)


def check_gammas(gammas) -> np.ndarray:
    g = np.atleast_1d(np.asarray(gammas))
    for v in g.ravel().tolist():
        if not float(v).is_integer() or not 1 <= v <= GAMMA_MAX:
            raise SpecError(f"gamma={v!r} is not allowed; γ must be an integer in 1..{GAMMA_MAX}")
    return g.astype(int)


def predict(target: ModelSpec, draft: ModelSpec, latency, acceptance: AcceptanceModel,
            gammas=range(1, 9), batch=(1,), context=(512,), tp: int = 1, mode: str = "graph",
            draft_latency=None, draft_catchup: bool = False) -> Prediction:
    """Sweep γ × batch × context. `latency` serves the target; `draft_latency` (default: same) the draft.

    `draft_catchup`: the draft's first step of each iteration feeds 2 tokens (the previous and the
    last token), as greedy loops that keep the draft's KV cache exact do (specperf's real-weights
    SpecLoop); that step costs t_draft(2 tokens) instead of t_draft(1 token)."""
    g = check_gammas(list(gammas))
    b = _positive_ints(batch, "batch")
    c = _positive_ints(context, "context")
    if draft.vocab != target.vocab:
        notes = (f"draft vocab {draft.vocab} differs from target vocab {target.vocab}: "
                 "engines need a shared tokenizer for speculative decoding",)
    else:
        notes = ()
    longest = int(c.max()) + int(g.max()) + 1
    for spec in (target, draft):
        if longest > spec.max_positions:
            if spec.learned_positions:  # OPT: no position embedding exists beyond max_positions
                raise SpecError(f"context={int(c.max())} + γ+1 exceeds {spec.name}'s "
                                f"max_positions={spec.max_positions} (learned positions)")
            notes = notes + (f"context + γ + 1 = {longest} exceeds {spec.name}'s trained "
                             f"max_positions={spec.max_positions}; latency is still modelled",)
    dl = draft_latency or latency
    B, C, G = b[:, None, None], c[None, :, None], g[None, None, :]
    zero = np.zeros((len(b), len(c), len(g)))
    draft_ft = dl.forward(draft, B, 1, draft_context(C, G), 1, mode)
    verify_ft = latency.forward(target, B, G + 1, C, tp, mode)
    target_ft = latency.forward(target, B, 1, C, tp, mode)
    ov, ov_src = latency.overhead_s(target, B, G, mode)
    ov0, _ = latency.overhead_s(target, B, 0, mode)
    t_draft = draft_ft.total_s + zero
    t_verify = verify_ft.total_s + zero
    t_target = target_ft.total_s + zero
    ov = ov + zero
    ov0 = ov0 + zero
    tpi = acceptance.tokens_per_iteration(g)[None, None, :] + zero
    catchup = zero
    if draft_catchup:
        catchup = (dl.forward(draft, B, 2, C, 1, mode).total_s - dl.forward(draft, B, 1, C, 1, mode).total_s) + zero
    it = iteration_s(G, t_draft, t_verify, ov, catchup)
    thr = throughput_tok_s(B, tpi, it)
    base = B / (t_target + ov0) + zero
    sources = {f"draft_{k}": v for k, v in draft_ft.sources.items()}
    sources.update({f"target_{k}": v for k, v in verify_ft.sources.items()})
    sources["overhead"] = ov_src
    sources["acceptance"] = acceptance.describe()
    if draft_catchup:
        notes = notes + ("the draft's first step per iteration feeds 2 tokens (catch-up of the previous "
                         "token), charged as t_draft(2 tokens) − t_draft(1 token) per iteration",)
    if acceptance.per_position and int(g.max()) > (acceptance.observed_positions or 0):
        notes = notes + (f"γ > {acceptance.observed_positions} extrapolates acceptance: "
                         "positions beyond the trace repeat the last observed rate",)
    return Prediction(gamma=g, batch=b, context=c, tokens_per_iteration=tpi, t_draft_s=t_draft,
                      t_verify_s=t_verify, t_target_s=t_target, overhead_s=ov, baseline_overhead_s=ov0,
                      iteration_s=it, throughput_tok_s=thr, baseline_tok_s=base, speedup=thr / base,
                      mode=mode, sources=sources, notes=notes, draft_catchup_s=catchup)
