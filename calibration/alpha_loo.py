"""Leave-one-draft-out check of the α model (perfmodel.specdec.alpha_model): for each measured
(draft, α) pair, fit on the others, predict the held-out draft with its 95 % prediction interval,
and report whether the measured α (its point estimate) falls inside, and where the held-out draft
lies outside the remaining pairs' depth or size range (an extrapolation).

Key assumption: pairs are exchangeable apart from their features; coverage from n pairs is a
count out of n (its binomial uncertainty is reported with it, not hidden).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from specperf.perfmodel.specdec import alpha_model as am


def leave_one_out(x, alpha, alpha_ci=None, names=None, depth: str = "auto", prior=None) -> dict:
    """Per held-out pair: α, interval, covered, extrapolation notes; and the coverage with its
    Clopper–Pearson 95 % interval."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    a = np.asarray(alpha, dtype=float)
    n = a.size
    names = list(names or (str(i) for i in range(n)))
    rows = []
    for i in range(n):
        keep = np.arange(n) != i
        ci = [alpha_ci[j] for j in range(n) if j != i] if alpha_ci is not None else None
        m = am.fit(x[keep], a[keep], prior=prior, alpha_ci=ci, depth=depth, source="leave-one-out")
        p, lo, hi = (float(v) for v in m.predict(x[i]))
        rows.append({"draft": names[i], "measured": float(a[i]), "predicted": p, "interval": [lo, hi],
                     "covered": bool(lo <= a[i] <= hi), "fitted": list(m.fitted),
                     "extrapolation": m.extrapolation(x[i])})
    k = sum(r["covered"] for r in rows)
    cp = (float(stats.beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0,
          float(stats.beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0)
    return {"rows": rows, "covered": k, "n": n, "coverage": k / n, "coverage_ci95": list(cp), "depth": depth}
