"""Monte Carlo propagation of latency error bands and acceptance intervals into iteration time,
throughput, speedup and the optimal γ (issue 14). Vectorised: one (draws, batch, context, γ) array.

Key assumptions. Latency: a component answered by source kind k is off by a log-normal factor whose
90 % interval is (1 ± band_k) (bands from the shipped error_bands.json, carried on each
Source.band); errors are shared by every component of the iteration answered by the same kind and independent
across kinds; the autoregressive baseline gets its own draw at the band of its own sources (one target
forward over one token and the γ = 0 overhead; on the own-loop validation its error is uncorrelated with
the iteration's). A forward takes the widest band among its components. Bands are per (batch, context, γ)
cell, from the sources that answer that cell (perfmodel.specdec.cell_bands): a row's interval does not
depend on which other rows were asked with it. Acceptance: α (or each α_i) is logit-normal with the model's 95 % interval as ±1.96 σ;
α given without an interval is taken as exact, and the document says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import json
from pathlib import Path

import numpy as np

from specperf.perfmodel.shipped import find_one
from specperf.perfmodel.specdec.cell_bands import (Z90, all_kinds, cell_factors, draw_kind, kind_normals, role_band,
                                                   stream, summary)
from specperf.perfmodel.specdec.maths import speedup, throughput_tok_s, tokens_per_iteration_by_position
from specperf.perfmodel.specdec.methods import iteration_time_s

LEVEL = 0.90  # stated interval level for iteration_s / throughput / speedup
N_DRAWS = 2000
Z95 = 1.959963984540054
__all__ = ["Z90", "Z95", "propagate", "role_band", "stream"]


BANDS_FILE = find_one("error_bands")  # perfmodel/data/manifest.json; None when no bands ship


def fallback_band(mode: str, path: Path | None = BANDS_FILE) -> float | None:
    """The fitted-analytical band (read as data; specdec imports no latency module), used for a
    source kind or mode that has no validated band of its own — compiled mode included: its rows
    are not validated against a compiled loop yet, so they get this wide band, never zero."""
    if path is None or not Path(path).is_file():
        return None
    per = json.loads(Path(path).read_text())["bands"].get("fitted", {})
    e = per.get(mode) or per.get("any")
    return None if e is None else float(e["band"])


def shared_fraction(kind: str, mode: str, path: Path | None = BANDS_FILE) -> float:
    """ρ: the share of source kind `kind`'s error (second moment, log scale) common to every layer shape
    in `mode` (scripts/error_bands.py: own loop for measured rows, unseen-shape checks for operators);
    1 (fully shared) where no evidence across shapes exists."""
    if path is None or not Path(path).is_file():
        return 1.0
    e = json.loads(Path(path).read_text()).get("shared_fraction", {}).get(kind, {}).get(mode)
    return 1.0 if e is None else float(min(max(e["rho"], 0.0), 1.0))


def _logit(a):
    a = np.clip(np.asarray(a, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(a / (1 - a))


def alpha_draws(acc, n: int, gmax: int, rng) -> tuple[np.ndarray, str | None]:
    """(n, gmax) α_i draws from an AcceptanceModel, and a note when it carries no interval."""
    if acc.per_position:
        mid, ci = np.asarray(acc.alpha_by_position, dtype=float), acc.alpha_by_position_ci
    else:
        mid, ci = np.array([acc.alpha]), (acc.alpha_ci,) if acc.alpha_ci else None
    if not ci or any(c is None for c in ci):
        return np.broadcast_to(_extend(mid, gmax), (n, gmax)).copy(), \
            f"acceptance ({acc.source}) has no interval: taken as exact"
    lo, hi = np.array([c[0] for c in ci]), np.array([c[1] for c in ci])
    sd = np.maximum((_logit(hi) - _logit(lo)) / (2 * Z95), 0.0)
    z = rng.standard_normal((n, mid.size))
    a = 1.0 / (1.0 + np.exp(-(_logit(mid) + sd * z)))
    a = np.where(sd > 0, a, mid)
    return _extend_rows(a, gmax), None


def _extend(ab, gmax):
    return np.concatenate([ab, np.full(max(gmax - ab.size, 0), ab[-1])])[:gmax]


def _extend_rows(a, gmax):
    if a.shape[1] >= gmax:
        return a[:, :gmax]
    return np.concatenate([a, np.repeat(a[:, -1:], gmax - a.shape[1], axis=1)], axis=1)


def tokens_from_draws(ab: np.ndarray, gammas) -> np.ndarray:
    """(n, G) expected tokens per iteration from (n, gmax) α_i draws."""
    cum = np.concatenate([np.ones((ab.shape[0], 1)), 1.0 + np.cumsum(np.cumprod(ab, axis=1), axis=1)], axis=1)
    return cum[:, np.asarray(gammas, dtype=int)]


def tree_draws(method, gammas, n: int, rng):
    """(n, G) tokens per iteration of a TokenTree under its rank acceptance's Dirichlet draws, or None
    (no method, or rank acceptance without counts)."""
    f = getattr(method, "tokens_draws", None)
    return None if f is None else f(gammas, n, rng)


def role_factors(roles: dict, n: int, rng) -> dict:
    """{role: (n,) multiplicative factor}: one standard normal per source kind (sorted; the stream
    kind_factors draws), shared by every role of that kind — one profile errs one way — each role
    scaled by its own band (two roles of one kind may carry different bands)."""
    z = {k: rng.standard_normal(n) for k in sorted({r["kind"] for r in roles.values()})}
    return {role: np.exp(np.log1p(r["band"]) / Z90 * z[r["kind"]]) if r["band"] > 0 else np.ones(n)
            for role, r in roles.items()}


def kind_factors(kinds_bands: dict, n: int, rng) -> dict:
    """{kind: (n,) multiplicative factor}; one standard normal per kind, shared by its components."""
    out = {}
    for kind, b in sorted(kinds_bands.items()):
        z = rng.standard_normal(n)
        out[kind] = np.exp(np.log1p(b) / Z90 * z) if b > 0 else np.ones(n)
    return out


@dataclass(frozen=True)
class Uncertainty:
    """Interval arrays (batch, context, γ) at `level`, the γ* distribution and notes."""
    level: float
    draws: int
    iteration_s_lo: np.ndarray
    iteration_s_hi: np.ndarray
    throughput_tok_s_lo: np.ndarray
    throughput_tok_s_hi: np.ndarray
    speedup_lo: np.ndarray
    speedup_hi: np.ndarray
    p_optimal: np.ndarray  # (batch, context, γ): share of draws in which γ is the best
    robust_index: np.ndarray  # (batch, context): γ index maximising the lower speedup bound
    latency: dict  # {role: {"kind", "band"}}: each role's widest band over every cell (a summary)
    notes: tuple = ()
    cells: dict | None = None  # {role: {"kind", "band"} arrays}: (B,C,G) per role, (B,C) for the baseline

    def cell_latency(self, bi: int, ci: int, k: int | None = None) -> dict:
        """{role: {"kind", "band"}} of one row (k) — or the widest over the cell's rows (k None)."""
        if self.cells is None:
            return self.latency
        out = {}
        for r, v in self.cells.items():
            kind, band = np.asarray(v["kind"])[bi, ci], np.asarray(v["band"])[bi, ci]
            if np.ndim(kind):
                j = int(np.argmax(band)) if k is None else int(k)
                kind, band = kind[j], band[j]
            out[r] = {"kind": str(kind), "band": float(band)}
        return out


