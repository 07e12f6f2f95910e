"""perfmodel.latency.tp: planted-parameter recovery of the all-reduce fit (one and two regimes), the
TP extrapolation factors, curve I/O, and the provider wrapper's sources (measured vs extrapolated)."""
import numpy as np
import pytest

from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.specs.models import SpecError
from specperf.perfmodel.latency.base import LatencyProvider
from specperf.perfmodel.latency.providers import with_tp_data
from specperf.perfmodel.latency.tp_provider import TPMeasuredLatency
from specperf.perfmodel.latency.tp import (AllreduceModel, compare_extrapolation, fit_allreduce,
                                fit_line, load_curves, ring_bytes_factor, save_curve)

SIZES = np.geomspace(4096, 256 * 2**20, 33)


def test_fit_line_recovers_planted_latency_and_bandwidth():
    t = 9e-6 + SIZES / 300e9
    f = fit_line(SIZES, t)
    assert f.latency_s == pytest.approx(9e-6, rel=1e-6)
    assert f.bytes_per_s == pytest.approx(300e9, rel=1e-6)


def test_two_regime_fit_recovers_planted_protocol_switch():
    rng = np.random.default_rng(0)
    t = np.minimum(6e-6 + SIZES / 40e9, 25e-6 + SIZES / 350e9) * (1 + 0.01 * rng.standard_normal(SIZES.size))
    fit = fit_allreduce(SIZES, t)
    assert fit.large is not None
    assert fit.small.latency_s == pytest.approx(6e-6, rel=0.1)
    assert fit.large.bytes_per_s == pytest.approx(350e9, rel=0.05)
    assert fit.rel_err_median < 0.02
    one = fit_allreduce(SIZES, t, two_regime=False)
    assert one.large is None and one.rel_err_median > 2 * fit.rel_err_median


def test_one_regime_is_kept_when_a_second_does_not_help():
    fit = fit_allreduce(SIZES, 9e-6 + SIZES / 300e9)
    assert fit.large is None and fit.rel_err_max < 1e-6


def test_fit_needs_two_points():
    with pytest.raises(SpecError, match="at least 2"):
        fit_allreduce([4096], [1e-5])


def _curve_file(tmp_path, gpu="h100-sxm", tp=2, lat=8e-6, bw=200e9):
    rows = [{"gpu": gpu, "tp": tp, "mode": m, "dtype": "fp16", "size_bytes": int(s),
             "median_s": lat + s / bw + (2e-6 if m == "eager" else 0), "p10_s": lat, "p90_s": 2 * lat,
             "repeats": 30, "status": "ok", "reason": ""} for m in ("eager", "graph") for s in SIZES]
    rows.append(dict(rows[0], status="failed", median_s="", size_bytes=1))
    p = tmp_path / f"allreduce_{gpu}_tp{tp}.csv"
    save_curve(rows, p, {"command": "test"})
    _list(tmp_path, {"file": p.name, "role": "allreduce", "gpu": gpu, "dtype": "fp16", "tp": tp})
    return p


def _list(data_dir, entry):
    """Add `entry` to data_dir's manifest.json (perfmodel.shipped): how a table becomes shipped data."""
    import json

    from specperf.perfmodel import shipped

    m = data_dir / "manifest.json"
    doc = json.loads(m.read_text()) if m.exists() else {"files": []}
    doc["files"] = [e for e in doc["files"] if e["file"] != entry["file"]] + [entry]
    m.write_text(json.dumps(doc))
    shipped._load.cache_clear()


def test_curve_roundtrip_and_extrapolation_factors(tmp_path):
    curves = load_curves(_curve_file(tmp_path))
    assert [(c.mode, c.tp, c.size_bytes.size) for c in curves] == [("eager", 2, 33), ("graph", 2, 33)]
    m = AllreduceModel.from_curve(curves[1])
    assert m.factors(2) == (1.0, 1.0)
    lf, bf = m.factors(4)
    assert lf == pytest.approx(2.0) and bf == pytest.approx(1.5)
    assert m.factors(8) == pytest.approx((3.0, 1.75))
    big = 64 * 2**20  # bandwidth-bound: ratio → ring factor
    assert m.one_s(big, 8) / m.one_s(big, 2) == pytest.approx(1.75, rel=0.02)
    assert m.one_s(big, 1) == 0.0
    assert ring_bytes_factor(2) == 1.0


