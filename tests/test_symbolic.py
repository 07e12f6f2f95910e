"""perfmodel.specdec.symbolic (sympy) against perfmodel.specdec.maths (numpy): two implementations must agree."""
import numpy as np
import pytest
import sympy as sp

from specperf.perfmodel.specdec import maths as specdec
from specperf.perfmodel.specdec import symbolic as S

ALPHAS = np.array([0.0, 0.05, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999])
GAMMAS = np.arange(1, 17)
CS = np.array([0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0])


def _grid():
    return np.meshgrid(ALPHAS, GAMMAS, CS, indexing="ij")


def test_geometric_series_is_the_closed_form():
    series = sp.summation(S.alpha ** S.k, (S.k, 0, S.gamma))
    series = series.args[-1][0] if isinstance(series, sp.Piecewise) else series  # α ≠ 1 branch
    assert sp.simplify(series - S.tokens_per_iteration_expr()) == 0


@pytest.mark.parametrize("g", [1, 2, 5, 8])
def test_per_position_series_with_constant_alpha_is_the_closed_form(g):
    e = S.tokens_per_iteration_series(g, [S.alpha] * g)
    # E·(1 − α) telescopes to 1 − α^(γ+1) (polynomial identity: expand, no simplify needed)
    assert sp.expand(e * (1 - S.alpha) - (1 - S.alpha ** (g + 1))) == 0


def test_cost_ratio_speedup_agrees_with_numpy_on_grid():
    a, g, c = _grid()
    sym = S.speedup_cost_ratio_fn()(a, g, c)
    num = specdec.speedup_cost_ratio(a, g, c)
    np.testing.assert_allclose(num, sym, rtol=1e-12, atol=0)


def test_tokens_and_arithmetic_factor_agree_with_numpy_on_grid():
    a, g, c = _grid()
    np.testing.assert_allclose(specdec.tokens_per_iteration(a, g), S.tokens_per_iteration_fn()(a, g),
                               rtol=1e-12, atol=0)
    np.testing.assert_allclose(specdec.arithmetic_factor(a, g, c), S.arithmetic_factor_fn()(a, g, c),
                               rtol=1e-12, atol=0)


def test_exact_rational_evaluation_agrees_with_numpy():
    """sympy in exact arithmetic (no floating point at all) on a sub-grid."""
    expr = S.speedup_cost_ratio_expr()
    for a in ("3/5", "7/10", "4/5", "9/10", "99/100"):
        for g in (1, 3, 7, 12):
            for c in ("0", "1/20", "1/3"):
                exact = expr.subs({S.alpha: sp.Rational(a), S.gamma: g, S.c: sp.Rational(c)})
                num = specdec.speedup_cost_ratio(float(sp.Rational(a)), g, float(sp.Rational(c)))
                assert abs(float(exact) - num) <= 1e-12 * float(exact)


def test_general_speedup_agrees_with_numpy_composition():
    rng = np.random.default_rng(0)
    n = 500
    a = rng.uniform(0.0, 0.99, n)
    g = rng.integers(1, 16, n)
    td, tv0, tvp, ov = rng.uniform(1e-4, 5e-3, n), rng.uniform(5e-3, 5e-2, n), rng.uniform(0, 1e-3, n), \
        rng.uniform(0, 2e-4, n)
    tt, ov0 = rng.uniform(5e-3, 5e-2, n), rng.uniform(0, 2e-4, n)
    sym = S.speedup_general_fn()(a, g, td, tv0, tvp, ov, tt, ov0)
    it = specdec.iteration_s(g, td, tv0 + (g + 1) * tvp, ov)
    num = specdec.speedup(specdec.tokens_per_iteration(a, g), it, tt, ov0)
    np.testing.assert_allclose(num, sym, rtol=1e-12, atol=0)


