"""α model: planted-parameter recovery, the default's cited data, prediction intervals, files,
and how acceptance sources are assigned to candidates (measured > stated > --alpha > model)."""
import json

import numpy as np
import pytest

from specperf.perfmodel.specdec import alpha_model as am
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.optimize.search import make_candidates
from specperf.perfmodel.optimize.space import assign_acceptance, design_space
from specperf.perfmodel.specs.models import SpecError

TARGET = resolve_model("llama-65b")


def test_recovers_planted_coefficients_exactly():
    rng = np.random.default_rng(0)
    P = np.exp(rng.uniform(np.log(1e8), np.log(2e10), 12))
    L = rng.integers(1, 40, 12)
    x = am.features(P, 65e9, L)
    true = np.array([1.2, 0.25, -0.1])
    alpha = am.expit(x @ true)
    m = am.fit(x, alpha)
    np.testing.assert_allclose(m.coef, true, atol=1e-9)
    assert m.fitted == am.FEATURES and m.kind == "predicted" and m.resid_sd < 1e-9


def test_recovers_planted_coefficients_with_noise_within_interval():
    rng = np.random.default_rng(1)
    P = np.exp(rng.uniform(np.log(1e8), np.log(2e10), 400))
    L = rng.integers(1, 40, 400)
    x = am.features(P, 65e9, L)
    true = np.array([1.0, 0.2, 0.05])
    alpha = am.expit(x @ true + rng.normal(0, 0.05, 400))
    m = am.fit(x, alpha)
    sd = np.sqrt(m.coef_var)
    assert np.all(np.abs(np.array(m.coef) - true) < 4 * sd)
    assert m.resid_sd == pytest.approx(0.05, rel=0.15)


def test_default_reproduces_cited_lamda_series():
    m = am.default_model()
    assert m.kind == "assumed" and "Leviathan" in m.source and m.fitted == ("intercept", "log_param_ratio")
    p = np.array([r[0] for r in am.DEFAULT_ROWS])
    a, lo, hi = m.predict(am.features(p, am.DEFAULT_TARGET_PARAMS, np.ones_like(p)))
    truth = np.array([r[1] for r in am.DEFAULT_ROWS])
    assert np.all((lo <= truth) & (truth <= hi))  # every published point inside its 95 % band
    assert np.all(np.abs(a - truth) < 0.03)
    assert m.coef[1] > 0  # bigger drafts are accepted more often in the cited series


def test_few_pairs_fit_intercept_only_and_keep_prior_slope():
    specs = [resolve_model(d) for d in ("sheared-llama-1.3b", "tinyllama-1.1b", "opt-1.3b")]
    x = np.array([am.features(am.nonembedding_params(s), am.nonembedding_params(TARGET), s.n_layers) for s in specs])
    m = am.fit(x, [0.7, 0.7, 0.7])
    assert m.fitted == ("intercept",)  # sizes span < 2×: no slope is extrapolated from them
    assert m.coef[1] == am.default_model().coef[1]
    one = am.fit(x[:1], [0.6])
    assert one.fitted == ("intercept",) and one.resid_sd == am.default_model().resid_sd
    assert one.predict(x[:1])[0] == pytest.approx(0.6)
    # the prior slope's uncertainty widens predictions far from the pairs
    far = am.features(2e8, am.nonembedding_params(TARGET), 1)
    near = x[0]
    w = lambda z: np.subtract(*m.predict(z)[2:0:-1])  # noqa: E731  (hi - lo)
    assert w(far) > w(near)


def test_bad_pairs_are_refused():
    with pytest.raises(SpecError, match="alpha"):
        am.fit(np.zeros((1, 3)) + 1, [1.2])
    with pytest.raises(SpecError, match="at least one"):
        am.fit(np.zeros((0, 3)), [])


def test_read_documents(tmp_path):
    p = tmp_path / "pairs.json"
    p.write_text(json.dumps([{"draft": "tinyllama-1.1b", "alpha": 0.6}]))
    assert am.read_alpha_document(p)["pairs"][0]["alpha"] == 0.6
    c = tmp_path / "pairs.csv"
    c.write_text("draft,alpha,alpha_lo,alpha_hi\nsheared-llama-1.3b,0.7,0.6,0.8\n")
    assert am.read_alpha_document(c)["pairs"][0]["alpha_ci"] == [0.6, 0.8]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"nothing": 1}))
    with pytest.raises(SpecError, match="needs 'pairs'"):
        am.read_alpha_document(bad)
    with pytest.raises(SpecError, match="does not exist"):
        am.read_alpha_document(tmp_path / "missing.json")
    coef = am.model_from_coefficients({"coefficients": {"intercept": 0.0}})
    assert coef.predict(am.features(1e9, 1e10, 4))[0] == pytest.approx(0.5)


def test_acceptance_priority_and_kinds():
    sheared, tiny, opt = (resolve_model(d) for d in ("sheared-llama-1.3b", "tinyllama-1.1b", "opt-1.3b"))
    design, _ = design_space(TARGET, [2, 4], [4096])
    cands = make_candidates([sheared, tiny, opt], design=design)
    meas = AcceptanceModel(alpha=0.61, alpha_ci=(0.58, 0.64), alpha_by_position=(0.7, 0.6, 0.5))
    shallow = resolve_model("llama-7b:n_layers=4")  # same shape as the design point L4 d4096
    acc = assign_acceptance(cands, TARGET, am.default_model(), measured=[(tiny, meas, "t.json")],
                            stated=[(sheared, 0.72, (0.7, 0.74), "s"), (shallow, 0.55, None, "s")])
    kinds = [acc.kind(i) for i in range(len(cands))]
    assert kinds == ["stated", "measured", "assumed", "assumed", "stated"]
    assert acc.alpha[1] == 0.61 and (acc.lo[1], acc.hi[1]) == (0.58, 0.64) and 1 in acc.per_position
    assert acc.alpha[4] == 0.55 and acc.lo[4] == acc.hi[4] == 0.55
    g = np.arange(1, 6)
    np.testing.assert_allclose(acc.tpi(g)[1], meas.tokens_per_iteration(g))
    glob = assign_acceptance(cands, TARGET, am.default_model(), alpha=0.5)
    assert set(glob.alpha) == {0.5} and {glob.kind(i) for i in range(len(cands))} == {"stated"}


def test_acceptance_file_for_draft_not_in_set_is_an_error():
    cands = make_candidates([resolve_model("sheared-llama-1.3b")])
    with pytest.raises(SpecError, match="not among the candidates"):
        assign_acceptance(cands, TARGET, am.default_model(),
                          measured=[(resolve_model("tinyllama-1.1b"), AcceptanceModel(alpha=0.6), "t.json")])
