"""Model architecture specs: one frozen dataclass, built from a catalog entry or a config.json.

Computes derived sizes (parameters, weight bytes per layer, KV-cache bytes per token) from the
shape alone. Key assumption: a decoder-only transformer whose layers are all identical (true for
the LLaMA, Mistral, Qwen2 and OPT families this project covers).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from specperf.perfmodel.specs.errors import SpecError  # re-exported: callers import it from here
from specperf.perfmodel.specs.families import FAMILIES

# Physical upper bounds on a shape (about 8-30x today's largest dense models); beyond them a
# number is a typo, and the latency and memory maths would silently extrapolate nonsense.
SHAPE_BOUNDS = {"n_layers": 1024, "d_model": 131072, "n_heads": 2048, "n_kv_heads": 2048,
                "d_ff": 1048576, "vocab": 4194304, "dtype_bytes": 8, "max_positions": 16777216}
# Optional fields (0 = not set): the largest head_dim in published configs is 256 (Gemma), so 1024
# is 4x that (the CLI's --head-dim bound); embed_dim is a projected embedding width (OPT-350m: 512),
# never wider than d_model can be.
OPTIONAL_BOUNDS = {"attn_head_dim": 1024, "embed_dim": 131072}
# Largest total parameter count a spec may describe: 10^14 is 50x the largest dense models published
# (~2 x 10^12); above it the fields are each in range but together describe no buildable model.
MAX_PARAMS = 10 ** 14


def read_json(path: str | Path, what: str):
    """The JSON document in `path`; a one-line SpecError naming `what` if it is missing or not JSON."""
    from specperf.perfmodel.specs.safeio import MAX_JSON_BYTES, loads_json, read_text  # bounded, regular files only

    p = Path(path)
    try:
        return loads_json(read_text(p, what, MAX_JSON_BYTES), f"{what} {str(p)!r}")
    except json.JSONDecodeError as e:
        raise SpecError(f"{what} {str(p)!r} is not valid JSON ({e})") from None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # a key of perfmodel.specs.families.FAMILIES
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab: int
    gated_mlp: bool = True  # SwiGLU (3 matrices) vs 2-matrix MLP (OPT: ReLU)
    norm: str = "rmsnorm"  # rmsnorm | layernorm
    tied_embeddings: bool = False
    dtype_bytes: int = 2
    max_positions: int = 4096
    qkv_bias: bool = False  # Qwen2 has q/k/v biases
    linear_bias: bool = False  # OPT has biases on every linear layer
    learned_positions: bool = False  # OPT: learned position embeddings; others: RoPE
    embed_dim: int = 0  # OPT-350m projects 512-d embeddings to d_model; 0 = same as d_model
    qk_norm: bool = False  # Qwen3: per-head RMSNorm on q and k
    attn_head_dim: int = 0  # explicit head_dim (Qwen3: 128 at any width); 0 = d_model // n_heads
    source: str = ""

    def __post_init__(self) -> None:
        for f in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab", "dtype_bytes",
                  "max_positions"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise SpecError(f"{self.name}: {f}={v!r} is not allowed; must be a positive integer",
                                value=v, allowed=f"integer in 1..{SHAPE_BOUNDS[f]}")
            if v > SHAPE_BOUNDS[f]:
                raise SpecError(f"{self.name}: {f}={v!r} is not allowed; must be at most {SHAPE_BOUNDS[f]} "
                                "(physical bound)", value=v, allowed=f"integer in 1..{SHAPE_BOUNDS[f]}")
        if self.family not in FAMILIES:
            raise SpecError(f"{self.name}: family={self.family!r} is not allowed; use one of {', '.join(FAMILIES)}")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise SpecError(f"{self.name}: norm={self.norm!r} is not allowed; use rmsnorm or layernorm")
        for f, hi in OPTIONAL_BOUNDS.items():
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi:
                raise SpecError(f"{self.name}: {f}={v!r} is not allowed; 0 (unset) or an integer in 1..{hi}",
                                value=v, allowed=f"0 or an integer in 1..{hi}")
        if not self.attn_head_dim and self.d_model % self.n_heads:
            raise SpecError(f"{self.name}: n_heads={self.n_heads} does not divide d_model={self.d_model}")
        if self.n_heads % self.n_kv_heads:
            raise SpecError(f"{self.name}: n_kv_heads={self.n_kv_heads} does not divide n_heads={self.n_heads}")
        if self.params > MAX_PARAMS:
            raise SpecError(f"{self.name}: params={self.params:.3g} is not allowed; a model of at most {MAX_PARAMS:.0e} "
                            "parameters (each field is in range, but together they describe no buildable model)",
                            value=self.params, allowed=f"≤ {MAX_PARAMS:.0e} parameters")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.attn_head_dim or self.d_model // self.n_heads

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def attn_params(self) -> int:
        """q, k, v and output projections (plus biases where the family has them)."""
        w = self.d_model * (self.q_dim + 2 * self.kv_dim) + self.q_dim * self.d_model
        b = 2 * self.head_dim if self.qk_norm else 0
        if self.qkv_bias or self.linear_bias:
            b += self.q_dim + 2 * self.kv_dim
        if self.linear_bias:
            b += self.d_model
        return w + b

    @property
    def mlp_params(self) -> int:
        n_mat = 3 if self.gated_mlp else 2
        b = (self.d_ff + self.d_model) if self.linear_bias else 0
        return n_mat * self.d_model * self.d_ff + b

    @property
    def norm_params(self) -> int:
        per = 2 * self.d_model if self.norm == "layernorm" else self.d_model
        return 2 * per

    @property
    def layer_params(self) -> int:
        return self.attn_params + self.mlp_params + self.norm_params

    @property
    def embedding_params(self) -> int:
        e = self.vocab * (self.embed_dim or self.d_model)
        if self.learned_positions:
            e += self.max_positions * self.d_model
        if self.embed_dim and self.embed_dim != self.d_model:
            e += 2 * self.embed_dim * self.d_model  # project_in + project_out
        return e

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab * (self.embed_dim or self.d_model)

    @property
    def params(self) -> int:
        final_norm = (2 if self.norm == "layernorm" else 1) * self.d_model
        return self.n_layers * self.layer_params + self.embedding_params + self.lm_head_params + final_norm

    @property
    def layer_weight_bytes(self) -> int:
        return self.layer_params * self.dtype_bytes

    @property
    def lm_head_weight_bytes(self) -> int:
        return self.vocab * (self.embed_dim or self.d_model) * self.dtype_bytes

    @property
    def weight_bytes(self) -> int:
        return self.params * self.dtype_bytes

    @property
    def kv_bytes_per_token_per_layer(self) -> int:
        return 2 * self.kv_dim * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        return self.n_layers * self.kv_bytes_per_token_per_layer

    # ---- tensor parallelism and the layer's matrices (the one place that knows them) ------------
    def shard(self, tp: int = 1) -> tuple[int, int, int]:
        """Per-rank (n_heads, n_kv_heads, d_ff) of a Megatron-style tensor-parallel layer: heads and
        the FFN split; KV heads split when tp divides them, replicated (one per rank) when tp is a
        multiple of n_kv_heads. A one-line SpecError for any other tp."""
        if not isinstance(tp, int) or isinstance(tp, bool) or tp <= 0:
            raise SpecError(f"tp={tp!r} is not allowed; tensor parallelism must be a positive integer")
        if self.n_heads % tp:
            raise SpecError(f"tp={tp} does not divide {self.name}'s n_heads={self.n_heads}; "
                            "allowed: divisors of n_heads")
        if self.n_kv_heads % tp == 0:
            kv = self.n_kv_heads // tp
        elif tp % self.n_kv_heads == 0:
            kv = 1
        else:
            raise SpecError(f"tp={tp} neither divides nor is a multiple of {self.name}'s "
                            f"n_kv_heads={self.n_kv_heads}")
        return self.n_heads // tp, kv, -(-self.d_ff // tp)

    def check_tp(self, tp: int) -> int:
        self.shard(tp)
        return tp

    def layer_matmuls(self, tp: int = 1) -> tuple[tuple[str, int, int], ...]:
        """(name, in features, out features) of one rank's weight matrices in one decoder layer, in
        execution order: q, k, v, o, then gate/up (gated MLP) or fc1, then down. Used by the
        analytical model, the profiler's blocks and memory estimates."""
        H, KV, ff = self.shard(tp)
        d, hd = self.d_model, self.head_dim
        mats = [("q", d, H * hd), ("k", d, KV * hd), ("v", d, KV * hd), ("o", H * hd, d)]
        mats += [("gate", d, ff), ("up", d, ff)] if self.gated_mlp else [("fc1", d, ff)]
        return tuple(mats + [("down", ff, d)])

    def replace(self, **changes) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(params=self.params, head_dim=self.head_dim, layer_weight_bytes=self.layer_weight_bytes,
                 kv_bytes_per_token=self.kv_bytes_per_token)
        return d


