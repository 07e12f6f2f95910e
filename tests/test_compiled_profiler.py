"""Compiled mode in the profiler: the compiled layer function matches the plain layer (CPU, tiny
shape), a CPU sweep records compiled points as skipped with the reason, and on a GPU compiled rows
are measured (torch.compile + CUDA-graph capture) and are not slower than graph rows by much."""
import math

import pytest
import torch

from perfmodel.latency.table import LatencyTable
from perfmodel.specs.catalog import resolve_model
from profiler import compiled, measure, sweep
from profiler.blocks import DecoderLayer, _aligned, causal_mask

TINY = "llama-7b:d_model=64,n_heads=4,n_kv_heads=2,d_ff=128,n_layers=2,vocab=256"


def test_compiled_layer_matches_plain_layer_and_shares_one_graph(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    spec = resolve_model(TINY, 4)
    layers = [DecoderLayer(spec, 2, 64, "fp32", "cpu", seed=i) for i in range(2)]
    pos = torch.full((2,), 16)
    x = torch.randn(2, 1, 64)
    mask = causal_mask(pos, 1, _aligned(17, 64))
    from torch._dynamo.utils import counters

    before = counters["stats"]["unique_graphs"]
    with torch.inference_mode():
        for layer in layers:
            got = compiled.layer_fn(layer)(x, pos, 17, mask)
            want = layer(x, pos, 17, mask)
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert counters["stats"]["unique_graphs"] - before == 1  # two distinct layers, one compiled graph
    assert compiled.compile_mode() == "default"


def test_compile_mode_env_is_checked(monkeypatch):
    monkeypatch.setenv("SPECPERF_COMPILE_MODE", "reduce-overhead")
    with pytest.raises(ValueError, match="SPECPERF_COMPILE_MODE"):
        compiled.compile_mode()


def test_cpu_sweep_skips_compiled_with_reason(tmp_path):
    spec = resolve_model(TINY, 4)
    jobs = sweep.plan([(spec, sweep.Grid((1,), (16,), (1,), ("eager", "compiled")))])
    assert [j.component for j in jobs] == ["layer", "lm_head"]  # layers first
    t = LatencyTable(meta={"gpu": "cpu", "schema_version": 1})
    sweep.run(jobs, t, tmp_path / "t.csv", "cpu", "fp32", verbose=False)
    rows = {(r["component"], r["mode"]): r for r in t.rows}
    assert rows[("layer", "eager")]["status"] == "ok"
    assert rows[("layer", "compiled")]["status"] == "skipped"
    assert "compiled mode needs a CUDA device" in rows[("layer", "compiled")]["reason"]


@pytest.mark.gpu
def test_gpu_compiled_layer_rows_measured():
    spec = resolve_model("llama-7b:d_model=1024,n_heads=8,n_kv_heads=8,d_ff=2816,n_layers=2", 2)
    got = dict(measure.layer_points(spec, 1, 1, 512, [1], ("graph", "compiled"), "fp16", "cuda", copies=4))
    g, c = got[(1, "graph")], got[(1, "compiled")]
    assert math.isfinite(c.median_s) and 0 < c.median_s < 1e-3
    assert c.median_s < 1.5 * g.median_s  # fusion does not make a layer much slower
    assert compiled.COMPILE_LOG and compiled.COMPILE_LOG[-1]["seconds"] > 0


@pytest.mark.gpu
def test_gpu_compiled_matches_graph_numerics():
    spec = resolve_model("llama-7b:d_model=512,n_heads=8,n_kv_heads=8,d_ff=1408,n_layers=2", 2)
    layer = DecoderLayer(spec, 2, 128, "fp16", "cuda", seed=3)
    pos = torch.full((2,), 40, device="cuda")
    x = torch.randn(2, 5, 512, device="cuda", dtype=torch.float16)
    mask = causal_mask(pos, 5, _aligned(45, 128))
    with torch.inference_mode():
        want = layer(x, pos, 45, mask)
        got = compiled.layer_fn(layer)(x, pos, 45, mask)
    assert torch.allclose(got.float(), want.float(), rtol=2e-2, atol=2e-2)
