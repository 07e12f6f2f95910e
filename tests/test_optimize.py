"""Optimiser core: γ* and speedup agree with perfmodel.specdec.predict (an independent per-draft sweep) and
with a plain Python brute force; properties in α and draft cost (hypothesis); design space."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.alpha_model import default_model
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.optimize.search import ModeCosts, make_candidates, mode_costs, search
from specperf.perfmodel.optimize.report import optimize
from specperf.perfmodel.optimize.space import LLAMA_FFN_RATIO, assign_acceptance, design_space
from specperf.perfmodel.specdec.predict import predict
from specperf.perfmodel.specdec.maths import iteration_s, tokens_per_iteration
from specperf.perfmodel.specs.models import SpecError

LAT = AnalyticalLatency(resolve_gpu("h100-sxm"))
TARGET = resolve_model("llama-65b")
DRAFTS = ["sheared-llama-1.3b", "tinyllama-1.1b", "opt-1.3b", "llama-7b:n_layers=4"]
GAMMAS = list(range(1, 13))
BATCH, CONTEXT = [1, 8, 32], [512, 1024]


@pytest.fixture(scope="module")
def study():
    specs = [resolve_model(d) for d in DRAFTS]
    design, _ = design_space(TARGET, [1, 2, 8], [2048, 4096])
    cands = make_candidates(specs, DRAFTS, ["catalog"] * 3 + ["shape"], design)
    acc = assign_acceptance(cands, TARGET, default_model(),
                            measured=[(specs[1], AcceptanceModel(alpha=0.7, alpha_by_position=(0.8, 0.7, 0.6)), "x")])
    res = optimize(TARGET, cands, acc, LAT, BATCH, CONTEXT, GAMMAS, tp=4, modes=("graph", "eager"))
    return cands, acc, res


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_gamma_star_equals_predict_sweep(study, mode):
    """Every candidate, every (batch, context): same γ* and speedup as perfmodel.specdec.predict's sweep."""
    cands, acc, res = study
    m = res.modes[mode]
    for i in range(len(cands)):
        spec = cands.spec(i)
        am = (acc.per_position[i] if i in acc.per_position else AcceptanceModel(alpha=float(acc.alpha[i])))
        p = predict(TARGET, spec, LAT, am, GAMMAS, BATCH, CONTEXT, tp=4, mode=mode)
        np.testing.assert_array_equal(res.gammas[m.gamma_index[i]], p.optimal_gamma, err_msg=spec.name)
        np.testing.assert_allclose(m.speedup[i], p.optimal_speedup, rtol=1e-10, err_msg=spec.name)


def test_gamma_star_equals_python_brute_force(study):
    """A plain loop over γ with the specdec functions, for the design points."""
    cands, acc, res = study
    m = res.modes["graph"]
    for i in np.flatnonzero(cands.origin == "design"):
        spec = cands.spec(int(i))
        for bi, b in enumerate(BATCH):
            for ci, c in enumerate(CONTEXT):
                best = (-1.0, None)
                t_ar = LAT.forward(TARGET, b, 1, c, 4, "graph").total_s + LAT.overhead_s(TARGET, b, 0, "graph")[0]
                for g in GAMMAS:
                    td = LAT.forward(spec, b, 1, c + (g - 1) / 2, 1, "graph").total_s
                    tv = LAT.forward(TARGET, b, g + 1, c, 4, "graph").total_s
                    it = iteration_s(g, td, tv, LAT.overhead_s(TARGET, b, g, "graph")[0])
                    s = float(tokens_per_iteration(acc.alpha[i], g) * t_ar / it)
                    if s > best[0]:
                        best = (s, g)
                assert res.gammas[m.gamma_index[i, bi, ci]] == best[1]
                assert m.speedup[i, bi, ci] == pytest.approx(best[0], rel=1e-10)


def test_interval_brackets_point_and_reoptimises(study):
    cands, acc, res = study
    m = res.modes["graph"]
    assert np.all(m.speedup_lo <= m.speedup + 1e-12) and np.all(m.speedup <= m.speedup_hi + 1e-12)
    assert np.any(m.gamma_index_lo != m.gamma_index_hi)  # γ is re-optimised at the interval ends


