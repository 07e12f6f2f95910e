"""The speculation-method seam (perfmodel.specdec.methods): one iteration-time formula, the separate
draft model as one method, and predict / optimize / uncertainty / confidence agreeing through it —
catch-up included everywhere."""
import numpy as np
import pytest

from perfmodel.latency.providers import build_provider
from perfmodel.optimize.report import optimize
from perfmodel.optimize.search import make_candidates
from perfmodel.optimize.space import assign_acceptance
from perfmodel.specdec import alpha_model as am
from perfmodel.specdec.acceptance import AcceptanceModel
from perfmodel.specdec.methods import IterationCosts, SpeculationMethod, iteration_time_s
from perfmodel.specdec.registry import METHODS, check_method, make_method
from perfmodel.specdec.predict import predict
from perfmodel.specs.catalog import resolve_model
from perfmodel.specs.hardware import GPUS
from perfmodel.specs.models import SpecError

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
