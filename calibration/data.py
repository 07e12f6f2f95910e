"""AcceptanceData: the sufficient statistics every acceptance trace reduces to, and TraceError.

For the sequential accept/reject model (draft token i is accepted with probability α_i given that
tokens < i were; the first rejection ends the iteration) the likelihood of any trace depends only
on, per position i = 1..m: n_i = iterations that proposed token i with all earlier tokens
accepted ("reached"), and k_i = iterations that accepted token i. Key assumption: iterations are
independent (real traces are clustered by request, so intervals computed from them are too narrow
when acceptance varies between requests).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specperf.perfmodel.specs.models import SpecError

FORMATS = ("vllm-metrics", "iterations", "histogram", "mean-length",
           "vllm-requests", "sglang-requests", "llamacpp-requests")  # the last three: calibration.engine_requests


MAX_COUNT = 2 ** 53  # counts beyond this are not exact in float64 (and overflow int64 sums)
# Largest lookahead a trace may record (as calibration.iterations): engines draft at most tens of
# tokens, and the per-position arrays are γ wide, so a γ of 2^53 would ask for petabytes.
MAX_GAMMA = 1024


class TraceError(SpecError):
    """Bad trace input: one line naming the file and, where there is one, the line."""

    def __init__(self, path, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class AcceptanceData:
    """Per-position counts (kind 'counts') or only a mean accepted length (kind 'mean')."""
    source: str
    format: str
    n_drafts: int | None  # iterations (drafts verified); None when a mean comes without its n
    gammas: tuple  # distinct lookaheads γ seen in the trace
    reached: np.ndarray | None = None  # n_i, i = 1..m
    accepted: np.ndarray | None = None  # k_i, i = 1..m
    histogram: dict = field(default_factory=dict)  # γ -> counts of iterations with a = 0..γ accepted
    mean_accepted: float | None = None  # mean accepted draft tokens per iteration (no bonus token)
    notes: tuple = ()
    extra: dict = field(default_factory=dict)  # batch/context ranges, labels, scrape count, ...

    @property
    def kind(self) -> str:
        return "counts" if self.reached is not None else "mean"

    @property
    def gamma_max(self) -> int:
        return int(max(self.gammas))

    @property
    def positions(self) -> int:
        """Positions with at least one iteration reaching them (identifiable α_i)."""
        if self.reached is None:
            return 0
        nz = np.nonzero(self.reached > 0)[0]
        return int(nz[-1] + 1) if nz.size else 0

    @property
    def total_accepted(self) -> float:
        if self.reached is not None:
            return float(self.accepted.sum())
        return float(self.mean_accepted * self.n_drafts) if self.n_drafts else float("nan")

    @property
    def rejections(self) -> float:
        """Iterations that ended in a rejection (a < γ)."""
        return float((self.reached - self.accepted).sum())

    @property
    def observed_mean_accepted(self) -> float:
        if self.reached is not None:
            return float(self.accepted.sum() / self.n_drafts)
        return float(self.mean_accepted)


def from_iterations(source, fmt, gamma, accepted, weight=None, notes=(), extra=None) -> AcceptanceData:
    """Counts from per-iteration (γ_j, a_j[, weight_j]); inputs already validated."""
    if weight is not None and sum(int(x) for x in weight) > MAX_COUNT:  # float64 histograms stay exact below
        raise TraceError(source, "total iteration count exceeds 2^53; counts are not plausible")
    g = np.asarray(gamma, dtype=np.int64)
    a = np.asarray(accepted, dtype=np.int64)
    w = np.ones_like(g) if weight is None else np.asarray(weight, dtype=np.int64)
    if g.size == 0 or w.sum() == 0:
        raise TraceError(source, "trace holds no iterations")
    gmax = check_gamma(int(g.max()), source)
    pos = np.arange(1, gmax + 1)[None, :]
    reached = ((g[:, None] >= pos) & (a[:, None] >= pos - 1)) * w[:, None]
    acc = (a[:, None] >= pos) * w[:, None]
    hist = {}
    for gv in np.unique(g):
        sel = g == gv
        hist[int(gv)] = np.bincount(a[sel], weights=w[sel], minlength=int(gv) + 1).astype(np.int64)
    return AcceptanceData(source=str(source), format=fmt, n_drafts=int(w.sum()),
                          gammas=tuple(int(x) for x in np.unique(g[w > 0])),
                          reached=reached.sum(axis=0).astype(np.int64), accepted=acc.sum(axis=0).astype(np.int64),
                          histogram=hist, notes=tuple(notes), extra=dict(extra or {}))


def from_position_counts(source, fmt, n_drafts: int, per_pos, notes=(), extra=None) -> AcceptanceData:
    """Counts from vLLM-style totals: drafts D and accepted-at-position c_0..c_{γ-1} (unconditional).

    α_i = c_{i-1} / c_{i-2} with c_{-1} = D; all drafts are taken to propose γ = len(per_pos) tokens.
    """
    c = np.asarray(per_pos, dtype=np.int64)
    check_gamma(int(c.size), source, what="positions")
    reached = np.concatenate([[n_drafts], c[:-1]]).astype(np.int64)
    hist = np.append(-np.diff(np.concatenate([[n_drafts], c])), c[-1]).astype(np.int64)
    return AcceptanceData(source=str(source), format=fmt, n_drafts=int(n_drafts), gammas=(int(c.size),),
                          reached=reached, accepted=c, histogram={int(c.size): hist},
                          notes=tuple(notes), extra=dict(extra or {}))


def parse_count(text, source, line, what: str) -> int:
    """A non-negative integer count ('12', '12.0', '1.2e3'); anything else is a TraceError. Integer
    spellings are read exactly (float('9007199254740993') would silently lose the last unit)."""
    if isinstance(text, bool):
        raise TraceError(source, f"{what}={text!r} is not a number", line)
    s = text.strip() if isinstance(text, str) else None
    if isinstance(text, int) or (s and s.isascii() and s.isdigit() and len(s) <= 20):
        v = int(text)
        if v < 0:
            raise TraceError(source, f"{what}={text!r} is negative; counts must be ≥ 0", line)
        if v > MAX_COUNT:
            raise TraceError(source, f"{what}={text!r} is not allowed; counts must be ≤ 2^53", line)
        return v
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise TraceError(source, f"{what}={text!r} is not a number", line) from None
    if not np.isfinite(v):
        raise TraceError(source, f"{what}={text!r} is not finite", line)
    if v < 0:
        raise TraceError(source, f"{what}={text!r} is negative; counts must be ≥ 0", line)
    if not float(v).is_integer():
        raise TraceError(source, f"{what}={text!r} is not an integer count", line)
    if v > MAX_COUNT:
        raise TraceError(source, f"{what}={text!r} is not allowed; counts must be ≤ 2^53", line)
    return int(v)


def check_gamma(g: int, source, line=None, what: str = "gamma") -> int:
    """A trace's lookahead γ: an integer in 1..MAX_GAMMA (TraceError otherwise)."""
    if not 1 <= g <= MAX_GAMMA:
        raise TraceError(source, f"{what}={g} is not allowed; a lookahead γ must be in 1..{MAX_GAMMA}", line)
    return g
