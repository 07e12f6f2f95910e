"""Model and GPU catalogs: required names, case-insensitivity, nearest names, overrides, and
parameter counts against the sizes the model authors publish."""
import pytest

from specperf.perfmodel.specs.catalog import MODELS, nearest_models, resolve_model
from specperf.perfmodel.specs.hardware import GPUS, HardwareProfile, resolve_gpu
from specperf.perfmodel.specs.models import SpecError

REQUIRED_MODELS = [
    "llama-7b", "llama-13b", "llama-33b", "llama-65b", "llama-2-7b", "llama-2-13b", "llama-2-70b",
    "llama-3.1-8b", "llama-3.1-70b", "vicuna-7b", "vicuna-13b", "opt-125m", "opt-350m", "opt-1.3b",
    "opt-2.7b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b", "sheared-llama-1.3b",
    "sheared-llama-2.7b", "tinyllama-1.1b", "mistral-7b", "qwen2.5-0.5b", "qwen2.5-7b", "qwen2.5-72b",
]
REQUIRED_GPUS = ["h100-sxm", "h100-pcie", "h200", "a100-sxm-80gb", "a100-sxm-40gb", "l40s", "a10g",
                 "rtx-4090", "mi300x", "b200"]


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_required_model_resolves_case_insensitively(name):
    spec = resolve_model(name)
    assert spec == MODELS[name]
    assert resolve_model(name.upper()) == spec
    assert resolve_model(f"  {name.title()} ") == spec
    assert spec.source.startswith("https://huggingface.co/") and spec.source.endswith("config.json")


