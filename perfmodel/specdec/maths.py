"""Speculative-decoding maths: expected tokens per iteration, iteration time, throughput, speedup,
optimal lookahead, and a Monte Carlo check of the accept/reject process. The one home of the
iteration-time (`iteration_time_s`) / throughput / speedup formula and the draft-context rule; the
speculation methods (perfmodel.specdec.methods) supply an iteration's parts and call it.

Key assumption (Leviathan et al. 2023, Thm 3.8): draft token i is accepted with probability α_i
given that tokens < i were accepted (α_i = α for the i.i.d. model); the first rejection ends the
iteration and the target always contributes one token (correction or bonus). All functions are
pure and broadcast over their array arguments.
"""
from __future__ import annotations

import numpy as np

GAMMA_MAX = 64  # upper bound accepted on the command line; beyond it drafts are never useful


def tokens_per_iteration(alpha, gamma):
    """E[tokens] = (1 - α^(γ+1)) / (1 - α), and γ + 1 at α = 1. Broadcasts over α and γ."""
    a = np.asarray(alpha, dtype=float)
    g = np.asarray(gamma, dtype=float)
    a, g = np.broadcast_arrays(a, g)
    one = a == 1.0  # exact: α = 0.99999 is not α = 1 (np.isclose treated it so)
    safe = np.where(one, 0.5, a)
    # 1 − α^(γ+1) = −expm1((γ+1)·ln α): no cancellation for α near 1 (ln 0 = −inf gives 1)
    with np.errstate(divide="ignore"):
        out = -np.expm1((g + 1.0) * np.log(safe)) / (1.0 - safe)
    return np.where(one, g + 1.0, out)


def extend_positions(alpha_by_position, gamma_max: int) -> np.ndarray:
    """α_1..α_γmax from a shorter per-position list: the last observed rate repeats beyond it."""
    ab = np.asarray(alpha_by_position, dtype=float).ravel()
    if ab.size == 0:
        raise ValueError("alpha_by_position is empty")
    if ab.size >= gamma_max:
        return ab[:gamma_max]
    return np.concatenate([ab, np.full(gamma_max - ab.size, ab[-1])])


def tokens_per_iteration_by_position(alpha_by_position, gamma):
    """E[tokens] = 1 + Σ_{k=1..γ} Π_{i≤k} α_i. γ beyond the list repeats the last rate."""
    g = np.asarray(gamma)
    gmax = int(np.max(g)) if g.size else 0
    ab = extend_positions(alpha_by_position, max(gmax, 1))
    cum = np.concatenate([[1.0], 1.0 + np.cumsum(np.cumprod(ab))])  # cum[k] = E at γ = k
    return cum[g.astype(int)]


def draft_context(context, gamma):
    """The context a draft forward is timed at: the draft's context grows by one token per draft
    step within an iteration, so its γ steps are represented by the mid-iteration context."""
    return np.asarray(context) + (np.asarray(gamma) - 1) / 2.0


def iteration_time_s(proposal_s, catchup_s, verify_s, overhead_s):
    """The one iteration-time formula: proposal + catch-up + verification + overhead (seconds).
    Speculation methods (perfmodel.specdec.methods) supply the parts; every caller goes through it."""
    return proposal_s + catchup_s + verify_s + overhead_s


def chain_proposal_s(gamma, step_s):
    """Proposal of a chain of γ sequential steps of `step_s` each (a draft model, an EAGLE head)."""
    return np.asarray(gamma) * step_s


def iteration_s(gamma, t_draft_s, t_verify_s, overhead_s=0.0, catchup_s=0.0):
    """The chain case of iteration_time_s: γ draft forwards, one verification forward over γ+1
    tokens, overhead; plus `catchup_s` where the draft's first step re-feeds the previous token."""
    return iteration_time_s(chain_proposal_s(gamma, t_draft_s), catchup_s, t_verify_s, overhead_s)


def throughput_tok_s(batch, tokens_per_iter, iteration_time_s):
    return np.asarray(batch) * tokens_per_iter / iteration_time_s


def speedup(tokens_per_iter, iteration_time_s, t_target_s, baseline_overhead_s=0.0):
    """Speculative throughput over autoregressive throughput (batch cancels)."""
    return tokens_per_iter * (np.asarray(t_target_s) + baseline_overhead_s) / iteration_time_s


def speedup_cost_ratio(alpha, gamma, c):
    """Leviathan et al. 2023, Thm 3.8: (1 - α^(γ+1)) / ((1 - α)(γc + 1))."""
    return tokens_per_iteration(alpha, gamma) / (np.asarray(gamma) * np.asarray(c) + 1.0)


def arithmetic_factor(alpha, gamma, c_hat=0.0):
    """Leviathan et al. 2023, Thm 3.11: factor increase in arithmetic operations."""
    g = np.asarray(gamma, dtype=float)
    return (g * np.asarray(c_hat) + g + 1.0) / tokens_per_iteration(alpha, g)


def optimal_gamma_cost_ratio(alpha, c, gamma_max: int = GAMMA_MAX):
    """Integer γ* in 1..gamma_max maximising the cost-ratio speedup; returns (γ*, speedup)."""
    a = np.asarray(alpha, dtype=float)[..., None]
    cc = np.asarray(c, dtype=float)[..., None]
    g = np.arange(1, gamma_max + 1, dtype=float)
    s = speedup_cost_ratio(a, g, cc)
    idx = np.argmax(s, axis=-1)
    return idx + 1, np.take_along_axis(s, idx[..., None], axis=-1)[..., 0]


def argmax_gamma(values, gammas):
    """γ at the maximum of `values` along the last axis (ties: the smallest γ)."""
    gammas = np.asarray(gammas)
    idx = np.argmax(values, axis=-1)
    return gammas[idx], np.take_along_axis(values, idx[..., None], axis=-1)[..., 0]


def simulate_tokens_per_iteration(alpha_by_position, gamma: int, n_iterations: int, rng=None):
    """Monte Carlo of the accept/reject loop: returns the tokens produced by each iteration."""
    rng = np.random.default_rng(rng)
    ab = extend_positions(alpha_by_position, gamma)
    accept = rng.random((n_iterations, gamma)) < ab[None, :]
    accepted = np.cumprod(accept, axis=1).sum(axis=1)  # leading run of acceptances
    return accepted + 1
