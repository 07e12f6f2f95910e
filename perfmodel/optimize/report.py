"""Run the optimiser over modes and turn its arrays into ranked rows: γ*, tokens per iteration,
draft/verify share, tokens/s, speedup with a 95 % range, the α each row used and its provenance, and
the gain over a reference draft.

Key assumption: a ranked row's range is the Monte Carlo's (optimize.confidence: each cell's own
latency bands × the acceptance interval, γ re-optimised per draw), so it is of the best achievable
speedup; it is a point only where every source is exact, and the row says so. ModeResult's
speedup_lo/hi (γ re-optimised at the α interval's ends, latency known) remain for callers that rank
many candidates at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.optimize.confidence import confidence
from specperf.perfmodel.optimize.search import Candidates, ModeCosts, cell_details, mode_costs, search, speedup_curve, target_feasible
from specperf.perfmodel.optimize.space import Acceptance, match
from specperf.perfmodel.specdec.maths import tokens_per_iteration
from specperf.perfmodel.specs.models import ModelSpec, SpecError


RANGE_KEYS = ("speedup_lo", "speedup_hi", "gamma_lo", "gamma_hi", "range_exact")
EXACT_NOTE = "range is the point: every latency source and the acceptance are taken as exact"


@dataclass(frozen=True)
class ModeResult:
    mode: str
    costs: ModeCosts
    gamma_index: np.ndarray  # (P,B,C)
    speedup: np.ndarray  # (P,B,C)
    gamma_index_lo: np.ndarray
    speedup_lo: np.ndarray
    gamma_index_hi: np.ndarray
    speedup_hi: np.ndarray


@dataclass(frozen=True)
class OptimizeResult:
    target: ModelSpec
    cands: Candidates
    acc: Acceptance
    gammas: np.ndarray
    batch: np.ndarray
    context: np.ndarray
    tp: int
    modes: dict  # mode → ModeResult
    tpi: np.ndarray  # (P,G) at the point estimate
    memory_bytes: float | None = None  # one GPU's memory, for the fit check (None: not checked)

    def memory_needed_bytes(self, i: int, batch: int, context: int, gamma: int) -> float:
        """Bytes on the GPU holding target shard 0 and the draft (co-located, as vLLM places a
        draft with draft_tensor_parallel_size=1): weights + KV cache for context + γ + 1 tokens."""
        from specperf.perfmodel.specs.memory import memory_needed_bytes

        return memory_needed_bytes(self.target, self.cands.spec(i), self.tp, batch, context, max(gamma, 1))

    def fits(self, i: int, batch: int, context: int, gamma: int) -> bool:
        return self.memory_bytes is None or self.memory_needed_bytes(i, batch, context, gamma) <= self.memory_bytes


def optimize(target: ModelSpec, cands: Candidates, acc: Acceptance, provider, batch, context, gammas,
             tp: int = 1, modes=("graph",), draft_provider=None, memory_bytes: float | None = None,
             draft_catchup: bool = False) -> OptimizeResult:
    g = np.asarray(sorted(set(int(v) for v in gammas)))
    b = np.asarray(batch, dtype=int)
    c = np.asarray(context, dtype=int)
    for name, arr in (("batch", b), ("context", c), ("gamma", g)):
        if arr.size == 0 or arr.min() <= 0:
            raise SpecError(f"{name}={arr.tolist()!r} is not allowed; give positive integers")
    target_feasible(target, c, g)
    tpi = acc.tpi(g, "mid")
    tpi_lo, tpi_hi = acc.tpi(g, "lo"), acc.tpi(g, "hi")
    out = {}
    for mode in modes:
        costs = mode_costs(provider, target, cands.shape_specs, b, c, g, tp, mode, draft_provider, draft_catchup)
        gi, s = search(tpi, cands.shape_index, cands.n_layers, costs, g)
        gl, sl = search(tpi_lo, cands.shape_index, cands.n_layers, costs, g)
        gh, sh = search(tpi_hi, cands.shape_index, cands.n_layers, costs, g)
        out[mode] = ModeResult(mode, costs, gi, s, gl, sl, gh, sh)
    return OptimizeResult(target=target, cands=cands, acc=acc, gammas=g, batch=b, context=c, tp=tp,
                          modes=out, tpi=tpi, memory_bytes=memory_bytes)


def alpha_to_match(res: OptimizeResult, mode: str, idx, bi: int, ci: int, goal: float, iters: int = 40):
    """Smallest i.i.d. α at which each candidate's best speedup reaches `goal` (None: unreachable)."""
    idx = np.atleast_1d(np.asarray(idx))
    m = res.modes[mode]
    si, nl = res.cands.shape_index[idx], res.cands.n_layers[idx].astype(float)

    def best(alpha):
        t = tokens_per_iteration(alpha[:, None], res.gammas[None, :])
        return speedup_curve(t, si, nl, m.costs, res.gammas, bi, ci).max(axis=-1)

    lo, hi = np.zeros(idx.size), np.full(idx.size, 0.999)
    reach = best(hi) >= goal
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = best(mid) >= goal
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return [float(h) if r else None for h, r in zip(hi, reach)]


