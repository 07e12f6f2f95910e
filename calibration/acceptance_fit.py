"""Acceptance fits: maximum-likelihood i.i.d. α and per-position α_i (conditional on reaching
position i) with 95 % profile-likelihood intervals, a likelihood-ratio test of per-position vs
i.i.d., and predicted tokens per iteration for other lookaheads.

Likelihood (sequential accept/reject, truncated geometric per iteration with its own γ_j):
  L(α)   = Π_j α^{a_j} (1-α)^{[a_j < γ_j]} = α^S (1-α)^F,  S = Σ a_j, F = rejections,
  L(α_·) = Π_i α_i^{k_i} (1-α_i)^{n_i-k_i}   (n_i reached position i, k_i accepted it).
Both have binomial kernels, so the MLEs are S/(S+F) and k_i/n_i. Intervals are likelihood-ratio
(profile) intervals {α: 2[ℓ(α̂)-ℓ(α)] ≤ χ²₁(0.95)}: unlike a Wald or Wilson interval they do not
depend on the stopping rule (the number of trials here is random — it stops at the first
rejection), they stay inside [0, 1] and reach the boundary when k = 0 or k = n, and for binomial
data their coverage is close to nominal (Brown, Cai & DasGupta 2001, Stat. Sci. 16:101). Key
assumption: iterations are independent; traces clustered by request give intervals that are too
narrow and a test that rejects too often.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.maths import tokens_per_iteration, tokens_per_iteration_by_position

from .cluster import cluster_ci, per_request_counts, short_proposal_bounds, widen
from .data import AcceptanceData, TraceError
from .report import FitReport

LEVEL = 0.95  # two-sided interval level used throughout (issue 4)
N_BOOT = 2000  # parametric-bootstrap draws for per-position tokens/iteration intervals
EPS = 1e-12


def loglik(k, m, a):
    """k·log α + m·log(1-α) with 0·log 0 = 0; broadcasts."""
    k, m, a = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (k, m, a)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(k > 0, k * np.log(a), 0.0)
        t2 = np.where(m > 0, m * np.log1p(-a), 0.0)
    return t1 + t2


def profile_ci(k: float, m: float, level: float = LEVEL) -> tuple[float, float]:
    """Likelihood-ratio interval for the kernel α^k (1-α)^m (k successes, m failures)."""
    n = k + m
    if n <= 0:
        return (0.0, 1.0)
    a_hat = k / n
    cut = float(loglik(k, m, a_hat)) - stats.chi2.ppf(level, 1) / 2.0
    f = lambda a: float(loglik(k, m, a)) - cut  # noqa: E731
    lo = 0.0 if k == 0 else optimize.brentq(f, EPS, a_hat, xtol=1e-12)
    hi = 1.0 if m == 0 else optimize.brentq(f, a_hat, 1.0 - EPS, xtol=1e-12)
    return (float(lo), float(hi))


def wilson_ci(k: float, n: float, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval (a cross-check of profile_ci for fixed-n binomial data)."""
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(c - h), float(c + h))


def _mean_accepted(alpha, gamma):
    """μ(α) = E[a] = Σ_{k≤γ} α^k and σ²(α) = Var[a] for a = min(Geometric, γ)."""
    k = np.arange(1, gamma + 1)
    p = np.asarray(alpha, dtype=float)[..., None] ** k
    mu = p.sum(-1)
    return mu, ((2 * k - 1) * p).sum(-1) - mu ** 2


def fit_mean_length(data: AcceptanceData, level: float = LEVEL):
    """α̂ solving E[a](α, γ) = mean; score interval |m̄-μ(α)| ≤ z·σ(α)/√n when n is known."""
    g, mbar = data.gamma_max, data.mean_accepted
    if mbar >= g:
        raise TraceError(data.source, f"mean accepted {mbar:g} = γ: every draft token accepted, α̂ = 1 "
                                      "(speculation would be unbounded); no finite α fits")
    f = lambda a: float(_mean_accepted(a, g)[0]) - mbar  # noqa: E731
    a_hat = 0.0 if mbar <= 0 else optimize.brentq(f, 0.0, 1.0 - EPS, xtol=1e-13)
    if not data.n_drafts:
        return a_hat, None, None
    z, n = stats.norm.ppf(0.5 + level / 2), data.n_drafts

    def score(a):
        mu, var = _mean_accepted(a, g)
        return float((mbar - mu) / np.sqrt(max(float(var), 1e-300) / n))
    lo = 0.0 if mbar <= 0 else optimize.brentq(lambda a: score(a) - z, EPS, max(a_hat, 2 * EPS), xtol=1e-12)
    hi = optimize.brentq(lambda a: score(a) + z, a_hat, 1.0 - 1e-9, xtol=1e-12)
    mu, var = _mean_accepted(a_hat, g)
    dmu = float(_mean_accepted(a_hat + 1e-6, g)[0] - mu) / 1e-6
    se = float(np.sqrt(var / n) / dmu) if dmu > 0 else None
    return a_hat, (lo, hi), se


