"""Per-family traits of dense decoder models: what differs between LLaMA, Mistral, Qwen2, Qwen3 and
OPT layers, in one registry, so a new dense family is one entry here plus its catalog rows.

Key assumption: every family is a pre-norm decoder layer (attention then MLP, residual adds) whose
differences are the ones listed: norm type, gated or plain MLP, rotary or learned positions, biases,
per-head q/k norms, an explicit head_dim, and the Hugging Face names of its config and weights.
"""
from __future__ import annotations

from dataclasses import dataclass

from specperf.perfmodel.specs.errors import SpecError


@dataclass(frozen=True)
class FamilyTraits:
    name: str
    hf_model_types: tuple[str, ...]  # config.json "model_type" values read as this family
    norm: str = "rmsnorm"  # rmsnorm | layernorm
    gated_mlp: bool = True  # SwiGLU (gate, up, down) vs fc1/fc2
    learned_positions: bool = False  # OPT: learned position embeddings; others: RoPE
    qkv_bias: bool = False  # Qwen2: biases on q/k/v
    linear_bias: bool = False  # OPT: biases on every linear layer
    qk_norm: bool = False  # Qwen3: RMSNorm over head_dim on q and k before RoPE
    explicit_head_dim: bool = False  # config.json may set head_dim ≠ hidden_size / heads (Qwen3)
    # Small (elementwise / normalisation) kernels per layer in profiler/blocks.py's plain PyTorch
    # layer, counted from its code: RMSNorm ≈ 4 kernels × 2, RoPE ≈ 8, KV-cache writes 2, residual
    # adds 2, SiLU·mul 2 = 18 (LLaMA-like); OPT (LayerNorm 1 × 2, no RoPE, ReLU 1, adds 2, cache 2,
    # bias adds folded) ≈ 10; Qwen3 adds two per-head RMSNorms ≈ 4 × 2 = 26. An estimate: the
    # per-kernel floor is refitted to measured profiles, which absorbs its error.
    small_kernels: int = 18
    # Hugging Face checkpoint weight names of one layer (profiler/specloop_weights.py loads them)
    attn_weights: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    mlp_weights: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
    source: str = ""


FAMILIES: dict[str, FamilyTraits] = {
    "llama": FamilyTraits("llama", ("llama",), source="transformers LlamaConfig / modeling_llama"),
    "mistral": FamilyTraits("mistral", ("mistral",), source="transformers MistralConfig (LLaMA layer, GQA)"),
    "qwen2": FamilyTraits("qwen2", ("qwen2",), qkv_bias=True, source="transformers Qwen2Config (q/k/v bias)"),
    "qwen3": FamilyTraits("qwen3", ("qwen3",), qk_norm=True, explicit_head_dim=True, small_kernels=26,
                          source="transformers Qwen3Config (q_norm/k_norm, head_dim, attention_bias)"),
    "opt": FamilyTraits("opt", ("opt",), norm="layernorm", gated_mlp=False, learned_positions=True,
                        linear_bias=True, small_kernels=10,
                        attn_weights=("q_proj", "k_proj", "v_proj", "out_proj"), mlp_weights=("fc1", "fc2"),
                        source="transformers OPTConfig / modeling_opt"),
}
MODEL_TYPES = {t: f.name for f in FAMILIES.values() for t in f.hf_model_types}


def traits(family: str) -> FamilyTraits:
    if family not in FAMILIES:
        raise SpecError(f"family={family!r} is not allowed; use one of {', '.join(FAMILIES)}")
    return FAMILIES[family]
