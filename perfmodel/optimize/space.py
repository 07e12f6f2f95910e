"""Optimiser inputs: the design space of drafts that do not exist yet, and the acceptance each
candidate uses (measured file > stated pair > --alpha > α model), with its interval and provenance.

Key assumption: a design-space draft is a LLaMA-family decoder (SwiGLU, RMSNorm, RoPE) sharing the
target's vocabulary; heads follow from d_model and the head dimension, d_ff from the FFN ratio
rounded to a multiple of 256 (the rounding LLaMA configs use).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.alpha_model import AlphaModel, features, param_count
from specperf.perfmodel.optimize.search import Candidates, shape_key
from specperf.perfmodel.specdec.maths import tokens_per_iteration
from specperf.perfmodel.specs.models import ModelSpec, SpecError

LLAMA_FFN_RATIO = 11008 / 4096  # 2.6875: LLaMA-7B config.json (intermediate_size / hidden_size)
FFN_MULTIPLE = 256  # LLaMA rounds intermediate_size to a multiple of 256 (Meta llama model.py)
KINDS = ("measured", "stated", "predicted", "assumed")


def design_space(target: ModelSpec, layers, d_models, ffn_ratios=(LLAMA_FFN_RATIO,), head_dims=None,
                 kv_heads=None, dtype_bytes: int = 2) -> tuple[Candidates, list[str]]:
    """All valid (layers × d_model × ffn ratio × head_dim × kv heads) drafts; returns (set, skipped)."""
    layers = [int(v) for v in layers]
    if not layers or min(layers) <= 0:
        raise SpecError(f"layers={layers!r} is not allowed; give positive integers like 1..32")
    for r in ffn_ratios:
        if not np.isfinite(r) or r <= 0:
            raise SpecError(f"ffn-ratio={r!r} is not allowed; must be a positive number")
    shapes: dict = {}
    skipped: list[str] = []
    for d in d_models:
        if d <= 0:
            raise SpecError(f"d-model={d} is not allowed; must be a positive integer")
        hds = head_dims or ([128] if d % 128 == 0 else [64])
        for hd in hds:
            if hd <= 0 or d % hd:
                skipped.append(f"d_model={d}: head_dim {hd} does not divide it")
                continue
            h = d // hd
            for kv in (kv_heads or [h]):
                if kv <= 0 or h % kv:
                    skipped.append(f"d_model={d}, head_dim={hd}: kv_heads {kv} does not divide n_heads {h}")
                    continue
                for r in ffn_ratios:
                    ff = int(round(r * d / FFN_MULTIPLE)) * FFN_MULTIPLE
                    if ff <= 0:
                        skipped.append(f"d_model={d}, ffn_ratio={r}: d_ff rounds to 0")
                        continue
                    spec = ModelSpec(name="design", family="llama", n_layers=1, d_model=int(d), n_heads=h,
                                     n_kv_heads=int(kv), d_ff=ff, vocab=target.vocab,
                                     max_positions=target.max_positions, dtype_bytes=dtype_bytes,
                                     source="specperf design space")
                    shapes.setdefault(shape_key(spec), None)
    if not shapes:
        why = "; ".join(dict.fromkeys(skipped)) or "no d_model given"
        raise SpecError(f"the design space yields no valid model ({why})")
    S, L = len(shapes), len(layers)
    return Candidates(shape_specs=tuple(shapes), shape_index=np.repeat(np.arange(S), L),
                      n_layers=np.tile(np.array(layers, dtype=np.int64), S),
                      origin=np.array(["design"] * (S * L), dtype=object), specs=(None,) * (S * L)), skipped


def match(cands: Candidates, spec: ModelSpec) -> np.ndarray:
    """Indices of candidates with exactly this shape and depth."""
    key = shape_key(spec)
    hits = [s for s, k in enumerate(cands.shape_specs) if k == key]
    if not hits:
        return np.array([], dtype=np.int64)
    return np.flatnonzero((cands.shape_index == hits[0]) & (cands.n_layers == spec.n_layers))


@dataclass(frozen=True)
class Acceptance:
    alpha: np.ndarray  # (P,)
    lo: np.ndarray
    hi: np.ndarray
    kind_code: np.ndarray  # (P,) index into KINDS
    source_code: np.ndarray  # (P,) index into sources
    sources: tuple
    per_position: dict = field(default_factory=dict)  # candidate index → AcceptanceModel
    notes: tuple = ()
    model: AlphaModel | None = None  # the α model behind the rows of its kind (joint draws)
    model_x: np.ndarray | None = None  # (P, 3) its feature rows

    def kind(self, i: int) -> str:
        return KINDS[int(self.kind_code[i])]

    def source(self, i: int) -> str:
        return self.sources[int(self.source_code[i])]

    def tpi(self, gammas, end: str = "mid") -> np.ndarray:
        """(P, G) expected tokens per iteration at the point estimate or an interval end."""
        g = np.asarray(gammas)
        a = {"mid": self.alpha, "lo": self.lo, "hi": self.hi}[end]
        out = tokens_per_iteration(a[:, None], g[None, :])
        for i, acc in self.per_position.items():
            out[i] = _positional(acc, g, end)
        return out


def _positional(acc: AcceptanceModel, g, end: str):
    if end == "mid" or not acc.alpha_by_position_ci:
        return acc.tokens_per_iteration(g)
    col = 0 if end == "lo" else 1
    ends = tuple(float(np.clip(c[col], 0.0, 1.0)) for c in acc.alpha_by_position_ci)
    return AcceptanceModel(alpha=min(acc.alpha, 0.999), alpha_by_position=ends).tokens_per_iteration(g)


def assign_acceptance(cands: Candidates, target: ModelSpec, model: AlphaModel,
                      measured: list[tuple[ModelSpec, AcceptanceModel, str]] = (),
                      stated: list[tuple[ModelSpec, float, tuple | None, str]] = (),
                      alpha: float | None = None) -> Acceptance:
    """α per candidate. measured: (draft spec, model, file); stated: (draft spec, α, ci, source)."""
    P = len(cands)
    x = features(cands.param_counts(model.counting), param_count(target, model.counting), cands.n_layers)
    a, lo, hi = model.predict(x)
    sources = [f"α model: {model.source}"]
    kind = np.full(P, KINDS.index(model.kind), dtype=np.uint8)
    src = np.zeros(P, dtype=np.int32)
    notes: list[str] = []
    if alpha is not None:
        a, lo, hi = (np.full(P, float(alpha)) for _ in range(3))
        kind[:] = KINDS.index("stated")
        sources.append("--alpha (stated by the user)")
        src[:] = len(sources) - 1
    for spec, al, ci, source in stated:
        idx = match(cands, spec)
        if idx.size:
            a[idx] = al
            lo[idx], hi[idx] = (ci if ci else (al, al))
            kind[idx] = KINDS.index("stated")
            sources.append(f"stated α for {spec.name} ({source})")
            src[idx] = len(sources) - 1
    per_position: dict = {}
    modelled = kind == KINDS.index(model.kind)  # rows still answered by the α model
    if modelled.any() and (ex := model.extrapolation(x[modelled])):
        notes.append("α model extrapolates for some drafts: " + "; ".join(ex))
    for spec, acc, path in measured:
        idx = match(cands, spec)
        if not idx.size:
            raise SpecError(f"acceptance file {path!r} is for draft {spec.name!r}, which is not among "
                            "the candidates (add it to --drafts or the design space)")
        a[idx] = acc.alpha
        if acc.alpha_ci:
            lo[idx], hi[idx] = acc.alpha_ci
        else:
            lo[idx], hi[idx] = acc.alpha, acc.alpha
            notes.append(f"{spec.name}: acceptance file {path} has no confidence interval")
        kind[idx] = KINDS.index("measured")
        sources.append(f"measured: {acc.describe()} [{path}]")
        src[idx] = len(sources) - 1
        if acc.per_position:
            per_position.update({int(i): acc for i in idx})
    return Acceptance(alpha=np.asarray(a, float), lo=np.minimum(lo, a), hi=np.maximum(hi, a),
                      kind_code=kind, source_code=src, sources=tuple(sources),
                      per_position=per_position, notes=tuple(notes), model=model, model_x=x)
