"""Real acceptance of a trained draft against the trained target: greedy acceptance traces from
specperf's own speculative-decoding loop (profiler.specloop, real greedy verification), acceptance
under sampling at temperature T = 1 with standard rejection sampling (Leviathan et al. 2023,
Algorithm 1), acceptance by position, and the trace files `specperf calibrate acceptance` reads.

Key assumption: an iteration's accepted count is the leading run of accepted drafts (what every
engine keeps); α_i = P(draft i accepted | drafts < i accepted) = N(accepted ≥ i) / N(accepted ≥ i−1)
over all iterations of all sequences, which is what calibration's per-position fit estimates too.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from specperf.profiler.blocks import kv_aligned
from specperf.profiler.specloop import SpecLoop


def span(context: int, gamma: int, iterations: int) -> int:
    """Static cache slots a decode of `iterations` iterations from `context` cached tokens needs."""
    return kv_aligned(context + iterations * (gamma + 1) + 2)


def resize(models, batch: int, max_context: int) -> None:
    for m in models:
        m.reset_cache(batch, max_context)


def greedy_trace(draft, target, prompts: torch.Tensor, gamma: int, iterations: int, mode: str = "eager",
                 device="cpu") -> np.ndarray:
    """Accepted counts [iterations, n_prompts] of real greedy speculative decoding, all prompts as one
    batch (each sequence verified independently; the batch only shares the forwards)."""
    b, c1 = prompts.shape
    resize((draft, target), b, span(c1 - 1, gamma, iterations))
    loop = SpecLoop(draft, target, b, gamma, mode=mode, device=device)
    loop.prepare()
    loop.reset(c1 - 1, prompts)
    log = loop.run(iterations)
    return log.tokens - 1


@torch.no_grad()
def sampling_trace(draft, target, prompts: torch.Tensor, gamma: int, iterations: int, seed: int = 0,
                   temperature: float = 1.0) -> np.ndarray:
    """Accepted counts [iterations, n_prompts] of speculative sampling at `temperature` (eager):
    draft tokens d_i ~ q_i, accepted while r_i < p_i(d_i)/q_i(d_i), the first rejected position
    resampled from norm(max(0, p − q)), a bonus token from p after γ acceptances."""
    b, c1 = prompts.shape
    c = c1 - 1
    dev = prompts.device
    resize((draft, target), b, span(c, gamma, iterations))
    gen = torch.Generator(device=dev).manual_seed(seed)
    zero = torch.zeros(b, dtype=torch.long, device=dev)
    target(prompts[:, :c], zero, None)
    draft(prompts[:, :c], zero, None)
    prev, last = prompts[:, c - 1].clone(), prompts[:, c].clone()
    pos = torch.full((b,), c, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)
    out = np.empty((iterations, b), dtype=np.int64)
    probs = lambda logits: torch.softmax(logits.float() / temperature, dim=-1)  # noqa: E731
    for it in range(iterations):
        logits = draft(torch.stack([prev, last], dim=1), pos - 1, None)[:, -1]  # catch-up, as SpecLoop
        qs, ds = [], []
        for i in range(gamma):
            q = probs(logits)
            d = torch.multinomial(q, 1, generator=gen)[:, 0]
            qs.append(q), ds.append(d)
            if i < gamma - 1:
                logits = draft(d[:, None], pos + 1 + i, None)[:, -1]
        drafts = torch.stack(ds, dim=1)  # [b, γ]
        p = probs(target(torch.cat([last[:, None], drafts], dim=1), pos, None))  # [b, γ+1, V]
        q = torch.stack(qs, dim=1)  # [b, γ, V]
        pd = p[:, :gamma].gather(2, drafts[..., None])[..., 0]
        qd = q.gather(2, drafts[..., None])[..., 0]
        r = torch.rand(b, gamma, generator=gen, device=dev)
        ok = (r * qd < pd).long()  # r < p/q without dividing by q
        n = ok.cumprod(dim=1).sum(dim=1)  # leading run
        nc = n.clamp(max=gamma - 1)
        resid = (p[rows, nc] - q[rows, nc]).clamp(min=0)
        resid = torch.where(resid.sum(-1, keepdim=True) > 0, resid, p[rows, nc])
        final = torch.where((n == gamma)[:, None], p[:, gamma], resid)
        new = torch.multinomial(final / final.sum(-1, keepdim=True), 1, generator=gen)[:, 0]
        before = drafts.gather(1, (n - 1).clamp(min=0)[:, None])[:, 0]
        prev = torch.where(n > 0, before, last)
        last = new
        pos = pos + n + 1
        out[it] = n.cpu().numpy()
    return out


def alpha_by_position(accepted: np.ndarray, gamma: int) -> list[float]:
    """α_i for i = 1..γ from accepted counts (NaN where no iteration reached position i)."""
    a = np.asarray(accepted).ravel()
    reach = [(a >= i).sum() for i in range(gamma + 1)]
    return [float(reach[i] / reach[i - 1]) if reach[i - 1] else float("nan") for i in range(1, gamma + 1)]


def tokens_per_iteration(accepted: np.ndarray, gamma: int) -> float:
    """Observed mean tokens per iteration at lookahead `gamma` (counts truncated at γ, + bonus)."""
    return float(np.minimum(np.asarray(accepted), gamma).mean() + 1.0)


def within_horizon(accepted: np.ndarray, horizon: int) -> np.ndarray:
    """[iterations, sequences] mask: iterations that start before `horizon` tokens were generated."""
    a = np.asarray(accepted)
    start = np.cumsum(a + 1, axis=0) - (a + 1)  # tokens generated before each iteration
    return start < horizon


def expected_tokens(alpha_by_position, gamma: int) -> float:
    """E = 1 + Σ_{k=1..γ} Π_{i≤k} α_i (positions beyond the list repeat the last rate)."""
    a = list(alpha_by_position)
    e, prod = 1.0, 1.0
    for k in range(gamma):
        prod *= a[min(k, len(a) - 1)]
        e += prod
    return e


def write_trace(path, accepted: np.ndarray, gamma: int, context: int, mask=None) -> Path:
    """Per-iteration CSV for `specperf calibrate acceptance` (gamma, accepted, sequence, iteration);
    with `mask` [iterations, sequences], only the iterations it marks."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["gamma", "accepted", "batch", "context", "sequence", "iteration"])
        its, seqs = accepted.shape
        for s in range(seqs):
            for i in range(its):
                if mask is None or mask[i, s]:
                    w.writerow([gamma, int(accepted[i, s]), 1, context, s, i])
    return p