# ---- NAME:field=value overrides -----------------------------------------------------------------
_INT_FIELDS = {f.name for f in dataclasses.fields(ModelSpec) if f.type in ("int", int)}
_BOOL_FIELDS = {f.name for f in dataclasses.fields(ModelSpec) if f.type in ("bool", bool)}
_STR_FIELDS = {"family", "norm"}


def apply_overrides(spec: ModelSpec, text: str) -> ModelSpec:
    """Apply `field=value,field=value` to a spec; `n_heads` changes keep n_kv_heads valid."""
    changes: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise SpecError(f"override {item!r} is not allowed; write field=value")
        key, val = (s.strip() for s in item.split("=", 1))
        if key in _INT_FIELDS:
            try:
                changes[key] = int(val)
            except ValueError:
                raise SpecError(f"override {key}={val!r} is not allowed; {key} takes an integer") from None
        elif key in _BOOL_FIELDS:
            if val.lower() not in ("true", "false", "1", "0"):
                raise SpecError(f"override {key}={val!r} is not allowed; {key} takes true or false")
            changes[key] = val.lower() in ("true", "1")
        elif key in _STR_FIELDS:
            changes[key] = val
        else:
            allowed = ", ".join(sorted(_INT_FIELDS | _BOOL_FIELDS | _STR_FIELDS))
            raise SpecError(f"override field {key!r} is unknown; allowed fields: {allowed}")
    if "n_heads" in changes and "n_kv_heads" not in changes and spec.n_kv_heads == spec.n_heads:
        changes["n_kv_heads"] = changes["n_heads"]
    name = f"{spec.name}:{text}"
    return dataclasses.replace(spec, name=name, **changes)


# ---- Hugging Face config.json: perfmodel.specs.hf_config ------------------------------------------
def from_hf_config(path: str | Path, dtype_bytes: int | None = None) -> ModelSpec:
    """A spec from a Hugging Face config.json on disk, never fetched from a hub (what is honoured and
    what refused: perfmodel.specs.hf_config)."""
    from specperf.perfmodel.specs.hf_config import spec_fields

    p = Path(path)
    try:
        folder = p.is_dir()
    except (OSError, ValueError):  # a name too long for a path, or holding NUL: read_json says so
        folder = False
    if folder:
        p = p / "config.json"
    return ModelSpec(**spec_fields(read_json(p, "config file"), p, dtype_bytes))
