"""Acceptance intervals that do not assume independent iterations, and bounds for positions that
short vLLM proposals leave unidentified (issue 14).

Clustered traces: when a per-iteration trace names its request (CSV/JSONL column `request`), α and
each α_i are ratio estimators Σ_r k_r / Σ_r n_r over requests r; their cluster-robust (linearised,
"sandwich") variance v = R/(R−1) Σ_r (k_r − α̂ n_r)² / (Σ_r n_r)² is turned into an interval on the
logit scale with a t quantile on R−1 degrees of freedom, and never made narrower than the
independent-iteration (profile) interval. This is the analytic counterpart of resampling whole
requests (a cluster bootstrap): deterministic and fast; its coverage on simulated clustered traces
is in docs/accuracy.md and checked by tests.

Short proposals (vLLM counters): when draft_tokens < γ·drafts, M = γ·drafts − draft_tokens draft
slots were never proposed, and the number of drafts that reached position i is only known to lie in
[c_{i−1} − min(M, c_{i−1}), c_{i−1}]. α_i is then bounded (partial identification), the interval is
the union of the profile intervals at both ends, and a position whose upper bound reaches 1 is
declared unidentifiable.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def _logit(a):
    a = np.clip(a, 1e-9, 1 - 1e-9)
    return np.log(a / (1 - a))


def _expit(x):
    return 1 / (1 + np.exp(-x))


def per_request_counts(requests, gamma, accepted, weight, positions: int):
    """(R, positions) reached n_ri and accepted k_ri per request, and the i.i.d. (S_r, N_r = S_r + F_r)."""
    req = np.asarray(requests)
    g, a, w = (np.asarray(x, dtype=np.int64) for x in (gamma, accepted, weight))
    ids, inv = np.unique(req, return_inverse=True)
    pos = np.arange(1, positions + 1)[None, :]
    reached = ((g[:, None] >= pos) & (a[:, None] >= pos - 1)) * w[:, None]
    acc = (a[:, None] >= pos) * w[:, None]
    R = ids.size
    n = np.zeros((R, positions))
    k = np.zeros((R, positions))
    np.add.at(n, inv, reached)
    np.add.at(k, inv, acc)
    S = np.zeros(R)
    N = np.zeros(R)
    np.add.at(S, inv, a * w)
    np.add.at(N, inv, (a + (a < g)) * w)  # trials: accepted tokens + one rejection unless all accepted
    return n, k, S, N


def cluster_ci(k_r, n_r, level: float = 0.95):
    """Ratio estimate Σk/Σn and its cluster-robust interval (logit scale, t on R−1 df)."""
    k_r, n_r = np.asarray(k_r, dtype=float), np.asarray(n_r, dtype=float)
    keep = n_r > 0
    k_r, n_r = k_r[keep], n_r[keep]
    R = k_r.size
    K, N = k_r.sum(), n_r.sum()
    if R < 2 or N == 0:
        return None
    a = K / N
    v = R / (R - 1) * float(np.sum((k_r - a * n_r) ** 2)) / N ** 2
    if a <= 0 or a >= 1:
        return (0.0, 1.0) if v > 0 else None
    se_logit = np.sqrt(v) / (a * (1 - a))
    t = stats.t.ppf(0.5 + level / 2, R - 1)
    return float(_expit(_logit(a) - t * se_logit)), float(_expit(_logit(a) + t * se_logit))


def widen(ci_iid, ci_cluster):
    """The wider of the two intervals (their union); `ci_cluster` may be None."""
    if ci_cluster is None:
        return tuple(ci_iid)
    return (min(ci_iid[0], ci_cluster[0]), max(ci_iid[1], ci_cluster[1]))


def short_proposal_bounds(c, n_drafts: int, draft_tokens: int, ci_fn, level: float = 0.95):
    """Per position i (0-based): (lower α, upper α, interval, identifiable) under short proposals.

    c = accepted-at-position counts (unconditional), ci_fn(k, m, level) the profile interval."""
    c = np.asarray(c, dtype=float)
    M = float(len(c) * n_drafts - draft_tokens)
    out = []
    prev = float(n_drafts)
    for i, ci_ in enumerate(c):
        short = 0.0 if i == 0 else min(M, prev - ci_)  # position 0: every draft proposes ≥ 1 token
        lo_n, hi_n = prev, prev - short  # reached ∈ [prev − short, prev]
        a_lo, a_hi = ci_ / lo_n if lo_n else 0.0, ci_ / hi_n if hi_n else 1.0
        ident = a_hi < 1.0 or ci_ == prev
        iv = (ci_fn(ci_, lo_n - ci_, level)[0], ci_fn(ci_, hi_n - ci_, level)[1]) if hi_n > 0 else (0.0, 1.0)
        out.append((a_lo, a_hi, iv, bool(ident)))
        prev = ci_
    return out
