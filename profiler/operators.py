"""The operators of a dense decoder layer as profiler/blocks.py runs them, each built as a stack of
calls ready to be timed (by profiler.operator_sweep) in eager or CUDA-graph mode.

Each builder copies the lines of DecoderLayer/Head that make up one operator — fused QKV / o-proj /
gate-up / down projections (F.linear, with or without bias), attention against a static KV-cache slice
(engine kernels, profiler.attention: native grouped-query, no mask for one new token, lower-right causal
for several; plain kernels: query heads folded into the query axis, the mask repeated),
RMSNorm / LayerNorm, RoPE (rotate-half with the forward's cos/sin rows, gathered once per forward:
profiler.blocks.Step), SiLU·mul or ReLU, residual add, the KV-cache scatter (at the forward's
positions), the token embedding (also the per-forward cos/sin gather) — and returns
(fn, calls): fn() runs `calls` invocations back to back. Key assumption (as profiler.measure): in a
whole model no layer finds its weights or KV cache in L2, so weights and caches are views into one
random pool at distinct offsets, `copies` of them totalling ≥ STACK_BYTES, used in turn; activations
are reused (in a layer they come straight from the previous kernel, so they are in L2 anyway).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import attention as attention_kernels
from .blocks import NORM_EPS, apply_rope, causal_mask, rope_tables
from .measure import MIN_STACK, STACK_BYTES

MAX_OP_COPIES = 64
ELEMENTWISE_CALLS = 16  # calls per timed stack of a small op: the replay's own gap is /16
ROPE_MAX_CONTEXT = 4096
EMBED_VOCAB = 32000  # gather cost depends on tokens × width only; any vocabulary would do
ALIGN = 256  # pool offsets in elements (512 B in fp16): every view starts on a fresh cache line


class Pool:
    """One flat buffer of random values; views at distinct offsets stand in for distinct tensors."""

    def __init__(self, n_elems: int, dtype, device, seed: int = 0):
        g = torch.Generator(device=torch.device(device)).manual_seed(seed)
        self.buf = torch.empty(int(n_elems), dtype=dtype, device=device).normal_(generator=g)
        self.n = int(n_elems)

    def view(self, shape, i: int):
        size = math.prod(shape)
        if size > self.n:
            raise MemoryError(f"pool of {self.n} elements cannot hold {tuple(shape)}")
        span = self.n - size
        step = -(-size // ALIGN) * ALIGN
        off = (i * step) % (span + 1) if span else 0
        off -= off % ALIGN
        return self.buf[off:off + size].view(*shape)


def _cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def copies_for_bytes(nbytes: int, device) -> int:
    if not _cuda(device):
        return 1
    return max(1, min(MAX_OP_COPIES, -(-STACK_BYTES // max(int(nbytes), 1))))


def _randn(shape, dtype, device, seed=1):
    g = torch.Generator(device=torch.device(device)).manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype, device=device)


def gemm(pool, m, n, k, bias, dtype, device):
    """F.linear(x [m, k], W [n, k], b [n]?) — a fused projection of the layer."""
    copies = copies_for_bytes(n * k * pool.buf.element_size(), device)
    calls = max(copies, MIN_STACK) if _cuda(device) else 1
    ws = [pool.view((n, k), i) for i in range(copies)]
    b = _randn((n,), dtype, device, 2) if bias else None
    x = _randn((m, k), dtype, device)

    def fn():
        y = None
        for i in range(calls):
            y = F.linear(x, ws[i % copies], b)
        return y
    return fn, calls, copies


def attention_dims(batch_heads: int, queries: int, gqa: bool):
    """(batch, kv_heads, group, new_tokens) that realise one (batch×KV heads, query rows) grid point."""
    b = 2 ** (int(math.log2(batch_heads)) // 2) if batch_heads > 0 else 1
    kv = max(1, batch_heads // b)
    return (b, kv, queries, 1) if gqa else (b, kv, 1, queries)


def attention(pool, batch_heads, queries, kv_len, head_dim, gqa, dtype, device):
    """From q [b, n, H, hd] (after RoPE) to the o-proj input [b, n, H·hd], as DecoderLayer.attention."""
    b, kv, grp, n = attention_dims(batch_heads, queries, gqa)
    H, hd, L, Lmax = kv * grp, head_dim, kv_len, kv_len + 16
    per_copy = 2 * b * kv * Lmax * hd * pool.buf.element_size()
    copies = copies_for_bytes(per_copy, device)
    calls = max(copies, MIN_STACK) if _cuda(device) else 1
    caches = [(pool.view((b, kv, Lmax, hd), 2 * i), pool.view((b, kv, Lmax, hd), 2 * i + 1))
              for i in range(copies)]
    q = _randn((b, n, H, hd), dtype, device)
    pos = torch.full((b,), L - n, dtype=torch.long, device=device)
    mask0 = causal_mask(pos, n, L)

    def one_engine(ck, cv):  # profiler.attention: native GQA, no mask (decode) / lower-right causal
        o = attention_kernels.engine_sdpa(q.transpose(1, 2), ck[:b, :, :L], cv[:b, :, :L])
        return o.transpose(1, 2).reshape(b, n, H * hd)

    def one(ck, cv):
        keys, vals = ck[:b, :, :L], cv[:b, :, :L]
        if grp == 1:
            qh, mask = q.transpose(1, 2), mask0
        else:
            qh = q.view(b, n, kv, grp, hd).permute(0, 2, 3, 1, 4).reshape(b, kv, grp * n, hd)
            mask = mask0.repeat(1, 1, grp, 1)
        o = F.scaled_dot_product_attention(qh, keys, vals, attn_mask=mask)
        o = o.transpose(1, 2) if grp == 1 else o.view(b, kv, grp, n, hd).permute(0, 3, 1, 2, 4)
        return o.reshape(b, n, H * hd)

    body = one_engine if attention_kernels.engine() else one

    def fn():
        y = None
        for i in range(calls):
            y = body(*caches[i % copies])
        return y
    return fn, calls, copies


def attention_verify(pool, new_tokens, batch_kv, group, kv_len, head_dim, dtype, device):
    """Grouped-query verification as DecoderLayer.attention runs it with engine kernels: q [b, n, KV·group,
    hd] (a transposed view) against exactly kv_len cached keys of KV heads, native GQA, lower-right
    causal, through profiler.attention's chosen backend."""
    b, kv, _, _ = attention_dims(batch_kv, 1, False)
    n, H, hd, L = new_tokens, kv * group, head_dim, kv_len
    copies = copies_for_bytes(2 * b * kv * (L + 16) * hd * pool.buf.element_size(), device)
    calls = max(copies, MIN_STACK) if _cuda(device) else 1
    caches = [(pool.view((b, kv, L + 16, hd), 2 * i), pool.view((b, kv, L + 16, hd), 2 * i + 1))
              for i in range(copies)]
    q = _randn((b, n, H, hd), dtype, device)

    def fn():
        y = None
        for i in range(calls):
            ck, cv = caches[i % copies]
            y = attention_kernels.engine_sdpa(q.transpose(1, 2), ck[:b, :, :L], cv[:b, :, :L])
        return y
    return fn, calls, copies


