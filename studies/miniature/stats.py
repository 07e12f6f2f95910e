"""Statistics of the miniature study: Spearman rank correlation with a bootstrap 95 % interval
(resampling drafts), error summaries, and the throughput winner per mode.

Key assumption: drafts are the sampling unit of the correlation (a handful of points), so the
interval is a percentile bootstrap over drafts; resamples in which either variable is constant have
no rank correlation and are dropped (their share is reported).
"""
from __future__ import annotations

import math

import numpy as np

from specperf.profiler.validate import abs_error_summary


def ranks(x) -> np.ndarray:
    """Average ranks (ties share their mean rank), 1-based."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(x.size)
    r[order] = np.arange(1, x.size + 1)
    for v in np.unique(x):
        m = x == v
        if m.sum() > 1:
            r[m] = r[m].mean()
    return r


def spearman(x, y) -> float:
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman_bootstrap(x, y, n: int = 10_000, seed: int = 0, level: float = 0.95) -> dict:
    """ρ, its percentile bootstrap interval over resampled pairs, and how many resamples were usable."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n, x.size))
    vals = np.array([spearman(x[i], y[i]) for i in idx])
    ok = vals[np.isfinite(vals)]
    lo, hi = (np.percentile(ok, [50 * (1 - level), 50 * (1 + level)]) if ok.size else (math.nan, math.nan))
    return {"rho": spearman(x, y), "ci_low": float(lo), "ci_high": float(hi), "n_points": int(x.size),
            "resamples": n, "usable_resamples": int(ok.size), "level": level, "seed": seed}


def error_summary(err_pct) -> dict:
    """profiler.validate.abs_error_summary of per-cent errors (None ignored), keys ending in _pct."""
    s = abs_error_summary([math.nan if v is None else v for v in err_pct])
    return {k if k == "n" else f"{k}_pct": v for k, v in s.items()}


def winners(rows: list[dict], mode: str) -> dict:
    """Measured best (draft, γ) in one mode, and the one specperf's prediction would have picked."""
    rs = [r for r in rows if r["mode"] == mode and r["draft"] != "none" and _finite(r.get("measured_tok_s"))]
    if not rs:
        return {}
    best = max(rs, key=lambda r: r["measured_tok_s"])
    pr = [r for r in rs if _finite(r.get("predicted_tok_s"))]
    pick = max(pr, key=lambda r: r["predicted_tok_s"]) if pr else None
    base = next((r["measured_tok_s"] for r in rows if r["mode"] == mode and r["draft"] == "none"), math.nan)
    out = {"mode": mode, "measured_best_draft": best["draft"], "measured_best_gamma": best["gamma"],
           "measured_best_tok_s": best["measured_tok_s"], "baseline_tok_s": base,
           "measured_best_speedup": best["measured_tok_s"] / base if _finite(base) else math.nan}
    if pick:
        out.update(predicted_best_draft=pick["draft"], predicted_best_gamma=pick["gamma"],
                   predicted_pick_measured_tok_s=pick["measured_tok_s"],
                   regret_pct=100 * (1 - pick["measured_tok_s"] / best["measured_tok_s"]))
    per_draft = {}
    for r in rs:
        d = per_draft.setdefault(r["draft"], r)
        if r["measured_tok_s"] > d["measured_tok_s"]:
            per_draft[r["draft"]] = r
    out["best_per_draft"] = {k: {"gamma": v["gamma"], "measured_tok_s": v["measured_tok_s"]} for k, v in per_draft.items()}
    return out


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)
