"""profiler.blocks on CPU, fp32, tiny shapes: cached incremental decode equals full recompute,
per-sequence positions in one batch equal separate runs, llama (MHA, GQA, qkv-bias) and OPT."""
import pytest

torch = pytest.importorskip("torch")

from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.specs.models import SpecError  # noqa: E402
from specperf.profiler.blocks import DecoderLayer, DecoderModel, Head, cache_bytes, shard_sizes, stack_bytes  # noqa: E402

TINY = {
    "llama": "llama-7b:n_layers=2,d_model=64,n_heads=4,d_ff=96,vocab=101",
    "gqa": "llama-2-70b:n_layers=2,d_model=64,n_heads=8,n_kv_heads=2,d_ff=96,vocab=101",
    "qwen": "qwen2.5-0.5b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=2,d_ff=96,vocab=101",
    "opt": "opt-125m:n_layers=2,d_model=64,n_heads=4,d_ff=128,vocab=101",
    "opt350": "opt-350m:n_layers=2,d_model=64,n_heads=4,d_ff=128,vocab=101,embed_dim=32",
    # Qwen3: q/k norms and head_dim 32 with 4 heads at width 64 (q is 128 wide, not d_model)
    "qwen3": "qwen3-0.6b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=2,d_ff=96,vocab=101,attn_head_dim=32",
}
CTX = 32


def _model(key, batch=2, seed=0):
    spec = resolve_model(TINY[key], dtype_bytes=4)
    return spec, DecoderModel(spec, max_batch=batch, max_context=CTX, dtype="fp32", seed=seed)


@pytest.mark.parametrize("key", list(TINY))
def test_incremental_decode_equals_full_recompute(key):
    torch.manual_seed(0)
    spec, m = _model(key, batch=1)
    toks = torch.randint(0, spec.vocab, (1, 12))
    full = m(toks, torch.tensor([0]))
    _, m2 = _model(key, batch=1)
    out = [m2(toks[:, :5], torch.tensor([0]))]
    for i in range(5, 12, 2):  # chunks of 2 (a verify step) then singles
        out.append(m2(toks[:, i:i + 2], torch.tensor([i])))
    inc = torch.cat(out, dim=1)
    assert inc.shape == full.shape == (1, 12, spec.vocab)
    torch.testing.assert_close(inc, full, rtol=1e-4, atol=1e-4)


def test_rollback_by_smaller_pos_overwrites_stale_entries():
    spec, m = _model("gqa", batch=1)
    toks = torch.randint(0, spec.vocab, (1, 10))
    wrong = torch.randint(0, spec.vocab, (1, 4))
    m(toks[:, :6], torch.tensor([0]))
    m(wrong, torch.tensor([6]))  # speculative tokens, then rejected: roll back to pos 6
    got = m(toks[:, 6:10], torch.tensor([6]))
    _, ref = _model("gqa", batch=1)
    want = ref(toks, torch.tensor([0]))[:, 6:10]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("key", ["llama", "gqa", "opt"])
def test_different_positions_in_one_batch_equal_separate_runs(key):
    spec, m = _model(key, batch=2)
    a = torch.randint(0, spec.vocab, (1, 9))
    b = torch.randint(0, spec.vocab, (1, 6))
    # prefill sequence 0 with 7 tokens and sequence 1 with 4 (padding row 1 with junk beyond 4)
    pre = torch.cat([a[:, :7], torch.cat([b[:, :4], b[:, :3]], dim=1)], dim=0)
    m(pre, torch.tensor([0, 0]))
    step = torch.cat([a[:, 7:9], b[:, 4:6]], dim=0)
    got = m(step, torch.tensor([7, 4]), kv_len=16)
    _, ra = _model(key, batch=1)
    _, rb = _model(key, batch=1)
    wa = ra(a[:, :9], torch.tensor([0]))[:, 7:9]
    wb = rb(b[:, :6], torch.tensor([0]))[:, 4:6]
    torch.testing.assert_close(got[0:1], wa, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[1:2], wb, rtol=1e-4, atol=1e-4)