# Published sizes. LLaMA-1: Touvron et al. 2023 Table 2 (6.7B, 13.0B, 32.5B, 65.2B); LLaMA-2:
# Touvron et al. 2023b (70B has ~69.0B by the HF safetensors count); OPT: Zhang et al. 2022
# Table 1 names (125M ... 66B), opt-350m 331M per its HF model page; Llama-3.1 HF pages 8.03B /
# 70.6B; Mistral-7B HF page 7.24B; Qwen2.5 model cards 0.49B / 7.61B / 72.7B; TinyLlama 1.1B;
# Sheared-LLaMA 1.3B / 2.7B (Xia et al. 2023).
PUBLISHED_PARAMS = {
    "llama-7b": 6.74e9, "llama-13b": 13.0e9, "llama-33b": 32.5e9, "llama-65b": 65.2e9,
    "llama-2-7b": 6.74e9, "llama-2-13b": 13.0e9, "llama-2-70b": 69.0e9,
    "llama-3.1-8b": 8.03e9, "llama-3.1-70b": 70.6e9, "vicuna-7b": 6.74e9, "vicuna-13b": 13.0e9,
    "opt-125m": 0.125e9, "opt-350m": 0.331e9, "opt-1.3b": 1.3e9, "opt-2.7b": 2.7e9,
    "opt-6.7b": 6.7e9, "opt-13b": 13.0e9, "opt-30b": 30.0e9, "opt-66b": 66.0e9,
    "sheared-llama-1.3b": 1.3e9, "sheared-llama-2.7b": 2.7e9, "tinyllama-1.1b": 1.1e9,
    "mistral-7b": 7.24e9, "qwen2.5-0.5b": 0.49e9, "qwen2.5-7b": 7.61e9, "qwen2.5-72b": 72.7e9,
    "qwen3-0.6b": 0.6e9, "qwen3-4b": 4.0e9,  # Qwen3 model cards
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_count_matches_published_size(name):
    assert MODELS[name].params == pytest.approx(PUBLISHED_PARAMS[name], rel=0.04)


def test_every_catalog_entry_has_a_published_size():
    assert set(PUBLISHED_PARAMS) == set(MODELS)


def test_exact_derived_sizes():
    m = MODELS["llama-7b"]
    assert m.head_dim == 128
    assert m.layer_params == 4 * 4096 ** 2 + 3 * 4096 * 11008 + 2 * 4096  # 202,383,360
    assert m.kv_bytes_per_token == 32 * 2 * 4096 * 2  # 0.5 MiB per token in fp16
    m70 = MODELS["llama-2-70b"]
    assert m70.kv_dim == 1024
    assert m70.kv_bytes_per_token == 80 * 2 * 1024 * 2  # GQA: 8 KV heads of 128
    assert MODELS["llama-7b"].params == 6_738_415_616  # the LLaMA-7B HF checkpoint's count
    assert MODELS["qwen2.5-0.5b"].lm_head_params == 0  # tied embeddings


def test_unknown_model_lists_nearest():
    with pytest.raises(SpecError) as e:
        resolve_model("llama-7")
    msg = str(e.value)
    assert "llama-7" in msg and "nearest" in msg and "llama-7b" in msg and "\n" not in msg
    assert "llama-7b" in nearest_models("LLAMA-7")
    with pytest.raises(SpecError, match="nearest: .*qwen2.5-7b"):
        resolve_model("qwen-2.5-7b")


def test_empty_model_name():
    with pytest.raises(SpecError):
        resolve_model("  ")


def test_aliases():
    assert resolve_model("llama-30b") == MODELS["llama-33b"]
    assert resolve_model("Llama2-70B") == MODELS["llama-2-70b"]


def test_override_makes_a_shallow_draft():
    base = MODELS["llama-7b"]
    d = resolve_model("llama-7b:n_layers=4")
    assert d.n_layers == 4
    assert (d.d_model, d.n_heads, d.n_kv_heads, d.d_ff, d.vocab) == (base.d_model, base.n_heads,
                                                                     base.n_kv_heads, base.d_ff, base.vocab)
    assert "n_layers=4" in d.name
    assert d.params == base.params - 28 * base.layer_params
    d2 = resolve_model("LLaMA-7B:n_layers=4, d_ff=5504,tied_embeddings=true")
    assert (d2.n_layers, d2.d_ff, d2.tied_embeddings) == (4, 5504, True)


def test_override_heads_keeps_mha_valid():
    d = resolve_model("llama-7b:n_heads=16")
    assert d.n_heads == d.n_kv_heads == 16
    g = resolve_model("llama-2-70b:n_heads=32")
    assert (g.n_heads, g.n_kv_heads) == (32, 8)


@pytest.mark.parametrize("text,needle", [
    ("llama-7b:n_layer=4", "n_layer"),            # unknown field
    ("llama-7b:n_layers=four", "four"),           # not an integer
    ("llama-7b:n_layers=2.5", "2.5"),
    ("llama-7b:n_layers=0", "n_layers=0"),        # not positive
    ("llama-7b:n_layers=-3", "n_layers=-3"),
    ("llama-7b:gated_mlp=maybe", "maybe"),
    ("llama-7b:family=gpt2", "gpt2"),
    ("llama-7b:norm=batchnorm", "batchnorm"),
    ("llama-7b:n_layers", "n_layers"),            # no '='
    ("llama-7b:n_heads=3", "n_heads=3"),          # does not divide d_model
    ("llama-7b:name=foo", "name"),                # not overridable
])
def test_bad_override_is_one_line_spec_error(text, needle):
    with pytest.raises(SpecError) as e:
        resolve_model(text)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_override_field_lists_allowed():
    with pytest.raises(SpecError, match="allowed fields: .*n_layers"):
        resolve_model("llama-7b:depth=4")


def test_dtype_bytes_threads_through():
    assert resolve_model("llama-7b", dtype_bytes=4).weight_bytes == 2 * MODELS["llama-7b"].weight_bytes


# ---- GPUs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_required_gpu_resolves_with_sources(name):
    g = resolve_gpu(name.upper())
    assert isinstance(g, HardwareProfile) and g is GPUS[name]
    assert g.sources.get("datasheet")
    for v in (g.peak_flops_per_s, g.hbm_bytes_per_s, g.memory_bytes, g.interconnect_bytes_per_s):
        assert v > 0


def test_gpu_datasheet_values():
    """Dense fp16/bf16 = half of the datasheets' 'with sparsity' figure; bandwidths as printed."""
    assert GPUS["h100-sxm"].peak_flops_per_s == pytest.approx(1979e12 / 2, rel=1e-3)
    assert GPUS["h200"].peak_flops_per_s == GPUS["h100-sxm"].peak_flops_per_s  # same GH100 compute
    assert GPUS["h200"].hbm_bytes_per_s == pytest.approx(4.8e12)
    assert GPUS["a100-sxm-80gb"].peak_flops_per_s == pytest.approx(312e12)
    assert GPUS["a100-sxm-80gb"].hbm_bytes_per_s == pytest.approx(2.039e12)
    assert GPUS["mi300x"].peak_flops_per_s == pytest.approx(2614.9e12 / 2, rel=1e-3)
    assert GPUS["b200"].peak_flops_per_s == pytest.approx(4.5e15 / 2)


def test_unknown_gpu_lists_nearest():
    with pytest.raises(SpecError) as e:
        resolve_gpu("h100-sxm5")
    assert "h100-sxm5" in str(e.value) and "h100-sxm" in str(e.value) and "\n" not in str(e.value)
