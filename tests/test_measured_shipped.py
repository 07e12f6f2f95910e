"""The shipped H100 profile: loads with the csv module, serves catalog models as measured, shows the
study's central fact, and its composition check meets the issue's thresholds in graph mode."""
import csv

import numpy as np
import pytest

from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.latency.chain import SUPERSEDED_NOTE, OperatorChain
from specperf.perfmodel.latency.measured import MeasuredLatency
from specperf.perfmodel.latency.providers import DATA, latency_provider, shipped_profile
from specperf.perfmodel.shipped import EVIDENCE_DIR

pytestmark = pytest.mark.skipif(shipped_profile("h100-sxm") is None, reason="no shipped H100 profile")


def test_shipped_profile_serves_the_study_models_as_measured():
    lat = latency_provider(GPUS["h100-sxm"])
    chain = lat
    while not isinstance(chain, OperatorChain):  # compiled split, TP data, then the chain
        chain = chain.base
    assert isinstance(chain.base, MeasuredLatency)  # measured rows first
    for name in ("llama-65b", "opt-66b", "llama-7b", "llama-13b", "llama-33b", "opt-125m",
                 "opt-350m", "opt-1.3b", "opt-2.7b", "sheared-llama-1.3b", "sheared-llama-2.7b",
                 "llama-7b:n_layers=4"):
        for mode in ("graph", "eager"):
            ct = lat.forward(resolve_model(name), 4, 1, 512, 1, mode)
            assert str(ct.sources["layer"]).startswith("measured"), (name, mode, ct.sources)
            assert str(ct.sources["lm_head"]).startswith("measured")
    for name in ("llama-2-70b", "tinyllama-1.1b"):  # grouped-query: plain-kernel rows yield, said so
        for mode in ("graph", "eager"):
            ct = lat.forward(resolve_model(name), 4, 1, 512, 1, mode)
            assert ct.sources["layer"].coarse == "operator" and SUPERSEDED_NOTE in ct.sources["layer"].notes
            assert str(ct.sources["lm_head"]).startswith("measured")
    for name in ("llama-65b", "opt-66b"):
        for tp in (2, 4, 8):
            assert lat.forward(resolve_model(name), 16, 5, 512, tp, "graph").sources["layer"].coarse == "measured"
    ov, src = lat.overhead_s(resolve_model("llama-65b"), 1, np.arange(9), "graph")
    assert str(src).startswith("measured") and np.all(ov > 0)
    m = chain.base
    assert "fitted" in m._meta() and m.fallback.hw.bandwidth_efficiency != GPUS["h100-sxm"].bandwidth_efficiency


def test_off_grid_h100_layers_are_the_h100_engine_operator_table_with_the_operator_band():
    """A shape the H100 profile lacks: operator-composed from the H100's own engine-kernel table, with
    the operator band of its mode (the wider of the unseen-shape checks and the independent references)."""
    from specperf.perfmodel.latency.bands import load_bands

    lat = latency_provider(GPUS["h100-sxm"])
    spec = resolve_model("llama-7b:d_model=1536,n_heads=12,n_kv_heads=4,d_ff=4096,n_layers=12")
    for mode in ("graph", "eager"):
        src = lat.forward(spec, 1, 1, 512, 1, mode).sources["layer"]
        assert src.kinds == ("operator",) and "operators_h100-sxm_fp16.csv" in src.describe()
        assert src.parts[0].band == pytest.approx(load_bands()["operator"][mode]["band"])


def test_central_fact_in_shipped_data():
    lat = latency_provider(GPUS["h100-sxm"])
    shallow, deep = resolve_model("llama-7b:n_layers=4"), resolve_model("sheared-llama-1.3b")
    ratio = {m: float(lat.forward(deep, 1, 1, 512, 1, m).total_s / lat.forward(shallow, 1, 1, 512, 1, m).total_s)
             for m in ("graph", "eager")}
    assert ratio["graph"] > 2 and ratio["eager"] > ratio["graph"]


def test_composition_check_meets_thresholds_in_graph_mode():
    rows = list(csv.DictReader((EVIDENCE_DIR / "composition_h100.csv").open()))
    err = np.abs([float(r["rel_err"]) for r in rows if r["mode"] == "graph"])
    assert len(err) >= 30 and np.median(err) <= 0.03 and np.percentile(err, 90) <= 0.06
    assert {r["model"] for r in rows} == {"llama-7b", "llama-13b", "llama-33b"}


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200"])
def test_leaving_a_measured_grid_does_not_jump(gpu):
    """Verify widths beyond the profiled 9 new tokens come from the operator model scaled to the
    nearest measured point: no step down at the grid's edge (which would fake a γ optimum there)."""
    lat = latency_provider(GPUS[gpu])
    spec = resolve_model("llama-65b")
    for mode in ("graph", "eager"):
        t = [float(lat.forward(spec, 1, n, 512, 4, mode).layer_s) for n in (9, 10, 12)]
        assert t[1] == pytest.approx(t[0], rel=0.02) and t[2] >= t[1] * 0.999, (mode, t)
        src = lat.forward(spec, 1, 10, 512, 4, mode).sources["layer"]
        assert "scaled to the nearest measured point" in src.describe()
