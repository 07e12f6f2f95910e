"""AcceptanceModel: scalar α or α by position, with 95 % intervals and the trace it came from.

Read and written as the JSON document that `specperf calibrate acceptance --out` writes and
`specperf predict --acceptance` reads. Key assumption: positions beyond the observed ones repeat
the last observed rate (flagged as extrapolation wherever it is used).

`tokens_per_iteration_tree` generalises E = 1 + Σ_k Π_{i≤k} α_i to a token tree from per-depth,
per-rank acceptance a[d, r] = P(the target's token is the draft's rank-r candidate at depth d | the
path above was accepted) — what `calibration.agreement.depth_rank_acceptance` measures. Key
assumption there: depths are independent given the path was accepted (exact for a chain).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specperf.perfmodel.specdec.maths import tokens_per_iteration, tokens_per_iteration_by_position
from specperf.perfmodel.specs.models import SpecError, read_json
from specperf.perfmodel.specs.safeio import write_json


@dataclass(frozen=True)
class AcceptanceModel:
    alpha: float
    alpha_ci: tuple[float, float] | None = None
    alpha_by_position: tuple[float, ...] | None = None
    alpha_by_position_ci: tuple[tuple[float, float], ...] | None = None
    source: str = "user"
    n_iterations: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        check_alpha(self.alpha, "alpha")
        for i, a in enumerate(self.alpha_by_position or ()):
            if not (0.0 <= a <= 1.0) or math.isnan(a):
                raise SpecError(f"alpha_by_position[{i}]={a!r} is not allowed; must be in [0, 1]")
        if self.alpha_ci is not None:
            check_interval(self.alpha_ci, "alpha_ci", self.alpha)
        if self.alpha_by_position_ci is not None:
            if self.alpha_by_position is None or len(self.alpha_by_position_ci) != len(self.alpha_by_position):
                raise SpecError(f"alpha_by_position_ci has {len(self.alpha_by_position_ci)} intervals; it needs one "
                                f"per alpha_by_position value ({len(self.alpha_by_position or ())})")
            for i, ci in enumerate(self.alpha_by_position_ci):
                check_interval(ci, f"alpha_by_position_ci[{i}]")

    @property
    def per_position(self) -> bool:
        return bool(self.alpha_by_position)

    @property
    def observed_positions(self) -> int | None:
        return len(self.alpha_by_position) if self.alpha_by_position else None

    def tokens_per_iteration(self, gamma):
        if self.alpha_by_position:
            return tokens_per_iteration_by_position(self.alpha_by_position, gamma)
        return tokens_per_iteration(self.alpha, gamma)

    def extrapolated(self, gamma: int) -> bool:
        """True where γ goes beyond the positions the trace observed."""
        return self.alpha_by_position is not None and gamma > len(self.alpha_by_position)

    def describe(self) -> str:
        if self.alpha_by_position:
            rates = ", ".join(f"{a:.3f}" for a in self.alpha_by_position)
            return f"α by position [{rates}] from {self.source}"
        return f"α={self.alpha:.3f} ({self.source})"

    def to_dict(self) -> dict:
        d = {"alpha": self.alpha, "alpha_ci": list(self.alpha_ci) if self.alpha_ci else None,
             "alpha_by_position": list(self.alpha_by_position) if self.alpha_by_position else None,
             "alpha_by_position_ci": [list(c) for c in self.alpha_by_position_ci]
             if self.alpha_by_position_ci else None,
             "n_iterations": self.n_iterations, "source": self.source}
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "file") -> "AcceptanceModel":
        if not isinstance(d, dict) or "alpha" not in d:
            raise SpecError(f"acceptance document from {source} lacks 'alpha'")
        ab = d.get("alpha_by_position")
        ab_ci = d.get("alpha_by_position_ci")
        ci = d.get("alpha_ci")
        known = {"alpha", "alpha_ci", "alpha_by_position", "alpha_by_position_ci", "n_iterations", "source"}
        try:
            return cls(alpha=float(d["alpha"]), alpha_ci=tuple(map(float, ci)) if ci else None,
                       alpha_by_position=tuple(map(float, ab)) if ab else None,
                       alpha_by_position_ci=tuple(tuple(map(float, c)) for c in ab_ci) if ab_ci else None,
                       source=str(d.get("source") or source), n_iterations=d.get("n_iterations"),
                       extra={k: v for k, v in d.items() if k not in known})
        except (TypeError, ValueError) as e:
            if isinstance(e, SpecError):
                raise
            raise SpecError(f"acceptance document from {source} is malformed ({e})") from None

    @classmethod
    def load(cls, path: str | Path) -> "AcceptanceModel":
        return cls.from_dict(read_json(path, "acceptance file"), source=str(Path(path)))

    def save(self, path: str | Path, flag: str = "--out") -> None:
        write_json(path, self.to_dict(), flag)  # atomic, symlink-safe, finite numbers only


def check_interval(ci, what: str, point: float | None = None) -> tuple[float, float]:
    """A probability interval [lo, hi]: two finite numbers with 0 ≤ lo ≤ hi ≤ 1 that hold `point`
    (an inverted or misplaced interval would silently narrow or shift every band built from it)."""
    allowed = "[lo, hi] with 0 ≤ lo ≤ hi ≤ 1" + (f" holding the estimate {point:g}" if point is not None else "")
    try:
        lo, hi = (float(v) for v in ci)
    except (TypeError, ValueError):
        raise SpecError(f"{what}={ci!r} is not allowed; {allowed}", value=str(ci), allowed=allowed) from None
    ok = math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi <= 1.0
    if not ok or (point is not None and not lo - 1e-9 <= point <= hi + 1e-9):
        raise SpecError(f"{what}=[{lo:g}, {hi:g}] is not allowed; {allowed}", value=[lo, hi], allowed=allowed)
    return lo, hi


def check_alpha(alpha: float, what: str = "alpha") -> float:
    """α must lie in [0, 1): at α = 1 the draft is the target and speculation is unbounded."""
    a = float(alpha)
    if not (0.0 <= a < 1.0) or math.isnan(a):
        raise SpecError(f"{what}={alpha!r} is not allowed; α must be in [0, 1)")
    return a



def tokens_per_iteration_tree(accept_by_depth_rank, parents, ranks) -> float:
    """Expected tokens per iteration of a draft token tree: 1 + Σ_nodes Π_{(d, r) on its path} a[d, r].

    `parents[j]`: index of node j's parent (−1: a child of the root, depth 1), parents listed before
    children; `ranks[j]`: which of the draft's candidates (0 = its top token) node j is. A chain of
    γ rank-0 nodes gives 1 + Σ_k Π_{i≤k} a[i, 0], the per-position formula. Depths beyond the rows
    of `accept_by_depth_rank` repeat its last row; ranks beyond its columns have acceptance 0."""
    a = np.atleast_2d(np.asarray(accept_by_depth_rank, dtype=float))
    if a.size == 0 or not np.all((a >= 0) & (a <= 1)) or np.any(a.sum(axis=1) > 1 + 1e-9):
        raise SpecError("accept_by_depth_rank must hold probabilities in [0, 1] whose rows sum to ≤ 1")
    if len(parents) != len(ranks):
        raise SpecError(f"a tree needs one rank per node: {len(parents)} parents, {len(ranks)} ranks")
    reach, depth, total, seen = [], [], 1.0, set()
    for j, (p, r) in enumerate(zip(parents, ranks)):
        p, r = int(p), int(r)
        if not -1 <= p < j:
            raise SpecError(f"tree node {j}: parent {p} must be −1 or an earlier node")
        if r < 0 or (p, r) in seen:
            raise SpecError(f"tree node {j}: rank {r} must be ≥ 0 and not repeat a sibling's")
        seen.add((p, r))
        d = 1 if p < 0 else depth[p] + 1
        row = a[min(d, a.shape[0]) - 1]
        pr = (1.0 if p < 0 else reach[p]) * (row[r] if r < row.size else 0.0)
        reach.append(pr)
        depth.append(d)
        total += pr
    return float(total)