def test_learned_positions_make_cells_infeasible_not_errors():
    opt = resolve_model("opt-1.3b")
    cands = make_candidates([opt, resolve_model("sheared-llama-1.3b")])
    acc = assign_acceptance(cands, TARGET, default_model(), alpha=0.7)
    res = optimize(TARGET, cands, acc, LAT, [1], [512, 2040], GAMMAS, tp=4)
    s = res.modes["graph"].speedup
    assert np.isfinite(s[0, 0, 0]) and np.isfinite(s[1, 0, 1])
    # at context 2040 only γ ≤ 7 fits OPT's 2048 positions: γ* is capped, not an error
    assert res.gammas[res.modes["graph"].gamma_index[0, 0, 1]] <= 7


def _costs(layer, head, verify, over, base):
    G = layer.size
    r = lambda a: np.asarray(a, float).reshape(1, 1, 1, G)  # noqa: E731
    return ModeCosts(mode="graph", layer_s=r(layer), head_s=r(head), verify_s=r(verify)[0],
                     overhead_s=r(over)[0], base_s=np.array([[base]]), target_s=np.array([[base]]), feasible=None)


pos = st.floats(1e-6, 1e-2)
G16 = np.arange(1, 17)


@settings(max_examples=200, deadline=None)
@given(st.lists(pos, min_size=16, max_size=16), st.lists(pos, min_size=16, max_size=16), pos, pos,
       st.floats(0.0, 0.98), st.floats(0.0, 0.98), st.integers(1, 32))
def test_more_acceptance_never_lowers_gamma_star(layer, verify, head, over, a1, a2, depth):
    lo, hi = sorted((a1, a2))
    c = _costs(np.array(layer), np.full(16, head), np.array(verify), np.full(16, over), 0.02)
    tpi = tokens_per_iteration(np.array([[lo], [hi]]), G16[None, :])
    gi, _ = search(tpi, np.array([0, 0]), np.array([depth, depth]), c, G16)
    assert gi[1, 0, 0] >= gi[0, 0, 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(pos, min_size=16, max_size=16), st.lists(st.floats(1.0, 5.0), min_size=16, max_size=16),
       pos, st.lists(pos, min_size=16, max_size=16), st.floats(0.0, 0.98), st.integers(1, 32), st.integers(0, 8))
def test_slower_draft_never_raises_speedup(layer, slow, head, verify, alpha, depth, extra_layers):
    base = _costs(np.array(layer), np.full(16, head), np.array(verify), np.full(16, 1e-4), 0.02)
    slower = _costs(np.array(layer) * np.array(slow), np.full(16, head), np.array(verify), np.full(16, 1e-4), 0.02)
    tpi = tokens_per_iteration(np.full((1, 1), alpha), G16[None, :])
    _, s0 = search(tpi, np.array([0]), np.array([depth]), base, G16)
    _, s1 = search(tpi, np.array([0]), np.array([depth]), slower, G16)
    _, s2 = search(tpi, np.array([0]), np.array([depth + extra_layers]), base, G16)  # deeper = slower
    assert s1[0, 0, 0] <= s0[0, 0, 0] * (1 + 1e-12)
    assert s2[0, 0, 0] <= s0[0, 0, 0] * (1 + 1e-12)


def test_search_chunks_agree():
    design, _ = design_space(TARGET, list(range(1, 40)), [1024, 2048, 4096], [2.0, LLAMA_FFN_RATIO])
    cands = make_candidates([], design=design)
    acc = assign_acceptance(cands, TARGET, default_model())
    costs = mode_costs(LAT, TARGET, cands.shape_specs, [1, 16], [512], GAMMAS, 4, "graph")
    a = search(acc.tpi(GAMMAS), cands.shape_index, cands.n_layers, costs, GAMMAS, chunk=7)
    b = search(acc.tpi(GAMMAS), cands.shape_index, cands.n_layers, costs, GAMMAS, chunk=100000)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_design_space_shapes_and_skips():
    d, skipped = design_space(TARGET, [1, 4], [1000, 2048, 4096], [LLAMA_FFN_RATIO], kv_heads=None)
    specs = [d.spec(i) for i in range(len(d))]
    assert len(d) == 4 and not any(s.d_model == 1000 for s in specs)  # 1000: neither 128 nor 64 divides it
    w = [s for s in specs if s.d_model == 4096][0]
    assert (w.d_ff, w.n_heads, w.vocab, w.family) == (11008, 32, 32000, "llama")  # = LLaMA-7B's layer
    assert w.layer_params == resolve_model("llama-7b").layer_params
    assert any("1000" in s for s in skipped)
    d2, sk2 = design_space(TARGET, [2], [2048], [3.0], head_dims=[64, 128], kv_heads=[4, 32])
    assert {(s.n_heads, s.n_kv_heads) for s in (d2.spec(i) for i in range(len(d2)))} == {(32, 4), (32, 32), (16, 4)}
    assert any("kv_heads 32 does not divide n_heads 16" in s for s in sk2)