def test_general_form_reduces_to_cost_ratio_form():
    """t_verify = t_target, no overhead, c = t_draft/t_target ⇒ Leviathan's E/(γc+1)."""
    gen = S.speedup_general_expr(S.t_target_s).subs({S.overhead_s: 0, S.baseline_overhead_s: 0,
                                                     S.t_draft_s: S.c * S.t_target_s})
    assert sp.simplify(gen - S.speedup_cost_ratio_expr()) == 0


def test_derivative_matches_finite_difference():
    a, g, c = _grid()
    a, g, c = a[1:], g[1:], c[1:]  # α = 0: the symbolic form has 0·ln 0
    h = 1e-6
    fd = (specdec.speedup_cost_ratio(a, g + h, c) - specdec.speedup_cost_ratio(a, g - h, c)) / (2 * h)
    sym = S.dspeedup_dgamma_fn()(a, g.astype(float), c)
    np.testing.assert_allclose(sym, fd, rtol=1e-5, atol=1e-7)


CASES = [(a, c) for a in (0.5, 0.7, 0.8, 0.95) for c in (0.01, 0.05, 0.2, 0.4)]


@pytest.mark.parametrize("a,c", CASES)
def test_closed_form_optimum_is_a_root_and_matches_nsolve(a, c):
    g_cf = S.optimal_gamma_continuous(a, c)
    g_ns = S.optimal_gamma_nsolve(a, c)
    assert abs(g_cf - g_ns) < 1e-9 * max(1.0, g_cf)
    assert abs(S.dspeedup_dgamma_fn()(a, g_cf, c)) < 1e-12


@pytest.mark.parametrize("a,c", CASES)
def test_continuous_optimum_within_one_of_integer_optimum(a, c):
    g_star = S.optimal_gamma_continuous(a, c)
    g_int, s_int = specdec.optimal_gamma_cost_ratio(a, c)
    if g_star < 1:  # the continuous optimum is below the smallest allowed lookahead
        assert g_int == 1
        return
    assert abs(int(g_int) - g_star) < 1.0
    assert int(g_int) in (int(np.floor(g_star)), int(np.ceil(g_star)))  # unimodality


@pytest.mark.parametrize("a,c", CASES)
def test_derivative_changes_sign_at_the_optimum(a, c):
    g_star = S.optimal_gamma_continuous(a, c)
    d = S.dspeedup_dgamma_fn()
    eps = 0.05 * max(g_star, 1.0)
    assert d(a, g_star - eps, c) > 0 > d(a, g_star + eps, c)


def test_vectorised_closed_form_matches_scalar():
    a = np.array([0.6, 0.8, 0.9])
    c = np.array([0.1, 0.05, 0.02])
    np.testing.assert_allclose(S.optimal_gamma_continuous_grid(a, c),
                               [S.optimal_gamma_continuous(x, y) for x, y in zip(a, c)], rtol=1e-12)


def test_general_optimum_within_one_of_brute_force():
    for a, td, tv0, tvp, ov in [(0.8, 0.05, 1.0, 0.002, 0.01), (0.7, 0.02, 1.0, 0.01, 0.0),
                                (0.9, 0.03, 0.9, 0.001, 0.05)]:
        g_star = S.optimal_gamma_general_nsolve(a, td, tv0, tvp, ov)
        g = np.arange(1, 65)
        s = specdec.speedup(specdec.tokens_per_iteration(a, g), specdec.iteration_s(g, td, tv0 + (g + 1) * tvp, ov),
                            1.0)
        assert abs(int(g[np.argmax(s)]) - g_star) < 1.0
        assert S.dspeedup_general_dgamma_fn()(a, g_star, td, tv0, tvp, ov, 1.0, 0.0) == pytest.approx(0, abs=1e-12)


def test_optimum_rejects_out_of_range():
    with pytest.raises(ValueError):
        S.optimal_gamma_continuous(1.0, 0.1)
    with pytest.raises(ValueError):
        S.optimal_gamma_continuous(0.8, 0.0)
