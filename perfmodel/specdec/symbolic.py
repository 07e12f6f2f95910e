"""Symbolic derivation (sympy) of the speculative-decoding equations that perfmodel.specdec.maths
evaluates numerically: tokens per iteration, Leviathan's cost-ratio speedup, the general speedup
with t_draft, t_verify(γ) and overhead, their derivative in γ, and the continuous optimum γ*.

Key assumption: i.i.d. acceptance α (Leviathan et al. 2023, Thm 3.8); γ is treated as a real
variable so the speedup can be differentiated. The speedup E(γ)/(γc + 1) is a concave numerator
over a positive affine denominator, hence quasi-concave (unimodal) in γ: its integer optimum is
the floor or the ceiling of the continuous one. Setting d speedup/dγ = 0 gives
    α^(γ+1) · (c + L(γc + 1)) = c,   L = −ln α,
whose root is, with w = c + L(γc + 1),
    w = −c · W₋₁(−exp(L − 1 − L/c)),   γ* = (w − c − L) / (L c)
(W₋₁ the lower real branch of Lambert's W; a real root exists for 0 < c < 1 and 0 < α < 1).
This is the only module that imports sympy; nothing in perfmodel imports it at import time.
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp

alpha, gamma, c, c_hat = sp.symbols("alpha gamma c c_hat", positive=True)
k = sp.symbols("k", integer=True, nonnegative=True)
t_draft_s, t_target_s, overhead_s, baseline_overhead_s = sp.symbols(
    "t_draft_s t_target_s overhead_s baseline_overhead_s", positive=True)
# verification forward over γ+1 tokens: an unknown function, or the linear model below
t_verify = sp.Function("t_verify")
t_verify0_s, t_verify_per_token_s = sp.symbols("t_verify0_s t_verify_per_token_s", nonnegative=True)


# ---- expressions ---------------------------------------------------------------------------------
def tokens_per_iteration_expr() -> sp.Expr:
    """E = Σ_{k=0..γ} α^k = (1 − α^(γ+1)) / (1 − α)  (α ≠ 1)."""
    return (1 - alpha ** (gamma + 1)) / (1 - alpha)


def tokens_per_iteration_series(g: int, alphas=None) -> sp.Expr:
    """E = 1 + Σ_{k=1..γ} Π_{i≤k} α_i for a concrete γ; α_i symbols alpha_1.. unless given."""
    a = list(alphas) if alphas is not None else list(sp.symbols(f"alpha_1:{g + 1}", positive=True))
    return 1 + sum(sp.Mul(*a[:j]) for j in range(1, g + 1))


def speedup_cost_ratio_expr() -> sp.Expr:
    """Leviathan et al. 2023, Thm 3.8: E / (γc + 1), with c = t_draft / t_target."""
    return tokens_per_iteration_expr() / (gamma * c + 1)


def arithmetic_factor_expr() -> sp.Expr:
    """Leviathan et al. 2023, Thm 3.11: (γĉ + γ + 1) / E."""
    return (gamma * c_hat + gamma + 1) / tokens_per_iteration_expr()


def iteration_s_expr(verify=None) -> sp.Expr:
    """γ·t_draft + t_verify(γ+1) + overhead; `verify` replaces the unknown t_verify(γ+1)."""
    v = t_verify(gamma + 1) if verify is None else verify
    return gamma * t_draft_s + v + overhead_s


def speedup_general_expr(verify=None) -> sp.Expr:
    """Throughput over autoregressive throughput: E·(t_target + baseline overhead) / iteration."""
    return tokens_per_iteration_expr() * (t_target_s + baseline_overhead_s) / iteration_s_expr(verify)


def linear_verify() -> sp.Expr:
    """t_verify(γ+1) = t_verify0 + (γ+1)·t_verify_per_token: verification grows with its tokens."""
    return t_verify0_s + (gamma + 1) * t_verify_per_token_s


def dspeedup_dgamma_expr() -> sp.Expr:
    """d/dγ of the cost-ratio speedup."""
    return sp.diff(speedup_cost_ratio_expr(), gamma)


def dspeedup_general_dgamma_expr(verify=None) -> sp.Expr:
    return sp.diff(speedup_general_expr(verify), gamma)


def optimal_gamma_closed_form() -> sp.Expr:
    """γ* of the cost-ratio speedup via Lambert W₋₁ (see the module docstring)."""
    L = -sp.log(alpha)
    w = -c * sp.LambertW(-sp.exp(L - 1 - L / c), -1)
    return (w - c - L) / (L * c)


def stationarity_condition() -> sp.Expr:
    """α^(γ+1)(c + L(γc+1)) − c, zero exactly where d speedup/dγ = 0 (L = −ln α)."""
    L = -sp.log(alpha)
    return alpha ** (gamma + 1) * (c + L * (gamma * c + 1)) - c


# ---- numeric helpers (lambdify) ------------------------------------------------------------------
@functools.cache
def _lambdified(name: str):
    exprs = {
        "tokens_per_iteration": ((alpha, gamma), tokens_per_iteration_expr()),
        "speedup_cost_ratio": ((alpha, gamma, c), speedup_cost_ratio_expr()),
        "dspeedup_dgamma": ((alpha, gamma, c), dspeedup_dgamma_expr()),
        "arithmetic_factor": ((alpha, gamma, c_hat), arithmetic_factor_expr()),
        "speedup_general": ((alpha, gamma, t_draft_s, t_verify0_s, t_verify_per_token_s, overhead_s,
                             t_target_s, baseline_overhead_s), speedup_general_expr(linear_verify())),
        "dspeedup_general_dgamma": ((alpha, gamma, t_draft_s, t_verify0_s, t_verify_per_token_s,
                                     overhead_s, t_target_s, baseline_overhead_s),
                                    dspeedup_general_dgamma_expr(linear_verify())),
    }
    args, expr = exprs[name]
    return sp.lambdify(args, expr, modules="numpy")


def tokens_per_iteration_fn():
    """numpy callable f(α, γ) from the symbolic expression."""
    return _lambdified("tokens_per_iteration")


def speedup_cost_ratio_fn():
    """numpy callable f(α, γ, c)."""
    return _lambdified("speedup_cost_ratio")


def dspeedup_dgamma_fn():
    """numpy callable f(α, γ, c) = d speedup / dγ."""
    return _lambdified("dspeedup_dgamma")


def arithmetic_factor_fn():
    """numpy callable f(α, γ, ĉ)."""
    return _lambdified("arithmetic_factor")


def speedup_general_fn():
    """numpy callable f(α, γ, t_draft, t_verify0, t_verify_per_token, overhead, t_target, base_ovh)."""
    return _lambdified("speedup_general")


def dspeedup_general_dgamma_fn():
    return _lambdified("dspeedup_general_dgamma")


# ---- continuous optimum --------------------------------------------------------------------------
def _check(a: float, cc: float) -> None:
    if not (0.0 < a < 1.0) or not (0.0 < cc < 1.0):
        raise ValueError(f"continuous optimum needs 0 < α < 1 and 0 < c < 1 (got α={a}, c={cc})")


def optimal_gamma_continuous(a: float, cc: float) -> float:
    """γ* from the Lambert-W closed form, evaluated with mpmath (may be < 1: then γ = 1 is best)."""
    _check(a, cc)
    return float(optimal_gamma_closed_form().subs({alpha: a, c: cc}).evalf(30))


def optimal_gamma_nsolve(a: float, cc: float, guess: float | None = None) -> float:
    """γ* by solving d speedup/dγ = 0 numerically (sympy.nsolve on the stationarity condition)."""
    _check(a, cc)
    eq = stationarity_condition().subs({alpha: a, c: cc})
    g0 = guess if guess is not None else max(optimal_gamma_continuous(a, cc), 0.5)
    return float(sp.nsolve(eq, gamma, g0, tol=1e-25, prec=40))


def optimal_gamma_general_nsolve(a: float, t_draft: float, t_verify0: float, t_verify_per_token: float,
                                 overhead: float = 0.0, guess: float = 3.0) -> float:
    """γ* of the general speedup with linear t_verify, by nsolve of its γ-derivative's numerator."""
    expr = speedup_general_expr(linear_verify())
    num = sp.numer(sp.together(sp.diff(expr, gamma)))
    num = num.subs({alpha: a, t_draft_s: t_draft, t_verify0_s: t_verify0,
                    t_verify_per_token_s: t_verify_per_token, overhead_s: overhead,
                    t_target_s: 1, baseline_overhead_s: 0})
    return float(sp.nsolve(num, gamma, guess, tol=1e-25, prec=40))


def optimal_gamma_continuous_grid(alphas, cs) -> np.ndarray:
    """Vectorised closed form over broadcast α, c (mpmath Lambert W per point)."""
    import mpmath

    def one(a, cc):
        L = -mpmath.log(a)
        w = -cc * mpmath.lambertw(-mpmath.exp(L - 1 - L / cc), -1)
        return float(mpmath.re((w - cc - L) / (L * cc)))

    return np.vectorize(one, otypes=[float])(np.asarray(alphas, float), np.asarray(cs, float))
