"""Engine costs outside the forwards (perfmodel.serving.step.EngineOverhead) fitted from a live
engine's step times at known batch sizes: closed bursts of N requests sent together, where the
engine's median inter-token latency is the step time at batch N (with γ: one speculative step).

Model (linear in its four parameters, in seconds):
    live step − predicted step (profile alone) = per_step + per_seq·N                       (γ = 0)
                                                + γ·(per_proposal + per_seq_proposal·N)    (γ > 0)
Fitted in two stages by least squares: the γ = 0 points give per_step and per_seq (the engine
without speculation is the same engine minus the proposer), then the γ > 0 points' remainder gives
the two proposal terms. Unconstrained by default: a negative per-sequence cost means the profile
prices batch growth above what the engine pays, and is reported as it is, not clamped. Terms named in
`nonnegative` are bounded at zero (the fixed per-step and per-proposal costs are work the engine
does, never a refund): where the free estimate is negative the term is held at 0 and the other term
of its stage refitted alone; the report's notes say which bound is active.

Key assumption: what the profile misses is affine in the batch per step and per proposal forward
(scheduler and input preparation per step, per-row sampling / bookkeeping, the proposer's own
per-forward preparation); nothing is context-dependent (short prompts and outputs in the fit).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.calibration.report import FitReport

Z95 = 1.959963984540054  # the normal distribution's 97.5 % quantile
FIELDS = ("per_step_s", "per_seq_s", "per_proposal_s", "per_seq_proposal_s")  # EngineOverhead's


@dataclass(frozen=True)
class BurstPoint:
    batch: int
    gamma: int  # 0: no speculation
    live_s: float  # the live engine's median step (inter-token) time at this batch
    predicted_s: float  # the model's, from the profile alone (no engine costs)


def _se(v) -> float | None:
    return float(v) if np.isfinite(v) else None


def _ls(X: np.ndarray, y: np.ndarray):
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - X.shape[1]
    res = y - X @ beta
    if dof > 0:
        s2 = float(res @ res) / dof
        cov = s2 * np.linalg.pinv(X.T @ X)
        se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    else:
        se = np.full(X.shape[1], np.nan)
    return beta, se


def _stage(X: np.ndarray, y: np.ndarray, names: tuple, nonnegative) -> tuple[np.ndarray, np.ndarray, list]:
    """One stage's least squares, with the terms in `nonnegative` held at 0 where free they come out < 0."""
    beta, se = _ls(X, y)
    held = [i for i, k in enumerate(names) if k in nonnegative and beta[i] < 0]
    if held:
        free = [i for i in range(len(names)) if i not in held]
        beta, se = np.zeros(len(names)), np.full(len(names), np.nan)
        if free:
            b, s = _ls(X[:, free], y)
            beta[free], se[free] = b, s
    return beta, se, [names[i] for i in held]


def fit_engine_costs(points: list[BurstPoint], nonnegative: tuple = ()) -> FitReport:
    """EngineOverhead's fields (parameters keyed by their names) from burst step times; the fields in
    `nonnegative` bounded at zero."""
    bad = [k for k in nonnegative if k not in FIELDS]
    if bad:
        raise ValueError(f"nonnegative={bad[0]!r} is not allowed; use some of {', '.join(FIELDS)}")
    off = [p for p in points if p.gamma == 0]
    spec = [p for p in points if p.gamma > 0]
    if len(off) < 2:
        raise ValueError("at least two batch sizes without speculation are needed")
    n0 = np.array([p.batch for p in off], float)
    b0, s0, held = _stage(np.column_stack([np.ones_like(n0), n0]), np.array([p.live_s - p.predicted_s for p in off]),
                          FIELDS[:2], nonnegative)
    params = {"per_step_s": float(b0[0]), "per_seq_s": float(b0[1]), "per_proposal_s": 0.0,
              "per_seq_proposal_s": 0.0}
    se = {"per_step_s": _se(s0[0]), "per_seq_s": _se(s0[1]), "per_proposal_s": None, "per_seq_proposal_s": None}
    if len({p.batch for p in spec}) >= 2:
        n1 = np.array([p.batch for p in spec], float)
        g1 = np.array([p.gamma for p in spec], float)
        y1 = np.array([p.live_s - p.predicted_s - b0[0] - b0[1] * p.batch for p in spec])
        b1, s1, held1 = _stage(np.column_stack([g1, g1 * n1]), y1, FIELDS[2:], nonnegative)
        held += held1
        params.update(per_proposal_s=float(b1[0]), per_seq_proposal_s=float(b1[1]))
        se.update(per_proposal_s=_se(s1[0]), per_seq_proposal_s=_se(s1[1]))

    def model(p):
        return p.predicted_s + params["per_step_s"] + params["per_seq_s"] * p.batch + \
            p.gamma * (params["per_proposal_s"] + params["per_seq_proposal_s"] * p.batch)
    rel = [(model(p) - p.live_s) / p.live_s for p in points]
    ci = {k: (None if v is None or not np.isfinite(v) else (params[k] - Z95 * v, params[k] + Z95 * v))
          for k, v in se.items()}
    notes = tuple(f"{k} < 0: the profile prices this part above the engine" for k, v in params.items() if v < 0) + \
        tuple(f"{k} held at its bound 0 (free, the fit puts it below 0)" for k in held)
    method = "linear least squares, two stages (γ = 0, then γ > 0)" + (
        f"; bounded ≥ 0: {', '.join(nonnegative)}" if nonnegative else "")
    return FitReport(title="engine costs from bursts", method=method,
                     n=len(points), parameters=params, stderr=se, ci=ci, ci_method="normal approximation, 95 %",
                     residuals=tuple(rel), residual_labels=tuple(f"batch {p.batch}, γ {p.gamma}" for p in points),
                     residual_kind="relative (fitted − live) / live step time",
                     metrics={"max_abs_rel": float(np.max(np.abs(rel))), "median_abs_rel": float(np.median(np.abs(rel)))},
                     notes=notes, n_label="burst sizes")


