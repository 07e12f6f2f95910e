"""How sure the optimiser is (issue 14): per ranked configuration, the probability that it beats
the reference draft and the next-ranked one, the probability that it is the best of those shown,
its 95 % range of best achievable speedup (and of γ*) and a γ robust to the interval — from the same
Monte Carlo as `predict` (perfmodel.specdec.uncertainty): latency bands by source kind, each cell's
own (optimize.cell_roles, so nothing depends on the other γ, cells or modes searched), acceptance
intervals per draft.

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
from specperf.perfmodel.specdec.cell_bands import kind_normals, stream
from specperf.perfmodel.specdec.uncertainty import N_DRAWS, Z90, alpha_draws, shared_fraction, tokens_from_draws

NEAR_TIE = 0.9
RANGE = 0.95  # the ranked rows' "95% range"


def _acceptance(res, i: int) -> AcceptanceModel:
    pp = res.acc.per_position.get(i)
    if pp is not None:
        return pp
    a, lo, hi = float(res.acc.alpha[i]), float(res.acc.lo[i]), float(res.acc.hi[i])
    return AcceptanceModel(alpha=a, alpha_ci=(lo, hi) if lo < a < hi or lo < hi else None, source=res.acc.source(i))


def _model_draws(res, idx, n: int, seed: int) -> dict:
    """{candidate: (n, γmax) α draws} for candidates whose α comes from the α model: drawn jointly,
    so drafts predicted by one model share its coefficient errors (candidates in index order)."""
    acc = res.acc
    if acc.model is None or acc.model_x is None:
        return {}
    own = sorted(i for i in set(idx) if acc.kind(i) == acc.model.kind and i not in acc.per_position)
    if not own:
        return {}
    from specperf.perfmodel.specdec.alpha_model import ALPHA_CLIP, expit

    a = np.clip(expit(acc.model.sample_logits(acc.model_x[own], n, stream(seed, "alpha_model"))), 0.0, ALPHA_CLIP[1])
    gmax = int(np.max(res.gammas))
    return {i: np.repeat(a[:, k:k + 1], gmax, axis=1) for k, i in enumerate(own)}


def _factor(sig, z) -> np.ndarray:
    return np.exp(sig[None] * z)


def cell_factors(res, mode: str, bi: int, ci: int, idx, n: int, seed: int):
    """{candidate: (n, G) draft factor}, (n, G) target and overhead factors, (n, 1) baseline factor and
    the roles shown (the candidates' widest draft band, the target's and overhead's over γ). A kind's
    draft error splits into a part shared by every shape (variance share ρ) and a per-shape part (its
    own seeded stream, so a shape's draw does not depend on which other candidates are shown)."""
    cells = res.modes[mode].costs.cells
    shapes = sorted({int(res.cands.shape_index[i]) for i in idx})
    per = {s: cells.roles(s, bi, ci) for s in shapes}
    tg = per[shapes[0]]
    kinds = [k for s in shapes for k in per[s]["draft"]["kind"]] + list(tg["target"]["kind"]) + list(tg["overhead"]["kind"])
    z = kind_normals(kinds, n, seed)
    zk = lambda ks: np.stack([z[k] for k in ks], axis=-1)  # (n, G)
    sig = lambda r: np.log1p(np.asarray(r["band"], dtype=float)) / Z90
    ft, fo = (_factor(sig(tg[r]), zk(tg[r]["kind"])) for r in ("target", "overhead"))
    fbase = np.exp(sig(tg["baseline"]) * stream(seed, "baseline").standard_normal(n))[:, None]
    fd = {}
    for s in shapes:
        d = per[s]["draft"]
        rho = np.array([shared_fraction(k, mode) for k in d["kind"]])
        zs = np.random.default_rng([seed, 1, s]).standard_normal(n)[:, None]
        fd[s] = _factor(sig(d), np.sqrt(rho)[None] * zk(d["kind"]) + np.sqrt(1.0 - rho)[None] * zs)
    widest = max(shapes, key=lambda s: float(np.max(per[s]["draft"]["band"])))
    show = {r: _widest(per[widest][r] if r == "draft" else tg[r]) for r in ("draft", "target", "overhead")}
    show["draft"]["rho"] = shared_fraction(show["draft"]["kind"], mode)
    show["baseline"] = {"kind": str(tg["baseline"]["kind"]), "band": float(tg["baseline"]["band"])}
    exact = all(float(np.max(per[s]["draft"]["band"])) == 0 for s in shapes) and all(
        float(np.max(tg[r]["band"])) == 0 for r in ("target", "overhead", "baseline"))
    return {i: fd[int(res.cands.shape_index[i])] for i in idx}, ft, fo, fbase, show, exact


def _widest(r: dict) -> dict:
    j = int(np.argmax(r["band"]))
    return {"kind": str(np.asarray(r["kind"])[j]), "band": float(np.asarray(r["band"])[j])}


def speedup_draws(res, mode: str, bi: int, ci: int, idx, n: int = N_DRAWS, seed: int = 0):
    """(len(idx), n, G) speedup draws of candidates `idx` at one cell, the latency roles shown and
    whether every draw is the point (latency and acceptance exact)."""
    c = res.modes[mode].costs
    idx = [int(i) for i in idx]
    fd, ft, fo, fbase, roles, exact = cell_factors(res, mode, bi, ci, idx, n, seed)
    g = np.asarray(res.gammas, dtype=float)
    joint = _model_draws(res, idx, n, seed)
    out = np.empty((len(idx), n, g.size))
    for j, i in enumerate(idx):
        s = int(res.cands.shape_index[i])
        if i in joint:
            ab, note = joint[i], None
        else:
            ab, note = alpha_draws(_acceptance(res, i), n, int(g.max()), stream(seed, f"alpha:{res.cands.name(i)}"))
        exact = exact and note is not None and i not in joint
        tpi = tokens_from_draws(ab, res.gammas)
        it = c.iteration_s(np.array([s]), np.array([res.cands.n_layers[i]]), g, bi, ci, fd[i], ft, fo)  # (n, G)
        sp = tpi * c.base_s[bi, ci] * fbase / it
        if c.feasible is not None:
            sp = np.where(c.feasible[s, ci][None], sp, -np.inf)
        out[j] = sp
    return out, roles, exact


def speedup_range(res, sp: np.ndarray, level: float = RANGE) -> dict:
    """{speedup_lo, speedup_hi, gamma_lo, gamma_hi}: the central `level` range of one candidate's best
    achievable speedup over draws (γ re-optimised per draw) and of the γ that achieves it."""
    best = sp.max(axis=-1)
    q = [(1 - level) / 2, (1 + level) / 2]
    if not np.all(np.isfinite(best)):  # no feasible γ (context + γ beyond learned positions)
        return {"speedup_lo": -np.inf, "speedup_hi": -np.inf, "gamma_lo": int(res.gammas[0]), "gamma_hi": int(res.gammas[0])}
    lo, hi = (float(v) for v in np.quantile(best, q))
    gam = np.asarray(res.gammas)[np.argmax(sp, axis=-1)]
    glo, ghi = (int(v) for v in np.quantile(gam, q, method="inverted_cdf"))
    return {"speedup_lo": lo, "speedup_hi": hi, "gamma_lo": glo, "gamma_hi": ghi}


def confidence(res, mode: str, bi: int, ci: int, idx, reference: int | None, n: int = N_DRAWS, seed: int = 0,
               with_reference: bool = False):
    """[{p_beats_reference, p_beats_next, p_best_shown, robust_gamma, gamma_near_tie, speedup_lo/hi,
    gamma_lo/hi, range_exact}] per idx (and, `with_reference`, one more for a reference not in idx),
    and the latency roles."""
    idx = [int(i) for i in idx]
    cand = idx + ([reference] if reference is not None and reference not in idx else [])
    sp, roles, exact = speedup_draws(res, mode, bi, ci, cand, n, seed)
    best = sp.max(axis=-1)  # (K, n) best achievable speedup per draw
    shown = best[:len(idx)]
    winner = np.argmax(shown, axis=0)
    m = res.modes[mode]
    out = []
    for j, i in enumerate(cand if with_reference else idx):
        lo5 = np.percentile(sp[j], 5, axis=0)
        gi = int(m.gamma_index[i, bi, ci])
        p_point = float(np.mean(np.argmax(sp[j], axis=-1) == gi))
        d = {"p_best_shown": float(np.mean(winner == j)) if j < len(idx) else None,
             "p_beats_next": float(np.mean(best[j] > best[j + 1])) if j + 1 < len(idx) else None,
             "p_beats_reference": (float(np.mean(best[j] > best[cand.index(reference)]))
                                   if reference is not None and i != reference else None),
             "robust_gamma": int(res.gammas[int(np.argmax(lo5))]),
             "p_gamma_is_best": p_point, "gamma_near_tie": bool(p_point < NEAR_TIE),
             **speedup_range(res, sp[j]), "range_exact": exact}
        out.append(d)
    return out, roles