def test_design_space_with_no_valid_model_is_an_error():
    with pytest.raises(SpecError, match="yields no valid model"):
        design_space(TARGET, [1, 2], [1000], head_dims=[128])
    with pytest.raises(SpecError, match="no draft candidates"):
        make_candidates([])


def test_measured_provider_matches_predict(tmp_path):
    """The optimiser runs on a measured latency table (perfmodel.latency.measured) exactly as predict() does."""
    measured = pytest.importorskip("specperf.perfmodel.latency.measured")
    from specperf.perfmodel.latency.table import LatencyTable, layer_shape_key

    l7 = resolve_model("llama-7b")
    t = LatencyTable(meta={"gpu": "h100-sxm"})
    for mode in ("graph", "eager"):
        for b in (1, 4, 16):
            for n in (1, 4, 16):
                for c in (256, 1024):
                    t.add({"gpu": "h100-sxm", "model": "llama-7b", "shape": layer_shape_key(l7), "head_shape": "",
                           "component": "layer", "mode": mode, "dtype": "fp16", "tp": 1, "batch": b, "new_tokens": n,
                           "context": c, "median_s": 2e-5 + 1e-7 * b * n + 1e-10 * b * c, "p10_s": 1e-5,
                           "p90_s": 3e-5, "repeats": 10, "status": "ok", "reason": ""})
    path = tmp_path / "m.csv"
    t.save(path)
    lat = measured.MeasuredLatency(path, resolve_gpu("h100-sxm"))
    design, _ = design_space(TARGET, [1, 3, 6], [4096])  # = LLaMA-7B's layer shape: measured rows apply
    cands = make_candidates([resolve_model("sheared-llama-1.3b")], design=design)
    acc = assign_acceptance(cands, TARGET, default_model())
    res = optimize(TARGET, cands, acc, lat, [1, 4], [512], GAMMAS, tp=4)
    assert {"measured", "interpolated"} & set(res.modes["graph"].costs.sources["draft_layer"].kinds)
    m = res.modes["graph"]
    for i in range(len(cands)):
        p = predict(TARGET, cands.spec(i), lat, AcceptanceModel(alpha=float(acc.alpha[i])), GAMMAS, [1, 4], [512],
                    tp=4, mode="graph")
        np.testing.assert_array_equal(res.gammas[m.gamma_index[i]], p.optimal_gamma)
        np.testing.assert_allclose(m.speedup[i], p.optimal_speedup, rtol=1e-10)


def test_memory_fit_arithmetic():
    cands = make_candidates([resolve_model("sheared-llama-1.3b")])
    acc = assign_acceptance(cands, TARGET, default_model(), alpha=0.7)
    res = optimize(TARGET, cands, acc, LAT, [1], [512], GAMMAS, tp=4, memory_bytes=80e9)
    d = resolve_model("sheared-llama-1.3b")
    toks = 64 * (2048 + 4 + 1)
    want = TARGET.weight_bytes / 4 + toks * TARGET.kv_bytes_per_token / 4 + d.weight_bytes + toks * d.kv_bytes_per_token
    assert res.memory_needed_bytes(0, 64, 2048, 4) == pytest.approx(want)
    assert res.fits(0, 1, 512, 4) and not res.fits(0, 64, 2048, 4)  # 65B at tp=4: KV of 64×2k tokens overflows
