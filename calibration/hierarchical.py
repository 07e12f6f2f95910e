"""A hierarchical acceptance model: per-prompt (cluster) effects, domain effects, position in the
iteration and along the generation as covariates, within-prompt run-length dependence, with
cluster-robust intervals by prompt — so that within-prompt facts are not confused with between-prompt
(Simpson) ones.

Trials: one Bernoulli outcome per draft token that was verified, with its cluster (prompt/request),
domain, position i in its iteration (1-based), the tokens generated before its iteration (`start`),
and `lag` (1 if the previous token of the same prompt, in generation order, was accepted; token-level
agreement records only). Fitted by logistic regression with one intercept per cluster (prompt fixed
effects: every slope is a *within-prompt* effect), Newton-Raphson; slopes carry the cluster-robust
sandwich covariance by prompt (t on R − 1 df). The spread of prompt intercepts gives the
between-prompt SD τ (method of moments: their variance less their mean squared standard error) and
per-domain means. Weighting: per token (each trial 1) or per iteration (an iteration's trials share
weight 1). Key assumption: within a prompt, trials are conditionally independent given the
covariates (the sandwich keeps intervals honest if not); with few trials per prompt the fixed
intercepts are noisy (incidental-parameter bias shrinks slopes toward 0 by O(1/trials per prompt));
τ and domain means use each prompt's continuity-corrected logit rate ((k + ½)/(n − k + ½)), so a prompt
that accepted every token stays finite.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .data import TraceError

LEVEL = 0.95


@dataclass(frozen=True)
class Trials:
    cluster: np.ndarray  # int codes 0..R−1
    names: tuple  # cluster names, by code
    domain: tuple  # domain of each cluster, by code
    position: np.ndarray  # 1-based draft position in the iteration
    start: np.ndarray  # tokens generated before the iteration
    outcome: np.ndarray  # 0/1
    weight: np.ndarray  # per token 1; per iteration 1/trials of the iteration
    lag: np.ndarray | None = None


def trials_from_counts(accepted, gamma: int, names=None, domains=None, weighting: str = "token") -> Trials:
    """Trials from [iterations, sequences] accepted counts (the study's traces) at lookahead γ."""
    a = np.asarray(accepted, dtype=np.int64)
    its, R = a.shape
    start = np.cumsum(a + 1, axis=0) - (a + 1)
    rows = []
    for s in range(R):
        for j in range(its):
            k = int(a[j, s])
            n = min(k + 1, gamma)
            for i in range(1, n + 1):
                rows.append((s, i, start[j, s], int(i <= k), 1.0 if weighting == "token" else 1.0 / n))
    r = np.array(rows, dtype=float)
    names = tuple(names or (str(i) for i in range(R)))
    return Trials(r[:, 0].astype(int), names, tuple(domains or ("all",) * R), r[:, 1].astype(int), r[:, 2],
                  r[:, 3].astype(int), r[:, 4])


def trials_from_record(rec) -> Trials:
    """Token-level trials from a greedy agreement record: every token is a trial at position 1 of
    an iteration starting there, with lag = the previous token's match (0 for the first)."""
    spans = rec.spans()
    cl, st, out, lag = [], [], [], []
    for c, (_, _, sl) in enumerate(spans):
        m = rec.greedy_match[sl].astype(int)
        cl.append(np.full(m.size, c))
        st.append(np.arange(m.size))
        out.append(m)
        lag.append(np.concatenate([[0], m[:-1]]))
    n = sum(x.size for x in out)
    return Trials(np.concatenate(cl), tuple(s[0] for s in spans), tuple(s[1] for s in spans), np.ones(n, int),
                  np.concatenate(st).astype(float), np.concatenate(out), np.ones(n), np.concatenate(lag))


def _design(t: Trials, positions: int, trend: str):
    cols, names = [], []
    for i in range(2, positions + 1):
        cols.append((t.position == i).astype(float))
        names.append(f"position {i} vs 1")
    if trend == "log":
        cols.append(np.log1p(t.start))
        names.append("ln(1 + tokens before the iteration)")
    elif trend.startswith("after:"):
        cols.append((t.start >= float(trend.split(":")[1])).astype(float))
        names.append(f"iteration starts after {trend.split(':')[1]} tokens")
    if t.lag is not None:
        cols.append(t.lag.astype(float))
        names.append("previous token accepted")
    return (np.stack(cols, axis=1) if cols else np.zeros((t.outcome.size, 0))), names


@dataclass(frozen=True)
class HierarchicalFit:
    slopes: dict  # name -> (estimate, (lo, hi)) on the logit scale, within prompts, cluster-robust
    marginal: dict  # name -> average change in P(accept) over the clusters' intercepts (within prompts)
    tau: float  # between-prompt SD of the logit rate, within a domain
    domains: dict  # domain -> (mean P(accept) at the reference covariates, (lo, hi), prompts)
    prompts: int
    trials: int

    def to_dict(self) -> dict:
        return {"within_prompt_logit_slopes": {k: {"estimate": v[0], "ci": list(v[1])} for k, v in self.slopes.items()},
                "within_prompt_marginal_effect": self.marginal, "between_prompt_sd_logit": self.tau,
                "by_domain": {k: {"alpha": v[0], "ci": list(v[1]), "prompts": v[2]} for k, v in self.domains.items()},
                "prompts": self.prompts, "trials": self.trials,
                "method": "logistic regression with prompt fixed effects (Newton), sandwich covariance clustered by "
                          "prompt, t on R-1 df; tau by method of moments on the prompts' continuity-corrected logit rates"}


def fit_hierarchical(t: Trials, positions: int = 1, trend: str = "none", level: float = LEVEL,
                     iterations: int = 50) -> HierarchicalFit:
    """Within-prompt slopes (position i vs 1 for i ≤ `positions`, a trend along the generation:
    'none' | 'log' | 'after:N', and lag when the trials carry it), τ and domain means."""
    keep = t.position <= positions
    sub = Trials(t.cluster[keep], t.names, t.domain, t.position[keep], t.start[keep], t.outcome[keep], t.weight[keep],
                 None if t.lag is None else t.lag[keep])
    X, names = _design(sub, positions, trend)
    R = len(t.names)
    y, w, c = sub.outcome.astype(float), sub.weight, sub.cluster
    if y.size == 0 or R < 2:
        raise TraceError("trials", "the hierarchical model needs trials from at least 2 prompts")
    k = X.shape[1]
    u = np.zeros(R)
    b = np.zeros(k)
    for _ in range(iterations):  # Newton on (u, b); the u-block is diagonal
        eta = np.clip(u[c] + X @ b, -30, 30)
        p = 1 / (1 + np.exp(-eta))
        r, v = w * (y - p), w * p * (1 - p) + 1e-9
        gu = np.bincount(c, r, R)
        Huu = np.bincount(c, v, R) + 1e-6  # a tiny ridge: a prompt with all-0 or all-1 outcomes stays finite
        gb = X.T @ r
        Hub = np.zeros((R, k))
        for j in range(k):
            Hub[:, j] = np.bincount(c, v * X[:, j], R)
        Hbb = (X * v[:, None]).T @ X
        S = Hbb - Hub.T @ (Hub / Huu[:, None])  # Schur complement: the slopes' information
        db = np.linalg.solve(S + 1e-9 * np.eye(k), gb - Hub.T @ (gu / Huu)) if k else b
        du = (gu - Hub @ db) / Huu
        b, u = b + db, np.clip(u + du, -12, 12)
        if np.max(np.abs(np.concatenate([db, du]))) < 1e-8:
            break
    eta = u[c] + X @ b
    p = 1 / (1 + np.exp(-eta))
    slopes, marginal = {}, {}
    if k:
        # cluster-robust sandwich for b (u profiled out): score per cluster of the Schur-projected design
        Xt = X - (Hub / Huu[:, None])[c]
        sc = np.zeros((R, k))
        for j in range(k):
            sc[:, j] = np.bincount(c, w * (y - p) * Xt[:, j], R)
        Sinv = np.linalg.inv(S)
        V = R / (R - 1) * Sinv @ (sc.T @ sc) @ Sinv
        tq = float(stats.t.ppf(0.5 + level / 2, R - 1))
        for j, nm in enumerate(names):
            se = float(np.sqrt(max(V[j, j], 0.0)))
            slopes[nm] = (float(b[j]), (float(b[j] - tq * se), float(b[j] + tq * se)))
            x1 = u + (b[j] if set(np.unique(X[:, j])) <= {0.0, 1.0} else b[j] * float(np.mean(X[:, j]) or 1.0))
            marginal[nm] = float(np.mean(1 / (1 + np.exp(-x1)) - 1 / (1 + np.exp(-u))))
    n_c = np.bincount(c, w, R)
    k_c = np.bincount(c, w * y, R)
    ok = n_c > 0
    lg = np.log((k_c + 0.5) / (n_c - k_c + 0.5))  # continuity-corrected logit of each prompt's rate
    v_c = 1 / (k_c + 0.5) + 1 / (n_c - k_c + 0.5)
    dom = np.array(t.domain, dtype=object)
    resid, D = lg.copy(), 0
    for d in set(dom[ok]):  # τ is the spread *within* a domain: domain means removed first
        sel = ok & (dom == d)
        resid[sel] -= lg[sel].mean()
        D += 1
    dof = int(ok.sum()) - D
    tau = float(np.sqrt(max(0.0, np.sum(resid[ok] ** 2) / dof - np.mean(v_c[ok])))) if dof > 0 else 0.0
    u = lg  # domain means below: of the prompts' own (corrected) logits, each prompt one unit
    doms = {}
    for d in sorted(set(t.domain)):
        idx = np.array([i for i in range(R) if t.domain[i] == d and ok[i]])
        if idx.size < 2:
            continue
        m, s = float(np.mean(u[idx])), float(np.std(u[idx], ddof=1) / np.sqrt(idx.size))
        tq = float(stats.t.ppf(0.5 + level / 2, idx.size - 1))
        ex = lambda z: float(1 / (1 + np.exp(-z)))  # noqa: E731
        doms[d] = (ex(m), (ex(m - tq * s), ex(m + tq * s)), int(idx.size))
    return HierarchicalFit(slopes, marginal, tau, doms, int(ok.sum()), int(y.size))


def within_prompt_difference(accepted, gamma: int, i: int = 2, j: int = 1, level: float = LEVEL):
    """α_i − α_j within prompts (Mantel–Haenszel-style: each prompt's difference weighted by its
    harmonic-mean number of trials) and pooled, with a cluster-robust t interval on the weighted
    mean. Returns (within, (lo, hi), pooled)."""
    a = np.asarray(accepted)
    reach = lambda x, q: (x >= q - 1).sum(axis=0)  # noqa: E731  iterations reaching position q (per prompt)
    acc = lambda x, q: (x >= q).sum(axis=0)  # noqa: E731
    ni, nj = reach(a, i).astype(float), reach(a, j).astype(float)
    ok = (ni > 0) & (nj > 0)
    di = acc(a, i)[ok] / ni[ok] - acc(a, j)[ok] / nj[ok]
    wt = 1 / (1 / ni[ok] + 1 / nj[ok])
    est = float(np.sum(wt * di) / wt.sum())
    R = int(ok.sum())
    se = float(np.sqrt(R / (R - 1) * np.sum((wt * (di - est)) ** 2)) / wt.sum())
    tq = float(stats.t.ppf(0.5 + level / 2, R - 1))
    pooled = float(acc(a, i).sum() / reach(a, i).sum() - acc(a, j).sum() / reach(a, j).sum())
    return est, (est - tq * se, est + tq * se), pooled