def _mean_cluster_ci(S_r, N_r, gamma: int, level: float = LEVEL):
    """α interval from the cluster-robust interval of the mean accepted count Σ S_r / Σ N_r (requests r),
    mapped through the i.i.d. model's mean μ(α) (monotone in α)."""
    S, N = np.asarray(S_r, dtype=float), np.asarray(N_r, dtype=float)
    R = S.size
    if R < 2 or N.sum() <= 0:
        return None
    m = S.sum() / N.sum()
    se = np.sqrt(R / (R - 1) * np.sum((S - m * N) ** 2)) / N.sum()
    t = stats.t.ppf(0.5 + level / 2, R - 1)
    lo, hi = max(0.0, m - t * se), min(gamma - 1e-9, m + t * se)
    inv = lambda v: 0.0 if v <= 0 else optimize.brentq(lambda a: float(_mean_accepted(a, gamma)[0]) - v,  # noqa: E731
                                                       0.0, 1.0 - EPS, xtol=1e-12)
    return (float(inv(lo)), float(inv(hi)))


@dataclass(frozen=True)
class AcceptanceFit:
    data: AcceptanceData
    model: AcceptanceModel
    report: FitReport
    predictions: tuple  # dicts per γ

    def to_dict(self) -> dict:
        d = self.model.to_dict()
        d["fit_report"] = self.report.to_dict()
        return d


def _bootstrap_tokens(n, k, gammas, seed):
    rng = np.random.default_rng(seed)
    a_hat = k / n
    draws = rng.binomial(n[None, :].astype(np.int64), a_hat[None, :], size=(N_BOOT, n.size)) / n[None, :]
    out = np.empty((N_BOOT, len(gammas)))
    for j, g in enumerate(gammas):
        ext = np.concatenate([draws, np.repeat(draws[:, -1:], max(0, g - n.size), axis=1)], axis=1)[:, :g]
        out[:, j] = 1.0 + np.cumprod(ext, axis=1).sum(axis=1)
    lo, hi = np.percentile(out, [50 * (1 - LEVEL), 50 * (1 + LEVEL)], axis=0)
    return lo, hi


def _dependence(data, a_ci, ab_ci, m, level, notes, ci_method):
    """Per-request (cluster-robust) intervals when the trace names requests, a visible note when
    independence is assumed, and partial-identification bounds under short vLLM proposals."""
    it = data.extra.get("iterations")
    if it:
        n_r, k_r, S_r, N_r = per_request_counts(it["request"], it["gamma"], it["accepted"], it["count"], m)
        a_ci = widen(a_ci, cluster_ci(S_r, N_r, level))
        ab_ci = [widen(c, cluster_ci(k_r[:, i], n_r[:, i], level)) for i, c in enumerate(ab_ci)]
        notes.append(f"intervals are per-request (cluster-robust over {len(S_r)} requests, t on "
                     f"{len(S_r) - 1} df), never narrower than the independent-iteration ones")
        return a_ci, ab_ci, ci_method + "; widened to the per-request cluster-robust interval", []
    tok = data.extra.get("draft_tokens")
    if data.format == "vllm-metrics" and tok is not None and tok < data.gamma_max * (data.n_drafts or 0):
        b = short_proposal_bounds(data.accepted[:m], data.n_drafts, tok, profile_ci, level)
        ab_ci = [iv for (_, _, iv, _) in b]
        bad = [i for i, x in enumerate(b) if not x[3]]
        notes.append("short proposals: α_i bounded in [" + "; ".join(f"{lo:.3f}, {hi:.3f}" for lo, hi, _, _ in b)
                     + "] by position; intervals widened to these bounds"
                     + (f"; positions {bad} are unidentifiable (upper bound 1): no per-position rate from "
                        f"position {bad[0]} on" if bad else ""))
        return a_ci, ab_ci, ci_method + "; per-position widened for short proposals (partial identification)", bad
    if data.format == "iterations":
        notes.append("iterations assumed independent (the trace names no request): if α varies by request "
                     "the intervals are too narrow — add a 'request' column")
    else:
        notes.append(f"iterations assumed independent ({data.format} counts carry no request identity): "
                     "if α varies by request the intervals are too narrow")
    return a_ci, ab_ci, ci_method, []


