"""Measure one job of a sweep: a decoder layer, the LM head or the per-iteration overhead, at one
(batch, context) for several new-token counts and modes, yielding one Timing per point.

Key assumption (L2 residency): a whole model never finds a layer's weights in L2 when that layer
runs, because the other layers evicted them. So small layers are timed as a stack of `copies`
distinct layers (each with its own weights and KV cache) whose weights total ≥ STACK_BYTES, and
the stack's time is divided by its length (≥ MIN_STACK calls, copies repeated in turn). Rotating inputs would not help (the weights are what gets
re-read); a stack also reproduces the back-to-back launch pattern of a real forward.
Compiled mode times the same stack with every call through torch.compile (profiler.compiled), in the
engines' residual layout, captured in one CUDA graph like graph mode; the overhead's verification work
is captured uncompiled in both.
"""
from __future__ import annotations

import functools
import gc

import torch

from specperf.perfmodel.latency.table import head_shape_key, layer_shape_key
from specperf.perfmodel.specs.models import ModelSpec

from . import attention, compiled
from .blocks import DecoderLayer, Head, _aligned, cache_bytes, causal_mask, kv_aligned, stack_bytes
from .env import layer_work
from .timing import Timing, capture_graph, is_cuda, time_host, time_interleaved, time_module

STACK_BYTES = 256 * 2**20  # ≈ 5× the 50 MB L2 of an H100 (NVIDIA H100 whitepaper); 40 MB on A100
MAX_COPIES = 16
MIN_STACK = 4  # ≥ 4 layer calls per timed graph replay: the replay's own launch gap (~µs) is /4
STACK_S = 2e-3  # ... unless one layer call already takes STACK_S / MIN_STACK (gap < 0.3 %)
HBM_EST_BYTES_PER_S = 3.0e12  # rough H100 rate, only to size stacks (datasheet 3.35 TB/s)
FLOPS_EST_PER_S = 6.0e14  # rough achieved fp16 rate, only to size stacks
CACHE_BUDGET_FRACTION = 0.5  # stacks' KV caches use at most half of the free device memory


def is_oom(e: BaseException) -> bool:
    """Whether `e` is the device (or host) running out of memory, which a sweep skips and records."""
    msg = str(e).lower()
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in msg or "alloc_failed" in msg


def free_memory(device) -> None:
    """Collect garbage and hand the caching allocator's free blocks back (after a job or an OOM)."""
    gc.collect()
    if is_cuda(device):
        torch.cuda.empty_cache()


