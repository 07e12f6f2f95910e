"""How sure the optimiser is (issue 14): per ranked configuration, the probability that it beats
the reference draft and the next-ranked one, the probability that it is the best of those shown,
and a γ robust to the interval — from the same Monte Carlo as `predict`
(perfmodel.specdec.uncertainty): latency bands by source kind, acceptance intervals per draft.

Key assumptions: a source kind's latency error splits into a part shared by every draft it answers
(a bias of the profile or model; the target's verification is common to all) and a part that differs
by layer shape, in the measured proportion ρ : 1 − ρ (uncertainty.shared_fraction: ρ ≈ 0.63 for
measured rows under CUDA graphs, ≈ 0 for operator-composed shapes, 1 where no evidence across shapes
exists); drafts of one layer shape (the same width at different depths) share both; drafts whose α the α model
predicts are drawn jointly (one coefficient draw shared, plus each draft's own scatter); other
drafts' acceptance errors are independent. Each draw re-optimises γ per draft, so probabilities compare best achievable
speedups. A γ is robust when it maximises the 5th percentile of speedup; the choice is a near-tie
when the point-estimate γ* wins in fewer than 90 % of draws.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.uncertainty import (N_DRAWS, Z90, alpha_draws, fallback_band, kind_factors, role_band,
                                           role_factors, shared_fraction, tokens_from_draws)

NEAR_TIE = 0.9


def _acceptance(res, i: int) -> AcceptanceModel:
    pp = res.acc.per_position.get(i)
    if pp is not None:
        return pp
    a, lo, hi = float(res.acc.alpha[i]), float(res.acc.lo[i]), float(res.acc.hi[i])
    return AcceptanceModel(alpha=a, alpha_ci=(lo, hi) if lo < a < hi or lo < hi else None, source=res.acc.source(i))


def _model_draws(res, idx, n: int, rng) -> dict:
    """{candidate: (n, γmax) α draws} for candidates whose α comes from the α model: drawn jointly,
    so drafts predicted by one model share its coefficient errors."""
    acc = res.acc
    if acc.model is None or acc.model_x is None:
        return {}
    own = [i for i in idx if acc.kind(i) == acc.model.kind and i not in acc.per_position]
    if not own:
        return {}
    from specperf.perfmodel.specdec.alpha_model import ALPHA_CLIP, expit

    a = np.clip(expit(acc.model.sample_logits(acc.model_x[own], n, rng)), 0.0, ALPHA_CLIP[1])
    gmax = int(np.max(res.gammas))
    return {i: np.repeat(a[:, k:k + 1], gmax, axis=1) for k, i in enumerate(own)}


def _shape_factors(res, idx, draft_role: dict, mode: str, n: int, seed: int) -> dict:
    """{layer shape index: (n,) factor} of the draft error's shape-specific part (variance share
    1 − ρ), each shape from its own seeded stream (so a shape's draw does not depend on which other
    candidates are shown); {} when the kind is fully shared."""
    rho, band = draft_role["rho"], draft_role["band"]
    if rho >= 1.0 or band <= 0:
        return {}
    sig = np.sqrt(1.0 - rho) * np.log1p(band) / Z90
    shapes = {int(res.cands.shape_index[i]) for i in idx}
    return {s: np.exp(sig * np.random.default_rng([seed, 1, s]).standard_normal(n)) for s in shapes}


def speedup_draws(res, mode: str, bi: int, ci: int, idx, n: int = N_DRAWS, seed: int = 0):
    """(len(idx), n, G) speedup draws of candidates `idx` at one cell, and the latency roles used."""
    m = res.modes[mode]
    c = m.costs
    rng = np.random.default_rng(seed)
    roles = {}
    for role in ("draft", "target", "overhead"):
        k, b, _ = role_band(c.sources, role, fallback_band(mode))
        roles[role] = {"kind": k, "band": b}
    roles["draft"]["rho"] = shared_fraction(roles["draft"]["kind"], mode)
    f = role_factors(roles, n, rng)
    fd, ft, fo = (f[r][:, None] for r in ("draft", "target", "overhead"))
    fbase = kind_factors({"baseline": roles["target"]["band"]}, n, rng)["baseline"][:, None]
    g = np.asarray(res.gammas, dtype=float)
    joint = _model_draws(res, idx, n, rng)
    per_shape = _shape_factors(res, idx, roles["draft"], mode, n, seed)
    if per_shape:
        fd = fd ** np.sqrt(roles["draft"]["rho"])  # the shared part; per_shape holds the rest
    out = np.empty((len(idx), n, g.size))
    for j, i in enumerate(idx):
        s = int(res.cands.shape_index[i])
        ab = joint[i] if i in joint else alpha_draws(_acceptance(res, i), n, int(g.max()), rng)[0]
        tpi = tokens_from_draws(ab, res.gammas)
        fdi = fd * per_shape[s][:, None] if per_shape else fd
        it = c.iteration_s(np.array([s]), np.array([res.cands.n_layers[i]]), g, bi, ci, fdi, ft, fo)  # (n, G)
        sp = tpi * c.base_s[bi, ci] * fbase / it
        if c.feasible is not None:
            sp = np.where(c.feasible[s, ci][None], sp, -np.inf)
        out[j] = sp
    return out, roles


def confidence(res, mode: str, bi: int, ci: int, idx, reference: int | None, n: int = N_DRAWS, seed: int = 0):
    """[{p_beats_reference, p_beats_next, p_best_shown, robust_gamma, gamma_near_tie}] per idx, and roles."""
    idx = [int(i) for i in idx]
    cand = idx + ([reference] if reference is not None and reference not in idx else [])
    sp, roles = speedup_draws(res, mode, bi, ci, cand, n, seed)
    best = sp.max(axis=-1)  # (K, n) best achievable speedup per draw
    shown = best[:len(idx)]
    winner = np.argmax(shown, axis=0)
    m = res.modes[mode]
    out = []
    for j, i in enumerate(idx):
        lo5 = np.percentile(sp[j], 5, axis=0)
        gi = int(m.gamma_index[i, bi, ci])
        p_point = float(np.mean(np.argmax(sp[j], axis=-1) == gi))
        d = {"p_best_shown": float(np.mean(winner == j)),
             "p_beats_next": float(np.mean(best[j] > best[j + 1])) if j + 1 < len(idx) else None,
             "p_beats_reference": (float(np.mean(best[j] > best[cand.index(reference)]))
                                   if reference is not None and i != reference else None),
             "robust_gamma": int(res.gammas[int(np.argmax(lo5))]),
             "p_gamma_is_best": p_point, "gamma_near_tie": bool(p_point < NEAR_TIE)}
        out.append(d)
    return out, roles
