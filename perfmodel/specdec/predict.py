"""Predicted throughput and speedup of speculative decoding over a sweep of lookahead, batch and
context, from a target, a draft, a latency provider and an acceptance model.

Key assumption: one iteration costs what its speculation method (perfmodel.specdec.methods; by
default a separate draft model: γ sequential draft forwards of 1 token each on one GPU) says —
proposal + catch-up + one target forward over γ+1 tokens (tensor-parallel over `tp` GPUs) + a
per-iteration overhead; the autoregressive baseline pays one target forward over 1 token plus the
same overhead at γ = 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.maths import GAMMA_MAX, throughput_tok_s
from specperf.perfmodel.specs.models import ModelSpec, SpecError

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
    draft_catchup_s: np.ndarray | float = 0.0  # the proposer's catch-up per iteration (0: none)
    method: str = "draft_model"  # perfmodel.specdec.methods.METHODS key
    proposal_s: np.ndarray | None = None  # all proposal work of one iteration (γ·t_draft for a chain)
    cell_roles: object = None  # () -> (roles, notes): each cell's latency (kind, band) per role (cell_bands)

    @property
    def proposal(self) -> np.ndarray:
        """All proposal work of one iteration (γ·t_draft where the method did not say)."""
        if self.proposal_s is not None:
            return np.broadcast_to(self.proposal_s, self.speedup.shape)
        return self.gamma[None, None, :] * np.broadcast_to(self.t_draft_s, self.speedup.shape)

    @property
    def optimal_index(self) -> np.ndarray:
        return np.argmax(self.speedup, axis=-1)

    @property
    def optimal_gamma(self) -> np.ndarray:
        return self.gamma[self.optimal_index]

    @property
    def optimal_speedup(self) -> np.ndarray:
        return np.take_along_axis(self.speedup, self.optimal_index[..., None], axis=-1)[..., 0]

    def rows(self, cell: tuple[int, int] | None = None) -> list[dict]:
        """One dict per (batch, context, γ); `cell=(i, j)`: only that batch × context cell's rows
        (documenting every cell from all rows was quadratic in the number of cells)."""
        shape = self.speedup.shape
        arrays = {f: np.broadcast_to(getattr(self, f), shape) for f in ARRAY_FIELDS}  # once, not per row
        proposal, best = self.proposal, self.optimal_index
        cells = [cell] if cell is not None else [(i, j) for i in range(len(self.batch)) for j in range(len(self.context))]
        out = []
        for i, j in cells:
            for k, g in enumerate(self.gamma):
                r = {"batch": int(self.batch[i]), "context": int(self.context[j]), "gamma": int(g)}
                r.update({f: float(a[i, j, k]) for f, a in arrays.items()})
                r["proposal_s"] = float(proposal[i, j, k])
                r["optimal"] = bool(k == best[i, j])
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


def predict(target: ModelSpec, draft: ModelSpec | None, latency, acceptance: AcceptanceModel,
            gammas=range(1, 9), batch=(1,), context=(512,), tp: int = 1, mode: str = "graph",
            draft_latency=None, draft_catchup: bool = False, method=None) -> Prediction:
    """Sweep γ × batch × context. `latency` serves the target; `draft_latency` (default: same) the proposer.

    `method`: a perfmodel.specdec.methods.SpeculationMethod (default: the separate draft model `draft`,
    with `draft_catchup`: its first step of each iteration feeds 2 tokens (the previous and the last
    token), as greedy loops that keep the draft's KV cache exact do (specperf's real-weights SpecLoop);
    that step costs t_draft(2 tokens) instead of t_draft(1 token))."""
    g = check_gammas(list(gammas))
    b = _positive_ints(batch, "batch")
    c = _positive_ints(context, "context")
    if method is None:
        if draft is None:
            raise SpecError("predict needs a draft model or a speculation method")
        from specperf.perfmodel.specdec.draft_model import DraftModel

        method = DraftModel(draft, catchup=draft_catchup)
    notes = ()
    if draft is not None and draft.vocab != target.vocab:
        notes = (f"draft vocab {draft.vocab} differs from target vocab {target.vocab}: "
                 "engines need a shared tokenizer for speculative decoding",)
    longest = int(c.max()) + int(g.max()) + 1
    for spec in (target, draft) if draft is not None else (target,):
        if longest > spec.max_positions:
            if spec.learned_positions:  # OPT: no position embedding exists beyond max_positions
                raise SpecError(f"context={int(c.max())} + γ+1 exceeds {spec.name}'s "
                                f"max_positions={spec.max_positions} (learned positions)")
            notes = notes + (f"context + γ + 1 = {longest} exceeds {spec.name}'s trained "
                             f"max_positions={spec.max_positions}; latency is still modelled",)
    ic = method.costs(latency, target, b, c, g, tp, mode, proposer_latency=draft_latency or latency)
    zero = np.zeros((len(b), len(c), len(g)))
    tpi = np.asarray(method.tokens_per_iteration(acceptance, g), dtype=float)[None, None, :] + zero
    it = ic.iteration_s()
    for what, arr in (("iteration_s", it), ("the autoregressive step (t_target_s + baseline overhead_s)", ic.baseline_s())):
        a = np.asarray(arr, dtype=float)
        if not np.all(np.isfinite(a)) or np.any(a <= 0):  # a negative time would print negative tokens/s
            low = float(np.nanmin(a)) if np.isfinite(a).any() else float("nan")
            raise SpecError(f"{what}={low:.3g} s is not allowed; every time must be > 0 s (a calibration or profile "
                            "gives a non-physical time: re-fit it with `specperf calibrate latency` or check the profile)",
                            value=low, allowed="> 0 s")
    B = b[:, None, None]
    thr = throughput_tok_s(B, tpi, it)
    base = B / ic.baseline_s()[..., None] + zero
    sources = dict(ic.sources)
    sources["acceptance"] = acceptance.describe()
    notes = notes + tuple(ic.notes)
    roles = _cell_roles(method, latency, draft_latency or latency, target, b, c, g, tp, mode)
    if acceptance.per_position and int(g.max()) > (acceptance.observed_positions or 0):
        notes = notes + (f"γ > {acceptance.observed_positions} extrapolates acceptance: "
                         "positions beyond the trace repeat the last observed rate",)
    return Prediction(gamma=g, batch=b, context=c, tokens_per_iteration=tpi, t_draft_s=ic.step_s,
                      t_verify_s=ic.verify_s, t_target_s=ic.target_s[..., None] + zero, overhead_s=ic.overhead_s,
                      baseline_overhead_s=ic.baseline_overhead_s[..., None] + zero, iteration_s=it,
                      throughput_tok_s=thr, baseline_tok_s=base, speedup=thr / base, mode=mode, sources=sources,
                      notes=notes, draft_catchup_s=ic.catchup_s, method=method.name, proposal_s=ic.proposal_s,
                      cell_roles=roles)


def _cell_roles(method, latency, proposer_latency, target, b, c, g, tp, mode):
    """Each cell's latency roles, computed when first asked (propagate) and kept."""
    memo = []

    def roles():
        if not memo:
            from specperf.perfmodel.specdec.cell_bands import prediction_roles
            from specperf.perfmodel.specdec.uncertainty import fallback_band

            memo.append(prediction_roles(method, latency, proposer_latency, target, b, c, g, tp, mode,
                                         fallback_band(mode)))
        return memo[0]
    return roles