def test_layer_writes_cache_at_positions_only():
    spec = resolve_model(TINY["llama"], dtype_bytes=4)
    layer = DecoderLayer(spec, max_batch=2, max_context=CTX, dtype="fp32")
    before = layer.cache_k.clone()
    x = torch.randn(2, 3, spec.d_model)
    y = layer(x, torch.tensor([5, 10]))
    assert y.shape == x.shape
    changed = (layer.cache_k != before).any(dim=(1, 3))  # [b, ctx]
    assert changed[0].nonzero().flatten().tolist() == [5, 6, 7]
    assert changed[1].nonzero().flatten().tolist() == [10, 11, 12]


def test_block_construction_shapes_and_sharding():
    spec = resolve_model("llama-2-70b")
    assert shard_sizes(spec, 1) == (64, 8, 28672)
    assert shard_sizes(spec, 8) == (8, 1, 3584)
    assert shard_sizes(spec.replace(n_kv_heads=4, name="x"), 8) == (8, 1, 3584)  # replicated KV
    with pytest.raises(SpecError):
        shard_sizes(spec, 3)
    # weight bytes of the built layer equal the spec's layer weights (norms/biases excluded)
    s7 = resolve_model("llama-7b")
    assert abs(stack_bytes(s7) - s7.layer_weight_bytes) / s7.layer_weight_bytes < 1e-3
    assert cache_bytes(s7, 1, 1) == s7.kv_bytes_per_token_per_layer
    tiny = resolve_model(TINY["gqa"], dtype_bytes=4)
    layer = DecoderLayer(tiny, max_batch=3, max_context=CTX, dtype="fp32", tp=2)
    assert tuple(layer.cache_k.shape) == (3, 1, CTX, tiny.head_dim)
    assert tuple(layer.w_qkv.shape) == ((4 + 2) * tiny.head_dim, 64)
    assert tuple(layer.w_up.shape) == (96, 64)
    n_params = sum(p.numel() for p in layer.parameters())
    assert n_params > 0
    head = Head(tiny, max_context=CTX, dtype="fp32", tp=2)
    assert head(torch.zeros(1, 2, dtype=torch.long), torch.tensor([0])).shape == (1, 2, 51)


def test_opt_context_beyond_positions_is_rejected():
    spec = resolve_model("opt-125m:n_layers=1,d_model=64,n_heads=4,d_ff=128,vocab=101")
    with pytest.raises(SpecError, match="max_positions"):
        Head(spec, max_context=4096, dtype="fp32")


def test_forward_is_deterministic_and_bf16_runs():
    spec = resolve_model(TINY["llama"])
    m = DecoderModel(spec, max_batch=1, max_context=CTX, dtype="bf16")
    out = m(torch.randint(0, spec.vocab, (1, 3)), torch.tensor([0]))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("key", ["tinyllama-1.1b:n_layers=2,d_model=256,n_heads=8,n_kv_heads=2,d_ff=512",
                                 "opt-125m:n_layers=2,d_model=128,n_heads=4,d_ff=256"])
def test_per_forward_step_equals_each_layer_building_its_own(key):
    """Two implementations: DecoderModel builds positions and RoPE rows once (the head's Step); the
    same layers called without a step build their own — the logits and caches must agree."""
    from specperf.profiler.blocks import causal_mask, make_step

    spec = resolve_model(key)
    torch.manual_seed(0)
    a = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp32", seed=3)
    b = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp32", seed=3)
    toks = torch.randint(0, spec.vocab, (2, 5))
    pos = torch.tensor([3, 11])
    want = a(toks, pos, 32)
    x = b.head.embed(toks, pos)
    for layer in b.layers:
        x = layer(x, pos, 32, causal_mask(pos, 5, 32))  # no step: each layer builds its own
    got = b.head.logits(x)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    for la, lb in zip(a.layers, b.layers):
        assert torch.equal(la.cache_k, lb.cache_k) and torch.equal(la.cache_v, lb.cache_v)
    step, own = a.head.step(pos, 5), a.layers[0].step(pos, 5)
    assert torch.equal(step.positions, pos[:, None] + torch.arange(5))
    if spec.learned_positions:
        assert step.cos is None and own.cos is None
    else:
        assert torch.equal(step.cos, own.cos) and torch.equal(step.sin, own.sin)
        assert torch.equal(make_step(pos, 5, a.layers[0].rope_cos, a.layers[0].rope_sin).cos, step.cos)