@dataclass(frozen=True)
class LoadPoint:
    """One live load the costs are fitted to: `key` is what the model's `predict` is called with."""
    key: object
    gamma: int  # 0: no speculation
    live_s: float  # the live engine's median inter-token latency under this load


def fit_engine_costs_to_loads(points: list[LoadPoint], predict, iterations: int = 4,
                              delta_s: float = 1e-4) -> FitReport:
    """The same four costs fitted to whole loads (Poisson rates, say) rather than to bursts: the
    batch a load runs at moves with the costs, so the fit is Gauss–Newton on the model's own median
    inter-token latency, `predict(costs: dict, key) → seconds` (the serving simulation), with
    finite-difference derivatives, in the same two stages (γ = 0 points: per step and per sequence;
    then γ > 0 points: the proposal terms)."""
    off = [p for p in points if p.gamma == 0]
    spec = [p for p in points if p.gamma > 0]
    if len(off) < 2:
        raise ValueError("at least two loads without speculation are needed")
    theta = dict.fromkeys(FIELDS, 0.0)
    se = dict.fromkeys(FIELDS, None)
    stages = [(off, FIELDS[:2])] + ([(spec, FIELDS[2:])] if len(spec) >= 2 else [])
    for _ in range(iterations):
        for pts, names in stages:
            base = np.array([predict(theta, p.key) for p in pts])
            r = base - np.array([p.live_s for p in pts])
            J = np.column_stack([(np.array([predict({**theta, k: theta[k] + delta_s}, p.key) for p in pts]) - base)
                                 / delta_s for k in names])
            step, *_ = np.linalg.lstsq(J, -r, rcond=None)
            for k, d in zip(names, step):
                theta[k] += float(d)
            dof = len(pts) - len(names)
            if dof > 0:
                cov = float(r @ r) / dof * np.linalg.pinv(J.T @ J)
                for k, v in zip(names, np.sqrt(np.maximum(np.diag(cov), 0.0))):
                    se[k] = float(v)
    rel = [(predict(theta, p.key) - p.live_s) / p.live_s for p in points]
    ci = {k: (None if v is None else (theta[k] - Z95 * v, theta[k] + Z95 * v)) for k, v in se.items()}
    notes = tuple(f"{k} < 0: the profile prices this part above the engine" for k, v in theta.items() if v < 0)
    return FitReport(title="engine costs from whole loads", method=f"Gauss–Newton on the simulation, {iterations} "
                     "iterations, two stages (γ = 0, then γ > 0)", n=len(points), parameters=theta, stderr=se, ci=ci,
                     ci_method="normal approximation at the last iteration, 95 %", residuals=tuple(rel),
                     residual_labels=tuple(str(p.key) for p in points),
                     residual_kind="relative (fitted − live) / live median inter-token latency",
                     metrics={"max_abs_rel": float(np.max(np.abs(rel))), "median_abs_rel": float(np.median(np.abs(rel)))},
                     notes=notes, n_label="loads")
