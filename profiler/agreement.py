"""Teacher-forced agreement between a draft and a target (both profiler.blocks.DecoderModel, e.g.
from profiler.specloop_weights.load_decoder): the target generates a continuation of every prompt
(greedy at temperature 0, else one sample at the temperature), then both models read prompt +
continuation in one forward each, and per generated token we keep whether the draft's top token is
the target's (greedy_match), the target token's rank among the draft's logits, and at temperature
T > 0 the acceptance probability Σ_v min(p_v, q_v) of speculative sampling (Leviathan et al. 2023,
Theorem 3.5: 1 − total variation). calibration.agreement turns these into a record.

Key assumption: as in SpecLoop, a prompt of c + 1 tokens caches c and treats the last as the
pending token, so generated token 0 is the target's prediction after the whole prompt; prompts of
equal length are batched, others run one length at a time.
"""
from __future__ import annotations

import numpy as np
import torch

from .blocks import kv_aligned


def _fwd(model, tokens, pos):
    return model(tokens, pos, None)


@torch.inference_mode()
def continuation(target, prompts: torch.Tensor, new_tokens: int, temperature: float = 0.0, seed: int = 0) -> torch.Tensor:
    """[b, new_tokens] tokens the target emits after each prompt (KV-cached decoding)."""
    b, c1 = prompts.shape
    dev = prompts.device
    target.reset_cache(b, kv_aligned(c1 + new_tokens + 1))
    gen = torch.Generator(device=dev).manual_seed(seed)
    logits = _fwd(target, prompts, torch.zeros(b, dtype=torch.long, device=dev))[:, -1]
    pos = torch.full((b,), c1, dtype=torch.long, device=dev)
    out = torch.empty(b, new_tokens, dtype=torch.long, device=dev)
    for i in range(new_tokens):
        if temperature > 0:
            tok = torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1, generator=gen)[:, 0]
        else:
            tok = logits.argmax(-1)
        out[:, i] = tok
        if i + 1 < new_tokens:
            logits = _fwd(target, tok[:, None], pos)[:, -1]
            pos += 1
    return out


@torch.inference_mode()
def teacher_forced(draft, target, prompts: torch.Tensor, new_tokens: int, temperature: float = 0.0,
                   seed: int = 0, max_rank: int = 8, chunk: int = 16, cont: torch.Tensor | None = None) -> dict:
    """Per prompt and generated token: greedy_match [b, N] (0/1), draft_rank [b, N] (−1 beyond
    max_rank), accept_prob [b, N] (NaN at temperature 0), and the continuation itself (`cont`: one
    made earlier by `continuation` with the same temperature, reused for another draft)."""
    b, c1 = prompts.shape
    cont = continuation(target, prompts, new_tokens, temperature, seed) if cont is None else cont.to(prompts.device)
    new_tokens = cont.shape[1]
    seq = torch.cat([prompts, cont], dim=1)
    L = seq.shape[1]
    match = np.empty((b, new_tokens), dtype=np.int8)
    rank = np.empty((b, new_tokens), dtype=np.int64)
    prob = np.full((b, new_tokens), np.nan)
    for m in (draft, target):
        m.reset_cache(min(chunk, b), kv_aligned(L + 1))
    for a in range(0, b, chunk):
        s = seq[a:a + chunk]
        zero = torch.zeros(s.shape[0], dtype=torch.long, device=s.device)
        sl = slice(c1 - 1, L - 1)  # logits that predict generated tokens 0..N−1
        q = _fwd(draft, s[:, :-1], zero)[:, sl].float()
        tgt = cont[a:a + chunk]
        q_t = q.gather(2, tgt[..., None])[..., 0]
        hit = q.argmax(-1) == tgt
        greater = (q > q_t[..., None]).sum(-1)
        r = torch.where(hit, torch.zeros_like(greater), greater.clamp(min=1))
        match[a:a + chunk] = hit.cpu().numpy()
        rank[a:a + chunk] = torch.where(r < max_rank, r, torch.full_like(r, -1)).cpu().numpy()
        if temperature > 0:
            p = _fwd(target, s[:, :-1], zero)[:, sl].float()
            pp, qq = torch.softmax(p / temperature, -1), torch.softmax(q / temperature, -1)
            prob[a:a + chunk] = torch.minimum(pp, qq).sum(-1).clamp(0.0, 1.0).cpu().numpy()
    return {"greedy_match": match, "draft_rank": rank, "accept_prob": prob, "continuation": cont.cpu().numpy()}


def run_prompts(draft, target, prompts, new_tokens: int, temperature: float = 0.0, seed: int = 0,
                max_rank: int = 8, device="cpu") -> dict:
    """teacher_forced over [(id, domain, token list)], batching prompts of equal length; returns
    per-prompt lists (ids, domains, greedy_match, draft_rank, accept_prob) in the input order."""
    by_len: dict = {}
    for i, (_, _, toks) in enumerate(prompts):
        by_len.setdefault(len(toks), []).append(i)
    res: dict = {}
    for n, idx in sorted(by_len.items()):
        x = torch.tensor([prompts[i][2] for i in idx], dtype=torch.long, device=device)
        out = teacher_forced(draft, target, x, new_tokens, temperature, seed + n, max_rank)
        for j, i in enumerate(idx):
            res[i] = (out["greedy_match"][j], out["draft_rank"][j], out["accept_prob"][j])
    order = range(len(prompts))
    return {"ids": [prompts[i][0] for i in order], "domains": [prompts[i][1] for i in order],
            "greedy_match": [res[i][0] for i in order], "draft_rank": [res[i][1] for i in order],
            "accept_prob": [res[i][2] for i in order]}
