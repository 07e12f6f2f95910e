"""Compiled execution mode: each decoder layer (and the head) run through `torch.compile` (inductor's
fused Triton kernels: norm, rotary, residual add and SiLU·mul fused with their neighbours), then the
whole timed stack captured in one CUDA graph by profiler.timing — what vLLM and SGLang run by default.

Key assumptions: layers run in the engines' residual layout (`DecoderLayer.forward_residual`: the
previous layer's output is added to the residual stream inside this layer's input norm), so a layer
compiled alone fuses the same add + norm that a whole compiled model does, and a model is its compiled
layers back to back (`model_fn`, vLLM's piecewise compilation: one compiled graph shared by identical
layers). One compiled function per (layer shape, batch, new tokens, kv_len) — `dynamic=False`, so every
kernel is specialised to its shape as an engine's captured batch sizes are; the function takes the
layer as an argument, so distinct layer copies share one compiled graph (parameters are graph
inputs). `fullgraph=True`: a graph break would leave unfused eager code behind and the row would not be
what it says. Compile mode `default` (no autotuning) unless SPECPERF_COMPILE_MODE says
`max-autotune-no-cudagraphs`; inductor's own CUDA graphs are never used (the capture is ours, exactly as
in graph mode). With engine kernels (profiler.attention, the default) attention and the KV-cache write
are opaque custom ops between compiled pieces, as in vLLM. SPECPERF_COMPILE_ATTENTION=opaque keeps attention out of inductor (SDPA as an opaque
custom op, profiler.opaque_ops.opaque_sdpa), as vLLM's piecewise graphs split at their attention kernel;
`opaque-kv` also writes the KV cache through an in-place opaque op (profiler.opaque_ops.opaque_kv_write:
inlined, the write is functionalised into a whole-cache copy); `compiled` (the default with `plain`
kernels) lets inductor compile both, as gpt-fast does. Compiled artefacts go to TORCHINDUCTOR_CACHE_DIR (default ~/.cache/specperf/inductor)
so a resumed sweep does not recompile.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
ATTENTION_MODES = ("compiled", "opaque", "opaque-kv")
CACHE_DIR = Path.home() / ".cache" / "specperf" / "inductor"
COMPILE_LOG: list[dict] = []  # {"what", "seconds"} of every first (compiling) call, for the table's meta

_FUNCS: dict = {}


def compile_mode() -> str:
    """The torch.compile mode in use (SPECPERF_COMPILE_MODE, default 'default'); a one-line error if unknown."""
    m = os.environ.get("SPECPERF_COMPILE_MODE", "default")
    if m not in COMPILE_MODES:
        raise ValueError(f"SPECPERF_COMPILE_MODE={m!r} is not allowed; use {' or '.join(COMPILE_MODES)}")
    return m


def attention_mode() -> str:
    """Whether inductor compiles attention ('compiled', the default with plain kernels), calls it opaquely
    ('opaque') or also writes the KV cache through an opaque in-place op ('opaque-kv', the default with
    engine kernels, as vLLM runs attention and its cache write outside the compiled pieces)."""
    from .attention import engine
    # engine kernels: vLLM's piecewise scheme (attention and the KV write opaque) is the default
    m = os.environ.get("SPECPERF_COMPILE_ATTENTION", "opaque-kv" if engine() else "compiled")
    if m not in ATTENTION_MODES:
        raise ValueError(f"SPECPERF_COMPILE_ATTENTION={m!r} is not allowed; use {' or '.join(ATTENTION_MODES)}")
    return m


def setup_cache() -> str:
    """Point inductor's cache at CACHE_DIR unless the user already chose one; returns the directory."""
    d = os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE_DIR))
    Path(d).mkdir(parents=True, exist_ok=True)
    return d


def _layer_call(layer, h, residual, pos, kv_len, mask, step=None):
    return layer.forward_residual(h, residual, pos, kv_len, mask, step)


def _embed_call(head, tokens, pos):
    return head.prepare(tokens, pos)  # (embedding, Step): the per-forward work, once


def _logits_call(head, h, residual):
    return head.logits(residual + h)


def _whole_call(model, tokens, pos, kv_len, mask):
    h, step = model.head.prepare(tokens, pos)
    r = torch.zeros_like(h)
    for layer in model.layers:
        h, r = layer.forward_residual(h, r, pos, kv_len, mask, step)
    return model.head.logits(r + h)


def _compiled(fn):
    mode, attn = compile_mode(), attention_mode()
    from . import opaque_ops

    opaque_ops.OPAQUE_ATTENTION = attn in ("opaque", "opaque-kv")
    opaque_ops.OPAQUE_KV_WRITE = attn == "opaque-kv"
    key = (fn.__name__, mode, attn)
    if key not in _FUNCS:
        setup_cache()
        # each (shape, kv_len) is its own graph; the stacks of a sweep need more than dynamo's default 8
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 256)
        torch._dynamo.config.accumulated_cache_size_limit = max(
            torch._dynamo.config.accumulated_cache_size_limit, 1024)
        _FUNCS[key] = torch.compile(fn, mode=mode, dynamic=False, fullgraph=True)
    return _FUNCS[key]


def layer_fn(layer):
    """`call(h, residual, pos, kv_len, mask, step) -> (h, residual)` of `layer` through the shared
    compiled layer function (DecoderLayer.forward_residual)."""
    f = _compiled(_layer_call)
    return lambda h, residual, pos, kv_len=None, mask=None, step=None: f(layer, h, residual, pos, kv_len, mask,
                                                                         step)


def head_fn(head):
    """`call(tokens, pos)` of a Head as a compiled model runs it: the compiled embedding, then the
    compiled final add + norm + LM head over (embedding, zero residual)."""
    emb, lg = _compiled(_embed_call), _compiled(_logits_call)

    def call(tokens, pos):
        h, step = emb(head, tokens, pos)
        return lg(head, h, torch.zeros_like(h)), step
    return call


def model_fn(model, whole: bool = False):
    """`forward(tokens, pos, kv_len)` of a DecoderModel in compiled mode: its compiled embedding, its
    layers through the one shared compiled layer function, then the compiled final add + norm + LM
    head (the mask is built once, uncompiled, as in `DecoderModel.forward`). `whole=True` compiles
    the entire forward as one graph instead (fusion across layer boundaries too; compile time grows
    with depth) — the composition check uses it to measure what that fusion is worth."""
    from .attention import engine
    from .blocks import _aligned, causal_mask

    if whole:
        f = _compiled(_whole_call)
    else:
        emb, lay, lg = _compiled(_embed_call), _compiled(_layer_call), _compiled(_logits_call)

    def forward(tokens, pos, kv_len=None, uniform=False):
        n = tokens.shape[1]
        if uniform and engine():
            L, mask = (model.max_context if kv_len is None else min(int(kv_len), model.max_context)), None
        else:
            L = model.max_context if kv_len is None else _aligned(int(kv_len), model.max_context)
            mask = causal_mask(pos, n, L)
        if whole:
            return f(model, tokens, pos, L, mask)
        h, step = emb(model.head, tokens, pos)
        r = torch.zeros_like(h)
        for layer in model.layers:
            h, r = lay(layer, h, r, pos, L, mask, step)
        return lg(model.head, h, r)
    return forward


def warm(fn, device, what: str) -> float:
    """Call `fn()` once (this compiles it), wait for the device, log and return the seconds it took."""
    t0 = time.perf_counter()
    fn()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    s = time.perf_counter() - t0
    COMPILE_LOG.append({"what": what, "seconds": round(s, 2), "compile_mode": compile_mode(),
                        "attention": attention_mode()})
    return s
