"""The speculation-method seam (perfmodel.specdec.methods): one iteration-time formula, the separate
draft model as one method, and predict / optimize / uncertainty / confidence agreeing through it —
catch-up included everywhere."""
import numpy as np
import pytest

from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.optimize.report import optimize
from specperf.perfmodel.optimize.search import make_candidates
from specperf.perfmodel.optimize.space import assign_acceptance
from specperf.perfmodel.specdec import alpha_model as am
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.methods import IterationCosts, SpeculationMethod, iteration_time_s
from specperf.perfmodel.specdec.registry import METHODS, check_method, make_method
from specperf.perfmodel.specdec.predict import predict
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.specs.models import SpecError

T, D = resolve_model("llama-13b"), resolve_model("llama-7b:n_layers=4")
LAT = build_provider(GPUS["h100-sxm"]).target
G = list(range(1, 9))


def test_formula_is_the_sum_of_parts():
    assert iteration_time_s(1.0, 0.25, 2.0, 0.5) == 3.75
    c = make_method("draft", draft=D).costs(LAT, T, [1, 8], [512], G, 1, "graph")
    assert isinstance(c, IterationCosts) and c.proposal_s.shape == (2, 1, 8)
    np.testing.assert_allclose(c.iteration_s(), np.asarray(G) * c.step_s + c.verify_s + c.overhead_s, rtol=1e-12)
    np.testing.assert_allclose(c.at(1, 0).iteration_s(), c.iteration_s()[1, 0])


def test_every_registered_method_implements_the_protocol():
    for name in METHODS:
        kw = {"draft": D} if name == "draft_model" else {}
        if name == "ngram":
            kw = {"host_cost": (1e-5, 1e-9)}
        assert isinstance(make_method(name, **kw), SpeculationMethod), name


def test_unknown_method_is_one_clear_error():
    with pytest.raises(SpecError, match="method='spec' is not allowed; use one of draft, eagle"):
        check_method("spec")


def _optimize(catchup: bool):
    cands = make_candidates([D], ["d"], ["shape"])
    acc = assign_acceptance(cands, T, am.default_model(), [], [], 0.7)
    return optimize(T, cands, acc, LAT, [1, 8], [512], G, 1, ("graph",), draft_catchup=catchup)


@pytest.mark.parametrize("catchup", [False, True])
def test_optimize_and_predict_agree_through_the_seam(catchup):
    """Two callers of one formula: optimize's vectorised search and predict's sweep give the same
    best speedup and γ*, with and without catch-up (catch-up used to be in predict only)."""
    p = predict(T, D, LAT, AcceptanceModel(alpha=0.7), G, [1, 8], [512], draft_catchup=catchup)
    res = _optimize(catchup)
    m = res.modes["graph"]
    np.testing.assert_allclose(m.speedup[0], p.optimal_speedup, rtol=1e-9)
    np.testing.assert_array_equal(res.gammas[m.gamma_index[0]], p.optimal_gamma)


def test_catchup_lowers_the_optimisers_speedup_by_the_two_token_step():
    a, b = _optimize(False), _optimize(True)
    assert np.all(b.modes["graph"].speedup < a.modes["graph"].speedup)
    extra = (LAT.forward(D, np.array([1, 8]), 2, 512, 1, "graph").total_s
             - LAT.forward(D, np.array([1, 8]), 1, 512, 1, "graph").total_s)
    ca, cb = a.modes["graph"].costs, b.modes["graph"].costs
    sh, d = np.array([0]), np.array([4])
    diff = cb.iteration_s(sh, d, np.asarray(G, float)) - ca.iteration_s(sh, d, np.asarray(G, float))
    np.testing.assert_allclose(diff[0, :, 0, 0], extra, rtol=1e-9)


