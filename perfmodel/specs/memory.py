"""GPU memory needed by speculative decoding, the one formula predict, plot and optimize share.

Key assumption: the draft is co-located with target shard 0 (as vLLM places a draft with
draft_tensor_parallel_size=1); the GPU holds target weights/tp + the draft's weights + both KV
caches for batch × (context + γ + 1) tokens (the target's sharded over tp). Activations and the
engine's workspace are not counted, so "fits" is a necessary condition, not a sufficient one.
"""
from __future__ import annotations

from specperf.perfmodel.specs.models import ModelSpec


def memory_needed_bytes(target: ModelSpec, draft: ModelSpec | None, tp: int, batch: int, context: int,
                        gamma: int) -> float:
    """Bytes on the GPU holding target shard 0 (and the draft, unless `draft` is None or γ = 0)."""
    toks = batch * (context + gamma + 1)
    need = target.weight_bytes / tp + toks * target.kv_bytes_per_token / tp
    if draft is not None and gamma > 0:
        need += draft.weight_bytes + toks * draft.kv_bytes_per_token
    return float(need)


def memory_note(need: float, have: float, where: str) -> str:
    return (f"{where} needs {need / 1e9:.1f} GB of GPU memory (weights + KV cache) but the GPU has "
            f"{have / 1e9:.1f} GB: it does not fit (raise --tp, lower batch/context, or pick a larger GPU)")
