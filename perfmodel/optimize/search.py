"""Optimiser core: the best lookahead γ* and speedup for many draft candidates at once, over
batch × context, per execution mode — vectorised, no Python loop over design points.

Key assumption (the separate-draft-model method of perfmodel.specdec.methods, as predict): one
iteration = γ sequential draft forwards on one GPU (context grows by one token per step; the
mid-iteration context is used) [+ the catch-up step] + one target forward over γ+1 tokens at tensor
parallelism `tp` + a per-iteration overhead; the target side comes from methods.target_costs. A draft's forward time is
n_layers × (one layer's time) + embedding/LM-head time, and one layer's time does not depend on
depth — so costs are computed once per distinct layer shape and scaled by depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from specperf.perfmodel.latency.source import Provenance
from specperf.perfmodel.specdec.maths import draft_context, speedup
from specperf.perfmodel.specdec.methods import chain_proposal_s, iteration_time_s, target_costs

from specperf.perfmodel.specs.models import ModelSpec, SpecError

CHUNK = 4096  # candidates per block: keeps the (chunk, batch, context, γ) work array cache-sized


def shape_key(spec: ModelSpec) -> ModelSpec:
    """Identity of everything that sets one layer's and the head's time (depth and name excluded)."""
    return spec.replace(n_layers=1, name="", source="")


@dataclass(frozen=True)
class Candidates:
    """P draft candidates as S distinct shapes × depth. `specs[i]` is None for design points."""
    shape_specs: tuple  # (S,) ModelSpec with n_layers=1
    shape_index: np.ndarray  # (P,) int
    n_layers: np.ndarray  # (P,) int
    origin: np.ndarray  # (P,) str: catalog | config | shape | design
    specs: tuple  # (P,) ModelSpec or None
    labels: tuple = ()  # (P,) display names of non-design candidates ('' for design points)

    def __len__(self) -> int:
        return int(self.n_layers.size)

    def spec(self, i: int) -> ModelSpec:
        s = self.specs[i]
        if s is not None:
            return s
        base = self.shape_specs[self.shape_index[i]]
        return base.replace(n_layers=int(self.n_layers[i]), name=self.name(i))

    def name(self, i: int) -> str:
        if self.specs[i] is not None:
            return self.labels[i] if self.labels and self.labels[i] else self.specs[i].name
        b = self.shape_specs[self.shape_index[i]]
        kv = "" if b.n_kv_heads == b.n_heads else f"/kv{b.n_kv_heads}"
        return f"design L{int(self.n_layers[i])} d{b.d_model} ff{b.d_ff} h{b.n_heads}{kv}"

    def nonembedding_params(self) -> np.ndarray:
        per_layer = np.array([s.layer_params for s in self.shape_specs], dtype=float)
        return per_layer[self.shape_index] * self.n_layers

    def param_counts(self, counting: str) -> np.ndarray:
        """P per candidate as an α model counts it ('nonembedding' or 'total' with embeddings/head)."""
        if counting == "nonembedding":
            return self.nonembedding_params()
        rest = np.array([s.params - s.layer_params for s in self.shape_specs], dtype=float)  # n_layers = 1
        return self.nonembedding_params() + rest[self.shape_index]


def make_candidates(drafts: list[ModelSpec], labels: list[str] | None = None, origins: list[str] | None = None,
                    design: "Candidates | None" = None) -> Candidates:
    """Concatenate explicit drafts and a design space into one candidate set (shapes shared)."""
    keys: dict = {}
    shapes: list[ModelSpec] = []

    def idx(spec: ModelSpec) -> int:
        k = shape_key(spec)
        if k not in keys:
            keys[k] = len(shapes)
            shapes.append(k)
        return keys[k]

    sidx = [idx(d) for d in drafts]
    layers = [d.n_layers for d in drafts]
    origin = list(origins or ["catalog"] * len(drafts))
    specs: list = list(drafts)
    labs = list(labels or [d.name for d in drafts])
    if design is not None and len(design):
        remap = np.array([idx(s) for s in design.shape_specs], dtype=np.int64)
        sidx_arr = np.concatenate([np.array(sidx, dtype=np.int64), remap[design.shape_index]])
        layers_arr = np.concatenate([np.array(layers, dtype=np.int64), design.n_layers])
        origin_arr = np.concatenate([np.array(origin, dtype=object), design.origin])
        specs += [None] * len(design)
        labs += [""] * len(design)
    else:
        sidx_arr, layers_arr = np.array(sidx, dtype=np.int64), np.array(layers, dtype=np.int64)
        origin_arr = np.array(origin, dtype=object)
    if layers_arr.size == 0:
        raise SpecError("no draft candidates: give --drafts and/or a design space (--layers with --d-model)")
    return Candidates(shape_specs=tuple(shapes), shape_index=sidx_arr, n_layers=layers_arr,
                      origin=origin_arr, specs=tuple(specs), labels=tuple(labs))


# ---- costs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModeCosts:
    """Seconds, per mode. Shapes: layer/head (S,B,C,G); verify/overhead (B,C,G); base (B,C)."""
    mode: str
    layer_s: np.ndarray
    head_s: np.ndarray
    verify_s: np.ndarray
    overhead_s: np.ndarray
    base_s: np.ndarray  # t_target(1 token) + overhead at γ = 0: the autoregressive step
    target_s: np.ndarray  # (B,C) t_target alone (for the cost ratio c = t_draft / t_target)
    feasible: np.ndarray | None  # (S,C,G) bool, False where context + γ exceeds learned positions
    sources: dict = field(default_factory=dict)
    catchup_layer_s: np.ndarray | float = 0.0  # (S,B,C,1) per layer of the 2-token first step (0: off)
    catchup_head_s: np.ndarray | float = 0.0  # (S,B,C,1) of the head
    cells: object = None  # optimize.cell_roles.CellRoles: each cell's latency (kind, band) per role

    def step_s(self, shape, depth, bi=slice(None), ci=slice(None)):
        """One draft forward of candidates (shape index, depth) arrays: depth × layer + head."""
        d = np.asarray(depth, dtype=float).reshape(np.shape(depth) + (1,) * (self.layer_s[shape][:, bi, ci].ndim - 1))
        return d * self.layer_s[shape][:, bi, ci] + self.head_s[shape][:, bi, ci]

    def catchup_s(self, shape, depth, bi=slice(None), ci=slice(None)):
        if np.ndim(self.catchup_layer_s) == 0:
            return 0.0
        lay, head = self.catchup_layer_s[shape][:, bi, ci], self.catchup_head_s[shape][:, bi, ci]
        d = np.asarray(depth, dtype=float).reshape(np.shape(depth) + (1,) * (lay.ndim - 1))
        return d * lay + head

    def iteration_s(self, shape, depth, gammas, bi=slice(None), ci=slice(None), proposer=1.0, target=1.0,
                    overhead=1.0, step=None):
        """Seconds per iteration (methods.iteration_time_s) of candidates at their depth; `step` reuses
        a computed step_s; factors scale each role (Monte Carlo draws)."""
        step = self.step_s(shape, depth, bi, ci) if step is None else step
        g = np.asarray(gammas, dtype=float)
        return iteration_time_s(chain_proposal_s(g, step) * proposer, self.catchup_s(shape, depth, bi, ci) * proposer,
                                self.verify_s[bi, ci] * target, self.overhead_s[bi, ci] * overhead)


def mode_costs(provider, target: ModelSpec, shapes, batch, context, gammas, tp: int, mode: str,
               draft_provider=None, draft_catchup: bool = False) -> ModeCosts:
    """`provider` times the target; `draft_provider` (default: the same) the draft shapes.
    `draft_catchup`: charge each draft's 2-token first step (as predict --draft-catchup)."""
    dp = draft_provider or provider
    b = np.asarray(batch, dtype=float)
    c = np.asarray(context, dtype=float)
    g = np.asarray(gammas, dtype=float)
    B, C, G = b[:, None, None], c[None, :, None], g[None, None, :]
    zero = np.zeros((b.size, c.size, g.size))
    S = len(shapes)
    layer = np.empty((S,) + zero.shape)
    head = np.empty((S,) + zero.shape)
    cu_layer = np.zeros((S, b.size, c.size, 1)) if draft_catchup else 0.0
    cu_head = np.zeros((S, b.size, c.size, 1)) if draft_catchup else 0.0
    sources: dict = {}
    for s, spec in enumerate(shapes):
        ft = dp.forward(spec, B, 1, draft_context(C, G), 1, mode)
        layer[s] = ft.layer_s + ft.allreduce_s + zero
        head[s] = ft.lm_head_s + zero
        if draft_catchup:
            two, one = dp.forward(spec, B, 2, C, 1, mode), dp.forward(spec, B, 1, C, 1, mode)
            cu_layer[s] = (two.layer_s + two.allreduce_s - one.layer_s - one.allreduce_s) + zero[..., :1]
            cu_head[s] = (two.lm_head_s - one.lm_head_s) + zero[..., :1]
        for k, v in ft.sources.items():  # distinct descriptions over all draft shapes
            sources.setdefault(f"draft_{k}", []).append(v)
    sources = {k: Provenance.merge(v) for k, v in sources.items()}
    tc = target_costs(provider, target, b, c, g, tp, mode, zero, zero, zero, sources)
    learned = np.array([sp.learned_positions for sp in shapes])
    feasible = None
    if learned.any():
        maxpos = np.array([sp.max_positions if sp.learned_positions else np.inf for sp in shapes])
        feasible = (c[None, :, None] + g[None, None, :] + 1) <= maxpos[:, None, None]
    from specperf.perfmodel.optimize.cell_roles import CellRoles

    return ModeCosts(mode=mode, layer_s=layer, head_s=head, verify_s=tc.verify_s, overhead_s=tc.overhead_s,
                     base_s=tc.baseline_s(), target_s=tc.target_s, feasible=feasible, sources=tc.sources,
                     catchup_layer_s=cu_layer, catchup_head_s=cu_head,
                     cells=CellRoles(provider, dp, target, shapes, b, c, g, tp, mode))


