"""Real weights for the speculative-decoding loop: load a local Hugging Face LLaMA-family checkpoint
(config.json + *.safetensors) into a profiler.blocks.DecoderModel, so SpecLoop can run greedy
verification for real. Never fetches anything.

Key assumption: the checkpoint uses Hugging Face's LLaMA layout (q/k/v/o_proj, gate/up/down_proj,
input/post_attention_layernorm, rotate-half RoPE with θ = 10000, as LLaMA-1/2 and Sheared-LLaMA
ship); blocks fuses q|k|v and gate|up, so their rows are concatenated in that order. Other RoPE
bases load but decode differently from the original; OPT checkpoints are not supported here. Needs
the `safetensors` package (optional): without it, loading raises a clear error.
"""
from __future__ import annotations

from pathlib import Path

import torch

from specperf.perfmodel.specs.models import ModelSpec, SpecError, from_hf_config

from .blocks import DecoderModel


def _have_safetensors() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def hf_names(spec: ModelSpec, n_layers: int) -> dict[str, tuple[str, ...]]:
    """blocks parameter → the Hugging Face tensors it is made of (concatenated along rows)."""
    names = {"head.embed_w": ("model.embed_tokens.weight",), "head.norm_w": ("model.norm.weight",)}
    if not spec.tied_embeddings:
        names["head.head_w"] = ("lm_head.weight",)
    for i in range(n_layers):
        p, a, m = f"model.layers.{i}.", f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
        names[f"layers.{i}.norm1_w"] = (p + "input_layernorm.weight",)
        names[f"layers.{i}.norm2_w"] = (p + "post_attention_layernorm.weight",)
        names[f"layers.{i}.w_qkv"] = tuple(a + f"{x}_proj.weight" for x in "qkv")
        names[f"layers.{i}.w_o"] = (a + "o_proj.weight",)
        names[f"layers.{i}.w_up"] = (m + "gate_proj.weight", m + "up_proj.weight")
        names[f"layers.{i}.w_down"] = (m + "down_proj.weight",)
        if spec.qkv_bias:
            names[f"layers.{i}.b_qkv"] = tuple(a + f"{x}_proj.bias" for x in "qkv")
        if spec.qk_norm:  # Qwen3
            names[f"layers.{i}.q_norm_w"] = (a + "q_norm.weight",)
            names[f"layers.{i}.k_norm_w"] = (a + "k_norm.weight",)
    return names


def load_state(directory: str | Path) -> dict:
    if not _have_safetensors():
        raise SpecError("loading real weights needs the 'safetensors' package (pip install safetensors)")
    from safetensors.torch import load_file

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise SpecError(f"{str(directory)!r} holds no *.safetensors files")
    state: dict = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as e:  # noqa: BLE001 — safetensors' own error type, OSError, a FIFO: one line
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SpecError(f"checkpoint file {str(f)!r} is not a readable safetensors file ({why})") from None
    return state


def load_decoder(directory: str | Path, *, max_batch: int = 1, max_context: int = 2048, dtype="fp16",
                 device="cpu", n_layers: int | None = None) -> tuple[ModelSpec, DecoderModel]:
    """Spec from config.json and a DecoderModel holding the checkpoint's weights (first n_layers)."""
    d = Path(directory)
    spec = from_hf_config(d / "config.json")
    if spec.family == "opt":
        raise SpecError(f"{spec.name}: OPT checkpoints are not supported for real-weight loops; use a "
                        "LLaMA-family checkpoint")
    model = DecoderModel(spec, n_layers=n_layers, max_batch=max_batch, max_context=max_context,
                         dtype=dtype, device=device)
    state = load_state(d)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, parts in hf_names(spec, len(model.layers)).items():
            missing = [p for p in parts if p not in state]
            if missing:
                raise SpecError(f"{str(d)!r}: checkpoint lacks {missing[0]} (needed for {name})")
            try:
                t = torch.cat([state[p] for p in parts], dim=0)
            except RuntimeError:  # parts whose other dimensions disagree
                raise SpecError(f"{str(d)!r}: {', '.join(parts)} have shapes "
                                f"{[tuple(state[p].shape) for p in parts]} that do not stack") from None
            if tuple(t.shape) != tuple(params[name].shape):
                raise SpecError(f"{str(d)!r}: {parts[0]} has shape {tuple(t.shape)}, config.json implies "
                                f"{tuple(params[name].shape)}")
            params[name].copy_(t.to(params[name].dtype))
    return spec, model


def save_hf(model: DecoderModel, directory: str | Path, config: dict) -> None:
    """Write a DecoderModel as a Hugging Face-layout checkpoint (tests and round trips)."""
    import json

    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    params = dict(model.named_parameters())
    out = {}
    for name, parts in hf_names(model.spec, len(model.layers)).items():
        t = params[name].detach().cpu()
        sizes = {1: [t.shape[0]], 2: [t.shape[0] // 2] * 2}.get(len(parts))
        if len(parts) == 3:  # q | k | v
            hd = model.spec.head_dim
            sizes = [model.spec.n_heads * hd, model.spec.n_kv_heads * hd, model.spec.n_kv_heads * hd]
        for p, chunk in zip(parts, torch.split(t, sizes, dim=0)):
            out[p] = chunk.contiguous()
    save_file(out, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(config))
