"""ModelSpec from a Hugging Face config.json on disk (never fetched from a hub): every shape field
honoured (layers, widths, heads, KV heads, head_dim for every family, FFN, vocabulary, tied
embeddings, biases, positions) and torch_dtype's bytes per element; what this model would price
wrongly (quantised checkpoints, mixtures of experts, MLP biases, unmodelled families) refused with
one line naming the field and what is allowed.

Key assumption: a config's fields mean what transformers' config classes say (LlamaConfig,
MistralConfig, Qwen2Config, Qwen3Config, OPTConfig); fields that change no shape (rope scaling,
activation names, dropout) are ignored.
"""
from __future__ import annotations

from pathlib import Path

from specperf.perfmodel.specs.errors import SpecError
from specperf.perfmodel.specs.families import MODEL_TYPES, traits

# ---- Hugging Face config.json --------------------------------------------------------------------
_MODEL_TYPES = MODEL_TYPES
# config.json torch_dtype (or transformers >= 4.56's `dtype`) -> bytes per element (torch dtypes)
TORCH_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float": 4, "half": 2, "float64": 8}
# model types read by transformers that this model prices wrongly, and why (refused with the reason)
UNMODELLED_TYPES = {
    "gemma": "GeGLU layers with an input-scaled embedding are not a catalogued family",
    "gemma2": "sliding-window attention on alternate layers, logit soft-capping and four norms per layer are not modelled",
    "gemma3": "sliding-window attention on 5 of 6 layers and per-head q/k norms are not modelled",
    "mixtral": "mixture-of-experts layers are not modelled",
    "qwen2_moe": "mixture-of-experts layers are not modelled",
    "qwen3_moe": "mixture-of-experts layers are not modelled",
    "deepseek_v3": "multi-head latent attention and mixture-of-experts layers are not modelled",
}
MOE_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts")  # > 1: a mixture of experts


def config_dtype_bytes(cfg: dict, where: str) -> int | None:
    """Bytes per element of the config's torch_dtype (None when it names none); an unknown dtype is
    a one-line SpecError."""
    key = "torch_dtype" if "torch_dtype" in cfg else "dtype"
    v = cfg.get(key)
    if v is None:
        return None
    name = v.removeprefix("torch.") if isinstance(v, str) else v
    if name not in TORCH_DTYPE_BYTES:
        raise SpecError(f"config file {where}: {key}={v!r} is not allowed; use one of {', '.join(TORCH_DTYPE_BYTES)}",
                        value=v, allowed=", ".join(TORCH_DTYPE_BYTES))
    return TORCH_DTYPE_BYTES[name]


def _refuse_unmodelled(cfg: dict, where: str) -> None:
    """One line for a config whose weights or layers this model would price wrongly."""
    q = cfg.get("quantization_config")
    if q:
        method = q.get("quant_method", "?") if isinstance(q, dict) else q
        raise SpecError(f"config file {where}: quantization_config quant_method={method!r} is not modelled "
                        "(weights and GEMMs are priced at 16-bit); predict the unquantised model's config instead",
                        value=method, allowed="no quantization_config")
    for k in MOE_FIELDS:
        if isinstance(cfg.get(k), int) and not isinstance(cfg.get(k), bool) and cfg[k] > 1:
            raise SpecError(f"config file {where}: {k}={cfg[k]!r} is not modelled (mixture-of-experts layers); "
                            "only dense decoder layers are", value=cfg[k], allowed="absent or 1")
    if cfg.get("mlp_bias") is True:
        raise SpecError(f"config file {where}: mlp_bias=True is not modelled (no MLP biases in a "
                        f"{cfg.get('model_type')} layer here)", value=True, allowed="false")


