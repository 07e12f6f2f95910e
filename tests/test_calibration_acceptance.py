"""Acceptance fits: planted α and decaying α_i recovered, 95 % interval coverage over repeated
draws, likelihood-ratio test, and the readers agreeing on the same simulated iterations."""
import json

import numpy as np
import pytest

from specperf.calibration.acceptance_fit import (_mean_accepted, fit_acceptance, loglik, profile_ci,
                                        wilson_ci)
from specperf.calibration.data import AcceptanceData, from_iterations, from_position_counts
from specperf.calibration.traces import read_trace
from specperf.perfmodel.specdec.maths import tokens_per_iteration, tokens_per_iteration_by_position

DECAY = [0.9, 0.8, 0.7, 0.6, 0.5]


def simulate(alpha_by_position, gamma, n, rng):
    """Accepted counts a_j (leading run of accepted tokens) of n iterations."""
    ab = np.resize(np.asarray(alpha_by_position, float), gamma) if np.ndim(alpha_by_position) else \
        np.full(gamma, float(alpha_by_position))
    acc = rng.random((n, gamma)) < ab[None, :]
    return np.cumprod(acc, axis=1).sum(axis=1)


def test_planted_iid_alpha_recovered_with_mixed_gamma():
    rng = np.random.default_rng(1)
    g = rng.integers(2, 7, size=20000)
    a = np.array([simulate(0.8, int(gi), 1, rng)[0] for gi in g])
    fit = fit_acceptance(from_iterations("sim", "iterations", g, a))
    alpha, se = fit.report.parameters["alpha"], fit.report.stderr["alpha"]
    assert abs(alpha - 0.8) < 3 * se and se < 0.005
    lo, hi = fit.model.alpha_ci
    assert lo < 0.8 < hi
    assert fit.model.alpha_by_position is None  # LR test: i.i.d. adequate here
    assert fit.report.tests["LR per-position vs iid"]["p_value"] > 0.01


def test_planted_decaying_alpha_by_position_recovered():
    rng = np.random.default_rng(2)
    a = simulate(DECAY, 5, 20000, rng)
    fit = fit_acceptance(from_iterations("sim", "iterations", np.full(a.size, 5), a))
    ab = np.array(fit.model.alpha_by_position)
    se = np.array([fit.report.stderr[f"alpha[{i}]"] for i in range(5)])
    assert np.all(np.abs(ab - DECAY) < 3.5 * se)
    for (lo, hi), t in zip(fit.model.alpha_by_position_ci, DECAY):
        assert lo < t < hi
    assert fit.report.tests["LR per-position vs iid"]["p_value"] < 1e-10
    # predicted tokens/iteration at the observed γ matches the truth
    row = [r for r in fit.predictions if r["gamma"] == 5][0]
    truth = float(tokens_per_iteration_by_position(DECAY, 5))
    assert row["per_position_ci"][0] < truth < row["per_position_ci"][1]
    assert not row["per_position_extrapolated"]
    assert [r for r in fit.predictions if r["gamma"] == 8][0]["per_position_extrapolated"]


def _coverage(alpha_by_position, gamma, n, draws, seed):
    rng = np.random.default_rng(seed)
    ab = np.asarray(alpha_by_position, float)
    acc = rng.random((draws, n, gamma)) < ab[None, None, :]
    a = np.cumprod(acc, axis=2).sum(axis=2)  # (draws, n)
    pos = np.arange(1, gamma + 1)
    reached = (a[..., None] >= pos - 1).sum(axis=1)
    k = (a[..., None] >= pos).sum(axis=1)
    S, F = k.sum(axis=1), (reached - k).sum(axis=1)
    iid_truth = None
    return a, reached, k, S, F, iid_truth


def test_iid_interval_coverage_is_95_percent():
    """400 draws × 300 iterations (γ = 4, α = 0.7): coverage within ±2.75 binomial sd of 0.95."""
    a, reached, k, S, F, _ = _coverage([0.7] * 4, 4, 300, 400, seed=3)
    hits = [lo <= 0.7 <= hi for lo, hi in (profile_ci(s, f) for s, f in zip(S, F))]
    cov = np.mean(hits)
    assert abs(cov - 0.95) < 2.75 * np.sqrt(0.95 * 0.05 / 400), cov


def test_per_position_interval_coverage_is_95_percent():
    """400 draws × 400 iterations of a decaying α_i: pooled coverage of 1600 intervals ≈ 0.95."""
    truth = np.array([0.9, 0.75, 0.6, 0.45])
    a, reached, k, S, F, _ = _coverage(truth, 4, 400, 400, seed=4)
    hits = np.array([[lo <= truth[i] <= hi for i, (lo, hi) in
                      enumerate(profile_ci(ki, ni - ki) for ki, ni in zip(kr, nr))]
                     for kr, nr in zip(k, reached)])
    pooled = hits.mean()
    assert abs(pooled - 0.95) < 2.75 * np.sqrt(0.95 * 0.05 / hits.size), pooled
    for i in range(4):  # each position separately, looser
        assert abs(hits[:, i].mean() - 0.95) < 3.5 * np.sqrt(0.95 * 0.05 / 400), (i, hits[:, i].mean())