def prediction_roles(p) -> tuple[dict, list[str]]:
    """Each cell's roles of `p`: its own (predict records them), else the widest band over `p`'s
    aggregated sources broadcast to every cell (a Prediction built by hand)."""
    if callable(p.cell_roles):
        return p.cell_roles()
    fb, shape, notes, roles = fallback_band(p.mode), p.speedup.shape, [], {}
    for role in ("draft", "target", "overhead"):
        k, b, ns = role_band(p.sources, role, fb)
        roles[role] = {"kind": np.full(shape, draw_kind(k), dtype=object), "band": np.full(shape, b)}
        notes += ns
    roles["baseline"] = {"kind": roles["target"]["kind"][..., 0], "band": roles["target"]["band"][..., 0]}
    return roles, notes


def latency_factors(roles: dict, n: int, seed: int) -> dict:
    """{role: (n, *cell shape) factors}: one standard normal per source kind (its own stream), shared by
    every cell and role it answers, each scaled by the cell's band; the baseline its own stream."""
    lat = {r: v for r, v in roles.items() if r != "baseline"}
    z = kind_normals(all_kinds(lat), n, seed)
    out = {r: cell_factors(v, z, n) for r, v in lat.items()}
    if "baseline" in roles:  # its own draw, whatever kind answers it
        zb = stream(seed, "baseline").standard_normal(n)
        out["baseline"] = cell_factors(roles["baseline"], {k: zb for k in all_kinds({"b": roles["baseline"]})}, n)
    return out


