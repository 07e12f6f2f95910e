"""Training the study's LLaMA-style models: a minimal PyTorch LLaMA whose parameter names are
Hugging Face's (so the state dict *is* an HF checkpoint), a token-budgeted AdamW training loop,
held-out perplexity, and export to `config.json` + `model.safetensors`.

Key assumptions: RMSNorm (ε = 1e-5), rotate-half RoPE with θ = 10000, SwiGLU, tied embeddings —
exactly what profiler.blocks and transformers' LlamaForCausalLM compute, so the exported weights
decode identically in specperf's loop and in Hugging Face; training runs in bf16 autocast with fp32
master weights; every model sees `tokens` training tokens drawn as random windows of the train
split (seeded), so drafts get the same token budget.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .family import RMS_EPS, ROPE_THETA, Shape


class Block(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        d, ff = s.d_model, s.d_ff
        self.input_layernorm = nn.RMSNorm(d, eps=RMS_EPS)
        self.post_attention_layernorm = nn.RMSNorm(d, eps=RMS_EPS)
        self.self_attn = nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self.self_attn, n, nn.Linear(d, d, bias=False))
        self.mlp = nn.Module()
        self.mlp.gate_proj, self.mlp.up_proj = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False)
        self.mlp.down_proj = nn.Linear(ff, d, bias=False)
        self.n_heads = s.n_heads

    def forward(self, x, cos, sin):
        b, n, d = x.shape
        h = self.input_layernorm(x)
        a = self.self_attn
        q, k, v = (p(h).view(b, n, self.n_heads, -1).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        q = (q * cos + _rotate_half(q) * sin).to(v.dtype)  # RoPE in fp32, attention in v's dtype
        k = (k * cos + _rotate_half(k) * sin).to(v.dtype)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + a.o_proj(o.transpose(1, 2).reshape(b, n, d))
        h = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class LM(nn.Module):
    """state_dict keys: model.embed_tokens.weight, model.layers.i.…, model.norm.weight (tied head)."""

    def __init__(self, s: Shape, vocab: int):
        super().__init__()
        self.shape, self.vocab = s, vocab
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(vocab, s.d_model)
        self.model.layers = nn.ModuleList(Block(s) for _ in range(s.n_layers))
        self.model.norm = nn.RMSNorm(s.d_model, eps=RMS_EPS)
        for name, p in self.named_parameters():
            if p.dim() == 2:  # GPT-2 style init; residual projections scaled by depth
                std = 0.02 / math.sqrt(2 * s.n_layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def rope(self, n: int, device):
        hd = self.shape.d_model // self.shape.n_heads
        inv = 1.0 / (ROPE_THETA ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
        f = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv)
        e = torch.cat([f, f], dim=-1)
        return e.cos(), e.sin()

    def forward(self, tokens):
        x = self.model.embed_tokens(tokens)
        cos, sin = self.rope(tokens.shape[1], tokens.device)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return F.linear(self.model.norm(x), self.model.embed_tokens.weight)


@dataclass(frozen=True)
class TrainConfig:
    tokens: int
    seq: int = 512
    batch: int = 64
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    seed: int = 0
    max_s: float = math.inf  # wall-clock cap (safety): stops early and says so

    @property
    def steps(self) -> int:
        return max(1, self.tokens // (self.seq * self.batch))


def _windows(data: torch.Tensor, n: int, seq: int, gen: torch.Generator):
    starts = torch.randint(0, data.numel() - seq - 1, (n,), generator=gen, device=gen.device)
    idx = starts[:, None] + torch.arange(seq + 1, device=data.device)
    w = data[idx].long()
    return w[:, :-1], w[:, 1:]


def train(model: LM, data: torch.Tensor, cfg: TrainConfig, log=print, teacher: LM | None = None) -> dict:
    """AdamW with linear warm-up and cosine decay; returns the training record. With `teacher`, the
    loss is distillation: cross-entropy against the teacher's next-token distribution (T = 1), i.e.
    forward KL(teacher ‖ model) up to the teacher's entropy, on the same windows."""
    dev = data.device
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    fused = dev.type == "cuda"
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95), fused=fused)
    steps, t0, losses, done = cfg.steps, time.perf_counter(), [], 0
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    for step in range(steps):
        w = min(1.0, (step + 1) / cfg.warmup_steps)
        cos = 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = cfg.lr * w * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * cos)
        x, y = _windows(data, cfg.batch, cfg.seq, gen)
        with amp:
            logits = model(x).float().view(-1, model.vocab)
            if teacher is None:
                loss = F.cross_entropy(logits, y.reshape(-1))
            else:
                with torch.no_grad():
                    soft = torch.softmax(teacher(x).float().view(-1, model.vocab), dim=-1)
                loss = F.cross_entropy(logits, soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done += 1
        if step % 50 == 0 or step == steps - 1:
            losses.append((step, float(loss.detach())))
            if step % 200 == 0:
                log(f"  {model.shape.name} step {step}/{steps} loss {losses[-1][1]:.3f} "
                    f"({time.perf_counter() - t0:.0f} s)")
        if time.perf_counter() - t0 > cfg.max_s:
            log(f"  {model.shape.name}: stopped at step {done}/{steps} by the {cfg.max_s:.0f} s cap")
            break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return {"steps": done, "planned_steps": steps, "tokens": done * cfg.batch * cfg.seq,
            "planned_tokens": steps * cfg.batch * cfg.seq, "wall_s": wall, "tokens_per_s": done * cfg.batch * cfg.seq / wall,
            "final_loss": losses[-1][1] if losses else math.nan, "loss_curve": losses, "config": cfg.__dict__,
            "recipe": "scratch" if teacher is None else "distill"}


@torch.no_grad()
def perplexity(model: LM, data: torch.Tensor, seq: int = 512, max_tokens: int = 262_144, batch: int = 32) -> float:
    """exp(mean next-token cross-entropy) over consecutive seq-long windows of the held-out stream."""
    n = min(data.numel() - 1, max_tokens) // seq
    if n < 1:
        raise ValueError(f"held-out stream of {data.numel()} tokens is shorter than one {seq}-token window")
    total, count = 0.0, 0
    amp = torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=data.device.type == "cuda")
    for i in range(0, n, batch):
        k = min(batch, n - i)
        idx = (torch.arange(k, device=data.device)[:, None] + i) * seq + torch.arange(seq + 1, device=data.device)
        w = data[idx].long()
        with amp:
            logits = model(w[:, :-1]).float()
        total += float(F.cross_entropy(logits.reshape(-1, model.vocab), w[:, 1:].reshape(-1), reduction="sum"))
        count += w[:, 1:].numel()
    return math.exp(total / count)


def export(model: LM, directory: str | Path, config: dict, dtype=torch.bfloat16) -> Path:
    """Write directory/config.json and model.safetensors (Hugging Face LLaMA layout, tied head)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    return d


def as_tensor(tokens: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(tokens.astype(np.int32)).to(device)
