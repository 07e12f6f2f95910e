"""Speculative-decoding maths (perfmodel.specdec.maths): published values, Monte Carlo, properties."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.specdec import maths as specdec

# Leviathan, Kalman, Matias 2023, "Fast Inference from Transformers via Speculative Decoding",
# Table 1 (c = 0 / ĉ = 0): (α, γ) → (speedup, factor increase in arithmetic operations).
LEVIATHAN_TABLE1 = [
    (0.6, 2, 1.96, 1.53),
    (0.7, 3, 2.53, 1.58),
    (0.8, 2, 2.44, 1.23),
    (0.8, 5, 3.69, 1.63),
    (0.9, 2, 2.71, 1.11),
    (0.9, 10, 6.86, 1.60),
]


@pytest.mark.parametrize("a,g,speedup,ops", LEVIATHAN_TABLE1)
def test_leviathan_table1_library(a, g, speedup, ops):
    assert round(float(specdec.speedup_cost_ratio(a, g, 0.0)), 2) == speedup
    assert round(float(specdec.arithmetic_factor(a, g, 0.0)), 2) == ops


@pytest.mark.parametrize("a,g,speedup,ops", LEVIATHAN_TABLE1)
def test_leviathan_table1_cli(a, g, speedup, ops):
    r = CliRunner().invoke(app, ["predict", "--cost-ratio", "0", "--alpha", str(a), "--gamma", str(g), "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["optimal_gamma"] == g
    assert round(doc["speedup"], 2) == speedup
    assert [row["gamma"] for row in doc["rows"]] == [g]
    assert round(doc["rows"][0]["arithmetic_factor"], 2) == ops


def test_cli_cost_ratio_human_table():
    r = CliRunner().invoke(app, ["predict", "--cost-ratio", "0", "--alpha", "0.9", "--gamma", "10"])
    assert r.exit_code == 0, r.stderr
    assert "6.86" in r.stdout and "1.60" in r.stdout and "optimal" in r.stdout


def test_cli_cost_ratio_auto_picks_brute_force_optimum():
    r = CliRunner().invoke(app, ["predict", "--cost-ratio", "0.05", "--alpha", "0.8", "--gamma", "auto",
                                 "--gamma-max", "16", "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    brute = max(range(1, 17), key=lambda g: sum(0.8 ** k for k in range(g + 1)) / (g * 0.05 + 1))
    assert doc["optimal_gamma"] == brute
    assert len(doc["rows"]) == 16 and sum(row["optimal"] for row in doc["rows"]) == 1


# ---- Monte Carlo of the accept/reject loop ------------------------------------------------------
def _mc_check(alpha_by_position, gamma, expected, n=200_000, seed=1234):
    tokens = specdec.simulate_tokens_per_iteration(alpha_by_position, gamma, n, rng=seed)
    assert tokens.min() >= 1 and tokens.max() <= gamma + 1
    se = tokens.std(ddof=1) / np.sqrt(n)
    assert abs(tokens.mean() - expected) < 4 * se, (tokens.mean(), expected, se)
    return tokens


@pytest.mark.parametrize("a,g", [(0.6, 2), (0.8, 5), (0.9, 10), (0.3, 4), (0.95, 16)])
def test_monte_carlo_iid_matches_closed_form(a, g):
    tokens = _mc_check([a], g, float(specdec.tokens_per_iteration(a, g)))
    # the whole distribution, not only its mean: P(T = k) = α^(k-1)(1-α) for k ≤ γ, α^γ at γ+1
    n = tokens.size
    for kk in range(1, g + 2):
        p = a ** (kk - 1) * (1 - a) if kk <= g else a ** g
        freq = np.mean(tokens == kk)
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-12


DECAYING = [0.84, 0.60, 0.39, 0.27]


@pytest.mark.parametrize("g", [1, 2, 4, 6])
def test_monte_carlo_per_position_matches_closed_form(g):
    expected = float(specdec.tokens_per_iteration_by_position(DECAYING, g))
    # independent hand computation of 1 + Σ_k Π_{i≤k} α_i (last rate repeats beyond the list)
    ab = (DECAYING + [DECAYING[-1]] * 10)[:g]
    hand = 1 + sum(np.prod(ab[:kk]) for kk in range(1, g + 1))
    assert expected == pytest.approx(hand, rel=1e-14)
    _mc_check(DECAYING, g, expected)


def test_monte_carlo_is_reproducible_with_seed():
    t1 = specdec.simulate_tokens_per_iteration([0.7], 4, 1000, rng=7)
    t2 = specdec.simulate_tokens_per_iteration([0.7], 4, 1000, rng=7)
    np.testing.assert_array_equal(t1, t2)


# ---- closed-form edge cases ---------------------------------------------------------------------
def test_tokens_per_iteration_edges():
    assert specdec.tokens_per_iteration(0.0, 7) == 1.0
    assert specdec.tokens_per_iteration(1.0, 7) == 8.0
    # close to 1 is not 1 (exact rational value of (1-α^9)/(1-α) at α = 0.99999)
    from fractions import Fraction

    a = Fraction(99999, 100000)
    assert float(specdec.tokens_per_iteration(0.99999, 8)) == pytest.approx(float((1 - a ** 9) / (1 - a)),
                                                                             rel=1e-12)
    assert specdec.tokens_per_iteration(0.99999, 8) < 9.0


def test_broadcasting_shapes():
    a = np.linspace(0.1, 0.9, 5)[:, None, None]
    g = np.arange(1, 9)[None, :, None]
    c = np.array([0.0, 0.1, 0.2])[None, None, :]
    assert specdec.speedup_cost_ratio(a, g, c).shape == (5, 8, 3)
    gs, s = specdec.optimal_gamma_cost_ratio(np.linspace(0.1, 0.9, 5)[:, None], np.array([0.0, 0.1, 0.2]))
    assert gs.shape == s.shape == (5, 3)


def test_general_form_with_free_verify_is_cost_ratio_form():
    a, g, td, tt = 0.75, np.arange(1, 9), 0.002, 0.02
    it = specdec.iteration_s(g, td, tt, 0.0)
    s = specdec.speedup(specdec.tokens_per_iteration(a, g), it, tt)
    np.testing.assert_allclose(s, specdec.speedup_cost_ratio(a, g, td / tt), rtol=1e-14)
    # throughput / baseline throughput is the same number
    thr = specdec.throughput_tok_s(4, specdec.tokens_per_iteration(a, g), it)
    np.testing.assert_allclose(thr / (4 / tt), s, rtol=1e-14)


def test_overhead_lowers_speedup_and_baseline_overhead_raises_it():
    a, g, td, tv, tt = 0.8, 4, 0.002, 0.021, 0.02
    e = specdec.tokens_per_iteration(a, g)
    s0 = specdec.speedup(e, specdec.iteration_s(g, td, tv, 0.0), tt)
    s1 = specdec.speedup(e, specdec.iteration_s(g, td, tv, 1e-3), tt)
    s2 = specdec.speedup(e, specdec.iteration_s(g, td, tv, 1e-3), tt, baseline_overhead_s=1e-3)
    assert s1 < s0 and s2 > s1


# ---- optimal γ ----------------------------------------------------------------------------------
def _brute(a, c, gmax):
    best, arg = -1.0, None
    for g in range(1, gmax + 1):
        s = sum(a ** kk for kk in range(g + 1)) / (g * c + 1)
        if s > best * (1 + 1e-12):  # first maximum (ties → smallest γ)
            best, arg = s, g
    return arg, best


@pytest.mark.parametrize("a", [0.0, 0.2, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("c", [0.0, 0.01, 0.05, 0.1, 0.3, 1.0, 3.0])
def test_optimal_gamma_equals_brute_force(a, c):
    g, s = specdec.optimal_gamma_cost_ratio(a, c, gamma_max=32)
    bg, bs = _brute(a, c, 32)
    assert s == pytest.approx(bs, rel=1e-12)
    if c > 0:  # at c = 0 the speedup plateaus at 1/(1-α) to within rounding: any γ on it is optimal
        assert g == bg
    else:
        assert float(specdec.speedup_cost_ratio(a, g, c)) == pytest.approx(bs, rel=1e-12)


def test_argmax_gamma_picks_smallest_on_ties():
    g, v = specdec.argmax_gamma(np.array([[1.0, 3.0, 3.0, 2.0]]), np.array([2, 4, 6, 8]))
    assert g.tolist() == [4] and v.tolist() == [3.0]


# ---- properties (hypothesis) --------------------------------------------------------------------
alphas = st.floats(0.0, 0.999, allow_nan=False)
gammas = st.integers(1, 64)
costs = st.floats(0.0, 10.0, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(a=alphas, b=alphas, g=gammas)
def test_tokens_increase_in_alpha(a, b, g):
    lo, hi = sorted((a, b))
    assert specdec.tokens_per_iteration(lo, g) <= specdec.tokens_per_iteration(hi, g) + 1e-12


@settings(max_examples=100, deadline=None)
@given(a=alphas, g=gammas)
def test_tokens_increase_in_gamma_and_bounded(a, g):
    t_g = float(specdec.tokens_per_iteration(a, g))
    t_g1 = float(specdec.tokens_per_iteration(a, g + 1))
    assert t_g <= t_g1 + 1e-12
    assert 1.0 - 1e-12 <= t_g <= g + 1 + 1e-9


@settings(max_examples=100, deadline=None)
@given(a=alphas, g=gammas, c1=costs, c2=costs)
def test_speedup_decreases_in_cost_ratio(a, g, c1, c2):
    lo, hi = sorted((c1, c2))
    assert specdec.speedup_cost_ratio(a, g, hi) <= specdec.speedup_cost_ratio(a, g, lo) + 1e-12


@settings(max_examples=100, deadline=None)
@given(a=alphas, g=gammas, n=st.integers(1, 8))
def test_per_position_constant_alpha_equals_iid(a, g, n):
    per_pos = specdec.tokens_per_iteration_by_position([a] * n, g)
    assert float(per_pos) == pytest.approx(float(specdec.tokens_per_iteration(a, g)), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(ab=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=10), g=gammas)
def test_per_position_bounded_and_monotone_in_gamma(ab, g):
    e = specdec.tokens_per_iteration_by_position(ab, np.array([g, g + 1]))
    assert 1.0 <= e[0] <= e[1] + 1e-12 and e[0] <= g + 1 + 1e-9