def test_profile_interval_agrees_with_wilson_and_hits_boundaries():
    lo, hi = profile_ci(700, 300)
    wl, wh = wilson_ci(700, 1000)
    assert abs(lo - wl) < 2e-3 and abs(hi - wh) < 2e-3
    # boundary: the log-likelihood drop at each end is χ²₁(0.95)/2 = 1.92073
    for b in (lo, hi):
        assert float(loglik(700, 300, 0.7) - loglik(700, 300, b)) == pytest.approx(1.920729, abs=1e-5)
    assert profile_ci(0, 20)[0] == 0.0 and profile_ci(20, 0)[1] == 1.0
    # k = 0: upper bound solves 20·log(1-a) = -1.92073 → a = 1 - exp(-1.92073/20)
    assert profile_ci(0, 20)[1] == pytest.approx(1 - np.exp(-1.920729 / 20), abs=1e-7)


def test_readers_agree_on_one_simulated_trace(tmp_path):
    """The same iterations as per-iteration CSV, JSONL, histogram and vLLM counters fit identically."""
    rng = np.random.default_rng(5)
    a = simulate(DECAY[:4], 4, 3000, rng)
    csv_p = tmp_path / "it.csv"
    csv_p.write_text("gamma,accepted\n" + "".join(f"4,{v}\n" for v in a))
    jl = tmp_path / "it.jsonl"
    jl.write_text("".join(json.dumps({"gamma": 4, "accepted": int(v)}) + "\n" for v in a))
    hist = np.bincount(a, minlength=5)
    hp = tmp_path / "h.json"
    hp.write_text(json.dumps({"accept_counts": hist.tolist()}))
    c = [(a > i).sum() for i in range(4)]
    mp = tmp_path / "m.txt"
    mp.write_text(f"# TYPE vllm:spec_decode_num_drafts_total counter\n"
                  f"vllm:spec_decode_num_drafts_total {a.size}.0\n"
                  + "".join(f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{position="{i}"}} {v}.0\n'
                            for i, v in enumerate(c)))
    fits = [fit_acceptance(read_trace(p), model="per-position") for p in (csv_p, jl, hp, mp)]
    assert [f.data.format for f in fits] == ["iterations", "iterations", "histogram", "vllm-metrics"]
    for f in fits[1:]:
        assert f.model.alpha == pytest.approx(fits[0].model.alpha, rel=1e-12)
        assert np.allclose(f.model.alpha_by_position, fits[0].model.alpha_by_position, rtol=1e-12)
        assert np.allclose(f.model.alpha_by_position_ci, fits[0].model.alpha_by_position_ci, rtol=1e-9)
    # i.i.d. MLE is accepted / (accepted + rejections)
    assert fits[0].model.alpha == pytest.approx(a.sum() / (a.sum() + (a < 4).sum()))


def test_mean_length_fit_inverts_the_closed_form():
    for alpha, g in ((0.75, 5), (0.3, 2), (0.95, 8)):
        m = float(tokens_per_iteration(alpha, g)) - 1.0
        d = AcceptanceData(source="m", format="mean-length", n_drafts=2000, gammas=(g,), mean_accepted=m)
        fit = fit_acceptance(d)
        assert fit.model.alpha == pytest.approx(alpha, abs=1e-9)
        lo, hi = fit.model.alpha_ci
        assert lo < alpha < hi
        assert fit.model.alpha_by_position is None


def test_mean_length_interval_covers_and_is_not_narrower_than_counts():
    """Model-implied variance: mean-only CI ≈ 95 % coverage, and never narrower than the counts CI."""
    rng = np.random.default_rng(6)
    hits, wider = [], []
    for _ in range(200):
        a = simulate(0.7, 4, 400, rng)
        d = AcceptanceData(source="m", format="mean-length", n_drafts=a.size, gammas=(4,), mean_accepted=a.mean())
        lo, hi = fit_acceptance(d, gammas=[4]).model.alpha_ci
        hits.append(lo <= 0.7 <= hi)
        clo, chi = profile_ci(a.sum(), (a < 4).sum())
        wider.append(hi - lo >= 0.98 * (chi - clo))
    assert abs(np.mean(hits) - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 200)
    assert np.mean(wider) > 0.9


def test_variance_formula_matches_simulation():
    rng = np.random.default_rng(7)
    a = simulate(0.6, 5, 200000, rng)
    mu, var = _mean_accepted(0.6, 5)
    assert a.mean() == pytest.approx(float(mu), rel=5e-3)
    assert a.var() == pytest.approx(float(var), rel=1e-2)


def test_vllm_counts_give_histogram_and_conditional_rates():
    d = from_position_counts("x", "vllm-metrics", 100, [80, 60, 30])
    assert d.reached.tolist() == [100, 80, 60] and d.accepted.tolist() == [80, 60, 30]
    assert d.histogram[3].tolist() == [20, 20, 30, 30]
    assert d.rejections == 70 and d.total_accepted == 170


def test_report_is_readable_and_json_finite():
    rng = np.random.default_rng(8)
    a = simulate(DECAY, 5, 2000, rng)
    fit = fit_acceptance(from_iterations("sim.csv", "iterations", np.full(a.size, 5), a))
    text = fit.report.report()
    for part in ("[[Fit Statistics]]", "[[Variables]]", "alpha[4]:", "95% CI", "[[Tests]]",
                 "LR per-position vs iid", "[[Residuals]]"):
        assert part in text
    json.dumps(fit.to_dict(), allow_nan=False)
