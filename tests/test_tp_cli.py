"""`specperf profile --tp 2 --ranks 2` on two gloo CPU processes writes TP rows (layer without
all-reduces, allreduce, lm_head), the layer-with-all-reduces table and the curve; the measured
provider reads them back."""
import json

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from specperf.cli.main import app  # noqa: E402

TINY = "llama-2-70b:n_layers=2,d_model=64,n_heads=8,n_kv_heads=2,d_ff=96,vocab=101"


def test_profile_tp2_over_two_processes(tmp_path):
    out = tmp_path / "tp.csv"
    r = CliRunner().invoke(app, ["profile", "--models", TINY, "--tp", "2", "--ranks", "2", "--device", "cpu",
                                 "--dtype", "fp32", "--batch", "1,2", "--context", "8", "--new-tokens", "1,2",
                                 "--mode", "eager", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    assert doc["tp"] == 2 and doc["ranks"] == 2
    from specperf.perfmodel.latency.table import LatencyTable
    from specperf.perfmodel.latency.tp import load_curves

    t = LatencyTable.load(out)
    comps = {(row["component"], row["tp"]) for row in t.ok_rows()}
    assert comps == {("layer", 2), ("allreduce", 2), ("lm_head", 2)}
    assert len(t.select(component="layer")) == 4 and len(t.select(component="allreduce")) == 4
    assert t.meta["ranks"] == 2 and t.meta["backend"] == "gloo"
    assert t.meta["nvls_env"] if "nvls_env" in t.meta else True
    w = LatencyTable.load(tmp_path / "tp_with_allreduce.csv")
    assert len(w.select(component="layer", tp=2)) == 4
    curves = load_curves(tmp_path / "allreduce_cpu_tp2.csv")
    assert curves and curves[0].tp == 2 and curves[0].size_bytes.max() <= 2**20
    # the measured provider reads the TP rows back: measured layer + all-reduce at tp 2
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import GPUS
    from specperf.perfmodel.latency.measured import MeasuredLatency

    spec = resolve_model(TINY, 4)
    ft = MeasuredLatency(out, GPUS["h100-sxm"]).forward(spec, 2, 2, 8, 2, "eager")
    assert str(ft.sources["layer"]).startswith("measured") and str(ft.sources["allreduce"]).startswith("measured")
    row = t.select(component="allreduce", batch=2, new_tokens=2)[0]
    assert float(ft.allreduce_s) == pytest.approx(row["median_s"])


def test_ranks_must_match_tp():
    r = CliRunner().invoke(app, ["profile", "--models", TINY, "--tp", "2", "--ranks", "3", "--device", "cpu",
                                 "--out", "/tmp/x.csv"])
    assert r.exit_code == 2 and "ranks=3" in r.output


@pytest.mark.slow
def test_tp4_profile_script_on_four_gloo_processes(tmp_path):
    """Any TP degree: 4 ranks, 2 KV heads (replicated across rank pairs), layer/allreduce/head rows,
    curve and whole-model validation."""
    from specperf.profiler import tp_profile

    tp_profile.main(["--tp", "4", "--device", "cpu", "--dtype", "fp32", "--out-dir", str(tmp_path), "--models", TINY,
                     "--validate", TINY, "--batch", "1,2", "--new-tokens", "1,2", "--context", "8",
                     "--validate-batch", "1", "--validate-new-tokens", "2", "--validate-context", "8",
                     "--curve-hi-mib", "1", "--repeats", "3", "--gpu-tag", "cpu"])
    from specperf.perfmodel.latency.table import LatencyTable
    from specperf.perfmodel.latency.tp import load_curves

    t = LatencyTable.load(tmp_path / "cpu_tp4.csv")
    assert {(r["component"], r["tp"]) for r in t.ok_rows()} == {("layer", 4), ("allreduce", 4), ("lm_head", 4)}
    assert [c.tp for c in load_curves(tmp_path / "allreduce_cpu_tp4.csv")] == [4]
    assert "measured_s" in (tmp_path / "cpu_tp4_validation.csv").read_text().splitlines()[0]
