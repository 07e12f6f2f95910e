"""Issue 14: latency bands from shipped data, Monte Carlo intervals in predict, their coverage on the
shipped validation tables, and acceptance intervals on simulated traces with planted truth."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from specperf.calibration.acceptance_fit import fit_acceptance
from specperf.calibration.cluster import cluster_ci
from specperf.calibration.simulate import clustered_trace, clustered_truth, iid_trace, vllm_short_trace
from specperf.calibration.traces import read_trace
from specperf.perfmodel.latency.bands import BANDS_FILE, load_bands
from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.document import prediction_document
from specperf.perfmodel.specdec.predict import predict
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import coverage_check  # noqa: E402
from specperf.perfmodel.data_build import bands as error_bands  # noqa: E402
from specperf.perfmodel.data_build.rebuild import _resolver, error_bands as bands_doc  # noqa: E402
from specperf.perfmodel.shipped import DATA_DIR, EVIDENCE_DIR, load_manifest  # noqa: E402


def _fresh_bands() -> dict:
    """error_bands.json as the rebuild computes it from the evidence the manifest names."""
    spec = next(e.build["bands"] for e in load_manifest() if "bands" in e.build)
    return bands_doc(spec, _resolver(DATA_DIR, EVIDENCE_DIR), DATA_DIR)


def test_bands_file_is_what_the_script_computes():
    stored = json.loads(BANDS_FILE.read_text())
    fresh = _fresh_bands()
    assert stored["command"] == "python -m specperf.perfmodel.data_build"
    for kind, per in fresh["bands"].items():
        for mode, e in per.items():
            assert stored["bands"][kind][mode]["n"] == e["n"] > 0
            assert stored["bands"][kind][mode]["band"] == pytest.approx(e["band"], rel=1e-9)
    b = load_bands()
    assert b["measured"]["graph"]["band"] < b["measured"]["eager"]["band"] < b["fitted"]["any"]["band"]


def _doc(alpha_ci=(0.65, 0.75), gpu="h100-sxm", **kw):
    hw = resolve_gpu(gpu)
    prov = build_provider(hw, **kw)
    t, d = resolve_model("llama-7b"), resolve_model("sheared-llama-1.3b")
    acc = AcceptanceModel(alpha=0.7, alpha_ci=alpha_ci)
    p = predict(t, d, prov.target, acc, range(1, 9), [1], [512], draft_latency=prov.draft)
    t0 = time.perf_counter()
    doc = prediction_document(p, t, d, hw.name, 1, acc)
    return doc, time.perf_counter() - t0


def test_predict_document_intervals_bracket_the_point_and_are_fast():
    doc, dt = _doc()
    assert dt < 0.2
    for r in doc["rows"]:
        for f in ("iteration_s", "throughput_tok_s", "speedup"):
            assert r[f"{f}_lo"] <= r[f] <= r[f"{f}_hi"]
        assert r["baseline_tok_s"] > 0 and "t_verify_s" in r  # existing keys kept
    assert doc["speedup_lo"] <= doc["speedup"] <= doc["speedup_hi"]
    src = doc["provenance"]["target_layer"]["parts"][0]
    assert src["kind"] == "measured" and src["band"] == pytest.approx(load_bands()["measured"]["graph"]["band"])


def test_planted_band_gives_that_iteration_interval():
    doc, _ = _doc(alpha_ci=None)  # exact α: the interval is latency only, all sources measured
    b = load_bands()["measured"]["graph"]["band"]
    r = doc["rows"][0]
    assert r["iteration_s_hi"] / r["iteration_s"] == pytest.approx(1 + b, rel=0.01)
    assert r["iteration_s"] / r["iteration_s_lo"] == pytest.approx(1 + b, rel=0.01)
    assert any("no interval" in n for n in doc["uncertainty"]["notes"])


def test_analytical_is_wider_than_measured():
    m, _ = _doc()
    a, _ = _doc(analytical=True)
    w = lambda d: d["rows"][0]["iteration_s_hi"] / d["rows"][0]["iteration_s_lo"]  # noqa: E731
    assert w(a) > 3 * w(m)


@pytest.mark.parametrize("lodo", [False, True])
def test_iteration_interval_covers_shipped_validation(lodo):
    for mode, s in coverage_check.loop_coverage(lodo).items():
        assert s["iteration_coverage"] >= 0.85, (mode, s)
        assert s["speedup_coverage"] >= 0.85, (mode, s)


def _coverage(fits, truth):
    return np.mean([f.model.alpha_ci[0] <= truth <= f.model.alpha_ci[1] for f in fits])


def test_iid_trace_recovers_alpha_and_covers():
    rng = np.random.default_rng(1)
    fits = [fit_acceptance(iid_trace(0.7, 4, 200, rng), model="iid") for _ in range(300)]
    assert np.mean([f.model.alpha for f in fits]) == pytest.approx(0.7, abs=0.01)
    assert 0.92 <= _coverage(fits, 0.7) <= 0.98
    assert any("assumed independent" in n for n in fits[0].report.notes)


def test_clustered_trace_request_column_restores_coverage():
    rng = np.random.default_rng(2)
    truth = clustered_truth(0.7, 10, 4, n=400_000)
    with_req = [fit_acceptance(clustered_trace(0.7, 10, 4, 20, 10, rng), model="iid") for _ in range(300)]
    without = [fit_acceptance(clustered_trace(0.7, 10, 4, 20, 10, rng, False), model="iid") for _ in range(300)]
    assert 0.92 <= _coverage(with_req, truth) <= 0.98
    assert _coverage(without, truth) < 0.85  # the failure the issue reports, and why the note exists
    assert any("per-request" in n for n in with_req[0].report.notes)


def test_cluster_ci_recovers_planted_ratio():
    k = np.array([30, 50, 70, 90])
    n = np.array([100, 100, 100, 100])
    lo, hi = cluster_ci(k, n)
    assert lo < 0.6 < hi and hi - lo > 0.2  # between-request spread, not the binomial's


def test_short_vllm_proposals_refuse_or_widen():
    rng = np.random.default_rng(3)
    heavy = fit_acceptance(vllm_short_trace(0.6, 4, 2000, rng, p_short=0.5), model="per-position")
    assert len(heavy.model.extra["alpha_by_position_fit"]) < 4
    assert any("unidentifiable" in n for n in heavy.report.notes)
    fits = [fit_acceptance(vllm_short_trace(0.6, 4, 2000, rng, p_short=0.02), model="per-position") for _ in range(100)]
    cis = [c for f in fits for c in f.model.extra["alpha_by_position_fit_ci"]]
    assert np.mean([lo <= 0.6 <= hi for lo, hi in cis]) >= 0.93


def test_request_column_read_and_mixed_rejected(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("request,gamma,accepted\na,4,2\na,4,4\nb,4,0\nb,4,1\n")
    d = read_trace(p)
    assert d.extra["iterations"]["request"] == ["a", "a", "b", "b"]
    q = tmp_path / "m.csv"
    q.write_text("request,gamma,accepted\na,4,2\n,4,4\n")
    with pytest.raises(Exception, match="request"):
        read_trace(q)


def test_optimize_win_probabilities():
    from specperf.perfmodel.optimize.run import OptimizeRequest, run

    hw = resolve_gpu("h100-sxm")
    prov = build_provider(hw)
    req = OptimizeRequest(target="llama-7b", drafts=["sheared-llama-1.3b", "llama-7b:n_layers=2"], alpha=0.7,
                          modes=("graph",), reference="sheared-llama-1.3b", gamma_max=8)
    doc = run(req, prov.target, prov.draft)
    rows = doc["rankings"][0]["rows"]
    top = rows[0]
    assert top["draft"] != "sheared-llama-1.3b" and top["p_beats_reference"] > 0.9
    assert 0 <= top["p_beats_next"] <= 1 and top["robust_gamma"] in range(1, 9)
    assert doc["rankings"][0]["latency_bands"]["draft"]["kind"] in ("measured", "interpolated")


def test_alpha_model_interval_includes_stated_uncertainty_and_counting_is_consistent():
    from specperf.perfmodel.optimize.search import make_candidates
    from specperf.perfmodel.optimize.space import assign_acceptance
    from specperf.perfmodel.specdec import alpha_model as am

    target = resolve_model("llama-65b")
    specs = [resolve_model(n) for n in ("sheared-llama-1.3b", "tinyllama-1.1b", "opt-1.3b")]
    x = np.array([am.features(am.nonembedding_params(s), am.nonembedding_params(target), s.n_layers) for s in specs])
    m = am.fit(x, [0.7, 0.7, 0.7], alpha_ci=[(0.65, 0.75)] * 3)
    a, lo, hi = m.predict(x[0])
    assert lo <= 0.65 and hi >= 0.75  # never narrower than the inputs it is derived from
    d = am.default_model()
    assert d.counting == "total" and d.coef_var[2] > 0  # depth coefficient assumed, with a variance
    cands = make_candidates(specs)
    acc = assign_acceptance(cands, target, d)
    want = d.predict(am.features(np.array([s.params for s in specs], float), target.params,
                                 np.array([s.n_layers for s in specs])))[0]
    assert acc.alpha == pytest.approx(want)


def test_alpha_model_prediction_interval_covers_planted_truth():
    from specperf.perfmodel.specdec import alpha_model as am

    rng = np.random.default_rng(4)
    true = np.array([1.2, 0.2, 0.15])
    P = np.array([1e8, 3e8, 1e9, 3e9, 1e8, 1e9, 3e8, 3e9])
    L = np.array([2, 4, 8, 16, 16, 2, 24, 4])
    x = am.features(P, 65e9, L)
    x_new = am.features(5e8, 65e9, 6)
    hit = []
    for _ in range(400):
        y = am.expit(x @ true + rng.normal(0, 0.2, P.size))
        m = am.fit(x, y)
        a_new = am.expit(x_new @ true + rng.normal(0, 0.2))
        _, lo, hi = m.predict(x_new)
        hit.append(lo <= a_new <= hi)
    assert 0.92 <= np.mean(hit) <= 0.98


def test_calibrated_provider_carries_its_leave_one_out_band(tmp_path):
    from specperf.calibration.latency_fit import fit_latency
    from specperf.perfmodel.latency.corrected import CorrectedLatency, LatencyCorrection
    from specperf.perfmodel.latency.providers import latency_provider
    from test_calibration_latency import write_runs

    runs = write_runs(tmp_path / "runs.csv", noise=0.02, seed=5)
    corr, _ = fit_latency(runs, lambda hw: latency_provider(hw, use_shipped=False), "analytical")
    e = corr.entries[0]
    assert e.extra["loo_band_n"] >= 3 and 0.0 < e.extra["loo_band"] < 0.2  # planted 2 % noise, p90 in log
    path = tmp_path / "corr.json"
    path.write_text(json.dumps(corr.to_dict()))
    hw = resolve_gpu("h100-sxm")
    lat = CorrectedLatency(latency_provider(hw, use_shipped=False), LatencyCorrection.load(path), gpu="h100-sxm")
    ft = lat.forward(resolve_model("llama-7b"), 1, 1, 512)
    assert ft.sources["layer"].parts[0].band == pytest.approx(e.extra["loo_band"])


def test_alpha_model_joint_draws_match_its_interval_and_share_coefficients():
    from specperf.perfmodel.specdec import alpha_model as am

    target = resolve_model("llama-65b")
    specs = [resolve_model(n) for n in ("sheared-llama-1.3b", "tinyllama-1.1b", "opt-1.3b")]
    x = np.array([am.features(am.nonembedding_params(s), am.nonembedding_params(target), s.n_layers) for s in specs])
    m = am.fit(x, [0.7, 0.7, 0.7], alpha_ci=[(0.65, 0.75)] * 3)
    new = np.array([am.features(4.0e8 * k, am.nonembedding_params(target), k) for k in (1, 2)])
    z = m.sample_logits(new, 40000, np.random.default_rng(0))
    _, lo, hi = m.predict(new)
    a = am.expit(z)
    assert np.mean((a >= lo) & (a <= hi), axis=0) == pytest.approx([0.95, 0.95], abs=0.01)
    assert np.corrcoef(z.T)[0, 1] > 0.5  # the shared depth/size coefficients move both drafts


def test_shared_fraction_recovers_planted_split():
    rng = np.random.default_rng(3)
    bias_only = np.full(500, 0.05)
    noise_only = np.expm1(rng.normal(0, 0.05, 20000))
    half = np.expm1(0.05 + rng.normal(0, 0.05, 20000))
    assert error_bands._shared(bias_only)[0] == pytest.approx(1.0)
    assert error_bands._shared(noise_only)[0] == pytest.approx(0.0, abs=0.01)
    assert error_bands._shared(half)[0] == pytest.approx(0.5, abs=0.03)
    stored = json.loads(BANDS_FILE.read_text())["shared_fraction"]
    fresh = _fresh_bands()["shared_fraction"]
    for kind in ("measured", "interpolated"):
        for mode, e in fresh[kind].items():
            assert stored[kind][mode]["rho"] == pytest.approx(e["rho"], rel=1e-9)


def test_win_probability_of_two_operator_shapes_is_not_certain(monkeypatch):
    """Two drafts of different, unprofiled shapes with the same exact α: their operator-composed
    errors are almost independent by shape (ρ ≈ 0 under graphs), so which is faster is uncertain
    when their speedups are close; fully shared errors (ρ = 1) would rank them with certainty."""
    from specperf.perfmodel.optimize import confidence as conf
    from specperf.perfmodel.optimize.run import OptimizeRequest, run

    hw = resolve_gpu("h200")
    prov = build_provider(hw)
    drafts = ["llama-7b:d_model=1536,n_heads=12,n_kv_heads=4,d_ff=4096,n_layers=6",
              "llama-7b:d_model=1792,n_heads=14,n_kv_heads=2,d_ff=4864,n_layers=6"]
    req = OptimizeRequest(target="llama-13b", drafts=drafts, alpha=0.7, modes=("graph",), gamma_max=8)
    rows = run(req, prov.target, prov.draft)["rankings"][0]["rows"]
    assert {r["draft"] for r in rows} == set(drafts)
    assert abs(rows[0]["speedup"] / rows[1]["speedup"] - 1) < 0.01
    p = rows[0]["p_beats_next"]
    assert 0.5 < p < 0.99
    monkeypatch.setattr(conf, "shared_fraction", lambda kind, mode: 1.0)
    rows1 = run(req, prov.target, prov.draft)["rankings"][0]["rows"]
    assert rows1[0]["p_beats_next"] == 1.0


def test_roles_of_one_kind_share_the_draw_but_keep_their_own_band():
    """Draft measured ±2 % and target measured ±77 % (an unbanded tp shard): one standard normal for
    the kind, each role at its own width — not the last role's band for both."""
    from specperf.perfmodel.specdec.uncertainty import Z90, role_factors

    roles = {"draft": {"kind": "measured", "band": 0.02}, "target": {"kind": "measured", "band": 0.77},
             "overhead": {"kind": "anchored", "band": 0.5}}
    f = role_factors(roles, 20000, np.random.default_rng(0))
    ld, lt = np.log(f["draft"]), np.log(f["target"])
    np.testing.assert_allclose(ld / np.log1p(0.02), lt / np.log1p(0.77))  # the same z
    q = np.percentile(f["draft"], [5, 95])
    assert q[0] == pytest.approx(1 / 1.02, rel=2e-3) and q[1] == pytest.approx(1.02, rel=2e-3)
    assert np.percentile(f["target"], 95) == pytest.approx(1.77, rel=0.02)
    assert abs(np.corrcoef(ld, np.log(f["overhead"]))[0, 1]) < 0.05  # another kind: independent
    assert Z90 > 1.6