# ---- feature heads, Medusa, n-gram -------------------------------------------------------------
def test_eagle_step_is_one_target_layer_plus_projection_from_the_provider():
    """Planted: the head's step composed by hand from the provider equals the method's."""
    tgt = resolve_model("llama-3.1-8b")
    m = make_method("eagle3")
    c = m.costs(LAT, tgt, [1, 4], [512], [1, 3], 1, "graph")
    head = tgt.replace(n_layers=1, vocab=32000)  # EAGLE-3's reduced draft vocabulary
    proj = tgt.replace(n_layers=1, vocab=2 * tgt.d_model)
    B = np.array([1, 4])[:, None]
    ctx = 512 + (np.array([1, 3]) - 1) / 2
    want = (LAT.forward(head, B, 1, ctx, 1, "graph").total_s + LAT.forward(proj, B, 1, ctx, 1, "graph").lm_head_s)
    np.testing.assert_allclose(c.step_s[:, 0, :], want, rtol=1e-12)
    fuse = tgt.replace(n_layers=1, vocab=3 * tgt.d_model)
    g1 = np.array([2, 4])  # γ + 1 verified positions feed the first step
    first = (LAT.forward(head, B, g1, 512, 1, "graph").total_s + LAT.forward(proj, B, g1, 512, 1, "graph").lm_head_s
             + LAT.forward(fuse, B, g1, 512, 1, "graph").lm_head_s)
    one = LAT.forward(head, B, 1, 512, 1, "graph").total_s + LAT.forward(proj, B, 1, 512, 1, "graph").lm_head_s
    np.testing.assert_allclose(c.catchup_s[:, 0, :], first - one, rtol=1e-12)
    assert {"draft_head_layer", "draft_projection", "draft_fusion"} <= set(c.sources)


def test_head_is_cheaper_than_a_draft_of_two_target_layers_and_eagle3_pays_its_fusion():
    tgt = resolve_model("llama-7b")
    two = make_method("draft", draft=tgt.replace(n_layers=2)).costs(LAT, tgt, [1], [512], G)
    e1, e3 = (make_method(k).costs(LAT, tgt, [1], [512], G) for k in ("eagle", "eagle3"))
    assert np.all(e1.step_s < two.step_s) and np.all(e3.catchup_s > e1.catchup_s)


def test_heads_answer_from_every_latency_source():
    """The analytical provider times heads like any layer: sources say so, the prediction is finite."""
    ana = build_provider(GPUS["h100-sxm"], analytical=True).target
    c = make_method("mtp").costs(ana, T, [1], [512], G)
    assert np.all(np.isfinite(c.iteration_s())) and c.sources["draft_head_layer"].coarse == "analytical"


def test_medusa_is_gamma_heads_in_one_pass():
    c = make_method("medusa").costs(LAT, T, [1], [512], G)
    np.testing.assert_allclose(c.proposal_s, np.asarray(G) * c.step_s, rtol=1e-12)
    assert np.all(c.catchup_s == 0)


def test_ngram_matcher_agrees_with_the_plain_python_one():
    from specperf.perfmodel.specdec.ngram import propose, propose_reference

    rng = np.random.default_rng(3)
    for _ in range(200):
        toks = rng.integers(0, 6, rng.integers(2, 60))
        for n_max, n_min, k in ((4, 1, 5), (3, 2, 3), (1, 1, 8)):
            assert propose(toks, n_max, n_min, k).tolist() == propose_reference(toks, n_max, n_min, k)
    assert propose([5, 6, 7, 1, 5, 6], 3, 1, 2).tolist() == [7, 1]  # longest suffix '5 6' → what followed


def test_ngram_cost_is_the_host_time_per_sequence():
    m = make_method("ngram", host_cost=(2e-5, 1e-8))
    c = m.costs(LAT, T, [1, 8], [512, 2048], [2, 4])
    want = np.array([1, 8])[:, None] * (2e-5 + 1e-8 * np.array([512, 2048]))[None, :]
    np.testing.assert_allclose(c.proposal_s[..., 0], want, rtol=1e-12)
    assert c.sources["draft_host"].coarse == "measured"


def test_ngram_host_timing_is_measured_here():
    from specperf.perfmodel.specdec.ngram import host_cost

    a, b, band, timings = host_cost(4, 1)
    assert a >= 0 and b > 0 and band >= 0
    assert timings[-1][1] > timings[0][1]  # a longer history takes longer to scan
