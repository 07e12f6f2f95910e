"""Proposers that read the target's hidden states: EAGLE / EAGLE-3 feature heads, DeepSeek-V3-style
MTP modules (one decoder block at the target's width, run sequentially, a chain of γ steps) and
Medusa heads (γ independent heads on the last hidden state, one pass).

Every part is timed by the latency provider like any layer, so measured, operator-composed and
analytical sources and their bands carry over: the head's decoder block is a 1-layer model of the
target's layer shape (its LM head at the head's vocabulary); a dense projection of k·d inputs to d
outputs (EAGLE's concat, EAGLE-3's fusion of 3 hidden states, MTP's concat projection, Medusa's
residual block) is the provider's LM-head GEMM of a d-wide model with a "vocabulary" of k·d — the
same M × N × K — which also charges one norm, as MTP and EAGLE normalise their inputs.

Key assumptions. A feature head's step s ≥ 2 feeds one token; its first step of an iteration runs
over the γ+1 positions the target just verified (their hidden states fill the head's KV cache, as
vLLM V1's EAGLE proposer feeds every verified position), charged as catch-up: head(γ+1 tokens) −
head(1 token) [+ EAGLE-3's fusion over γ+1 tokens]. The head attends over the whole context (its
own KV cache), timed at the mid-iteration context like a draft model. Medusa has no KV cache and no
catch-up: γ heads × (residual block + LM head) over one token per sequence. Heads run at the
target's tensor parallelism in vLLM 0.32 (draft_tensor_parallel_size defaults to the target's);
specperf times them at tp = 1, an upper bound at tp > 1 (said in a note).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.specdec.maths import draft_context
from specperf.perfmodel.specdec.methods import IterationCosts, chain_proposal_s, chain_tokens, grid, target_costs
from specperf.perfmodel.specs.models import ModelSpec, SpecError

# EAGLE-3 heads map a reduced draft vocabulary (32K) onto the target's (128K for Llama 3):
# vllm-project/speculators, Eagle3SpeculatorConfig ("vocabulary mapping between draft (32K) and target (128K)")
EAGLE3_DRAFT_VOCAB = 32000
# name: (inputs concatenated before the block, hidden states fused on the first step, vLLM method, SGLang algorithm)
#   EAGLE (Li et al. 2024): fc(concat(embedding, feature)) 2d → d, one decoder layer, the target's LM head.
#   EAGLE-3 (Li et al. 2025): low/mid/high hidden states fused 3d → d, then as EAGLE; a reduced draft vocabulary.
#   MTP (DeepSeek-V3 report, §2.2): RMSNorm(h) ⊕ RMSNorm(emb) → projection M (2d → d), one block, shared head.
#   SGLang: --speculative-algorithm EAGLE / EAGLE3 / NEXTN (MTP) (docs/advanced_features/speculative_decoding.md).
HEADS = {"eagle": (2, 0, "eagle", "EAGLE"), "eagle3": (2, 3, "eagle3", "EAGLE3"), "mtp": (2, 0, "mtp", "NEXTN")}
TP_NOTE = "the head is timed at tp = 1; vLLM runs it at the target's tp by default, so this is an upper bound"


def projection_s(latency, target: ModelSpec, k: int, batch, new_tokens, context, mode: str):
    """(seconds, Provenance) of a dense k·d → d projection over `new_tokens` tokens per sequence: the
    provider's LM-head GEMM of a d-wide model whose vocabulary is k·d (embedding/norm included)."""
    spec = target.replace(n_layers=1, vocab=int(k) * target.d_model, name=f"{target.name} {k}d→d projection",
                          tied_embeddings=False)
    ft = latency.forward(spec, batch, new_tokens, context, 1, mode)
    return ft.lm_head_s, ft.sources.get("lm_head")


