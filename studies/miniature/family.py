"""The study's models: one LLaMA-style target and a depth × width family of drafts at matched
parameter budgets, each written as a Hugging Face `config.json` (so specperf, profiler.blocks and
transformers all read the same shape).

Computes each model's parameter count (non-embedding and total). Key assumption: a LLaMA layer has
4·d² attention weights (n_kv_heads = n_heads) and 3·d·d_ff gated-MLP weights with d_ff ≈ 8/3·d
rounded to a multiple of 64, so layers × d² sets the non-embedding budget; embeddings are tied (the
LM head reuses the embedding matrix), head_dim is 64 everywhere.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

HEAD_DIM = 64
VOCAB = 8192  # BPE vocabulary trained by corpus.py
MAX_POSITIONS = 2048
ROPE_THETA = 10000.0  # profiler.blocks.ROPE_THETA: the loop's RoPE must match training
RMS_EPS = 1e-5  # profiler.blocks.NORM_EPS


def ffn_width(d_model: int) -> int:
    """8/3·d rounded to a multiple of 64 (LLaMA's SwiGLU sizing)."""
    return max(64, int(round(8 * d_model / 3 / 64)) * 64)


@dataclass(frozen=True)
class Shape:
    name: str
    n_layers: int
    d_model: int
    role: str  # target | wide | narrow

    @property
    def n_heads(self) -> int:
        return self.d_model // HEAD_DIM

    @property
    def d_ff(self) -> int:
        return ffn_width(self.d_model)

    @property
    def layer_params(self) -> int:
        return 4 * self.d_model ** 2 + 3 * self.d_model * self.d_ff + 2 * self.d_model

    @property
    def non_embedding_params(self) -> int:
        return self.n_layers * self.layer_params + self.d_model  # + final norm

    @property
    def params(self) -> int:
        return self.non_embedding_params + VOCAB * self.d_model  # tied embedding / LM head

    def hf_config(self) -> dict:
        return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "_name_or_path": self.name,
                "hidden_size": self.d_model, "num_hidden_layers": self.n_layers,
                "num_attention_heads": self.n_heads, "num_key_value_heads": self.n_heads,
                "intermediate_size": self.d_ff, "vocab_size": VOCAB, "max_position_embeddings": MAX_POSITIONS,
                "rms_norm_eps": RMS_EPS, "rope_theta": ROPE_THETA, "tie_word_embeddings": True,
                "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
                "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "torch_dtype": "bfloat16"}


# Target: 32 layers × 512 (≈107 M parameters). Drafts: ≈10.6–14.7 M non-embedding parameters each
# (about 1/8 of the target's layers), 1–8 layers wide and 12–24 layers narrow.
TARGET = Shape("mini-target-32x512", 32, 512, "target")
DRAFTS = (
    Shape("draft-1x1024", 1, 1024, "wide"),
    Shape("draft-2x704", 2, 704, "wide"),
    Shape("draft-4x512", 4, 512, "wide"),
    Shape("draft-8x384", 8, 384, "wide"),
    Shape("draft-12x320", 12, 320, "narrow"),
    Shape("draft-16x256", 16, 256, "narrow"),
    Shape("draft-24x192", 24, 192, "narrow"),
)
ALL = (TARGET,) + DRAFTS


def tiny_family() -> tuple[Shape, tuple[Shape, ...]]:
    """A CPU-sized stand-in with the same structure (tests and the dry run)."""
    return (Shape("tiny-target-4x128", 4, 128, "target"),
            (Shape("tiny-draft-1x128", 1, 128, "wide"), Shape("tiny-draft-4x64", 4, 64, "narrow")))


def write_configs(shapes, directory: str | Path, vocab: int = VOCAB) -> dict[str, Path]:
    """config.json for each shape under directory/<name>/; returns name → config path."""
    out = {}
    for s in shapes:
        d = Path(directory) / s.name
        d.mkdir(parents=True, exist_ok=True)
        cfg = dict(s.hf_config(), vocab_size=vocab)
        (d / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
        out[s.name] = d / "config.json"
    return out


def describe(shapes) -> list[dict]:
    return [dict(asdict(s), n_heads=s.n_heads, d_ff=s.d_ff, non_embedding_params=s.non_embedding_params,
                 params=s.params) for s in shapes]


if __name__ == "__main__":
    for row in describe(ALL):
        print(f"{row['name']:22s} L={row['n_layers']:2d} d={row['d_model']:4d} ff={row['d_ff']:4d} "
              f"non-emb={row['non_embedding_params'] / 1e6:6.2f}M total={row['params'] / 1e6:6.2f}M")