def test_compare_extrapolation_is_zero_when_the_assumption_holds(tmp_path):
    # a TP=4 curve made to follow the assumed scaling exactly → zero error
    c2 = load_curves(_curve_file(tmp_path))[1]
    m = AllreduceModel.from_curve(c2)
    rows = [{"gpu": "h100-sxm", "tp": 4, "mode": "graph", "dtype": "fp16", "size_bytes": int(s),
             "median_s": float(m.one_s(s, 4)), "p10_s": 0, "p90_s": 0, "repeats": 1, "status": "ok", "reason": ""}
            for s in SIZES]
    save_curve(rows, tmp_path / "allreduce_h100-sxm_tp4.csv")
    c4 = load_curves(tmp_path / "allreduce_h100-sxm_tp4.csv")[0]
    r = compare_extrapolation(m, c4)
    assert r["from_tp"] == 2 and r["to_tp"] == 4 and r["max_abs_rel_err"] < 1e-5


def test_load_curves_rejects_other_files(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(SpecError, match="not an all-reduce curve"):
        load_curves(p)
    with pytest.raises(SpecError, match="does not exist"):
        load_curves(tmp_path / "missing.csv")


def test_wrapper_replaces_analytical_allreduce_and_says_it_extrapolates(tmp_path):
    _curve_file(tmp_path, lat=8e-6, bw=200e9)
    hw = resolve_gpu("h100-sxm")
    base = AnalyticalLatency(hw)
    lat = with_tp_data(base, hw, tmp_path)
    assert isinstance(lat, TPMeasuredLatency) and isinstance(lat, LatencyProvider)
    spec = resolve_model("llama-65b")
    b, n = np.array([1, 8])[:, None], np.array([1, 5])[None, :]
    ft4 = lat.forward(spec, b, n, 512, 4, "graph")
    msg = b * n * spec.d_model * 2
    want = 2 * (8e-6 * 2.0 + msg * 1.5 / 200e9)
    np.testing.assert_allclose(ft4.allreduce_s, want, rtol=1e-3)
    src = str(ft4.sources["allreduce"])
    assert ft4.sources["allreduce"].kinds == ("curve",)
    assert "measured on 2× h100-sxm" in src and "TP=4 EXTRAPOLATED from measured TP=2" in src
    assert "×1.50" in src and "×2.00" in src and "the TP=2 time" in src
    ft2 = lat.forward(spec, 1, 1, 512, 2, "graph")
    assert "EXTRAPOLATED" not in str(ft2.sources["allreduce"])
    np.testing.assert_allclose(ft2.allreduce_s, 2 * (8e-6 + 16384 / 200e9), rtol=1e-3)
    ft1 = lat.forward(spec, 1, 1, 512, 1, "graph")
    assert float(np.max(ft1.allreduce_s)) == 0.0
    # layer and head untouched
    np.testing.assert_allclose(ft4.layer_s, base.forward(spec, b, n, 512, 4, "graph").layer_s)
    assert lat.overhead_s(spec, 1, 3, "graph")[0] == base.overhead_s(spec, 1, 3, "graph")[0]


def test_no_curve_for_gpu_leaves_provider_unchanged(tmp_path):
    base = AnalyticalLatency(resolve_gpu("a10g"))
    assert with_tp_data(base, resolve_gpu("a10g"), tmp_path) is base


def test_nearest_measured_tp_is_used_and_named(tmp_path):
    from specperf.perfmodel.latency.tp_provider import curve_model

    _curve_file(tmp_path, tp=2)
    _curve_file(tmp_path, tp=4, lat=15e-6)
    d = str(tmp_path)
    assert curve_model("h100-sxm", 4, "graph", d).curve.tp == 4
    assert "EXTRAPOLATED" not in curve_model("h100-sxm", 4, "graph", d).describe(4)
    m8 = curve_model("h100-sxm", 8, "graph", d)
    assert m8.curve.tp == 4 and "TP=8 EXTRAPOLATED from measured TP=4" in m8.describe(8)
    assert m8.factors(8) == pytest.approx((1.5, 1.75 / 1.5))
    assert curve_model("h100-sxm", 2, "graph", d).curve.tp == 2
