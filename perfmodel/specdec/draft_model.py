"""The separate draft model as a speculation method: γ sequential draft forwards of one token each
(on one GPU), optionally a catch-up step, acceptance α_i by position.

Key assumptions: a draft forward is timed at the mid-iteration context (maths.draft_context: the
draft's context grows by one token per step); with `catchup` the first draft step of an iteration
feeds 2 tokens (the previous and the last token, as greedy loops that keep the draft's KV cache
exact do, e.g. specperf's real-weights SpecLoop), charged t_draft(2 tokens) − t_draft(1 token) at
the context. vLLM 0.32 runs a draft model at the target's tensor parallelism or 1; specperf times
the draft at tp = 1 (co-located with target shard 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.specdec.maths import draft_context
from specperf.perfmodel.specdec.methods import IterationCosts, chain_proposal_s, chain_tokens, grid, target_costs
from specperf.perfmodel.specs.models import ModelSpec

CATCHUP_NOTE = ("the draft's first step per iteration feeds 2 tokens (catch-up of the previous token), "
                "charged as t_draft(2 tokens) − t_draft(1 token) per iteration")


@dataclass(frozen=True)
class DraftModel:
    draft: ModelSpec
    catchup: bool = False
    name: str = "draft_model"

    def step(self, latency, batch, context, gammas, mode: str):
        """(t_draft_s, ComponentTimes) of one draft forward at draft_context(context, γ)."""
        B, C, G, zero = grid(batch, context, gammas)
        ft = latency.forward(self.draft, B, 1, draft_context(C, G), 1, mode)
        return ft.total_s + zero, ft

    def step_s(self, latency, target, batch, new_tokens, context, mode: str):
        """(seconds, sources) of one draft forward over `new_tokens` tokens per sequence (a tree level)."""
        ft = latency.forward(self.draft, batch, new_tokens, context, 1, mode)
        return ft.total_s, {f"draft_{k}": v for k, v in ft.sources.items()}

    def catchup_s(self, latency, batch, context, mode: str):
        """(B, C, 1): the 2-token first step's extra cost, 0 without catch-up."""
        B, C, _, zero = grid(batch, context, [1])
        if not self.catchup:
            return zero
        return (latency.forward(self.draft, B, 2, C, 1, mode).total_s
                - latency.forward(self.draft, B, 1, C, 1, mode).total_s) + zero

    def costs(self, latency, target, batch, context, gammas, tp=1, mode="graph", proposer_latency=None) -> IterationCosts:
        dl = proposer_latency or latency
        step, ft = self.step(dl, batch, context, gammas, mode)
        _, _, G, _ = grid(batch, context, gammas)
        sources = {f"draft_{k}": v for k, v in ft.sources.items()}
        return target_costs(latency, target, batch, context, gammas, tp, mode, step, chain_proposal_s(G, step),
                            self.catchup_s(dl, batch, context, mode), sources,
                            (CATCHUP_NOTE,) if self.catchup else ())

    def tokens_per_iteration(self, acceptance, gammas) -> np.ndarray:
        return chain_tokens(acceptance, gammas)

    def proposer_spec(self, target) -> ModelSpec:
        return self.draft

    def describe(self) -> str:
        return f"separate draft model {self.draft.name}" + (" with catch-up" if self.catchup else "")

    def engine_config(self, target, gamma: int, tp: int) -> dict:
        """Engine fields of this method (the checkpoint path is filled by the export)."""
        return {"vllm": {"method": "draft_model", "num_speculative_tokens": int(gamma),
                         "draft_tensor_parallel_size": 1},
                "sglang": {"--speculative-algorithm": "STANDALONE", "--speculative-num-steps": int(gamma),
                           "--speculative-eagle-topk": 1, "--speculative-num-draft-tokens": int(gamma) + 1},
                "needs_checkpoint": True}