def row_notes(res: OptimizeResult, i: int, gi: int, speedup: float, bi: int = 0, ci: int = 0) -> list[str]:
    spec = res.cands.spec(i)
    notes = []
    b, c, g = int(res.batch[bi]), int(res.context[ci]), int(res.gammas[gi])
    if not res.fits(i, b, c, g):
        notes.append(f"weights + KV cache need {res.memory_needed_bytes(i, b, c, g) / 1e9:.0f} GB on one GPU "
                     f"(> {res.memory_bytes / 1e9:.0f} GB): does not fit at batch {b}, context {c}")
    if spec.vocab != res.target.vocab:
        notes.append(f"vocab {spec.vocab} ≠ target {res.target.vocab}: engines need a shared tokenizer")
    if not np.isfinite(speedup):
        notes.append(f"context + γ exceeds max_positions={spec.max_positions}")
    elif gi == len(res.gammas) - 1 and len(res.gammas) > 1:
        notes.append(f"γ* at the searched maximum {int(res.gammas[-1])}: raise --gamma-max")
    return notes


def describe_candidate(res: OptimizeResult, i: int) -> dict:
    s = res.cands.spec(i)
    return {"draft": res.cands.name(i), "origin": str(res.cands.origin[i]), "n_layers": s.n_layers,
            "d_model": s.d_model, "n_heads": s.n_heads, "n_kv_heads": s.n_kv_heads, "d_ff": s.d_ff,
            "params": s.params, "family": s.family}


def rows_for(res: OptimizeResult, mode: str, bi: int, ci: int, idx, reference: int | None = None) -> list[dict]:
    m = res.modes[mode]
    out = []
    ref_s = float(m.speedup[reference, bi, ci]) if reference is not None else None
    for i in idx:
        i = int(i)
        gi = int(m.gamma_index[i, bi, ci])
        s = float(m.speedup[i, bi, ci])
        r = describe_candidate(res, i)
        if np.isfinite(s):
            r.update(cell_details(res.tpi[i], int(res.cands.shape_index[i]), int(res.cands.n_layers[i]),
                                  m.costs, res.gammas, bi, ci, gi, res.batch))
        else:
            r.update({"gamma": None, "speedup": None, "throughput_tok_s": None})
        lo_s, hi_s = float(m.speedup_lo[i, bi, ci]), float(m.speedup_hi[i, bi, ci])
        r.update({"speedup_lo": lo_s, "speedup_hi": hi_s,
                  "gamma_lo": int(res.gammas[m.gamma_index_lo[i, bi, ci]]),
                  "gamma_hi": int(res.gammas[m.gamma_index_hi[i, bi, ci]]),
                  "alpha": float(res.acc.alpha[i]), "alpha_lo": float(res.acc.lo[i]),
                  "alpha_hi": float(res.acc.hi[i]), "alpha_kind": res.acc.kind(i),
                  "alpha_source": res.acc.source(i), "alpha_by_position": i in res.acc.per_position,
                  "is_reference": i == reference, "notes": row_notes(res, i, gi, s, bi, ci),
                  "fits_memory": res.fits(i, int(res.batch[bi]), int(res.context[ci]), int(res.gammas[gi]))})
        if ref_s is not None and np.isfinite(s) and np.isfinite(ref_s):
            r["gain_vs_reference"] = s / ref_s - 1.0
        out.append(r)
    return out


def ranking(res: OptimizeResult, mode: str, bi: int, ci: int, top: int = 5, reference: int | None = None) -> dict:
    """Top-K rows for one (mode, batch, context), plus the reference row if it is not among them."""
    m = res.modes[mode]
    s = m.speedup[:, bi, ci]
    k = min(top, s.size)
    order = np.argpartition(-s, k - 1)[:k] if k < s.size else np.arange(s.size)
    order = order[np.lexsort((order, -s[order]))]
    idx = list(order)
    if reference is not None and reference not in idx:
        idx.append(reference)
    rows = rows_for(res, mode, bi, ci, idx, reference)
    for rank, r in zip(range(1, len(rows) + 1), rows):
        r["rank"] = rank if rank <= k else int(np.sum(s > s[reference]) + 1)
    conf, roles = confidence(res, mode, bi, ci, idx[:k], reference, with_reference=True)
    for j, (r, c) in enumerate(zip(rows, conf)):
        r.update(c if j < k else {key: c[key] for key in RANGE_KEYS})  # a reference below the top: its range
        if c["range_exact"] and np.isfinite(r["speedup_lo"]):
            r["notes"].append(EXACT_NOTE)
    if reference is not None:
        goal = float(m.speedup[reference, bi, ci])
        need = alpha_to_match(res, mode, idx, bi, ci, goal) if np.isfinite(goal) else [None] * len(idx)
        for r, a in zip(rows, need):
            r["alpha_to_match_reference"] = a
    return {"mode": mode, "batch": int(res.batch[bi]), "context": int(res.context[ci]),
            "baseline_tok_s": float(res.batch[bi] / m.costs.base_s[bi, ci]), "latency_bands": roles, "rows": rows}


def find_candidate(res: OptimizeResult, name: str | None, resolve) -> int | None:
    """Index of a candidate given by name or model string (None → None)."""
    if name is None:
        return None
    for i in range(len(res.cands)):
        if res.cands.specs[i] is not None and res.cands.name(i) == name:
            return i
    hits = match(res.cands, resolve(name))
    if not hits.size:
        raise SpecError(f"reference draft {name!r} is not among the candidates; add it to --drafts")
    return int(hits[0])