def propagate(p, acc, n: int = N_DRAWS, seed: int = 0, level: float = LEVEL, return_samples: bool = False,
              method=None):
    """Monte Carlo over a Prediction `p` (from specdec.predict) and its AcceptanceModel `acc`; `method`:
    the SpeculationMethod behind `p` (a TokenTree with counts gives the tree's tokens an interval)."""
    roles, notes = prediction_roles(p)
    notes = list(notes)
    f = latency_factors(roles, n, seed)
    rng = stream(seed, "acceptance")
    ab, note = alpha_draws(acc, n, int(p.gamma.max()), rng)
    if note:
        notes.append(note)
    tpi = tokens_from_draws(ab, p.gamma)[:, None, None, :]
    if getattr(p, "method", "").endswith("_tree"):  # the draws above keep the stream either way
        td = tree_draws(method, p.gamma, n, rng)
        if td is None:
            tpi = np.asarray(p.tokens_per_iteration)[None]
            notes.append("token-tree acceptance (per depth and rank) has no interval: taken as exact")
        else:
            tpi = td[:, None, None, :]
    fd, ft, fo = f["draft"], f["target"], f["overhead"]
    B = p.batch[None, :, None, None]
    it = iteration_time_s(p.proposal[None] * fd, np.asarray(p.draft_catchup_s)[None] * fd,
                          p.t_verify_s[None] * ft, p.overhead_s[None] * fo)
    thr = throughput_tok_s(B, tpi, it)
    fbase = f["baseline"][..., None]  # (n, B, C, 1): one draw for every γ of a cell
    sp = speedup(tpi, it, p.t_target_s[None] * fbase, p.baseline_overhead_s[None] * fbase)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    (il, ih), (tl, th), (sl, sh) = (np.percentile(x, q, axis=0) for x in (it, thr, sp))
    best = np.argmax(sp, axis=-1)
    p_opt = np.stack([(best == k).mean(axis=0) for k in range(p.gamma.size)], axis=-1)
    u = Uncertainty(level, n, il, ih, tl, th, sl, sh, p_opt, np.argmax(sl, axis=-1),
                    {r: v for r, v in summary(roles).items() if r != "baseline"}, tuple(dict.fromkeys(notes)), roles)
    return (u, sp) if return_samples else u


def gamma_summary(p, u: Uncertainty, bi: int = 0, ci: int = 0) -> dict:
    """The γ choice under uncertainty for one cell: P(point γ* is best), robust γ, near-tie flag."""
    k = int(p.optimal_index[bi, ci])
    probs = u.p_optimal[bi, ci]
    near_tie = bool(probs[k] < 0.9)
    return {"optimal_gamma_probability": float(probs[k]),
            "gamma_probabilities": {int(g): float(x) for g, x in zip(p.gamma, probs) if x > 0},
            "robust_gamma": int(p.gamma[int(u.robust_index[bi, ci])]), "near_tie": near_tie}
