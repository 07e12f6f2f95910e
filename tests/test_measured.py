"""perfmodel.latency.measured + perfmodel.latency.fit on synthetic tables: exact interpolation of multilinear latency,
anchored fallback outside the grid, fitted analytical for unmeasured shapes, sources; planted
efficiencies recovered by the fit; the shipped-profile selection."""
import numpy as np
import pytest

from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.latency.fit import fit_profile
from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.measured import Grid, MeasuredLatency
from specperf.perfmodel.latency.base import LatencyProvider
from specperf.perfmodel.latency.providers import latency_provider, shipped_profile
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key

H100 = GPUS["h100-sxm"]
L7 = resolve_model("llama-7b")
S13 = resolve_model("sheared-llama-1.3b")


def _row(spec, comp, mode, b, n, c, t, tp=1):
    return {"gpu": "h100-sxm", "model": spec.name, "shape": layer_shape_key(spec) if comp in ("layer", "allreduce") else "",
            "head_shape": head_shape_key(spec) if comp not in ("layer", "allreduce") else "",
            "component": comp, "mode": mode, "dtype": "fp16", "tp": tp, "batch": b, "new_tokens": n,
            "context": c, "median_s": t, "p10_s": t, "p90_s": t, "repeats": 20, "status": "ok", "reason": ""}


def planted(b, n, c):  # multilinear: constant + ∝ b·n + ∝ b·n·c
    return 1e-4 + 2e-6 * b * n + 3e-9 * b * n * c


def _table(tmp_path, fn=planted, specs=(L7,), hw_rows=None, name="t.csv"):
    t = LatencyTable(meta={"gpu": "h100-sxm"})
    for spec in specs:
        for mode in ("graph", "eager"):
            for b in (1, 4, 16):
                for n in (1, 3, 9):
                    for c in (128, 512, 2048):
                        t.add(_row(spec, "layer", mode, b, n, c, fn(b, n, c)))
                    t.add(_row(spec, "lm_head", mode, b, n, 0, 5e-5 + 1e-7 * b * n))
                for g in range(3):
                    t.add(_row(spec, "overhead", mode, b, g + 1, 0, 7e-5 + 1e-6 * b * g))
    for r in hw_rows or []:
        t.add(r)
    p = tmp_path / name
    t.save(p)
    return p


def test_grid_multilinear_is_exact_and_flags_measured():
    pts = np.array([[b, n, c, planted(b, n, c)] for b in (1, 4, 16) for n in (1, 3, 9) for c in (128, 2048)])
    g = Grid(pts)
    b, n, c = np.array([2.5, 4, 16]), np.array([2, 3, 7]), np.array([700, 128, 1000])
    v, kind = g(b, n, c)
    np.testing.assert_allclose(v, planted(b, n, c), rtol=1e-12)
    assert kind.tolist() == [1, 0, 1]  # INTERP, MEASURED, INTERP
    v2, _ = g(32, 1, 128)  # outside the grid
    assert np.isnan(v2)


def test_missing_corner_falls_back_not_interpolates():
    pts = np.array([[b, c, 1.0] for b in (1, 2) for c in (1, 2) if (b, c) != (2, 2)])
    v, _ = Grid(pts)(1.5, 1.5)
    assert np.isnan(v)
    assert Grid(pts)(1, 1.5)[0] == pytest.approx(1.0)


def test_measured_provider_interpolates_and_says_so(tmp_path):
    lat = MeasuredLatency(_table(tmp_path), H100)
    ct = lat.forward(L7, 4, 3, 512, 1, "graph")
    assert float(ct.layer_s) == pytest.approx(planted(4, 3, 512), rel=1e-12)
    assert str(ct.sources["layer"]) == "measured (t.csv)"
    assert float(ct.total_s) == pytest.approx(32 * planted(4, 3, 512) + 5e-5 + 1.2e-6, rel=1e-9)
    ct = lat.forward(L7, np.array([2, 8]), 5, 1000, 1, "eager")
    np.testing.assert_allclose(ct.layer_s, planted(np.array([2, 8]), 5, 1000), rtol=1e-12)
    assert str(ct.sources["layer"]) == "interpolated (t.csv)"
    # a wide-shallow draft reuses the llama-7b layer rows
    d4 = resolve_model("llama-7b:n_layers=4")
    assert float(lat.forward(d4, 4, 3, 512).total_s) == pytest.approx(4 * planted(4, 3, 512) + 5e-5 + 1.2e-6)
    ov, src = lat.overhead_s(L7, 4, np.array([0, 1, 2]), "graph")
    np.testing.assert_allclose(ov, 7e-5 + 1e-6 * 4 * np.arange(3))
    assert str(src) == "measured (t.csv)" and src.kinds == ("measured",)