def target_feasible(target: ModelSpec, context, gammas) -> None:
    if target.learned_positions:
        top = int(np.max(context)) + int(np.max(gammas)) + 1
        if top > target.max_positions:
            raise SpecError(f"context={int(np.max(context))} + γ exceeds {target.name}'s "
                            f"max_positions={target.max_positions}")


# ---- the search ------------------------------------------------------------------------------------
def search(tpi: np.ndarray, shape_index: np.ndarray, n_layers: np.ndarray, costs: ModeCosts,
           gammas, chunk: int = CHUNK):
    """γ* index and speedup for every candidate × batch × context.

    tpi: (P, G) expected tokens per iteration. Returns (gamma_index (P,B,C) int16, speedup (P,B,C));
    speedup is -inf where no γ is feasible. Ties go to the smallest γ (as a brute-force argmax)."""
    g = np.asarray(gammas, dtype=float)
    P = int(n_layers.size)
    _, nb, nc, ng = costs.layer_s.shape
    out_i = np.empty((P, nb, nc), dtype=np.int16)
    out_s = np.empty((P, nb, nc))
    for lo in range(0, P, chunk):
        sl = slice(lo, min(P, lo + chunk))
        idx = shape_index[sl]
        step = costs.layer_s[idx]  # one gathered copy (10^5 designs): depth × layer + head, in place
        step *= n_layers[sl].astype(float)[:, None, None, None]
        step += costs.head_s[idx]
        s = costs.iteration_s(idx, n_layers[sl], g, step=step)
        np.divide(tpi[sl, None, None, :], s, out=s)
        if costs.feasible is not None:
            s = np.where(costs.feasible[idx][:, None, :, :], s, -np.inf)
        k = np.argmax(s, axis=-1)
        out_i[sl] = k
        out_s[sl] = np.take_along_axis(s, k[..., None], axis=-1)[..., 0] * costs.base_s
    return out_i, out_s


