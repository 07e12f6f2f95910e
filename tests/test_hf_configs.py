"""config.json honoured or refused: copies of published configs (tests/fixtures/hf_configs) parse
into the published shapes — head_dim for every family (Mistral-NeMo: 128, not hidden/heads = 160),
torch_dtype's bytes — and what the model would price wrongly (Gemma-2, fp8 checkpoints, MoE, MLP
biases, unknown dtypes) is refused with one line naming the field, through the CLI with exit 2."""
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.table import layer_shape_key
from specperf.perfmodel.specs.catalog import MODELS, resolve_model
from specperf.perfmodel.specs.models import SpecError, from_hf_config

CFG = Path(__file__).parent / "fixtures" / "hf_configs"
runner = CliRunner()


def _by_hand(c: dict, head_dim: int) -> int:
    """Parameters of a dense LLaMA-style decoder from its config fields (a second implementation)."""
    d, H, KV, ff, L, V = (c[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads",
                                         "intermediate_size", "num_hidden_layers", "vocab_size"))
    attn = d * (H + 2 * KV) * head_dim + H * head_dim * d
    bias = (H + 2 * KV) * head_dim if c["model_type"] == "qwen2" else 0
    layer = attn + bias + 3 * d * ff + 2 * d
    return L * layer + V * d * (1 if c.get("tie_word_embeddings") else 2) + d


def _cfg(name: str) -> dict:
    return json.loads((CFG / name / "config.json").read_text())


@pytest.mark.parametrize("name,published_b", [("llama-3.1-8b", 8.03), ("mistral-nemo-12b", 12.25),
                                              ("qwen2.5-7b", 7.61)])
def test_published_parameter_counts(name, published_b):
    """Model cards: Llama-3.1-8B 8.03 B, Mistral-NeMo 12.25 B (issue 26), Qwen2.5-7B 7.61 B."""
    s = from_hf_config(CFG / name)
    assert s.params / 1e9 == pytest.approx(published_b, abs=0.01)
    assert s.params == _by_hand(_cfg(name), s.head_dim)
    assert s.dtype_bytes == 2  # torch_dtype bfloat16


@pytest.mark.parametrize("name", ["llama-3.1-8b", "qwen2.5-7b"])
def test_catalog_models_parse_into_their_catalog_shape(name):
    s, cat = from_hf_config(CFG / name), MODELS[name]
    assert layer_shape_key(s) == layer_shape_key(cat) and s.params == cat.params
    assert (s.n_layers, s.vocab, s.tied_embeddings, s.qkv_bias) == (cat.n_layers, cat.vocab, cat.tied_embeddings,
                                                                     cat.qkv_bias)


def test_mistral_nemo_head_dim_is_honoured(tmp_path):
    s = from_hf_config(CFG / "mistral-nemo-12b")
    assert (s.head_dim, s.q_dim, s.kv_dim) == (128, 4096, 1024)
    assert "+hd128" in layer_shape_key(s)  # never served by a 160-wide-head measured row
    c = _cfg("mistral-nemo-12b")
    del c["head_dim"]  # planted: without the field, hidden/heads = 160 and 12.77 B (the wrong answer)
    (tmp_path / "config.json").write_text(json.dumps(c))
    wrong = from_hf_config(tmp_path)
    assert wrong.head_dim == 160 and wrong.params / 1e9 == pytest.approx(12.77, abs=0.01)


def test_head_dim_equal_to_width_over_heads_keeps_the_catalog_shape_key(tmp_path):
    c = dict(_cfg("llama-3.1-8b"), head_dim=128)  # newer transformers write it out
    (tmp_path / "config.json").write_text(json.dumps(c))
    assert layer_shape_key(from_hf_config(tmp_path)) == layer_shape_key(MODELS["llama-3.1-8b"])


@pytest.mark.parametrize("key,value,nbytes", [("torch_dtype", "float32", 4), ("torch_dtype", "float16", 2),
                                              ("dtype", "bfloat16", 2), ("torch_dtype", "torch.float32", 4)])
def test_torch_dtype_sets_bytes_unless_the_caller_chooses(tmp_path, key, value, nbytes):
    c = _cfg("llama-3.1-8b")
    del c["torch_dtype"]
    c[key] = value
    (tmp_path / "config.json").write_text(json.dumps(c))
    assert from_hf_config(tmp_path).dtype_bytes == nbytes
    assert from_hf_config(tmp_path, dtype_bytes=2).dtype_bytes == 2  # --dtype (the serving dtype) wins
    assert resolve_model(str(tmp_path)).dtype_bytes == 2


def _refused(path, *needles):
    with pytest.raises(SpecError) as e:
        from_hf_config(path)
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    r = runner.invoke(app, ["predict", "--target", str(path), "--draft", "tinyllama-1.1b", "--alpha", "0.7",
                            "--gpu", "h100-sxm"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert all(n in r.output for n in needles[:1]), r.output
    return msg


def test_gemma2_is_refused_with_the_reason():
    _refused(CFG / "gemma-2-9b", "model_type='gemma2'", "sliding-window", "use one of llama")


def test_fp8_checkpoint_is_refused_not_priced_at_16_bit():
    _refused(CFG / "qwen3-8b-fp8", "quantization_config", "'fp8'", "not modelled")


@pytest.mark.parametrize("change,needles", [
    ({"mlp_bias": True}, ("mlp_bias=True", "not modelled")),
    ({"num_local_experts": 8}, ("num_local_experts=8", "mixture-of-experts")),
    ({"torch_dtype": "int4"}, ("torch_dtype='int4'", "float16")),
    ({"head_dim": 0}, ("head_dim=0",)),
    ({"head_dim": 96.5}, ("head_dim=96.5",)),
    ({"quantization_config": {"quant_method": "awq", "bits": 4}}, ("quant_method='awq'",)),
])
def test_bad_or_unmodelled_fields_are_one_line(tmp_path, change, needles):
    shutil.copy(CFG / "llama-3.1-8b" / "config.json", tmp_path / "config.json")
    c = dict(json.loads((tmp_path / "config.json").read_text()), **change)
    (tmp_path / "config.json").write_text(json.dumps(c))
    _refused(tmp_path, *needles)


def test_a_published_config_predicts_through_the_cli():
    r = runner.invoke(app, ["predict", "--target", str(CFG / "mistral-nemo-12b"), "--draft", "tinyllama-1.1b",
                            "--alpha", "0.7", "--gpu", "h100-sxm", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    weights = from_hf_config(CFG / "mistral-nemo-12b").weight_bytes
    assert doc["target"] == "mistral-nemo-12b" and doc["memory_needed_bytes"] > weights  # 128-wide heads priced
