"""Figures draw predict's 90 % intervals (issue 14 build 4) and mark what is not measured (issue 17):
the gamma figure's error bars and the breakdown's are exactly `predict --json`'s lo/hi for the same
cell; a planted wider latency band draws wider bars and bands; the speedup figure's ridge band is
predict's at γ*(α); columns/cells whose latency is not all measured are marked, measured ones not;
the design figure states P(beats the reference) as the optimiser computes it and keeps labels clear
of markers."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("plotly")

from specperf import plots  # noqa: E402
from specperf.perfmodel.latency.analytical import AnalyticalLatency  # noqa: E402
from specperf.perfmodel.latency.providers import build_provider  # noqa: E402
from specperf.perfmodel.latency.source import Provenance  # noqa: E402
from specperf.perfmodel.specdec.acceptance import AcceptanceModel  # noqa: E402
from specperf.perfmodel.specdec.document import prediction_document  # noqa: E402
from specperf.perfmodel.specdec.predict import predict  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.specs.hardware import resolve_gpu  # noqa: E402
from specperf.plots import breakdown, design, speedup  # noqa: E402
from specperf.plots.common import Setting  # noqa: E402
from specperf.plots.layout import label_positions  # noqa: E402

HW = resolve_gpu("h100-sxm")
LAT = AnalyticalLatency(HW)
TARGET, DRAFT = resolve_model("llama-65b"), resolve_model("sheared-llama-1.3b")
ACC = AcceptanceModel(alpha=0.8, alpha_ci=(0.75, 0.85))


class Planted:
    """LAT with every source's band replaced by `band` (a planted error band)."""

    def __init__(self, band: float):
        self.band, self.name = band, "planted"

    def _p(self, prov):
        if not isinstance(prov, Provenance):
            return prov
        return dataclasses.replace(prov, parts=tuple(dataclasses.replace(s, band=self.band) for s in prov.parts),
                                   members=tuple(self._p(m) for m in prov.members))

    def forward(self, *a, **k):
        ft = LAT.forward(*a, **k)
        return dataclasses.replace(ft, sources={key: self._p(v) for key, v in ft.sources.items()})

    def overhead_s(self, *a, **k):
        ov, src = LAT.overhead_s(*a, **k)
        return ov, self._p(src)


def setting(**kw):
    base = dict(target=TARGET, draft=DRAFT, latency=LAT, gpu=HW.name, tp=4, gammas=tuple(range(1, 9)), acceptance=ACC)
    base.update(kw)
    return Setting(**base)


def doc(lat, batch, context, acc=ACC, gammas=range(1, 9), mode="graph"):
    p = predict(TARGET, DRAFT, lat, acc, gammas, [batch], [context], tp=4, mode=mode)
    return prediction_document(p, TARGET, DRAFT, HW.name, 4, acc)


def band_trace(fig, name_start):
    return next(t for t in fig.data if t.meta == "band" and (t.name or "").startswith(name_start))


def test_gamma_error_bars_are_predicts_intervals():
    fig = plots.figure("gamma", setting(mode="both"), batches=(1, 16), contexts=(512, 4096))
    for mode in ("graph", "eager"):
        tr = next(t for t in fig.data if t.name == f"speedup at γ* ({mode})" and list(t.x) == [1, 16])
        for i, b in enumerate((1, 16)):
            d = doc(LAT, b, 512, mode=mode)
            assert tuple(tr.customdata[i]) == pytest.approx((d["speedup_lo"], d["speedup_hi"]), rel=1e-12)
            assert tr.error_y.array[i] == pytest.approx(d["speedup_hi"] - d["speedup"], rel=1e-9)
            assert tr.error_y.arrayminus[i] == pytest.approx(d["speedup"] - d["speedup_lo"], rel=1e-9)


def test_breakdown_bars_are_predicts_intervals_and_widen_with_a_planted_band():
    fig = breakdown.figure(setting())
    d = doc(LAT, 1, 512)
    it = next(t for t in fig.data if t.name == "iteration, 90 % band")
    np.testing.assert_allclose(np.asarray(it.customdata), [[r["iteration_s_lo"] * 1e3, r["iteration_s_hi"] * 1e3]
                                                           for r in d["rows"]], rtol=1e-12)
    sp = next(t for t in fig.data if t.name == "speedup (right axis)")
    np.testing.assert_allclose(np.asarray(sp.customdata), [[r["speedup_lo"], r["speedup_hi"]] for r in d["rows"]], rtol=1e-12)
    widths = []
    for band in (0.02, 0.4):
        f = breakdown.figure(setting(latency=Planted(band)))
        t = next(t for t in f.data if t.name == "iteration, 90 % band")
        widths.append(np.asarray(t.customdata)[:, 1] - np.asarray(t.customdata)[:, 0])
    assert (widths[1] > 5 * widths[0]).all()


