"""MLP speculator (Wertheimer et al., "Accelerating Production LLMs with Combined Token/Embedding
Speculators", arXiv:2404.19124; IBM's fms-extras MLPSpeculator; vLLM method "mlp_speculator"):
n_predict small stages read the target's last hidden state; stage k mixes a projection of the
previous stage's state with an embedding of the token stage k−1 proposed, normalises, applies GELU
and predicts token k through its own LM head. No attention, no KV cache, hence no catch-up.

Costs through the latency provider like every head: one stage = a dense d_in → inner projection
(perfmodel.specdec.heads.projection_s: the provider's GEMM of that M × N × K, with a norm) plus an
LM head of the vocabulary over `inner` features (the provider's LM-head time of an inner-wide model);
stages run one after another (each needs the previous token), so γ stages cost γ·stage.

Key assumptions: inner_dim defaults to the target's width (checkpoints choose their own: give it);
a checkpoint trained for n_predict stages proposes at most n_predict tokens, so γ beyond it costs and
yields what γ = n_predict does (the optimiser then never picks it; the export caps
num_speculative_tokens at n_predict); vLLM 0.32 runs the speculator at tp = 1 whatever the target's
tp (vllm/config/speculative.py), which is how it is timed. No published acceptance is carried:
give a trace (--acceptance mlp_speculator=FILE) or a stated α.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from specperf.perfmodel.specdec.heads import projection_s
from specperf.perfmodel.specdec.methods import IterationCosts, chain_proposal_s, chain_tokens, grid, target_costs


@dataclass(frozen=True)
class MLPSpeculator:
    n_predict: int = 3  # stages the checkpoint was trained with (its config.json's n_predict)
    inner_dim: int | None = None  # stage width (None: the target's d_model)
    checkpoint: str | None = None
    name: str = "mlp_speculator"

    def _stage_s(self, latency, target, B, C, mode):
        d = int(self.inner_dim or target.d_model)
        inner = target.replace(n_layers=1, d_model=d, name=f"mlp speculator stage of {target.name}",
                               tied_embeddings=False)
        proj, p_src = projection_s(latency, inner, 1, B, 1, C, mode)  # inner → inner (the first stage's d → inner
        lm = latency.forward(inner, B, 1, C, 1, mode)  # is the same GEMM at the default width)
        return proj + lm.lm_head_s, {"draft_projection": p_src, "draft_lm_head": lm.sources.get("lm_head")}

    def costs(self, latency, target, batch, context, gammas, tp=1, mode="graph", proposer_latency=None) -> IterationCosts:
        pl = proposer_latency or latency
        g = np.atleast_1d(np.asarray(gammas))
        used = np.minimum(g, self.n_predict)  # proposals beyond n_predict do not exist
        B, C, G, zero = grid(batch, context, used)
        stage, sources = self._stage_s(pl, target, B, C, mode)
        notes = [f"MLP speculator of {self.n_predict} stages: γ above {self.n_predict} proposes {self.n_predict}"] \
            if np.any(g > self.n_predict) else []
        c = target_costs(latency, target, batch, context, used, tp, mode, stage + zero, chain_proposal_s(G, stage),
                         zero, {k: v for k, v in sources.items() if v is not None}, notes)
        return replace(c, gamma=g)

    def tokens_per_iteration(self, acceptance, gammas) -> np.ndarray:
        return chain_tokens(acceptance, np.minimum(np.atleast_1d(np.asarray(gammas)), self.n_predict))

    def proposer_spec(self, target):
        return None  # n_predict × (embedding + projection + LM head) weights, not a decoder-shaped model

    def describe(self) -> str:
        return f"MLP speculator ({self.n_predict} stages)"

    def engine_config(self, target, gamma: int, tp: int) -> dict:
        return {"vllm": {"method": "mlp_speculator", "num_speculative_tokens": int(min(gamma, self.n_predict)),
                         "draft_tensor_parallel_size": 1},
                "sglang": None, "needs_checkpoint": True,
                "notes": (f"the speculator checkpoint must have been trained with n_predict ≥ {min(gamma, self.n_predict)} "
                          "stages; vLLM runs it at tp = 1",)}
