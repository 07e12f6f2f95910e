"""The shipped TP=2 H100 data: the all-reduce curve and its fit, the whole-model composition error
(recomputed through the measured provider, not read from the stored column), and `specperf predict
--tp 4` stating that its all-reduce cost is extrapolated from the measured TP=2 curve."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.latency.tp import AllreduceModel, load_curves
from specperf.perfmodel.shipped import DATA_DIR

from specperf.perfmodel.latency import tp_errors


def test_shipped_curve_covers_4kib_to_256mib_and_fits():
    curves = {c.mode: c for c in load_curves(DATA_DIR / "allreduce_h100-sxm_tp2.csv")}
    assert set(curves) == {"eager", "graph"}
    g = curves["graph"]
    assert g.tp == 2 and g.size_bytes.min() == 4096 and g.size_bytes.max() == 256 * 2**20
    assert np.all(g.p10_s <= g.median_s) and np.all(g.median_s <= g.p90_s)
    m = AllreduceModel.from_curve(g)
    assert m.fit.rel_err_median < 0.05
    # a 256 MiB all-reduce on 2 ranks moves 256 MiB per rank: 150-450 GB/s is NVLink-H100 territory
    assert 150e9 < g.size_bytes[-1] / g.median_s[-1] < 450e9
    assert curves["graph"].median_s[0] < curves["eager"].median_s[0]  # graphs hide the launch cost


def test_tp2_whole_model_composition_error_graph_at_most_5_percent():
    pts = tp_errors.whole_model("h100-sxm", 2)
    graph = np.array([p["rel_err"] for p in pts if p["mode"] == "graph"])
    assert graph.size >= 20
    assert np.median(np.abs(graph)) <= 0.05
    assert all(s.startswith("measured") for p in pts for s in p["sources"])


def test_tp2_profile_rows_cover_the_targets():
    t = LatencyTable.load(DATA_DIR / "h100-sxm_tp2.csv")
    assert {r["model"] for r in t.select(component="layer")} == {"llama-13b", "llama-65b", "llama-2-70b", "opt-66b"}
    for comp in ("layer", "allreduce", "lm_head"):
        rows = t.select(component=comp, tp=2, model="llama-65b")
        assert {r["mode"] for r in rows} == {"eager", "graph"}
    b = {r["batch"] for r in t.select(component="layer")}
    assert min(b) == 1 and max(b) == 64
    assert t.meta["gpu"] == "h100-sxm" and t.meta["ranks"] == 2 and "fitted" in t.meta


@pytest.mark.parametrize("tp,needle", [(4, "TP=4 EXTRAPOLATED from measured TP=2"), (8, "TP=8 EXTRAPOLATED")])
def test_predict_tp4_states_extrapolation_from_measured_tp2(tp, needle):
    r = CliRunner().invoke(app, ["predict", "--target", "llama-65b", "--draft", "llama-7b", "--alpha", "0.8",
                                 "--tp", str(tp), "--gpu", "h100-sxm", "--json"])
    assert r.exit_code == 0, r.output
    src = json.loads(r.output)["sources"]["target_allreduce"]
    assert "NCCL all-reduce curve measured on 2× h100-sxm" in src and needle in src
    assert "×1.50" in src if tp == 4 else "×1.75" in src
    assert "the TP=2 time at these messages" in src


def test_predict_tp2_uses_measured_allreduce_rows_and_human_output_names_the_source():
    r = CliRunner().invoke(app, ["predict", "--target", "llama-65b", "--draft", "llama-7b", "--alpha", "0.8",
                                 "--tp", "2", "--gpu", "h100-sxm", "--json"])
    assert json.loads(r.output)["sources"]["target_allreduce"] == "measured (h100-sxm_tp2.csv)"
    r = CliRunner().invoke(app, ["predict", "--target", "llama-65b", "--draft", "llama-7b", "--alpha", "0.8",
                                 "--tp", "4", "--gpu", "h100-sxm"])
    assert r.exit_code == 0 and "EXTRAPOLATED" in r.output