def cell_details(tpi_row: np.ndarray, shape: int, depth: int, costs: ModeCosts, gammas, bi: int, ci: int, gi: int,
                 batch) -> dict:
    """Times and shares of one candidate at one (batch, context, γ) cell."""
    g = float(np.asarray(gammas)[gi])
    sh, d = np.array([shape]), np.array([depth])
    t_draft = float(costs.step_s(sh, d, bi, ci)[0, gi])
    t_ver = costs.verify_s[bi, ci, gi]
    ov = costs.overhead_s[bi, ci, gi]
    cu = float(np.asarray(costs.catchup_s(sh, d, bi, ci)).ravel()[0]) if np.ndim(costs.catchup_layer_s) else 0.0
    it = float(costs.iteration_s(sh, d, np.asarray(gammas, dtype=float), bi, ci)[0, gi])
    tpi = float(tpi_row[gi])
    b = float(np.asarray(batch)[bi])
    return {"gamma": int(g), "tokens_per_iteration": tpi, "t_draft_s": float(t_draft),
            "t_verify_s": float(t_ver), "overhead_s": float(ov), "iteration_s": float(it), "draft_catchup_s": cu,
            "draft_share": float((g * t_draft + cu) / it), "verify_share": float(t_ver / it),
            "overhead_share": float(ov / it), "throughput_tok_s": b * tpi / float(it),
            "baseline_tok_s": b / float(costs.base_s[bi, ci]),
            "speedup": float(speedup(tpi, it, costs.base_s[bi, ci])),
            "cost_ratio": float(t_draft / costs.target_s[bi, ci])}


def speedup_curve(tpi_rows: np.ndarray, shape_index, n_layers, costs: ModeCosts, gammas, bi: int, ci: int):
    """Speedup over γ for a few candidates at one (batch, context) cell: (n, G)."""
    g = np.asarray(gammas, dtype=float)
    s = speedup(tpi_rows, costs.iteration_s(np.asarray(shape_index), np.asarray(n_layers), g, bi, ci), costs.base_s[bi, ci])
    if costs.feasible is not None:
        s = np.where(costs.feasible[shape_index, ci, :], s, -np.inf)
    return s