def test_speedup_ridge_band_is_predicts_and_a_planted_band_is_wider():
    alphas = (0.5, 0.7, 0.9)
    st = setting(gammas=tuple(range(1, 13)))
    fig = speedup.figure(st, alphas=alphas)
    lo, hi = band_trace(fig, "ridge 90 % band (lower)"), band_trace(fig, "ridge 90 % band (upper)")
    for i, a in enumerate(alphas):
        d = doc(LAT, 1, 512, acc=AcceptanceModel(alpha=a), gammas=range(1, 13))
        assert lo.customdata[i] == pytest.approx(d["speedup_lo"], rel=1e-12)
        assert hi.customdata[i] == pytest.approx(d["speedup_hi"], rel=1e-12)
    narrow, wide = (speedup.grid(setting(latency=Planted(b), gammas=tuple(range(1, 13))), alphas=alphas)
                    for b in (0.02, 0.4))
    assert ((wide["hi"] - wide["lo"]) > 5 * (narrow["hi"] - narrow["lo"])).all()
    m = speedup.figure(st, style_="map", alphas=alphas)
    assert {t.name for t in m.data if t.meta == "band"} == {"speedup = 1 at the 90 % lower bound",
                                                            "speedup = 1 at the 90 % upper bound"}


def test_speedup_marks_the_gamma_columns_that_are_not_measured():
    an = speedup.figure(setting(gammas=tuple(range(1, 13))), style_="map", alphas=(0.5, 0.8))
    # the roofline: nothing is measured; a veil over everything would hide the map, the footnote says it
    assert not any(t.meta == "estimated" for t in an.data)
    assert any("no γ column is all measured" in (a.text or "") for a in an.layout.annotations)
    st = setting(latency=build_provider(HW).target, gammas=tuple(range(1, 13)))
    est = speedup.estimated(st, np.arange(1, 13), "graph")
    assert est.any() and not est.all()  # the shipped profile measures some γ at batch 1, context 512, not all
    fig = speedup.figure(st, style_="map", alphas=(0.5, 0.8))
    z = np.asarray(next(t for t in fig.data if t.meta == "estimated").z, dtype=float)
    np.testing.assert_array_equal(np.isfinite(z).all(axis=0), est)
    assert np.isnan(z[:, ~est]).all()


def test_design_states_win_probabilities_of_the_optimiser():
    from specperf.perfmodel.optimize.confidence import confidence

    names = ["sheared-llama-1.3b", "tinyllama-1.1b", "llama-7b"]
    specs = [resolve_model(n) for n in names]
    stated = [(s, a, (a - 0.05, a + 0.05), "test") for s, a in zip(specs, (0.70, 0.68, 0.78))]
    st = setting(gammas=tuple(range(1, 13)), acceptance=None)
    fig = design.figure(st, drafts=specs, stated=stated, reference="sheared-llama-1.3b")
    res, mode = design.run(st, drafts=specs, stated=stated)
    conf, _ = confidence(res, mode, 0, 0, [0, 1, 2], 0)
    tr = next(t for t in fig.data if t.meta == "drafts")
    w = design.points(res, mode)["winner"]
    for i in range(3):
        want = conf[i]["p_best_shown"] if i == 0 else conf[i]["p_beats_reference"]
        assert tr.customdata[i] == pytest.approx(want)
        hov = tr.hovertext[i]
        assert (f"P(beats sheared-llama-1.3b) = {want:.0%}" in hov) if i else ("P(best of the drafts shown)" in hov)
        if i not in (0, w):
            assert tr.text[i].endswith(f"{want:.0%}")
    # the roofline answers every draft: all hollow and marked ~
    assert all(sym == "circle-open" for sym in tr.marker.symbol)
    assert all(t.startswith("~") for t in tr.text if t)


def test_labels_keep_clear_of_markers_and_error_bars():
    x, y = [1.0, 5.0], [0.5, 0.5]
    free = label_positions(x, y, ["aaaa", "bbbb"], (0, 10), (0, 1))
    assert free == ["top center", "top center"]
    # a marker just above the first point and an error bar through the second: both labels move
    moved = label_positions(x, y, ["aaaa", "bbbb"], (0, 10), (0, 1), markers=[(1.0, 0.55, 10.0), (5.0, 0.2, 0.8, 3.0)])
    assert moved[0] != "top center" and "center" not in moved[1]


def test_plot_design_reference_flag(tmp_path):
    from typer.testing import CliRunner

    from specperf.cli.main import app

    r = CliRunner().invoke(app, ["plot", "design", "--reference", "sheared-llama-1.3b", "--analytical",
                                 "--out", str(tmp_path / "d.html")])
    assert r.exit_code == 0, r.output
    assert "P(beats sheared-llama-1.3b)" in (tmp_path / "d.html").read_text()
    bad = CliRunner().invoke(app, ["plot", "gamma", "--reference", "x", "--out", str(tmp_path / "g.html")])
    assert bad.exit_code == 2 and "--reference applies to the design figure only" in bad.output
