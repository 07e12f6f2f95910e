"""One interval per row from that row's own sources (issue 26): a (batch, context, γ) cell's interval
does not depend on which other γ, batch or context values were asked with it, and a provider whose
bands are planted per γ gives back exactly those half-widths."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.base import ComponentTimes
from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.latency.source import Provenance, Source
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.cell_bands import Z90
from specperf.perfmodel.specdec.predict import predict
from specperf.perfmodel.specdec.uncertainty import propagate
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu

runner = CliRunner()
CMD = ["predict", "--target", "llama-7b", "--draft", "tinyllama-1.1b", "--gpu", "h100-sxm", "--alpha", "0.7", "--json"]


def _row(gamma_arg: str, g: int = 5) -> dict:
    r = runner.invoke(app, CMD + ["--gamma", gamma_arg])
    assert r.exit_code == 0, r.output
    return next(x for x in json.loads(r.output)["rows"] if x["gamma"] == g)


def test_gamma_row_interval_does_not_depend_on_the_other_gammas():
    """The issue's case: γ = 9–12 answered by the fitted-analytical overhead widened γ = 5's row."""
    alone, auto, full = _row("5"), _row("auto"), _row("1..12")
    for f in ("speedup", "throughput_tok_s", "iteration_s"):
        for e in ("_lo", "_hi"):
            assert alone[f + e] == auto[f + e] == full[f + e], (f + e, alone[f + e], auto[f + e], full[f + e])
    assert full["latency_bands"] == alone["latency_bands"]
    assert _row("1..12", 12)["latency_bands"]["overhead"]["kind"] != alone["latency_bands"]["overhead"]["kind"]


def test_cell_interval_does_not_depend_on_other_batches_or_contexts():
    lat = build_provider(resolve_gpu("h100-sxm")).target
    t, d, acc = resolve_model("llama-65b"), resolve_model("sheared-llama-1.3b"), AcceptanceModel(alpha=0.7, alpha_ci=(0.65, 0.75))
    one = propagate(predict(t, d, lat, acc, range(1, 9), [4], [512], tp=4), acc)
    grid = propagate(predict(t, d, lat, acc, range(1, 13), [1, 4, 64], [128, 512, 8192], tp=4), acc)
    for f in ("speedup_lo", "speedup_hi", "iteration_s_lo", "throughput_tok_s_hi"):
        np.testing.assert_array_equal(getattr(one, f)[0, 0], getattr(grid, f)[1, 1, :8])


class PlantedLatency:
    """Verification answered by a 'measured' source (band 5 %) up to 4 new tokens, a 'fitted' one
    (band 30 %) above; draft, baseline and overhead exact (no source)."""
    name = "planted"
    BANDS = {"measured": 0.05, "fitted": 0.30}

    def forward(self, spec, batch, new_tokens, context, tp=1, mode="graph"):
        shape = np.broadcast(np.asarray(batch), np.asarray(new_tokens), np.asarray(context)).shape
        t = np.asarray(new_tokens) + np.zeros(shape)
        if spec.name != "target" or np.all(t == 1):
            src = {"layer": Provenance.of("none")}
            return ComponentTimes(1e-6 * (spec.name == "target") + np.zeros(shape), np.zeros(shape), np.zeros(shape),
                                  1, src)
        kinds = np.where(t <= 4, "measured", "fitted")
        labels = {k: Source(k, "planted.csv", band=b) for k, b in self.BANDS.items()}
        return ComponentTimes(1e-3 + np.zeros(shape), np.zeros(shape), np.zeros(shape), 1,
                              {"layer": Provenance.from_kinds(kinds, labels)})

    def overhead_s(self, spec, batch, gamma, mode="graph"):
        return 0.0 * np.asarray(gamma, dtype=float), Provenance.of("none")


def test_planted_per_gamma_bands_are_recovered():
    t, d = resolve_model("llama-7b").replace(name="target"), resolve_model("tinyllama-1.1b")
    acc = AcceptanceModel(alpha=0.7)  # exact: the interval is latency's alone
    p = predict(t, d, PlantedLatency(), acc, range(1, 9))
    u, sp = propagate(p, acc, n=40_000, return_samples=True)
    want = np.where(p.gamma + 1 <= 4, 0.05, 0.30)
    it = p.iteration_s[0, 0]
    # iteration = verification alone (draft and overhead exact): 90 % interval it·(1 ± band) in log terms
    hi = np.log(u.iteration_s_hi[0, 0] / it)
    lo = np.log(it / u.iteration_s_lo[0, 0])
    np.testing.assert_allclose(hi, np.log1p(want), rtol=0.03)
    np.testing.assert_allclose(lo, np.log1p(want), rtol=0.03)
    # rows answered by one kind share its draw: their speedups move together; across kinds independent
    c = np.corrcoef(sp[:, 0, 0, :].T)
    assert c[0, 2] > 0.999 and c[4, 7] > 0.999 and abs(c[0, 7]) < 0.05
    assert [u.cell_latency(0, 0, k)["target"]["kind"] for k in range(8)] == ["measured"] * 3 + ["fitted"] * 5


def test_exact_sources_give_a_point():
    """Every source exact and α without an interval: the interval is the point (and says so)."""
    class Exact(PlantedLatency):
        BANDS = {"measured": 0.0, "fitted": 0.0}

    t, d = resolve_model("llama-7b").replace(name="target"), resolve_model("tinyllama-1.1b")
    acc = AcceptanceModel(alpha=0.7)
    p = predict(t, d, Exact(), acc, range(1, 5))
    u = propagate(p, acc, n=200)
    np.testing.assert_allclose(u.speedup_lo, p.speedup, rtol=1e-12)
    np.testing.assert_allclose(u.speedup_hi, p.speedup, rtol=1e-12)
    assert any("taken as exact" in n for n in u.notes)


@pytest.mark.parametrize("seed", [0, 3])
def test_deterministic(seed):
    lat = build_provider(resolve_gpu("h100-sxm")).target
    t, d, acc = resolve_model("llama-7b"), resolve_model("tinyllama-1.1b"), AcceptanceModel(alpha=0.7, alpha_ci=(0.6, 0.8))
    a = propagate(predict(t, d, lat, acc, range(1, 13)), acc, seed=seed)
    b = propagate(predict(t, d, lat, acc, range(1, 13)), acc, seed=seed)
    np.testing.assert_array_equal(a.speedup_lo, b.speedup_lo)
