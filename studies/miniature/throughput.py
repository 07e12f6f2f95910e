"""Measured tokens/s of real speculative decoding with trained weights, batch 1: specperf's own
loop (profiler.specloop, greedy verification, CUDA graphs or eager) and Hugging Face transformers'
assisted generation (`generate(assistant_model=…)`) as an independent client.

Key assumptions: tokens/s = tokens emitted / wall time of the timed iterations, summed over
several held-out prompts (each prompt's prefill and warm-up iterations are not timed in the loop;
in HF the whole `generate` call is timed, its prefill included, as a client sees it). The loop's
static cache is sized to what the run needs and attention spans all of it every step (as a
CUDA-graph engine with a fixed cache span), so the context a prediction should use is that span.
HF runs a constant lookahead (num_assistant_tokens_schedule="constant", no confidence cut-off) and
ignores end-of-sequence, so every run proposes exactly γ tokens per iteration and decodes
`new_tokens` tokens; iterations are counted as the target's forward calls.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from specperf.profiler.specloop import SpecLoop

from .acceptance import resize, span


def specloop_run(draft, target, prompts: torch.Tensor, gamma: int, iterations: int, mode: str,
                 device="cuda", warmup: int = 2) -> dict:
    """One (draft, γ, mode) point over every prompt (batch 1 each); γ = 0 is the target alone."""
    c = prompts.shape[1] - 1
    cache = span(c, gamma, iterations + warmup)
    models = (target,) if draft is None else (draft, target)
    resize(models, 1, cache)
    loop = SpecLoop(draft if gamma > 0 else None, target, 1, gamma, mode=mode, device=device)
    loop.prepare()
    times, toks, ctx = [], [], []
    for k in range(prompts.shape[0]):
        loop.reset(c, prompts[k:k + 1])
        loop.run(warmup)
        start = int(loop.pos[0])
        log = loop.run(iterations)
        times.append(log.iteration_s)
        toks.append(log.tokens[:, 0])
        ctx.append(start + np.concatenate([[0], np.cumsum(log.tokens[:-1, 0])]))
    t, n = np.concatenate(times), np.concatenate(toks)
    return {"mode": mode, "gamma": gamma, "prompts": int(prompts.shape[0]), "iterations": int(t.size),
            "cache_span": cache, "measured_tok_s": float(n.sum() / t.sum()),
            "measured_iteration_s": float(t.mean()), "median_iteration_s": float(np.median(t)),
            "tokens_per_iteration": float(n.mean()), "mean_context": float(np.concatenate(ctx).mean()),
            "accepted": (n - 1).tolist()}


# ---- Hugging Face assisted generation --------------------------------------------------------------
def load_hf(directory, device, dtype=torch.bfloat16):
    from transformers import LlamaForCausalLM

    m = LlamaForCausalLM.from_pretrained(str(directory))  # dtype cast below: kwarg names differ across versions
    m = m.to(device=device, dtype=dtype).eval()
    m.generation_config.eos_token_id = None  # decode exactly new_tokens, as specperf's loop does
    m.generation_config.pad_token_id = 2
    return m


class _Counter:
    def __init__(self, module):
        self.n = 0
        self.h = module.register_forward_pre_hook(self._hook)

    def _hook(self, *_):
        self.n += 1


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def hf_run(target, draft, prompts: torch.Tensor, gamma: int, new_tokens: int, device="cuda", warmup: bool = True) -> dict:
    """Greedy assisted generation (draft=None, γ=0: the target alone), one prompt at a time; with
    `warmup`, one untimed 8-token generate first (callers that warm up themselves pass False)."""
    kw = dict(max_new_tokens=new_tokens, do_sample=False, pad_token_id=2)
    if draft is not None:
        gc = draft.generation_config
        gc.num_assistant_tokens, gc.num_assistant_tokens_schedule = gamma, "constant"
        if hasattr(gc, "assistant_confidence_threshold"):
            gc.assistant_confidence_threshold = 0.0
        kw["assistant_model"] = draft
    ct, cd = _Counter(target), (_Counter(draft) if draft is not None else None)
    try:
        if warmup:
            target.generate(prompts[:1].to(device), **dict(kw, max_new_tokens=min(8, new_tokens)))
        ct.n = 0
        if cd:
            cd.n = 0
        wall, made = [], []
        for k in range(prompts.shape[0]):
            x = prompts[k:k + 1].to(device)
            _sync(device)
            t0 = time.perf_counter()
            out = target.generate(x, **kw)
            _sync(device)
            wall.append(time.perf_counter() - t0)
            made.append(int(out.shape[1] - x.shape[1]))
    finally:
        ct.h.remove()
        if cd:
            cd.h.remove()
    w, n = float(np.sum(wall)), int(np.sum(made))
    iters = ct.n
    return {"mode": "hf", "gamma": gamma, "prompts": int(prompts.shape[0]), "new_tokens": new_tokens,
            "tokens": n, "wall_s": w, "measured_tok_s": n / w, "target_forwards": iters,
            "draft_forwards": cd.n if cd else 0, "iterations": iters,
            "measured_iteration_s": w / iters, "tokens_per_iteration": n / iters,
            "mean_context": float(prompts.shape[1] + new_tokens / 2)}