def spec_fields(cfg, p: Path, dtype_bytes: int | None = None) -> dict:
    """ModelSpec's fields from the parsed config.json `cfg` (read from `p`). Honoured:
    every shape field (layers, widths, heads, KV heads, head_dim for every family, FFN, vocabulary,
    tied embeddings, biases, positions) and torch_dtype (bytes per element unless `dtype_bytes` is
    given: the caller's serving dtype wins). Refused with one line: quantised checkpoints, mixtures
    of experts, MLP biases and the model types in UNMODELLED_TYPES."""
    if not isinstance(cfg, dict):
        raise SpecError(f"config file {str(p)!r} must hold a JSON object")
    mtype = cfg.get("model_type")
    if isinstance(mtype, str) and mtype in UNMODELLED_TYPES:
        raise SpecError(f"config file {str(p)!r}: model_type={mtype!r} is not supported ({UNMODELLED_TYPES[mtype]}); "
                        f"use one of {', '.join(_MODEL_TYPES)}", value=mtype, allowed=", ".join(_MODEL_TYPES))
    if not isinstance(mtype, str) or mtype not in _MODEL_TYPES:  # a list would be unhashable
        raise SpecError(f"config file {str(p)!r}: model_type={mtype!r} is not supported; use one of "
                        f"{', '.join(_MODEL_TYPES)}")

    def need(key: str, *alts: str):
        for k in (key, *alts):
            if k in cfg:
                return _strict_int(cfg[k], k)
        raise SpecError(f"config file {str(p)!r} lacks field {key!r}")

    def _strict_int(v, key: str) -> int:
        # int(4096.7) would truncate silently and int("4096") would accept a string: refuse both
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(f"config file {str(p)!r}: {key}={v!r} is not allowed; {key} must be an integer")
        return v

    def opt_int(key: str, default: int) -> int:
        v = cfg.get(key)
        return default if v is None else _strict_int(v, key)

    _refuse_unmodelled(cfg, repr(str(p)))
    declared = config_dtype_bytes(cfg, repr(str(p)))
    dtype_bytes = dtype_bytes or declared or 2  # the caller's dtype, else the config's, else 16-bit
    name = cfg.get("_name_or_path") or p.parent.name or p.stem
    try:
        if mtype == "opt":
            d = int(need("hidden_size"))
            proj = opt_int("word_embed_proj_dim", d)
            return dict(
                name=str(name), family="opt", n_layers=int(need("num_hidden_layers")), d_model=d,
                n_heads=int(need("num_attention_heads")), n_kv_heads=int(need("num_attention_heads")),
                d_ff=int(need("ffn_dim")), vocab=int(need("vocab_size")), gated_mlp=False,
                norm="layernorm", tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
                dtype_bytes=dtype_bytes, max_positions=int(need("max_position_embeddings")),
                linear_bias=bool(cfg.get("enable_bias", True)), learned_positions=True,
                embed_dim=0 if proj == d else proj, source=str(p))
        n_heads = int(need("num_attention_heads"))
        fam = traits(_MODEL_TYPES[mtype])
        extra = {}
        if cfg.get("head_dim") is not None:  # any family (Mistral-NeMo: 128 at width 5120, 32 heads)
            hd = _strict_int(cfg["head_dim"], "head_dim")
            if hd <= 0:
                raise SpecError(f"config file {str(p)!r}: head_dim={hd!r} is not allowed; a positive integer")
            if fam.explicit_head_dim or hd * n_heads != int(need("hidden_size")):
                extra["attn_head_dim"] = hd
        if fam.qk_norm:
            extra["qk_norm"] = True
        bias = cfg.get("attention_bias")
        return dict(
            name=str(name), family=_MODEL_TYPES[mtype], n_layers=int(need("num_hidden_layers")),
            d_model=int(need("hidden_size")), n_heads=n_heads,
            n_kv_heads=opt_int("num_key_value_heads", n_heads),
            d_ff=int(need("intermediate_size")), vocab=int(need("vocab_size")), gated_mlp=True,
            norm="rmsnorm", tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            dtype_bytes=dtype_bytes, max_positions=int(need("max_position_embeddings")),
            qkv_bias=fam.qkv_bias if bias is None else bool(bias), source=str(p), **extra)
    except (TypeError, ValueError) as e:
        if isinstance(e, SpecError):
            raise
        raise SpecError(f"config file {str(p)!r} has a non-integer shape field ({e})") from None