def copies_to_fill(weight_bytes: int) -> int:
    """Distinct copies of a block with `weight_bytes` of weights that total ≥ STACK_BYTES (≤ MAX_COPIES)."""
    return max(1, min(MAX_COPIES, -(-STACK_BYTES // max(weight_bytes, 1))))


def copies_for(spec: ModelSpec, batch: int, max_context: int, tp: int, device, copies=None) -> int:
    if copies:
        return int(copies)
    if not is_cuda(device):
        return 1
    k = copies_to_fill(stack_bytes(spec, tp))
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    per = cache_bytes(spec, batch, max_context, tp) + stack_bytes(spec, tp)
    return max(1, min(k, int(CACHE_BUDGET_FRACTION * free // max(per, 1))))


def stack_length(spec, tp, batch, context) -> int:
    """Calls per timed stack: MIN_STACK, fewer for layers so slow (> STACK_S) the gap is negligible."""
    flops, nbytes = layer_work(spec, batch, 1, context, tp)
    t_est = max(nbytes / HBM_EST_BYTES_PER_S, flops / FLOPS_EST_PER_S)
    return int(max(1, min(MIN_STACK, -(-STACK_S // max(t_est, 1e-9)))))


def layer_points(spec, tp, batch, context, new_tokens, modes, dtype, device, copies=None):
    """Yield ((n, mode), Timing per layer) for one layer shape at (batch, context); eager points of all
    new-token counts are timed interleaved (timing.time_interleaved: host noise hits them alike)."""
    max_ctx = kv_aligned(context + max(new_tokens))
    k = copies_for(spec, batch, max_ctx, tp, device, copies)
    layers = [DecoderLayer(spec, batch, max_ctx, dtype, device, tp, seed=i) for i in range(k)]
    stack = [layers[i % k] for i in range(max(k, stack_length(spec, tp, batch, context)))]
    pos = torch.full((batch,), context, dtype=torch.long, device=device)
    gen = torch.Generator(device=torch.device(device)).manual_seed(7)
    eager_fns: dict = {}
    try:
        for n in new_tokens:
            x = torch.randn(batch, n, spec.d_model, generator=gen, device=device,
                            dtype=layers[0].w_qkv.dtype)

            # the mask is built once per forward in a whole model (DecoderModel): keep it outside
            # (engine kernels: no mask, every sequence at `context` — profiler.attention)
            mask = None if attention.engine() else causal_mask(pos, n, _aligned(context + n, max_ctx))

            # positions and RoPE cos/sin: once per forward, as the engines build them (Step; timed
            # with the head), shared by every layer of the stack
            step = layers[0].step(pos, n)

            def fn(x=x, n=n, mask=mask, step=step, calls=stack):
                y = x
                for layer in calls:
                    y = layer(y, pos, context + n, mask, step)
                return y

            def fn_residual(x=x, n=n, mask=mask, step=step, calls=()):  # compiled: the engines' residual layout
                h, r = x, torch.zeros_like(x)
                for call in calls:
                    h, r = call(h, r, pos, context + n, mask, step)
                return h

            eager_fns[n] = fn
            with torch.inference_mode():
                for mode in modes:
                    if mode == "eager":
                        continue  # timed below, all new-token counts interleaved
                    f = fn
                    if mode == "compiled":  # the same stack, each call through the compiled layer function
                        calls = [compiled.layer_fn(layer) for layer in stack]
                        f = functools.partial(fn_residual, calls=calls)
                        compiled.warm(f, device, f"layer {layer_shape_key(spec)} tp{tp} b{batch} n{n} ctx{context}")
                    yield (n, mode), time_module(f, device, mode).scaled(1.0 / len(stack))
        if "eager" in modes:
            with torch.inference_mode():
                ts = time_interleaved(list(eager_fns.values()), device)
            for n, t in zip(eager_fns, ts):
                yield (n, "eager"), t.scaled(1.0 / len(stack))
    finally:
        del layers


def head_points(spec, tp, batch, new_tokens, modes, dtype, device, copies=None):
    """Yield ((n, mode), Timing) of embedding + final norm + LM head over n new tokens."""
    if copies is None and is_cuda(device):
        k = copies_to_fill(spec.lm_head_weight_bytes // tp)
    else:
        k = copies or 1
    heads = [Head(spec, max_context=min(spec.max_positions, 64), dtype=dtype, device=device, tp=tp,
                  seed=i) for i in range(k)]
    pos = torch.zeros((batch,), dtype=torch.long, device=device)
    try:
        for n in new_tokens:
            toks = torch.randint(0, spec.vocab, (batch, n), device=device)

            def fn(toks=toks, calls=heads):
                return [h(toks, pos) for h in calls]

            with torch.inference_mode():
                for mode in modes:
                    f = fn
                    if mode == "compiled":
                        f = functools.partial(fn, calls=[compiled.head_fn(h) for h in heads])
                        compiled.warm(f, device, f"lm_head {head_shape_key(spec)} tp{tp} b{batch} n{n}")
                    yield (n, mode), time_module(f, device, mode).scaled(1.0 / k)
    finally:
        del heads


def overhead_points(spec, batch, gammas, modes, dtype, device):
    """Yield ((γ+1, mode), Timing): greedy verification work outside forwards, then one host sync.

    argmax over the vocabulary of b×(γ+1) logits, compare with the γ draft tokens, count accepted
    (cumprod of matches), pick the bonus token, and copy the counts to the host (the sync every
    engine does to learn how far to roll back).
    """
    from .blocks import torch_dtype

    dt = torch_dtype(dtype)
    for g in gammas:
        logits = torch.randn(batch, g + 1, spec.vocab, device=device, dtype=dt)
        draft = torch.randint(0, spec.vocab, (batch, g), device=device)

        def work(logits=logits, draft=draft, g=g):
            tgt = logits.argmax(dim=-1)
            n_acc = (tgt[:, :g] == draft).to(torch.int32).cumprod(dim=-1).sum(dim=-1)
            bonus = tgt.gather(1, n_acc[:, None].long())
            return torch.stack([n_acc.long(), bonus[:, 0]])

        with torch.inference_mode():
            for mode in modes:
                if mode in ("graph", "compiled"):  # engines compile the model, not the sampler
                    graph, out = capture_graph(work, device)

                    def fn(graph=graph, out=out):
                        graph.replay()
                        return out.cpu()
                else:
                    def fn(work=work):
                        return work().cpu()
                yield (g + 1, mode), time_host(fn, device)


__all__ = ["layer_points", "head_points", "overhead_points", "copies_for", "Timing", "STACK_BYTES", "is_oom",
           "free_memory"]