def test_outside_grid_is_anchored_and_unmeasured_shape_is_fitted(tmp_path):
    lat = MeasuredLatency(_table(tmp_path), H100)
    fb = lat.fallback
    ct = lat.forward(L7, 64, 1, 512, 1, "graph")  # batch beyond the grid
    want = planted(16, 1, 512) * fb.layer_s(L7, 64, 1, 512, 1, "graph") / fb.layer_s(L7, 16, 1, 512, 1, "graph")
    assert float(ct.layer_s) == pytest.approx(float(want), rel=1e-9)
    assert "analytical fitted to t.csv" in str(ct.sources["layer"]) and "nearest measured" in str(ct.sources["layer"])
    ct = lat.forward(S13, 1, 1, 512, 1, "graph")  # shape never measured
    assert str(ct.sources["layer"]) == "analytical fitted to t.csv"
    assert float(ct.layer_s) == pytest.approx(float(fb.layer_s(S13, 1, 1, 512, 1, "graph")))
    mixed = lat.forward(L7, np.array([4, 64]), 1, 512).sources["layer"]
    assert "×1" in str(mixed) and "measured" in str(mixed)
    assert mixed.coarse == "mixed" and [(p.kind, p.count) for p in mixed.parts] == [("measured", 1), ("anchored", 1)]
    # tp without tp rows: scaled from the tp=1 measurement
    ct = latency_provider(H100, profile=str(tmp_path / "t.csv")).forward(L7, 4, 3, 512, 2, "graph")
    assert "nearest measured" in str(ct.sources["layer"])
    # no all-reduce rows in this table: the shipped measured NCCL curve of the H100 pair stands in
    # (perfmodel.latency.tp_provider.TPMeasuredLatency, put on top by build_provider)
    assert str(ct.sources["allreduce"]).startswith("NCCL all-reduce curve measured on 2× h100-sxm")


def test_fit_recovers_planted_efficiencies(tmp_path):
    true = H100.replace(matmul_efficiency=0.55, bandwidth_efficiency=0.72, kernel_floor_eager_s=9e-6,
                        kernel_floor_graph_s=1.5e-6, overhead_eager_s=150e-6, overhead_graph_s=40e-6)
    a = AnalyticalLatency(true)
    rows = []
    for spec in (L7, S13, resolve_model("opt-125m")):
        for mode in ("graph", "eager"):
            for b in (1, 4, 16, 64):
                for n in (1, 4, 9):
                    for c in (128, 2048):
                        rows.append(_row(spec, "layer", mode, b, n, c, float(a.layer_s(spec, b, n, c, 1, mode))))
                    rows.append(_row(spec, "lm_head", mode, b, n, 0, float(a.lm_head_s(spec, b, n, 1, mode))))
                    rows.append(_row(spec, "overhead", mode, b, n, 0, float(a.overhead_s(spec, b, n - 1, mode)[0])))
    t = LatencyTable(rows=rows, meta={"gpu": "h100-sxm"})
    hw, rep = fit_profile(t, H100)
    for p in ("matmul_efficiency", "bandwidth_efficiency", "kernel_floor_eager_s", "kernel_floor_graph_s"):
        assert getattr(hw, p) == pytest.approx(getattr(true, p), rel=0.02), p
    assert hw.overhead_eager_s == pytest.approx(150e-6, rel=0.02)
    assert hw.overhead_graph_s == pytest.approx(40e-6, rel=0.05)
    assert rep["stats"]["layer_and_lm_head"]["median_abs_rel_err"] < 1e-3


def test_fitted_params_in_metadata_are_used(tmp_path):
    p = _table(tmp_path)
    t = LatencyTable.load(p)
    t.meta["fitted"] = {"bandwidth_efficiency": 0.5, "kernel_floor_graph_s": 4e-6}
    t.save(p)
    lat = MeasuredLatency(p, H100)
    assert lat.fallback.hw.bandwidth_efficiency == 0.5 and lat.fallback.hw.kernel_floor_graph_s == 4e-6


def test_latency_provider_picks_profile_shipped_or_analytical(tmp_path):
    p = _table(tmp_path)
    lat = latency_provider(H100, profile=str(p))  # the shipped TP tables of the H100 sit on top
    assert isinstance(getattr(lat, "base", lat), MeasuredLatency) and isinstance(lat, LatencyProvider)
    from specperf.perfmodel.latency.chain import OperatorChain

    l40s = latency_provider(GPUS["l40s"])  # no profile: the H200's operator tables rescaled, else analytical
    assert isinstance(l40s, OperatorChain) and isinstance(l40s.base, AnalyticalLatency)
    assert "rescaled h200→l40s" in l40s.operators.name
    assert isinstance(latency_provider(GPUS["mi300x"]), AnalyticalLatency)  # not CUDA: no borrowed tables
    assert isinstance(latency_provider(H100, use_shipped=False), AnalyticalLatency)
    if shipped_profile("h100-sxm"):
        lat = latency_provider(H100)
        while not isinstance(lat, MeasuredLatency):  # compiled split, TP data, operator chain, then the rows
            lat = lat.base
        assert lat.path.name == "h100-sxm.csv"


def test_predict_cli_uses_profile_and_states_sources(tmp_path):
    import json

    from typer.testing import CliRunner

    from specperf.cli.main import app

    p = _table(tmp_path)
    r = CliRunner().invoke(app, ["predict", "--target", "llama-7b", "--draft", "llama-7b:n_layers=4",
                                 "--alpha", "0.7", "--batch", "4", "--context", "512", "--profile", str(p), "--json"])
    assert r.exit_code == 0, r.output
    src = json.loads(r.output)["sources"]
    assert src["target_layer"].startswith(("measured (t.csv)", "interpolated (t.csv)"))
    assert src["overhead"].startswith(("measured", "interpolated"))
    r = CliRunner().invoke(app, ["predict", "--target", "llama-7b", "--draft", "llama-7b:n_layers=4",
                                 "--alpha", "0.7", "--profile", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "does not exist" in r.output