@dataclass(frozen=True)
class FeatureHead:
    """EAGLE / EAGLE-3 / MTP: a chain of γ steps of one decoder block at the target's width."""
    kind: str = "eagle"  # a key of HEADS
    draft_vocab: int | None = None  # the head's LM-head vocabulary (None: shares the target's)
    checkpoint: str | None = None  # path/repo of trained head weights (export)

    @property
    def name(self) -> str:
        return self.kind

    def head_spec(self, target: ModelSpec) -> ModelSpec:
        vocab = self.draft_vocab or target.vocab
        if self.kind == "eagle3" and self.draft_vocab is None and target.vocab > EAGLE3_DRAFT_VOCAB:
            vocab = EAGLE3_DRAFT_VOCAB
        return target.replace(n_layers=1, vocab=int(vocab), name=f"{self.kind} head of {target.name}",
                              tied_embeddings=False)

    def step_s(self, latency, target, batch, new_tokens, context, mode: str):
        """(seconds, sources) of one head step over `new_tokens` tokens per sequence (a tree level)."""
        return self._step(latency, target, batch, new_tokens, context, mode)

    def _step(self, latency, target, B, n, ctx, mode):
        concat, _, _, _ = HEADS[self.kind]
        head = latency.forward(self.head_spec(target), B, n, ctx, 1, mode)
        proj, proj_src = projection_s(latency, target, concat, B, n, ctx, mode)
        return head.total_s + proj, {**{f"draft_head_{k}": v for k, v in head.sources.items()},
                                     "draft_projection": proj_src}

    def costs(self, latency, target, batch, context, gammas, tp=1, mode="graph", proposer_latency=None) -> IterationCosts:
        pl = proposer_latency or latency
        B, C, G, zero = grid(batch, context, gammas)
        step, sources = self._step(pl, target, B, 1, draft_context(C, G), mode)
        first, _ = self._step(pl, target, B, G + 1, C, mode)
        one, _ = self._step(pl, target, B, 1, C, mode)
        catchup = first - one
        _, fuse, _, _ = HEADS[self.kind]
        if fuse:
            f, f_src = projection_s(pl, target, fuse, B, G + 1, C, mode)
            catchup = catchup + f
            sources["draft_fusion"] = f_src
        notes = (TP_NOTE,) if tp > 1 else ()
        return target_costs(latency, target, batch, context, gammas, tp, mode, step + zero, chain_proposal_s(G, step),
                            catchup + zero, {k: v for k, v in sources.items() if v is not None}, notes)

    def tokens_per_iteration(self, acceptance, gammas) -> np.ndarray:
        return chain_tokens(acceptance, gammas)

    def proposer_spec(self, target) -> ModelSpec:
        """The head as a 1-layer model (its projection's k·d² weights are not counted)."""
        return self.head_spec(target)

    def describe(self) -> str:
        return {"eagle": "EAGLE feature head", "eagle3": "EAGLE-3 feature head (3-state fusion)",
                "mtp": "MTP module (DeepSeek-V3 style)"}[self.kind]

    def engine_config(self, target, gamma: int, tp: int) -> dict:
        _, _, vllm, sglang = HEADS[self.kind]
        cfg = {"method": vllm, "num_speculative_tokens": int(gamma)}
        if self.kind != "mtp":  # as specperf times the head (tp = 1); vLLM 0.32 allows 1 or the target's tp
            cfg["draft_tensor_parallel_size"] = 1
        notes = (("MTP reads the target checkpoint's own multi-token-prediction layers (DeepSeek-V3 style); "
                  "a target without them cannot run it"),) if self.kind == "mtp" else ()
        return {"vllm": cfg, "notes": notes,
                "sglang": {"--speculative-algorithm": sglang, "--speculative-num-steps": int(gamma),
                           "--speculative-eagle-topk": 1, "--speculative-num-draft-tokens": int(gamma) + 1},
                "needs_checkpoint": self.kind != "mtp"}


def head_method(kind: str, **kw) -> FeatureHead:
    if kind not in HEADS:
        raise SpecError(f"head kind={kind!r} is not allowed; use one of {', '.join(HEADS)}")
    return FeatureHead(kind=kind, **kw)


@dataclass(frozen=True)
class MedusaHeads:
    """Medusa (Cai et al. 2024): head k predicts token t+k from the last hidden state; a chain of the
    heads' top-1 tokens is verified. One pass, γ heads, no KV cache, no catch-up."""
    checkpoint: str | None = None
    name: str = "medusa"

    def costs(self, latency, target, batch, context, gammas, tp=1, mode="graph", proposer_latency=None) -> IterationCosts:
        pl = proposer_latency or latency
        B, C, G, zero = grid(batch, context, gammas)
        block, b_src = projection_s(pl, target, 1, B, 1, C, mode)  # residual block: d → d + SiLU
        lm = pl.forward(target.replace(n_layers=1, name=f"medusa head of {target.name}"), B, 1, C, 1, mode)
        one = block + lm.lm_head_s
        sources = {"draft_block": b_src, "draft_lm_head": lm.sources.get("lm_head")}
        return target_costs(latency, target, batch, context, gammas, tp, mode, one + zero, chain_proposal_s(G, one),
                            zero, {k: v for k, v in sources.items() if v is not None}, (TP_NOTE,) if tp > 1 else ())

    def tokens_per_iteration(self, acceptance, gammas) -> np.ndarray:
        return chain_tokens(acceptance, gammas)

    def proposer_spec(self, target):
        return None  # γ·(d² + d·vocab) weights, not a decoder-shaped model: not counted

    def describe(self) -> str:
        return "Medusa heads (residual block + LM head per position)"

    def engine_config(self, target, gamma: int, tp: int) -> dict:
        return {"vllm": {"method": "medusa", "num_speculative_tokens": int(gamma)}, "sglang": None,
                "needs_checkpoint": True}
