"""What one run of the miniature study does, as a frozen Plan: corpus size, token budgets, prompt
sets, lookaheads, modes and the wall-clock deadline; `Plan.gpu()` is the H200 run, `Plan.tiny()` a
CPU dry run of the same code path with a tiny family.

Key assumption: the budgets are chosen so that one GPU call trains and measures everything inside
about nine minutes; each training run also carries a wall-clock cap, and a run that hits it stops
early and records the tokens it actually saw (so equal token budgets are checked, not assumed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .corpus import CorpusConfig
from .family import DRAFTS, TARGET, Shape, tiny_family


@dataclass(frozen=True)
class Plan:
    device: str = "cuda"
    dtype: str = "bf16"
    target: Shape = TARGET
    drafts: tuple = DRAFTS
    corpus: CorpusConfig = field(default_factory=lambda: CorpusConfig(max_bytes=80_000_000))
    seq: int = 512
    batch: int = 64
    target_tokens: int = 48_000_000
    target_lr: float = 1e-3
    target_cap_s: float = 130.0
    draft_tokens: int = 10_000_000
    draft_lr: float = 2e-3
    draft_cap_s: float = 20.0
    warmup_steps: int = 100
    prompt_len: int = 256  # tokens cached before decoding starts (+1 pending token)
    trace_prompts: int = 32  # set A: acceptance traces (one batch)
    trace_gamma: int = 8
    trace_iterations: int = 32
    sampling_iterations: int = 16
    loop_prompts: int = 10  # set B: throughput, batch 1
    loop_iterations: int = 24
    graph_gammas: tuple = (1, 2, 4, 6)
    eager_prompts: int = 6
    eager_iterations: int = 16
    eager_gammas: tuple = (2, 4)
    hf_prompts: int = 2
    hf_new_tokens: int = 64
    hf_gammas: tuple = (2, 4)
    profile_contexts: tuple = (256, 512)
    profile_gamma_max: int = 8
    modes: tuple = ("graph", "eager")
    hf: bool = True
    deadline_s: float = 500.0
    seed: int = 0

    @staticmethod
    def gpu(**kw) -> "Plan":
        return Plan(**kw)

    @staticmethod
    def tiny(**kw) -> "Plan":
        t, ds = tiny_family()
        base = dict(device="cpu", dtype="fp32", target=t, drafts=ds,
                    corpus=CorpusConfig(max_bytes=1_500_000, tokenizer_bytes=1_000_000, vocab=512),
                    seq=64, batch=8, target_tokens=64 * 8 * 30, draft_tokens=64 * 8 * 15, target_cap_s=60,
                    draft_cap_s=30, warmup_steps=5, prompt_len=32, trace_prompts=4, trace_iterations=6,
                    sampling_iterations=4, loop_prompts=2, loop_iterations=4, graph_gammas=(1, 3),
                    eager_prompts=2, eager_iterations=4, eager_gammas=(2,), hf_prompts=1, hf_new_tokens=12,
                    hf_gammas=(2, 3), profile_contexts=(32, 64), profile_gamma_max=8, modes=("eager",),
                    deadline_s=900.0)
        base.update(kw)
        return Plan(**base)

    def describe(self) -> str:
        lines = [f"miniature study plan (device {self.device}, {self.dtype}, deadline {self.deadline_s:.0f} s, seed {self.seed})",
                 f"  corpus: site-packages .py up to {self.corpus.max_bytes / 1e6:.0f} MB, BPE vocab {self.corpus.vocab}, "
                 f"1 file in {self.corpus.heldout_every} held out",
                 f"  target {self.target.name}: {self.target.params / 1e6:.1f} M params, {self.target_tokens / 1e6:.0f} M tokens "
                 f"(cap {self.target_cap_s:.0f} s), lr {self.target_lr}",
                 f"  drafts ({len(self.drafts)}), {self.draft_tokens / 1e6:.1f} M tokens each (cap {self.draft_cap_s:.0f} s), "
                 f"lr {self.draft_lr}: " + ", ".join(f"{d.name} ({d.non_embedding_params / 1e6:.1f} M)" for d in self.drafts),
                 f"  profile: specperf profile, batch 1, contexts {self.profile_contexts}, γ ≤ {self.profile_gamma_max}, "
                 f"modes {self.modes}",
                 f"  acceptance (prompt set A, {self.trace_prompts} held-out prompts of {self.prompt_len}): greedy γ={self.trace_gamma} × "
                 f"{self.trace_iterations} iterations; sampling T=1 × {self.sampling_iterations}",
                 f"  specperf loop (set B, batch 1): graph γ {self.graph_gammas} × {self.loop_prompts} prompts × "
                 f"{self.loop_iterations} it.; eager γ {self.eager_gammas} × {self.eager_prompts} × {self.eager_iterations}",
                 f"  Hugging Face assisted generation: γ {self.hf_gammas} × {self.hf_prompts} prompts × {self.hf_new_tokens} tokens"
                 + ("" if self.hf else " (off)")]
        return "\n".join(lines)
