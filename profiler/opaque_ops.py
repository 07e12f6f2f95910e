"""Opaque operators for compiled mode: attention (SDPA) and the KV-cache write as torch custom ops, so
that torch.compile calls them as they are instead of compiling them — the split production engines
make (vLLM's piecewise graphs end at attention; its cache write is its own kernel). profiler.compiled
switches them on from SPECPERF_COMPILE_ATTENTION; profiler.blocks uses them only while compiling.
Key assumption: each op's fake (meta) kernel declares exactly the output layout the real one returns.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# set by profiler.compiled from SPECPERF_COMPILE_ATTENTION: SDPA ('opaque', 'opaque-kv') and the KV-cache
# write ('opaque-kv') hidden from inductor while compiling; eager and graph mode never use the opaque ops
OPAQUE_ATTENTION = False
OPAQUE_KV_WRITE = False


@torch.library.custom_op("specperf::kv_write", mutates_args=("cache_k", "cache_v"))
def opaque_kv_write(cache_k: torch.Tensor, cache_v: torch.Tensor, idx: torch.Tensor, k: torch.Tensor,
                    v: torch.Tensor) -> None:
    """The KV-cache write as one in-place opaque operator. Inlined, torch.compile functionalises the
    in-place scatter into a copy of the whole cache (read and write per layer and step); as a
    mutating custom op inductor keeps it in place, as engines' cache-write kernels are."""
    cache_k.scatter_(2, idx, k)
    cache_v.scatter_(2, idx, v)


@torch.library.custom_op("specperf::sdpa", mutates_args=())
def opaque_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """scaled_dot_product_attention as one opaque operator: torch.compile calls it as is (the fused
    SDPA kernel) instead of compiling it, as vLLM's piecewise graphs split at attention. Contiguous:
    the fused kernels return a transposed layout, and the graph needs the one its fake declares."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                          enable_gqa=q.shape[1] != k.shape[1]).contiguous()


@opaque_sdpa.register_fake
def _(q, k, v, attn_mask):
    return q.new_empty(q.shape[:-1] + v.shape[-1:])


@torch.library.custom_op("specperf::engine_sdpa", mutates_args=())
def opaque_engine_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """profiler.attention.engine_sdpa (no mask, native GQA, measured backend) as one opaque operator,
    as vLLM's piecewise graphs call their attention kernel between compiled pieces."""
    from .attention import engine_sdpa
    return engine_sdpa(q, k, v).contiguous()


@opaque_engine_sdpa.register_fake
def _(q, k, v):
    return q.new_empty(q.shape[:-1] + v.shape[-1:])
