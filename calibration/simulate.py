"""Simulated acceptance traces with planted truth, for coverage checks of acceptance intervals
(issue 14): i.i.d., per-position, clustered by request, and vLLM counters with short proposals.

Key assumption: the accept/reject process of perfmodel.specdec.maths (leading run of accepted
draft tokens, position i accepted with probability α_i given i−1 were). In the clustered case each
request r draws its own α_r ~ Beta(mean, concentration) and the estimand is the population ratio
E[accepted tokens] / E[trials] (the quantity the fit's ratio estimator targets), computed from a
very large simulated population with a fixed seed.
"""
from __future__ import annotations

import numpy as np

from .data import from_iterations, from_position_counts


def leading_run(alpha_by_position, gamma: int, n: int, rng) -> np.ndarray:
    ab = np.broadcast_to(np.asarray(alpha_by_position, dtype=float), (n, gamma)) if np.ndim(alpha_by_position) == 2 \
        else np.resize(np.asarray(alpha_by_position, dtype=float), gamma)[None, :]
    acc = rng.random((n, gamma)) < ab
    return np.cumprod(acc, axis=1).sum(axis=1)


def iid_trace(alpha: float, gamma: int, n: int, rng):
    a = leading_run([alpha], gamma, n, rng)
    return from_iterations("sim-iid", "iterations", np.full(n, gamma), a)


def per_position_trace(alpha_by_position, n: int, rng):
    g = len(alpha_by_position)
    return from_iterations("sim-pp", "iterations", np.full(n, g), leading_run(alpha_by_position, g, n, rng))


def _request_alphas(mean, conc, R, rng):
    return rng.beta(mean * conc, (1 - mean) * conc, R)


def clustered_trace(mean: float, conc: float, gamma: int, requests: int, per_request: int, rng,
                    with_request: bool = True):
    ar = np.repeat(_request_alphas(mean, conc, requests, rng), per_request)
    a = leading_run(np.repeat(ar[:, None], gamma, axis=1), gamma, ar.size, rng)
    g = np.full(ar.size, gamma)
    extra = {}
    if with_request:
        extra["iterations"] = {"request": [str(r) for r in np.repeat(np.arange(requests), per_request)],
                               "gamma": g.tolist(), "accepted": a.tolist(), "count": [1] * ar.size}
    return from_iterations("sim-clustered", "iterations", g, a, extra=extra)


def clustered_truth(mean: float, conc: float, gamma: int, n: int = 2_000_000, seed: int = 12345) -> float:
    """Population E[accepted]/E[trials] for the clustered model (trials = accepted + 1 unless all accepted)."""
    rng = np.random.default_rng(seed)
    ar = _request_alphas(mean, conc, n, rng)
    a = leading_run(np.repeat(ar[:, None], gamma, axis=1), gamma, n, rng)
    return float(a.sum() / (a + (a < gamma)).sum())


def vllm_short_trace(alpha: float, gamma: int, n: int, rng, p_short: float = 0.5):
    """vLLM-style counters when a share p_short of drafts proposes fewer than γ tokens (1..γ−1)."""
    lengths = np.where(rng.random(n) < p_short, rng.integers(1, gamma, n), gamma)
    acc = rng.random((n, gamma)) < alpha
    acc &= np.arange(gamma)[None, :] < lengths[:, None]
    run = np.cumprod(acc, axis=1)
    c = run.sum(axis=0)  # drafts accepting position i (unconditional)
    return from_position_counts("sim-vllm-short", "vllm-metrics", n, c.tolist(),
                                extra={"draft_tokens": int(lengths.sum())})
