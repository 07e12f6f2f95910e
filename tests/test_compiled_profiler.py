"""Compiled mode in the profiler and the loop: the engines' residual layout chains to the plain
forward, the compiled layer function and the compiled (piecewise and whole) model match the plain
ones (CPU, tiny shape), a CPU sweep records compiled points as skipped with the reason, the loop
refuses compiled mode without CUDA; on a GPU compiled rows are measured (torch.compile + CUDA-graph
capture) and the compiled speculative-decoding loop emits exactly the eager loop's tokens."""
import math

import pytest
import torch

from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.profiler import compiled, measure, opaque_ops, sweep
from specperf.perfmodel.specs.models import SpecError
from specperf.profiler.blocks import DecoderLayer, DecoderModel, _aligned, causal_mask
from specperf.profiler.specloop import SpecLoop

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
            h, r = compiled.layer_fn(layer)(x, torch.zeros_like(x), pos, 17, mask)
            want = layer(x, pos, 17, mask)
            assert torch.allclose(h + r, want, rtol=1e-4, atol=1e-4)
            assert not torch.allclose(h, want, rtol=1e-2, atol=1e-2)  # the MLP output is handed on unadded
    assert counters["stats"]["unique_graphs"] - before == 1  # two distinct layers, one compiled graph
    assert compiled.compile_mode() == "default"


def test_residual_layout_chains_to_the_plain_forward():
    spec = resolve_model(TINY, 4)
    model = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp32", seed=1)
    toks, pos = torch.randint(0, 256, (2, 3)), torch.full((2,), 9)
    with torch.inference_mode():
        want = model(toks, pos, 12)
        L = _aligned(12, 64)
        mask = causal_mask(pos, 3, L)
        h = model.head.embed(toks, pos)
        r = torch.zeros_like(h)
        for layer in model.layers:
            h, r = layer.forward_residual(h, r, pos, L, mask)
        got = model.head.logits(r + h)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("whole", [False, True])
def test_compiled_model_matches_plain_model(tmp_path, monkeypatch, whole):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    spec = resolve_model(TINY, 4)
    model = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp32", seed=2)
    toks, pos = torch.randint(0, 256, (2, 2)), torch.full((2,), 20)
    with torch.inference_mode():
        want = model(toks, pos, 22)
        got = compiled.model_fn(model, whole=whole)(toks, pos, 22)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)


def test_opaque_attention_keeps_sdpa_out_of_inductor(tmp_path, monkeypatch):
    """SPECPERF_COMPILE_ATTENTION=opaque: same numbers, and the compiled graph calls the opaque SDPA op
    (vLLM's split at attention); plain eager forwards never go through it."""
    from torch._dynamo.testing import CompileCounterWithBackend

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv("SPECPERF_COMPILE_ATTENTION", "opaque")
    spec = resolve_model(TINY, 2)
    model = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp32", seed=3)
    toks, pos = torch.randint(0, 256, (2, 2)), torch.full((2,), 20)
    with torch.inference_mode():
        want = model(toks, pos, 22)
        got = compiled.model_fn(model)(toks, pos, 22)
        graphs = CompileCounterWithBackend("eager")
        torch.compile(lambda t, p: model(t, p, 22), backend=graphs, fullgraph=True)(toks, pos)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert compiled.attention_mode() == "opaque"
    ops = {str(n.target) for g in graphs.graphs for n in g.graph.nodes if n.op == "call_function"}
    assert any("specperf.sdpa" in o for o in ops), ops  # attention is one opaque call in the graph
    assert not any("scaled_dot_product_attention" in o for o in ops)
    monkeypatch.setenv("SPECPERF_COMPILE_ATTENTION", "fused")
    with pytest.raises(ValueError, match="SPECPERF_COMPILE_ATTENTION='fused'"):
        compiled.attention_mode()


@pytest.mark.parametrize("flavour", ["compiled", "opaque-kv"])
def test_opaque_kv_write_leaves_no_whole_cache_copy(tmp_path, monkeypatch, flavour):
    """Inlined, the in-place KV write is functionalised into copies of the whole cache (inductor's CPU
    code loops over all of it); as the opaque in-place op it is not, and the cache and output agree."""
    import re

    from torch._inductor.utils import run_and_get_code

    from specperf.perfmodel.specs.models import ModelSpec

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv("SPECPERF_COMPILE_ATTENTION", flavour)
    spec = ModelSpec(name="t", family="llama", n_layers=1, d_model=128, n_heads=2, n_kv_heads=2, d_ff=256, vocab=64)
    a = DecoderModel(spec, max_batch=2, max_context=2048, dtype="fp32", seed=4).layers[0]
    b = DecoderModel(spec, max_batch=2, max_context=2048, dtype="fp32", seed=4).layers[0]
    x, pos = torch.randn(2, 1, 128), torch.full((2,), 100)
    L = _aligned(101, 2048)
    mask = causal_mask(pos, 1, L)
    with torch.inference_mode():
        want = a.forward_residual(x, torch.zeros_like(x), pos, L, mask)
        fn = compiled._compiled(compiled._layer_call)
        got, code = run_and_get_code(fn, b, x, torch.zeros_like(x), pos, L, mask)
    whole = 2 * 2 * 2048 * 64  # batch × KV heads × cache length × head dim
    loops = len(re.findall(rf"<static_cast<int64_t>\({whole}L\)", "\n".join(code)))
    assert (loops == 0) == (flavour == "opaque-kv"), (loops, len(code), compiled.attention_mode(), opaque_ops.OPAQUE_KV_WRITE)
    assert all(torch.allclose(g, w, rtol=1e-4, atol=1e-4) for g, w in zip(got, want))
    assert torch.allclose(a.cache_k, b.cache_k, atol=1e-5) and torch.allclose(a.cache_v, b.cache_v, atol=1e-5)


def test_loop_refuses_compiled_without_cuda():
    spec = resolve_model(TINY, 4)
    m = DecoderModel(spec, max_batch=1, max_context=64, dtype="fp32")
    with pytest.raises(SpecError, match="compiled needs a CUDA device"):
        SpecLoop(m, m, 1, 2, mode="compiled", device="cpu")
    with pytest.raises(SpecError, match="eager, graph, compiled"):
        SpecLoop(m, m, 1, 2, mode="fused", device="cpu")


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
        h, r = compiled.layer_fn(layer)(x, torch.zeros_like(x), pos, 45, mask)
    assert torch.allclose((h + r).float(), want.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("gamma", [1, 3])
def test_gpu_compiled_loop_emits_the_eager_loops_tokens(gamma):
    """Greedy speculative decoding, fp32: compiled draft and target (captured in CUDA graphs) emit
    exactly what the eager loop emits, and what the target alone decodes."""
    from specperf.profiler.specloop import greedy_reference

    spec = resolve_model(TINY, 4)
    prompt = torch.randint(0, spec.vocab, (4, 17), generator=torch.Generator().manual_seed(4))
    outs = []
    for mode in ("eager", "compiled"):
        t = DecoderModel(spec, max_batch=4, max_context=96, dtype="fp32", device="cuda", seed=0)
        d = DecoderModel(spec, n_layers=1, max_batch=4, max_context=96, dtype="fp32", device="cuda", seed=5)
        loop = SpecLoop(d, t, 4, gamma, mode=mode, device="cuda")
        loop.prepare()
        loop.reset(16, prompt)
        outs.append(loop.run(6, collect_output=True).output)
    assert outs[0] == outs[1]
    ref = greedy_reference(t, prompt, 6 * (gamma + 1))
    assert all(o == r[:len(o)] for o, r in zip(outs[1], ref))
