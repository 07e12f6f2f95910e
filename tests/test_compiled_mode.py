"""Compiled mode in perfmodel and the CLI: measured compiled rows answer where they exist (h200), other
providers answer graph mode and say "compiled not measured" with no band, the operator chain defers,
the uncertainty code runs, and --mode parses compiled/all/both; unsupported commands exit 2."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.common import UsageError
from specperf.cli.main import app
from specperf.cli.options import modes
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.bands import load_bands
from specperf.perfmodel.latency.base import COMPILED_NOT_MEASURED, check_mode
from specperf.perfmodel.latency.fit import fit_profile
from specperf.perfmodel.latency.providers import DATA, build_provider
from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

runner = CliRunner()


def test_mode_option_parses_compiled_all_and_both():
    assert modes("compiled") == ("compiled",)
    assert modes("all") == ("graph", "eager", "compiled")
    assert modes("both") == ("graph", "eager")
    assert modes("compiled,graph") == ("graph", "compiled")
    with pytest.raises(UsageError):
        modes("fused")
    with pytest.raises(UsageError):
        modes("all", both=False)
    assert check_mode("compiled") == "compiled"


def test_h200_compiled_from_shipped_compiled_rows():
    p = build_provider(GPUS["h200"]).target
    spec = resolve_model("tinyllama-1.1b", 2)
    t = LatencyTable.load(DATA / "h200_compiled.csv")
    row = next(r for r in t.ok_rows() if r["mode"] == "compiled" and r["component"] == "layer" and r["batch"] == 1
               and r["new_tokens"] == 1 and r["shape"].startswith("llama:d2048:h32:kv4"))
    ct = p.forward(spec, 1, 1, 512, 1, "compiled")
    assert float(ct.layer_s) == pytest.approx(row["median_s"])
    src = ct.sources["layer"]
    assert src.kinds == ("measured",) and "h200_compiled.csv" in src.describe()
    # the compiled loop's own band (validation_h200_compiled.csv), not graph's or eager's
    assert src.parts[0].band == pytest.approx(load_bands()["measured"]["compiled"]["band"])
    assert src.parts[0].band < 0.05
    g = p.forward(spec, 1, 1, 512, 1, "graph")
    assert float(ct.layer_s) < float(g.layer_s)  # measured: fusion helps a 2048-wide layer at batch 1


def test_compiled_off_grid_is_operator_composed_with_its_measured_band():
    p = build_provider(GPUS["h200"]).target
    spec = resolve_model("llama-7b:d_model=1536,n_heads=12,n_kv_heads=4,d_ff=4096,n_layers=12", 2)
    c, g = p.forward(spec, 1, 1, 512, 1, "compiled"), p.forward(spec, 1, 1, 512, 1, "graph")
    src = c.sources["layer"]
    assert src.kinds == ("operator",)
    assert src.parts[0].band == pytest.approx(load_bands()["operator"]["compiled"]["band"])
    assert float(c.layer_s) < float(g.layer_s)  # fusion: fewer kernels than the graph-mode layer


def test_compiled_overhead_is_the_graph_overhead_said_so():
    p = build_provider(GPUS["h200"]).target
    spec = resolve_model("llama-7b", 2)
    (vc, pc), (vg, _) = p.overhead_s(spec, 1, 3, "compiled"), p.overhead_s(spec, 1, 3, "graph")
    assert float(vc) == float(vg)
    assert "sampler is not compiled" in pc.describe() and COMPILED_NOT_MEASURED not in pc.describe()


def test_compiled_without_rows_is_graph_with_a_note():
    # an A100: no compiled rows, and the H200's compiled glue is not carried across architectures
    p = build_provider(GPUS["a100-sxm-80gb"]).target
    spec = resolve_model("llama-7b", 2)
    c, g = p.forward(spec, 1, 1, 512, 1, "compiled"), p.forward(spec, 1, 1, 512, 1, "graph")
    assert float(c.total_s) == float(g.total_s)
    for comp in ("layer", "lm_head"):
        assert COMPILED_NOT_MEASURED in c.sources[comp].describe()
        assert all(s.band is None for s in c.sources[comp].parts)
    a = AnalyticalLatency(GPUS["h100-sxm"]).forward(spec, 1, 1, 512, 1, "compiled")
    assert COMPILED_NOT_MEASURED in a.sources["layer"].describe()


def test_h100_compiled_is_composed_from_its_own_engine_table_with_the_reference_band():
    """The H100 has its own engine-kernel operator table with compiled glue (fitted on measured
    compiled layers): compiled layers are composed from it — cheaper than graph mode — and carry the
    operator band of compiled mode, which the independent references widened (error_bands.json)."""
    from specperf.perfmodel.latency.bands import load_bands

    p = build_provider(GPUS["h100-sxm"]).target
    spec = resolve_model("tinyllama-1.1b", 2)
    c, g = p.forward(spec, 1, 1, 512, 1, "compiled"), p.forward(spec, 1, 1, 512, 1, "graph")
    assert 0.5 < float(c.total_s) / float(g.total_s) < 0.95
    src = c.sources["layer"]
    assert src.kinds == ("operator",) and "operators_h100-sxm_fp16.csv" in src.describe()
    bands = load_bands()["operator"]["compiled"]
    assert src.parts[0].band == pytest.approx(bands["band"]) and "independent reference" in bands["evidence"]


def test_fit_learns_compiled_constants_only_from_compiled_rows():
    t = LatencyTable.load(DATA / "h200_compiled.csv")
    hw, rep = fit_profile(t, GPUS["h200"])
    assert hw.kernel_floor_compiled_s is not None and rep["stats"]["compiled"]["n"] > 0
    lat = AnalyticalLatency(hw)
    assert lat.compiled_fitted and "compiled not measured" not in lat.forward(
        resolve_model("llama-7b", 2), 1, 1, 512, 1, "compiled").sources["layer"].describe()
    graph_only = LatencyTable([r for r in t.rows if r["mode"] == "graph"], dict(t.meta))
    assert fit_profile(graph_only, GPUS["h200"])[0].kernel_floor_compiled_s is None


def test_predict_json_compiled_and_uncertainty_run():
    r = runner.invoke(app, ["predict", "--target", "llama-7b", "--draft", "tinyllama-1.1b", "--gpu", "h200",
                            "--alpha", "0.7", "--gamma", "4", "--mode", "all", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert "compiled" in json.dumps(doc)
    compiled = [c for c in doc.get("cells", [doc]) if c["mode"] == "compiled"][0]
    r0 = compiled["rows"][0]
    # measured compiled draft rows and an operator-composed compiled target (band widened by the
    # independent references): a real interval, never exact, no wider than the two bands allow
    b = compiled["uncertainty"]["latency_bands"]
    assert b["target"]["kind"] == "operator" and b["draft"]["kind"] in ("measured", "interpolated")
    assert 1.0 < r0["speedup_hi"] / r0["speedup_lo"] < ((1 + b["target"]["band"]) * (1 + b["draft"]["band"])) ** 2
    assert not any("no validated band" in n for n in compiled["uncertainty"]["notes"]), compiled


@pytest.mark.parametrize("args", [
    ["validate", "--target", "llama-7b:n_layers=2", "--draft", "tinyllama-1.1b:n_layers=2", "--mode", "compiled",
     "--device", "cpu"],
    ["profile", "--operators", "--out", "x.csv", "--mode", "compiled", "--device", "cpu"],
    ["predict", "--target", "llama-7b", "--draft", "tinyllama-1.1b", "--alpha", "0.7", "--mode", "fused"],
])
def test_unsupported_compiled_uses_exit_2(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "mode" in r.output


def test_compiled_profile_default_grid_is_sparser_and_within_budget(tmp_path):
    """Every compiled point compiles (1.77 s measured per point on an H200): alone, --mode compiled
    defaults to new tokens 1,2,3,5,9 (interpolated between), one model's sweep estimated ≤ 3 minutes."""
    r = runner.invoke(app, ["profile", "--models", "llama-7b", "--mode", "compiled", "--estimate", "--json",
                            "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    full = json.loads(runner.invoke(app, ["profile", "--models", "llama-7b", "--mode", "compiled", "--estimate",
                                          "--json", "--new-tokens", "1..9", "--out", str(tmp_path / "p.csv")]).output)
    assert doc["points"] < full["points"] and doc["estimate_h100_s"] <= 180 < full["estimate_h100_s"]