def _heads(width: int):
    hd = min(128, width)
    return max(1, width // hd), hd


def kv_write(pool, tokens, width, dtype, device):
    """Scatter k and v [b, n, KV, hd] (views of the QKV output) into the cache at the forward's
    positions (built once per forward, profiler.blocks.Step: not part of this operator)."""
    kvh, hd = _heads(width)
    b, n, Lmax = tokens, 1, 512
    copies = copies_for_bytes(2 * b * kvh * Lmax * hd * pool.buf.element_size(), device)
    calls = max(copies, ELEMENTWISE_CALLS) if _cuda(device) else 1
    caches = [(pool.view((b, kvh, Lmax, hd), 2 * i), pool.view((b, kvh, Lmax, hd), 2 * i + 1))
              for i in range(copies)]
    kv = _randn((b, n, 2 * kvh * hd), dtype, device)
    pos = torch.randint(0, Lmax - n, (b,), device=device)
    positions = pos[:, None] + torch.arange(n, device=device)  # the Step's, built once

    def one(ck, cv):
        k, v = kv.split([kvh * hd, kvh * hd], dim=-1)
        k, v = k.view(b, n, kvh, hd), v.view(b, n, kvh, hd)
        idx = positions[:, None, :, None].expand(b, kvh, n, hd)
        ck[:b].scatter_(2, idx, k.transpose(1, 2))
        cv[:b].scatter_(2, idx, v.transpose(1, 2))
        return ck

    def fn():
        for i in range(calls):
            one(*caches[i % copies])
    return fn, calls, copies


def _small(op, tokens, width, dtype, device, pool):
    """Norms, RoPE, activation, residual add, embedding, launch: fn over one set of activations."""
    x = _randn((tokens, width), dtype, device)
    if op == "rmsnorm":
        w = torch.ones(width, dtype=dtype, device=device)
        one = lambda: F.rms_norm(x, (width,), w, NORM_EPS)  # noqa: E731
    elif op == "layernorm":
        w, bb = torch.ones(width, dtype=dtype, device=device), _randn((width,), dtype, device, 3)
        one = lambda: F.layer_norm(x, (width,), w, bb, NORM_EPS)  # noqa: E731
    elif op in ("add", "launch"):
        y = _randn((tokens, width), dtype, device, 4)
        one = lambda: x + y  # noqa: E731
    elif op == "silu_mul":
        h = _randn((tokens, 2 * width), dtype, device, 5)

        def one():
            gate, up = h.chunk(2, dim=-1)
            return F.silu(gate) * up
    elif op == "relu":
        one = lambda: F.relu(x)  # noqa: E731
    elif op == "rope":
        heads, hd = _heads(width)
        xr = x.view(tokens, 1, heads, hd)
        cos, sin = rope_tables(hd, ROPE_MAX_CONTEXT, dtype, device)
        positions = torch.randint(0, ROPE_MAX_CONTEXT, (tokens, 1), device=device)
        c, s = cos[positions][:, :, None, :], sin[positions][:, :, None, :]  # the Step's rows, gathered once

        def one():
            return apply_rope(xr, c, s)
    elif op == "embed":
        table = pool.view((EMBED_VOCAB, width), 0) if pool.n >= EMBED_VOCAB * width else \
            _randn((EMBED_VOCAB, width), dtype, device)
        toks = torch.randint(0, EMBED_VOCAB, (tokens,), device=device)
        one = lambda: F.embedding(toks, table)  # noqa: E731
    else:
        raise ValueError(f"op={op!r} is not an operator")
    calls = ELEMENTWISE_CALLS if _cuda(device) else 1

    def fn():
        y = None
        for _ in range(calls):
            y = one()
        return y
    return fn, calls, 1


def build(op: str, sizes: dict, pool, dtype, device):
    """(fn, calls, copies) for one grid point of `op` (sizes: OperatorTable size columns)."""
    if op in ("gemm", "gemm_bias"):
        return gemm(pool, sizes["tokens"], sizes["n"], sizes["k"], op == "gemm_bias", dtype, device)
    if op in ("attention", "attention_gqa"):
        return attention(pool, sizes["batch_heads"], sizes["queries"], sizes["kv_len"], sizes["head_dim"],
                         op == "attention_gqa", dtype, device)
    if op == "kv_write":
        return kv_write(pool, sizes["tokens"], sizes["n"], dtype, device)
    if op == "attention_verify":
        return attention_verify(pool, sizes["tokens"], sizes["batch_heads"], sizes["queries"], sizes["kv_len"],
                                sizes["head_dim"], dtype, device)
    return _small(op, sizes["tokens"], max(sizes["n"], 1), dtype, device, pool)


def pool_elems_needed(op: str, sizes: dict) -> int:
    """Elements of the pool one grid point views (its largest single tensor, twice for caches)."""
    if op in ("gemm", "gemm_bias"):
        return sizes["n"] * sizes["k"]
    if op in ("attention", "attention_gqa"):
        b, kv, _, _ = attention_dims(sizes["batch_heads"], sizes["queries"], op == "attention_gqa")
        return 2 * b * kv * (sizes["kv_len"] + 16) * sizes["head_dim"]
    if op == "attention_verify":
        b, kv, _, _ = attention_dims(sizes["batch_heads"], 1, False)
        return 2 * b * kv * (sizes["kv_len"] + 16) * sizes["head_dim"]
    if op == "kv_write":
        kvh, hd = _heads(sizes["n"])
        return 2 * sizes["tokens"] * kvh * 512 * hd
    if op == "embed":
        return EMBED_VOCAB * sizes["n"]
    return 0


__all__ = ["Pool", "build", "pool_elems_needed", "attention_dims", "copies_for_bytes"]
