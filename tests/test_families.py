"""The family registry and the Qwen3 family end to end: catalog and config.json agree, parameter
counts match the published model card, shape keys round-trip, the analytical model prices the extra
kernels and the wider attention, the profiler block builds (CPU) and TP sharding follows the spec."""
from pathlib import Path

import numpy as np
import pytest

from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.table import head_shape_key, layer_shape_key, spec_from_head_shape_key, spec_from_shape_key
from specperf.perfmodel.specs.catalog import MODELS, resolve_model
from specperf.perfmodel.specs.families import FAMILIES, MODEL_TYPES, traits
from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.specs.models import SpecError, from_hf_config

CFG = Path(__file__).parent / "fixtures" / "configs"


def test_every_catalog_family_is_registered_and_model_types_map_back():
    assert {m.family for m in MODELS.values()} <= set(FAMILIES)
    for name, f in FAMILIES.items():
        assert all(MODEL_TYPES[t] == name for t in f.hf_model_types)
    with pytest.raises(SpecError, match="family='gpt2' is not allowed"):
        traits("gpt2")


def test_qwen3_config_json_equals_catalog_entry():
    a = from_hf_config(CFG / "qwen3-0.6b" / "config.json")
    b = resolve_model("qwen3-0.6b")
    for f in ("family", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab", "qk_norm",
              "attn_head_dim", "qkv_bias", "tied_embeddings", "max_positions"):
        assert getattr(a, f) == getattr(b, f), f
    assert a.head_dim == 128 and a.q_dim == 2048 != a.d_model


def test_qwen3_parameter_counts_match_the_model_card():
    # Qwen3-0.6B model card: 0.6B parameters, 0.44B non-embedding; Qwen3-4B: 4.0B, 3.6B non-embedding
    s = resolve_model("qwen3-0.6b")
    assert s.params / 1e9 == pytest.approx(0.6, abs=0.01)
    assert (s.params - s.embedding_params) / 1e9 == pytest.approx(0.44, abs=0.005)
    s4 = resolve_model("qwen3-4b")
    assert s4.params / 1e9 == pytest.approx(4.0, abs=0.05)
    assert (s4.params - s4.embedding_params) / 1e9 == pytest.approx(3.6, abs=0.05)


def test_shape_keys_round_trip_for_every_family():
    for name in ("llama-7b", "qwen2.5-0.5b", "qwen3-0.6b", "opt-350m", "mistral-7b"):
        s = resolve_model(name)
        back = spec_from_shape_key(layer_shape_key(s))
        for f in ("family", "d_model", "n_heads", "n_kv_heads", "d_ff", "gated_mlp", "norm", "qkv_bias",
                  "linear_bias", "qk_norm", "head_dim", "learned_positions"):
            assert getattr(back, f) == getattr(s, f), (name, f)
        assert back.layer_params == s.layer_params
        h = spec_from_head_shape_key(head_shape_key(s))
        assert (h.vocab, h.norm, h.gated_mlp) == (s.vocab, s.norm, s.gated_mlp)
    # existing keys (shipped profiles) are unchanged by the new flags
    assert layer_shape_key(resolve_model("llama-7b")) == "llama:d4096:h32:kv32:ff11008:glu"


def test_layer_matmuls_follow_head_dim_and_tp():
    s = resolve_model("qwen3-0.6b")
    mats = dict((n, (i, o)) for n, i, o in s.layer_matmuls(1))
    assert mats["q"] == (1024, 2048) and mats["k"] == (1024, 1024) and mats["o"] == (2048, 1024)
    mats8 = dict((n, (i, o)) for n, i, o in s.layer_matmuls(8))
    assert mats8["q"] == (1024, 256) and mats8["k"] == (1024, 128) and mats8["down"] == (384, 1024)
    weights = sum(i * o for _, i, o in s.layer_matmuls(1))
    assert weights + 2 * s.head_dim + 2 * s.d_model == s.layer_params  # matrices + q/k norms + 2 norms
    with pytest.raises(SpecError, match="does not divide"):
        s.layer_matmuls(3)


def test_analytical_prices_qwen3_kernels_and_attention():
    lat = AnalyticalLatency(GPUS["h100-sxm"])
    q3 = resolve_model("qwen3-0.6b")
    plain = q3.replace(family="llama", qk_norm=False)  # same matrices, no q/k norms
    t3 = lat.layer_s(q3, 1, 1, 512, 1, "graph")
    tl = lat.layer_s(plain, 1, 1, 512, 1, "graph")
    floor = lat.hw.kernel_floor_graph_s
    assert float(t3 - tl) == pytest.approx(8 * floor, rel=1e-9)  # 26 vs 18 small kernels at batch 1
    b = np.array([64.0])
    big = lat.layer_s(q3, b, 1, 32768, 1, "graph")  # attention over a long cache reads KV of 8 heads × 128
    assert np.all(big > lat.layer_s(q3, b, 1, 512, 1, "graph"))


def test_profiler_block_builds_qwen3_with_qk_norms():
    torch = pytest.importorskip("torch")
    from specperf.profiler.blocks import DecoderLayer

    spec = resolve_model("qwen3-0.6b:n_layers=1,d_model=64,n_heads=4,n_kv_heads=2,d_ff=96,vocab=101,attn_head_dim=32",
                         dtype_bytes=4)
    layer = DecoderLayer(spec, max_batch=1, max_context=16, dtype="fp32")
    assert tuple(layer.q_norm_w.shape) == (32,) and tuple(layer.w_o.shape) == (64, 128)
    n = sum(p.numel() for p in layer.parameters())
    assert n == spec.layer_params
    out = layer(torch.randn(1, 3, 64), torch.tensor([0]))
    assert out.shape == (1, 3, 64) and torch.isfinite(out).all()