def fit_acceptance(data: AcceptanceData, gammas=range(1, 9), model: str = "auto", seed: int = 0,
                   level: float = LEVEL) -> AcceptanceFit:
    """Fit, test, predict; `model` = auto (per-position only where the LR test needs it) | iid | per-position."""
    if model not in ("auto", "iid", "per-position"):
        raise TraceError(data.source, f"model={model!r} is not allowed; use auto, iid or per-position")
    gammas = sorted(set(int(g) for g in gammas))
    notes = list(data.notes)
    g_obs = data.gamma_max
    params, se, ci, metrics, tests = {}, {}, {}, {}, {}
    resid, rlabels = [], []
    pp = None
    if data.kind == "mean":
        a_hat, a_ci, a_se = fit_mean_length(data, level)
        method = "moment match of the mean accepted length (i.i.d. model)"
        ci_method = "score interval |m̄-μ(α)| ≤ z·σ(α)/√n from the i.i.d. model's variance"
        pr = data.extra.get("per_request")
        if pr and a_ci is not None:
            a_ci = widen(a_ci, _mean_cluster_ci(pr["accepted"], pr["iterations"], data.gamma_max, level))
            ci_method += "; widened to the per-request cluster-robust interval of the mean"
            notes.append(f"intervals are per-request (cluster-robust over {len(pr['accepted'])} requests, t on "
                         f"{len(pr['accepted']) - 1} df), never narrower than the independent-iteration ones")
        metrics["mean accepted"] = data.mean_accepted
        if model == "per-position":
            raise TraceError(data.source, "a mean accepted length identifies only an i.i.d. α, not α by position")
    else:
        S, F = data.total_accepted, data.rejections
        if F == 0:
            raise TraceError(data.source, f"every one of {int(S)} draft tokens was accepted: α̂ = 1 "
                                          "(speculation unbounded); no finite α fits")
        a_hat = S / (S + F)
        a_ci = profile_ci(S, F, level)
        a_se = float(np.sqrt(a_hat * (1 - a_hat) / (S + F)))
        method = "maximum likelihood (closed form), truncated-geometric likelihood per iteration"
        ci_method = "profile likelihood (likelihood-ratio), χ²₁ 95 %"
        m = data.positions
        n, k = data.reached[:m].astype(float), data.accepted[:m].astype(float)
        ab = k / n
        ab_ci = [profile_ci(ki, ni - ki, level) for ki, ni in zip(k, n)]
        ab_se = np.sqrt(ab * (1 - ab) / n)
        ll_iid = float(loglik(S, F, a_hat))
        ll_pp = float(loglik(k, n - k, ab).sum())
        metrics.update({"accepted tokens": int(S), "rejections": int(F),
                        "mean accepted": data.observed_mean_accepted,
                        "log-likelihood iid": ll_iid, "log-likelihood pp": ll_pp,
                        "AIC iid": 2 - 2 * ll_iid, "AIC per-position": 2 * m - 2 * ll_pp})
        if m > 1:
            stat = max(0.0, 2 * (ll_pp - ll_iid))
            p = float(stats.chi2.sf(stat, m - 1))
            tests["LR per-position vs iid"] = {
                "statistic": stat, "df": m - 1, "p_value": p,
                "verdict": "per-position model needed (p < 0.05)" if p < 0.05
                else "i.i.d. α adequate (p ≥ 0.05)"}
        resid = (k - n * a_hat) / np.sqrt(np.maximum(n * a_hat * (1 - a_hat), 1e-300))
        rlabels = [f"position {i} (n={int(ni)})" for i, ni in enumerate(n)]
        use_pp = model == "per-position" or (model == "auto" and m > 1 and tests["LR per-position vs iid"]["p_value"] < 0.05)
        if model == "auto" and not use_pp and m > 1:
            notes.append("LR test does not need the per-position model: the JSON carries the i.i.d. α "
                         "(per-position estimates kept under alpha_by_position_fit)")
        a_ci, ab_ci, ci_method, bad = _dependence(data, a_ci, ab_ci, m, level, notes, ci_method)
        cut = bad[0] if bad else m  # refuse per-position rates from the first unidentifiable position
        pp = (ab[:cut], ab_ci[:cut], ab_se[:cut], n[:cut], k[:cut], use_pp)
        if data.format == "vllm-metrics":
            uncond = ", ".join(f"{v:.3f}" for v in k / data.n_drafts)
            notes.append(f"vLLM's logged per-position rates (c_i / drafts, unconditional) are [{uncond}]; "
                         "alpha[i] above is conditional on reaching position i: c_i / c_(i-1)")
            tok = data.extra.get("draft_tokens")
            if tok:
                notes.append(f"vLLM's accepted/draft_tokens = {S / tok:.4f} is not α: it counts tokens "
                             "that were never verified after a rejection as rejected")
    params["alpha"], se["alpha"], ci["alpha"] = a_hat, a_se, a_ci
    if pp is not None:
        for i, (v, c, s) in enumerate(zip(pp[0], pp[1], pp[2])):
            params[f"alpha[{i}]"], se[f"alpha[{i}]"], ci[f"alpha[{i}]"] = float(v), float(s), c
    # predictions for other γ
    obs_mean = {g: float((np.arange(g + 1) * h).sum() / h.sum()) + 1.0
                for g, h in data.histogram.items() if h.sum() > 0}
    preds = []
    e_iid = tokens_per_iteration(a_hat, np.array(gammas))
    boot = _bootstrap_tokens(pp[3], pp[4], gammas, seed) if pp is not None else None
    for j, g in enumerate(gammas):
        row = {"gamma": g, "iid": float(e_iid[j]),
               "iid_ci": [float(tokens_per_iteration(c, g)) for c in a_ci] if a_ci else None,
               "iid_extrapolated": g > g_obs, "observed": obs_mean.get(g)}
        if pp is not None:
            row["per_position"] = float(tokens_per_iteration_by_position(pp[0], g))
            row["per_position_ci"] = [float(boot[0][j]), float(boot[1][j])]
            row["per_position_extrapolated"] = g > len(pp[0])
        preds.append(row)
    if any(g not in data.gammas for g in gammas):
        notes.append(f"intervals at γ other than the observed {', '.join(map(str, data.gammas))} count sampling error "
                     "only: real acceptance by position shifts with γ (where iterations start depends on γ), "
                     "so a prediction at another γ can miss them (docs/accuracy.md, 'real engine')")
    notes.append(f"extrapolation: i.i.d. beyond γ={g_obs} assumes α stays constant"
                 + (f"; per-position beyond position {len(pp[0]) - 1} repeats the last rate α[{len(pp[0]) - 1}]"
                    if pp is not None else ""))
    report = FitReport(title=f"acceptance fit: {data.source} ({data.format})", method=method,
                       n=int(data.n_drafts or 0), n_label="drafts", parameters=params, stderr=se, ci=ci,
                       ci_method=ci_method, residuals=tuple(float(r) for r in resid),
                       residual_labels=tuple(rlabels),
                       residual_kind="Pearson (k_i - n_i·α̂)/√(n_i·α̂(1-α̂)) under the i.i.d. model",
                       metrics=metrics, tests=tests, notes=tuple(notes))
    use_pp = pp is not None and pp[5]
    extra = {"format": data.format, "n_drafts": data.n_drafts, "gammas_observed": list(data.gammas),
             "model": "per-position" if use_pp else "iid", "ci_level": level, "ci_method": ci_method,
             "tokens_per_iteration": preds, "lr_test": tests.get("LR per-position vs iid"),
             "fit": "specperf calibrate acceptance"}
    if pp is not None:
        extra["alpha_by_position_fit"] = [float(v) for v in pp[0]]
        extra["alpha_by_position_fit_ci"] = [list(c) for c in pp[1]]
        extra["reached"] = [int(v) for v in pp[3]]
        extra["accepted"] = [int(v) for v in pp[4]]
    acc = AcceptanceModel(alpha=float(a_hat), alpha_ci=tuple(a_ci) if a_ci else None,
                          alpha_by_position=tuple(float(v) for v in pp[0]) if use_pp else None,
                          alpha_by_position_ci=tuple(tuple(c) for c in pp[1]) if use_pp else None,
                          source=str(data.source), n_iterations=data.n_drafts, extra=extra)
    return AcceptanceFit(data=data, model=acc, report=report, predictions=tuple(preds))
