"""Tensor-parallel sharding maths on CPU with gloo: a TP layer (heads and MLP columns split,
row-parallel outputs all-reduced) and the vocabulary-parallel head equal the unsharded ones (fp32)."""
import pytest

torch = pytest.importorskip("torch")

from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.specs.models import SpecError  # noqa: E402
from specperf.profiler.tp import NVLS_OFF_ENV, check_sharding, shard_layer_state, shard_plan  # noqa: E402

TINY = {
    "llama": "llama-7b:n_layers=2,d_model=64,n_heads=4,d_ff=96,vocab=101",
    "gqa": "llama-2-70b:n_layers=2,d_model=64,n_heads=8,n_kv_heads=2,d_ff=96,vocab=101",
    "qwen": "qwen2.5-0.5b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=2,d_ff=96,vocab=101",
    "opt": "opt-125m:n_layers=2,d_model=64,n_heads=4,d_ff=128,vocab=101",
}


def _spec(k):
    return resolve_model(TINY[k], 4)


def test_tp2_layer_and_head_equal_unsharded_all_families():
    errs = check_sharding([_spec(k) for k in TINY], 2)
    assert set(errs) == {_spec(k).name for k in TINY}
    for name, e in errs.items():
        assert len(e) == 4, name  # three layer cases + the head
        assert max(e) < 1e-5, (name, e)


@pytest.mark.slow
def test_tp4_with_replicated_kv_heads_equals_unsharded():
    # 8 query heads, 2 KV heads, tp=4: each KV head is replicated on two ranks
    errs = check_sharding([_spec("gqa")], 4, cases=((2, 3, 5),))
    assert max(next(iter(errs.values()))) < 1e-5


def test_dropping_the_allreduce_breaks_equality():
    """The check can fail: a shard's partial sum alone is far from the unsharded output."""
    spec = _spec("llama")
    plan = shard_plan(spec, 2, 0)
    from specperf.profiler.blocks import DecoderLayer
    from specperf.profiler.tp import load_state

    ref = DecoderLayer(spec, 1, 16, "fp32", "cpu", 1, seed=3)
    full = {k: v.detach().clone() for k, v in ref.named_parameters()}
    half = DecoderLayer(spec, 1, 16, "fp32", "cpu", 2, seed=4)
    load_state(half, shard_layer_state(full, spec, plan))
    x = torch.randn(1, 2, spec.d_model)
    pos = torch.zeros(1, dtype=torch.long)
    a, b = half(x, pos), ref(x, pos)
    assert float((a - b).norm() / b.norm()) > 0.05


def test_shard_plan_slices_cover_everything_once():
    spec = _spec("gqa")
    plans = [shard_plan(spec, 2, r) for r in range(2)]
    assert [p.head0 for p in plans] == [0, 4] and all(p.heads == 4 for p in plans)
    assert [p.kv0 for p in plans] == [0, 1] and all(p.kv_heads == 1 for p in plans)
    assert sum(p.ff for p in plans) == spec.d_ff
    assert sum(p.vocab for p in plans) >= spec.vocab
    rep = [shard_plan(spec, 8, r) for r in range(8)]  # tp 8 > 2 KV heads: 4 ranks share each
    assert [p.kv0 for p in rep] == [0, 0, 0, 0, 1, 1, 1, 1]
    # ranks' query heads map onto the KV head they hold (group = n_heads / n_kv_heads = 4)
    assert all(p.head0 // 4 == p.kv0 for p in rep)


@pytest.mark.parametrize("tp", [3, 5])
def test_shard_plan_rejects_indivisible_tp(tp):
    with pytest.raises(SpecError, match="tp="):
        shard_plan(_spec("gqa"), tp)


def test_big_targets_shard_at_tp_2_4_8():
    for name in ("llama-65b", "llama-2-70b", "opt-66b", "llama-13b"):
        spec = resolve_model(name)
        for tp in (2, 4, 8):
            p = shard_plan(spec, tp, tp - 1)
            assert p.heads * tp == spec.n_heads and p.ff * tp == spec.d_ff


def test_launch_sets_nvls_off(monkeypatch):
    import os

    from specperf.profiler import tp

    for k in NVLS_OFF_ENV:
        monkeypatch.delenv(k, raising=False)
    tp.nvls_off()
    assert {k: os.environ[k] for k in NVLS_OFF_ENV} == NVLS_OFF_ENV
    assert NVLS_OFF_ENV["NCCL_NVLS_ENABLE"] == "0"
