"""Training of the EAGLE-style head of profiler.specloop_tree on a miniature random-weight target
(issue 28), in seconds: a target whose next token is learnable (`damp_residual`), data from its own
forwards (`training_data`), fc solved by least squares of EAGLE's feature regression
(`fit_projection`), then Adam on EAGLE's loss (`train_head`) kept only if a held-out sequence agrees
at least as often.

Why: a random-weight target's final hidden state is a chaotic function of the whole context (16
layers whose residual writes dwarf the embedding), so its next token is unpredictable from
(x_t, f_{t−1}); the head trained on it learned nothing on the GPU (top-1 agreement 0.000, 1.005 tokens
per iteration, _gpu/r1). Cross-entropy alone on a few thousand tokens memorises them (training
accuracy 1.0, held-out 0.0 on the CPU), and Adam moves an fc entry by at most ~lr per step, so it
cannot reach fc ≈ [I, 0] in a few hundred steps. Acceptance is never planted: the head is fitted to
the target's forwards and its acceptance measured by running the loop.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .blocks import DecoderModel, _norm
from .specloop_tree import EagleHead, block, causal, greedy_reference, target_forward


def damp_residual(model: DecoderModel, scale: float) -> None:
    """Scale every layer's residual writes (o_proj, down_proj and their biases) by `scale`, in place:
    the final hidden state becomes the token's embedding plus a small context-dependent part, so the
    next token is mostly a (learnable) function of the current one and partly of the context — a
    random-weight target whose text a head can learn in seconds (scripts/hf_assisted_check.py's
    `tail_scale`, applied to every layer). Shapes, and so every timing, are unchanged."""
    with torch.no_grad():
        for layer in model.layers:
            for w in (layer.w_o, layer.b_o, layer.w_down, layer.b_down):
                if w is not None:
                    w.mul_(scale)


def training_data(target: DecoderModel, n_greedy: int, greedy_len: int, n_random: int, random_len: int,
                  seed: int = 0):
    """(tokens [1, n], target features [1, n, d], target argmax [1, n]) per sequence, shuffled:
    `n_greedy` greedy continuations of `greedy_len` tokens (after 8 random prompt tokens; the text the
    head drafts in the loop) and `n_random` sequences of `random_len` random tokens (labels: the
    target's argmax, one forward each — cheap, and they cover the vocabulary)."""
    dev = target.head.embed_w.device
    g = torch.Generator(device="cpu").manual_seed(seed)
    data = []
    with torch.no_grad():
        for i in range(n_greedy + n_random):
            if i < n_greedy:
                prompt = torch.randint(0, target.spec.vocab, (1, 8), generator=g).to(dev)
                x = torch.cat([prompt[0], torch.tensor(greedy_reference(target, prompt, greedy_len), device=dev)])[None]
            else:
                x = torch.randint(0, target.spec.vocab, (1, random_len), generator=g).to(dev)
            s = torch.arange(x.shape[1], device=dev)
            logits, feats = target_forward(target, x, s, s, causal(s, target.max_context, dev))
            data.append((x, feats, logits.argmax(-1)))
    return [data[i] for i in torch.randperm(len(data), generator=g).tolist()]  # interleave the two kinds


# EAGLE's objective (Li et al. 2024, arXiv:2401.15077): L = v_w·L_reg + p_w·L_cls, L_reg the Smooth L1 loss
# between the head's feature and the target's next feature, L_cls the cross-entropy of the tokens through the
# shared LM head; SafeAILab/EAGLE eagle/train/main.py: nn.SmoothL1Loss, "v_w": 1.0, "p_w": 0.1 (its L_cls is
# against the target's softmax; here against its argmax, what greedy acceptance checks).
W_CLS = 0.1


def fit_projection(target: DecoderModel, head: EagleHead, data, ridge: float = 1e-3) -> None:
    """Initialise the head for training: its decoder layer's residual writes (o_proj, down_proj) at
    zero, so the layer starts as the identity (as Fixup/ReZero initialise residual branches), and fc by
    ridge least squares fc·[e(x_t); f_{t−1}] ≈ f_t over `data` — the linear part of EAGLE's feature
    regression, solved exactly (Adam needs ~1/lr steps to move an entry by 1; this takes one solve).
    The ridge is relative to the Gram matrix's mean diagonal. fp32, no TF32."""
    dev, d = head.fc.device, target.spec.d_model
    gram = torch.zeros(2 * d, 2 * d, device=dev)
    cross = torch.zeros(2 * d, d, device=dev)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            for x, feats, _ in data:
                e = target.head.embed(x[:, 1:], x.new_zeros(1))[0].float()
                z = torch.cat([e, feats[0, :-1].float()], dim=-1)
                gram += z.T @ z
                cross += z.T @ feats[0, 1:].float()
            gram += ridge * gram.diagonal().mean() * torch.eye(2 * d, device=dev)
            w = torch.linalg.solve(gram, cross).T  # (d, 2d)
            head.fc.data.copy_(w.to(head.fc.dtype))
            for t in (head.layer.w_o, head.layer.b_o, head.layer.w_down, head.layer.b_down):
                if t is not None:
                    t.zero_()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def train_head(target: DecoderModel, head: EagleHead, data, steps: int, lr: float = 1e-3, max_s: float | None = None):
    """Fit the head to `data` (training_data) with EAGLE's loss, in fp32 (a copy of the head's
    weights and of the target's final norm / LM head; fp16 gradients of a 32000-way softmax underflow),
    Adam; cast back to the head's dtype at the end. Stops after `steps` or `max_s` seconds. Returns
    {"accuracy": top-1 agreement with the target over the last len(data) steps, "steps", "loss", "train_s"}."""
    dev, dt = head.fc.device, head.fc.dtype
    spec = target.spec
    th = target.head
    norm_w = th.norm_w.detach().float()
    norm_b = None if th.norm_b is None else th.norm_b.detach().float()
    head_w = th.head_w.detach().float()
    proj_out = None if th.proj_out is None else th.proj_out.detach().float()
    head.layer.float()
    fc = head.fc.detach().float().requires_grad_(True)
    params = [fc] + [p_ for p_ in head.layer.parameters()]
    for p_ in params[1:]:
        p_.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    t0, done, loss_v, window = time.perf_counter(), 0, float("nan"), []  # window: (hits, tokens) of the last pass
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True  # training only; the fp16 forwards timed later are unaffected
    try:
        for step in range(steps):
            if max_s is not None and time.perf_counter() - t0 > max_s:
                break
            x, feats, y = data[step % len(data)]
            n = x.shape[1] - 1
            s = torch.arange(1, n + 1, device=dev)
            with torch.enable_grad():
                e = th.embed(x[:, 1:], s[:1]).float()
                inp = F.linear(torch.cat([e, feats[:, :-1].float()], dim=-1), fc)
                hid = block(head.layer, inp, s, s, causal(s, target.max_context, dev))
                z = _norm(spec, hid, norm_w, norm_b)
                lg = F.linear(z if proj_out is None else F.linear(z, proj_out), head_w)
                loss = F.smooth_l1_loss(hid[0], feats[0, 1:].float()) + W_CLS * F.cross_entropy(lg[0], y[0, 1:])
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            for c in (head.layer.cache_k, head.layer.cache_v):  # the cache written this step leaves the graph
                c.detach_()
            done, loss_v = step + 1, float(loss.detach())
            window = (window + [(int((lg[0].argmax(-1) == y[0, 1:]).sum()), n)])[-len(data):]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for p_ in params[1:]:
            p_.requires_grad_(False)
        head.layer.to(dt)
        head.fc = torch.nn.Parameter(fc.detach().to(dt), requires_grad=False)
    acc = sum(h for h, _ in window) / max(sum(n for _, n in window), 1)
    return {"accuracy": acc, "steps": done, "loss": loss_v, "train_s": time.perf_counter() - t0}


def agreement(target: DecoderModel, head: EagleHead, seq) -> float:
    """Top-1 agreement of the head with the target over one (tokens, features, argmax) sequence, in
    the head's own dtype, as the loop runs it."""
    x, feats, y = seq
    s = torch.arange(1, x.shape[1], device=x.device)
    with torch.no_grad():
        lg, _ = head(x[:, 1:], feats[:, :-1], s, s, causal(s, target.max_context, x.device))
    return float((lg[0].argmax(-1) == y[0, 1:]).float().mean())


def fit_head(target: DecoderModel, head: EagleHead, data, heldout, steps: int, lr: float = 1e-4,
             max_s: float | None = None) -> dict:
    """fit_projection, then train_head; the Adam weights are kept only if the held-out sequence
    (not in `data`) agrees with the target at least as often as after the least-squares fit. Returns
    train_head's record plus both held-out agreements and which weights were kept."""
    fit_projection(target, head, data)
    a_lsq = agreement(target, head, heldout)
    saved = [head.fc.detach().clone()] + [p_.detach().clone() for p_ in head.layer.parameters()]
    r = train_head(target, head, data, steps, lr, max_s)
    a_adam = agreement(target, head, heldout)
    kept = "adam" if a_adam >= a_lsq else "least squares"
    if kept != "adam":
        head.fc = torch.nn.Parameter(saved[0], requires_grad=False)
        for p_, v in zip(head.layer.parameters(), saved[1:]):
            p_.data.copy_(v)
    return {**r, "heldout_agreement_lsq": a_lsq, "heldout_agreement_adam": a_adam, "kept": kept}
