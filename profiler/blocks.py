"""Decoder blocks built from a ModelSpec with random weights and a static KV cache, for timing and
for real speculative-decoding loops.

Computes one decoder layer (llama family: RMSNorm, RoPE, grouped-query attention, SwiGLU, optional
q/k/v bias, optional per-head q/k RMSNorm and explicit head_dim as in Qwen3; OPT: LayerNorm, ReLU MLP, biases everywhere), the embedding + final norm + LM head, and
a whole decoder model. Key assumption: a plain PyTorch implementation in the style of gpt-fast /
vLLM's reference layers — fused QKV and fused gate/up projections, attention against a static cache
[max_batch, n_kv_heads, max_context, head_dim] through profiler.attention (engine kernels by default:
native grouped-query attention, no mask when every sequence is at the same context, the fastest
measured SDPA backend; an explicit boolean mask from per-sequence positions otherwise; `plain` kernels:
query heads folded with a repeated mask) — so every forward has static shapes and is capturable in a CUDA graph (no
.item(), no host sync, no data-dependent Python control flow). Pre-norm everywhere (OPT-350m is
post-norm in the original; the kernels are the same).

API (stable; other modules build on it):
  DecoderLayer(spec, max_batch, max_context, dtype, device, tp=1, seed=0)
      .forward(x [b, n, d], pos [b] int64, kv_len=None, mask=None, step=None) -> [b, n, d]
  Head(spec, max_context, dtype, device, tp=1, seed=0)
      .embed(tokens [b, n], pos [b]) -> [b, n, d];  .logits(x) -> [b, n, vocab/tp]
      .prepare(tokens, pos) -> (embedding, Step);  .forward = prepare + logits
  Step: what a forward computes once for all its layers, as the engines do (vLLM's model runner
  builds positions and the cache slot mapping once; Hugging Face and gpt-fast gather cos/sin once):
  token positions [b, n] and the RoPE cos/sin rows [b, n, 1, head_dim]. A layer called without a
  step builds its own (the same values; the per-forward work is then paid per layer). Timed with
  the head, not the layer (profiler.measure).
  DecoderModel(spec, n_layers=None, max_batch=1, max_context=2048, dtype, device, tp=1, seed=0)
      .forward(tokens [b, n], pos [b], kv_len=None) -> logits [b, n, vocab]
`pos[i]` is the number of tokens already in sequence i's cache; the forward writes K/V at
pos[i] .. pos[i]+n-1 and each query attends to cache positions <= its own. Rolling the cache back
is passing a smaller pos later: stale entries beyond pos are masked and then overwritten.
`kv_len` (a static Python int) limits attention to the first kv_len cache slots (must exceed
max(pos)+n-1); it is rounded up to a multiple of 16 so the attention kernels see aligned masks.
Engine kernels: a DecoderLayer called with `kv_len` and no mask takes every sequence to hold exactly
kv_len − n tokens (the profiler's uniform context) and attends mask-free over kv_len keys; without
`kv_len`, or with a mask, it masks by `pos` as above (DecoderModel passes its shared mask unless
`uniform=True`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from specperf.perfmodel.specs.models import ModelSpec, SpecError

from . import attention, opaque_ops

DTYPES = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32}
ROPE_THETA = 10000.0  # LLaMA-1/2 rope_theta (config.json of huggyllama/llama-7b, Llama-2-7b-hf)
NORM_EPS = 1e-5  # rms_norm_eps / layer_norm eps of LLaMA-1 and OPT config.json (1e-6 in some; timing-neutral)
KV_ALIGN = 16  # attention masks/cache slices padded to 16 keys (memory-efficient SDPA alignment)


def torch_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype).lower() not in DTYPES:
        raise SpecError(f"dtype={dtype!r} is not allowed; use fp16, bf16 or fp32")
    return DTYPES[str(dtype).lower()]


def shard_sizes(spec: ModelSpec, tp: int = 1) -> tuple[int, int, int]:
    """Per-rank (n_heads, n_kv_heads, d_ff) of a tensor-parallel layer (ModelSpec.shard owns the rule)."""
    return spec.shard(tp)


def _param(shape, std, dtype, device, gen):
    t = torch.empty(shape, dtype=dtype, device=device)
    if std == 1.0 and len(shape) == 1:
        return nn.Parameter(t.fill_(1.0), requires_grad=False)
    t.normal_(0.0, std, generator=gen)
    return nn.Parameter(t, requires_grad=False)


def _generator(device, seed):
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


def _norm(spec: ModelSpec, x, w, b):
    if spec.norm == "rmsnorm":
        return F.rms_norm(x, (x.shape[-1],), w, NORM_EPS)
    return F.layer_norm(x, (x.shape[-1],), w, b, NORM_EPS)


def kv_aligned(n: int) -> int:
    """n rounded up to a multiple of KV_ALIGN (cache slots a forward attends over)."""
    return -(-n // KV_ALIGN) * KV_ALIGN


def _aligned(n: int, limit: int) -> int:
    return min(limit, kv_aligned(n))


def rope_tables(head_dim: int, max_context: int, dtype, device):
    """cos/sin [max_context, head_dim] in the rotate-half convention of Hugging Face LLaMA."""
    inv = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    t = torch.arange(max_context, device=device, dtype=torch.float32)
    freqs = torch.outer(t, inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Step(NamedTuple):
    """Per-forward tensors shared by every layer: positions [b, n] and RoPE cos/sin [b, n, 1, hd]
    (None for learned positions)."""
    positions: torch.Tensor
    cos: torch.Tensor | None
    sin: torch.Tensor | None


def make_step(pos, n: int, cos_table=None, sin_table=None) -> Step:
    """The Step of a forward of n new tokens after pos[i] cached ones (cos/sin gathered once)."""
    positions = pos[:, None] + torch.arange(n, device=pos.device)  # [b, n]
    if cos_table is None:
        return Step(positions, None, None)
    return Step(positions, cos_table[positions][:, :, None, :], sin_table[positions][:, :, None, :])


def apply_rope(x, cos, sin):
    """x [b, n, h, hd] rotated by cos/sin [b, n, 1, hd] (rotate-half convention)."""
    return x * cos + _rotate_half(x) * sin


def causal_mask(pos, n: int, kv_len: int):
    """[b, 1, n, kv_len] bool: query i of sequence s sees cache slots j <= pos[s] + i."""
    q = pos[:, None] + torch.arange(n, device=pos.device)  # [b, n]
    keys = torch.arange(kv_len, device=pos.device)
    return (keys[None, None, :] <= q[:, :, None])[:, None]


class DecoderLayer(nn.Module):
    """One decoder layer (or one tensor-parallel rank's shard of it) with its own static KV cache."""

    def __init__(self, spec: ModelSpec, max_batch: int = 1, max_context: int = 2048, dtype="fp16",
                 device="cpu", tp: int = 1, seed: int = 0):
        super().__init__()
        if max_batch <= 0 or max_context <= 0:
            raise SpecError(f"max_batch={max_batch}, max_context={max_context}: both must be > 0")
        dt, dev, g = torch_dtype(dtype), torch.device(device), _generator(device, seed)
        self.spec, self.tp, self.max_batch, self.max_context = spec, tp, max_batch, max_context
        self.n_heads, self.n_kv_heads, self.d_ff = shard_sizes(spec, tp)
        self.head_dim = spec.head_dim
        d, hd = spec.d_model, spec.head_dim
        qkv = (self.n_heads + 2 * self.n_kv_heads) * hd
        bias = spec.linear_bias or spec.qkv_bias
        self.norm1_w = _param((d,), 1.0, dt, dev, g)
        self.norm2_w = _param((d,), 1.0, dt, dev, g)
        ln = spec.norm == "layernorm"
        self.norm1_b = _param((d,), 0.02, dt, dev, g) if ln else None
        self.norm2_b = _param((d,), 0.02, dt, dev, g) if ln else None
        self.w_qkv = _param((qkv, d), d ** -0.5, dt, dev, g)
        self.q_norm_w = _param((hd,), 1.0, dt, dev, g) if spec.qk_norm else None  # Qwen3
        self.k_norm_w = _param((hd,), 1.0, dt, dev, g) if spec.qk_norm else None
        self.b_qkv = _param((qkv,), 0.02, dt, dev, g) if bias else None
        self.w_o = _param((d, self.n_heads * hd), (self.n_heads * hd) ** -0.5, dt, dev, g)
        self.b_o = _param((d,), 0.02, dt, dev, g) if spec.linear_bias else None
        n_up = 2 if spec.gated_mlp else 1
        self.w_up = _param((n_up * self.d_ff, d), d ** -0.5, dt, dev, g)
        self.b_up = _param((n_up * self.d_ff,), 0.02, dt, dev, g) if spec.linear_bias else None
        self.w_down = _param((d, self.d_ff), self.d_ff ** -0.5, dt, dev, g)
        self.b_down = _param((d,), 0.02, dt, dev, g) if spec.linear_bias else None
        self._gen = g
        self.reset_cache(max_batch, max_context)

    def reset_cache(self, max_batch: int, max_context: int) -> None:
        """(Re)allocate the static KV cache [max_batch, n_kv_heads, max_context, head_dim] and RoPE tables."""
        dt, dev = self.w_qkv.dtype, self.w_qkv.device
        self.max_batch, self.max_context = max_batch, max_context
        cache = (max_batch, self.n_kv_heads, max_context, self.head_dim)
        # random (not zero) contents: timing on zeros can flatter kernels; masked slots are unused
        self.register_buffer("cache_k", torch.empty(cache, dtype=dt, device=dev).normal_(generator=self._gen),
                             persistent=False)
        self.register_buffer("cache_v", torch.empty(cache, dtype=dt, device=dev).normal_(generator=self._gen),
                             persistent=False)
        if not self.spec.learned_positions:
            cos, sin = rope_tables(self.head_dim, max_context, dt, dev)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

    def step(self, pos, n: int) -> Step:
        """This layer's Step for n new tokens (what DecoderModel / Head.prepare build once)."""
        if self.spec.learned_positions:
            return make_step(pos, n)
        return make_step(pos, n, self.rope_cos, self.rope_sin)

    def attention(self, x, pos, kv_len=None, mask=None, step: Step | None = None):
        b, n, _ = x.shape
        if step is None:
            step = self.step(pos, n)
        hd, H, KV = self.head_dim, self.n_heads, self.n_kv_heads
        L = self.max_context if kv_len is None else _aligned(int(kv_len), self.max_context)
        qkv = F.linear(x, self.w_qkv, self.b_qkv)
        q, k, v = qkv.split([H * hd, KV * hd, KV * hd], dim=-1)
        q, k, v = q.view(b, n, H, hd), k.view(b, n, KV, hd), v.view(b, n, KV, hd)
        if self.q_norm_w is not None:  # Qwen3: RMSNorm over head_dim on q and k, before RoPE
            q = F.rms_norm(q, (hd,), self.q_norm_w, NORM_EPS)
            k = F.rms_norm(k, (hd,), self.k_norm_w, NORM_EPS)
        if step.cos is not None:
            q, k = apply_rope(q, step.cos, step.sin), apply_rope(k, step.cos, step.sin)
        idx = step.positions[:, None, :, None].expand(b, KV, n, hd)
        if opaque_ops.OPAQUE_KV_WRITE and torch.compiler.is_compiling():
            opaque_ops.opaque_kv_write(self.cache_k[:b], self.cache_v[:b], idx, k.transpose(1, 2), v.transpose(1, 2))
        else:
            self.cache_k[:b].scatter_(2, idx, k.transpose(1, 2))
            self.cache_v[:b].scatter_(2, idx, v.transpose(1, 2))
        opaque = opaque_ops.OPAQUE_ATTENTION and torch.compiler.is_compiling()
        if attention.engine():  # engine kernels (profiler.attention): native GQA, no repeated mask
            uniform = mask is None and kv_len is not None
            if uniform:  # every sequence holds kv_len − n tokens: exactly kv_len keys, no mask
                L = min(int(kv_len), self.max_context)
            elif mask is None:  # no kv_len: per-sequence positions, masked as the plain kernels are
                mask = causal_mask(pos, n, L)
            keys, vals = self.cache_k[:b, :, :L], self.cache_v[:b, :, :L]
            qh = q.transpose(1, 2)
            if uniform:
                o = (opaque_ops.opaque_engine_sdpa if opaque else attention.engine_sdpa)(qh, keys, vals)
            else:  # per-sequence positions: one broadcast mask, native GQA
                o = (opaque_ops.opaque_sdpa if opaque else attention.masked_sdpa)(qh, keys, vals, mask)
            return F.linear(o.transpose(1, 2).reshape(b, n, H * hd), self.w_o, self.b_o)
        keys, vals = self.cache_k[:b, :, :L], self.cache_v[:b, :, :L]
        if mask is None:
            mask = causal_mask(pos, n, L)
        grp = H // KV
        if grp == 1:
            qh = q.transpose(1, 2)  # [b, H, n, hd]
        else:  # grouped-query: fold the query heads of one KV head into the query axis
            qh = q.view(b, n, KV, grp, hd).permute(0, 2, 3, 1, 4).reshape(b, KV, grp * n, hd)
            mask = mask.repeat(1, 1, grp, 1)
        sdpa = opaque_ops.opaque_sdpa if opaque else F.scaled_dot_product_attention
        o = sdpa(qh, keys, vals, attn_mask=mask)
        if grp == 1:
            o = o.transpose(1, 2)
        else:
            o = o.view(b, KV, grp, n, hd).permute(0, 3, 1, 2, 4)
        return F.linear(o.reshape(b, n, H * hd), self.w_o, self.b_o)

    def mlp(self, x):
        h = F.linear(x, self.w_up, self.b_up)
        if self.spec.gated_mlp:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.relu(h)
        return F.linear(h, self.w_down, self.b_down)

    def forward(self, x, pos, kv_len=None, mask=None, step: Step | None = None):
        x = x + self.attention(_norm(self.spec, x, self.norm1_w, self.norm1_b), pos, kv_len, mask, step)
        return x + self.mlp(_norm(self.spec, x, self.norm2_w, self.norm2_b))

    def forward_residual(self, h, residual, pos, kv_len=None, mask=None, step: Step | None = None):
        """The engines' layout (vLLM, SGLang): the previous block's output `h` joins the residual
        stream at the start of this layer, where a compiler fuses the add with the input norm, and
        the MLP's output is handed on unadded. Returns (mlp output, residual); chaining layers gives
        the same stream as `forward` (first layer: h = embedding, residual = 0)."""
        x = residual + h
        x = x + self.attention(_norm(self.spec, x, self.norm1_w, self.norm1_b), pos, kv_len, mask, step)
        return self.mlp(_norm(self.spec, x, self.norm2_w, self.norm2_b)), x


class Head(nn.Module):
    """Token (+ learned position) embedding, final norm and LM head (vocab/tp rows per rank)."""

    def __init__(self, spec: ModelSpec, max_context: int = 2048, dtype="fp16", device="cpu",
                 tp: int = 1, seed: int = 1):
        super().__init__()
        if spec.learned_positions and max_context > spec.max_positions:
            raise SpecError(f"context {max_context} exceeds {spec.name}'s max_positions="
                            f"{spec.max_positions} (learned position embeddings)")
        dt, dev, g = torch_dtype(dtype), torch.device(device), _generator(device, seed)
        self.spec = spec
        d, e = spec.d_model, spec.embed_dim or spec.d_model
        self.embed_w = _param((spec.vocab, e), 1.0 / 4, dt, dev, g)
        self.pos_w = _param((spec.max_positions, d), 0.02, dt, dev, g) if spec.learned_positions else None
        self.proj_in = _param((d, e), e ** -0.5, dt, dev, g) if e != d else None
        self.proj_out = _param((e, d), d ** -0.5, dt, dev, g) if e != d else None
        self.norm_w = _param((d,), 1.0, dt, dev, g)
        self.norm_b = _param((d,), 0.02, dt, dev, g) if spec.norm == "layernorm" else None
        if not spec.learned_positions:  # the per-forward RoPE rows come from the head (Step)
            cos, sin = rope_tables(spec.head_dim, max_context, dt, dev)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        rows = -(-spec.vocab // tp)
        if spec.tied_embeddings and tp == 1:
            self.head_w = self.embed_w
        else:
            self.head_w = _param((rows, e), e ** -0.5, dt, dev, g)

    def embed(self, tokens, pos):
        x = F.embedding(tokens, self.embed_w)
        if self.proj_in is not None:
            x = F.linear(x, self.proj_in)
        if self.pos_w is not None:
            positions = pos[:, None] + torch.arange(tokens.shape[1], device=tokens.device)
            x = x + F.embedding(positions, self.pos_w)
        return x

    def logits(self, x):
        x = _norm(self.spec, x, self.norm_w, self.norm_b)
        if self.proj_out is not None:
            x = F.linear(x, self.proj_out)
        return F.linear(x, self.head_w)

    def step(self, pos, n: int) -> Step:
        if self.spec.learned_positions:
            return make_step(pos, n)
        return make_step(pos, n, self.rope_cos, self.rope_sin)

    def prepare(self, tokens, pos):
        """(embedding, Step): what a forward does once before its layers."""
        return self.embed(tokens, pos), self.step(pos, tokens.shape[1])

    def forward(self, tokens, pos):
        """Logits of `tokens`, with the forward's Step built (its cost is the head's); returns logits."""
        x, step = self.prepare(tokens, pos)
        self._step = step  # kept: a compiler or graph must not drop the per-forward work as dead code
        return self.logits(x)


class DecoderModel(nn.Module):
    """Embedding, n_layers decoder layers (default: the spec's depth), final norm and LM head."""

    def __init__(self, spec: ModelSpec, n_layers: int | None = None, max_batch: int = 1,
                 max_context: int = 2048, dtype="fp16", device="cpu", tp: int = 1, seed: int = 0):
        super().__init__()
        n_layers = spec.n_layers if n_layers is None else n_layers
        if n_layers <= 0:
            raise SpecError(f"n_layers={n_layers} is not allowed; must be a positive integer")
        self.spec, self.max_batch, self.max_context = spec, max_batch, max_context
        self.head = Head(spec, max_context, dtype, device, tp, seed=seed + 1_000_003)
        self.layers = nn.ModuleList(DecoderLayer(spec, max_batch, max_context, dtype, device, tp,
                                                 seed=seed + i) for i in range(n_layers))

    def reset_cache(self, max_batch: int, max_context: int) -> None:
        """Reallocate every layer's KV cache (weights kept), e.g. for another batch or context."""
        for layer in self.layers:
            layer.reset_cache(max_batch, max_context)
        self.max_batch, self.max_context = max_batch, max_context

    def forward(self, tokens, pos, kv_len=None, uniform: bool = False):
        """`uniform=True` (engine kernels only): every sequence holds exactly kv_len − n cached tokens,
        so attention takes no mask (profiler.attention); otherwise one mask from `pos` is shared by
        all layers."""
        n = tokens.shape[1]
        if uniform and attention.engine():
            L, mask = (self.max_context if kv_len is None else min(int(kv_len), self.max_context)), None
        else:
            L = self.max_context if kv_len is None else _aligned(int(kv_len), self.max_context)
            mask = causal_mask(pos, n, L)  # built once per forward, shared by all layers
        x, step = self.head.prepare(tokens, pos)  # positions and cos/sin once per forward
        for layer in self.layers:
            x = layer(x, pos, L, mask, step)
        return self.head.logits(x)


def stack_bytes(spec: ModelSpec, tp: int = 1) -> int:
    """Weight bytes of one (sharded) layer as built here — used to size stacks against L2."""
    H, KV, ff = shard_sizes(spec, tp)
    hd, d = spec.head_dim, spec.d_model
    n_up = 2 if spec.gated_mlp else 1
    return spec.dtype_bytes * (d * (H + 2 * KV) * hd + d * H * hd + (n_up + 1) * d * ff)


def cache_bytes(spec: ModelSpec, max_batch: int, max_context: int, tp: int = 1) -> int:
    _, KV, _ = shard_sizes(spec, tp)
    return 2 * spec.dtype_bytes * max_batch * KV * max_context * spec.head_dim


__all__ = ["DecoderLayer", "Head", "DecoderModel", "Step", "make_step", "apply_rope", "shard_sizes", "causal_mask", "torch_dtype",
           "stack_bytes", "cache_bytes", "kv_aligned"]
