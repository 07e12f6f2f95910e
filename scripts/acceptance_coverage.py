"""Coverage of acceptance intervals (nominal 95 %) on simulated traces with planted truth (issue 14):
i.i.d., per-position, clustered by request (with and without the request column), and vLLM counters
with short proposals. Prints a markdown table for docs/accuracy.md.

    PYTHONPATH=. python scripts/acceptance_coverage.py [--reps 400] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from specperf.calibration.acceptance_fit import fit_acceptance
from specperf.calibration.simulate import clustered_trace, clustered_truth, iid_trace, per_position_trace, vllm_short_trace


def _hits(fit, truth):
    if np.ndim(truth) == 0:
        c = fit.model.alpha_ci
        return [c[0] <= truth <= c[1]]
    return [lo <= t <= hi for (lo, hi), t in zip(fit.model.extra["alpha_by_position_fit_ci"], truth)]


def study(reps: int, seed: int):
    rng = np.random.default_rng(seed)
    ab = [0.8, 0.7, 0.6, 0.5]
    truth_c = clustered_truth(0.7, 10, 4)
    cases = [
        ("i.i.d. α=0.7, γ=4, 200 iterations", lambda: fit_acceptance(iid_trace(0.7, 4, 200, rng), model="iid"), 0.7),
        ("per-position α=(0.8,0.7,0.6,0.5), 300 iterations", lambda: fit_acceptance(
            per_position_trace(ab, 300, rng), model="per-position"), ab),
        ("clustered: 20 requests × 10 iterations, α_r ~ Beta(mean 0.7, conc. 10), request column",
         lambda: fit_acceptance(clustered_trace(0.7, 10, 4, 20, 10, rng), model="iid"), truth_c),
        ("same, no request column (independence assumed)",
         lambda: fit_acceptance(clustered_trace(0.7, 10, 4, 20, 10, rng, False), model="iid"), truth_c),
        ("vLLM counters, α=0.6, γ=4, 2000 drafts, 2 % short proposals",
         lambda: fit_acceptance(vllm_short_trace(0.6, 4, 2000, rng, 0.02), model="per-position"), [0.6] * 4),
        ("vLLM counters, α=0.6, γ=4, 2000 drafts, 10 % short proposals",
         lambda: fit_acceptance(vllm_short_trace(0.6, 4, 2000, rng, 0.10), model="per-position"), [0.6] * 4),
    ]
    out = []
    for name, fn, truth in cases:
        hits, kept = [], []
        for _ in range(reps):
            f = fn()
            h = _hits(f, truth)
            hits += h
            kept.append(len(h))
        out.append((name, float(np.mean(hits)), len(hits), float(np.mean(kept))))
    return out


def alpha_model_study(reps: int, seed: int) -> float:
    """α model: 8 pairs from a planted logit-linear model (logit sd 0.2), one new draft predicted."""
    from specperf.perfmodel.specdec import alpha_model as am

    rng = np.random.default_rng(seed)
    true = np.array([1.2, 0.2, 0.15])
    P = np.array([1e8, 3e8, 1e9, 3e9, 1e8, 1e9, 3e8, 3e9])
    L = np.array([2, 4, 8, 16, 16, 2, 24, 4])
    x, x_new = am.features(P, 65e9, L), am.features(5e8, 65e9, 6)
    hit = []
    for _ in range(reps):
        m = am.fit(x, am.expit(x @ true + rng.normal(0, 0.2, P.size)))
        _, lo, hi = m.predict(x_new)
        hit.append(lo <= am.expit(x_new @ true + rng.normal(0, 0.2)) <= hi)
    return float(np.mean(hit))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print("| simulated trace | coverage of 95 % interval | intervals checked | positions given per fit |")
    print("|---|---|---|---|")
    for name, cov, n, kept in study(a.reps, a.seed):
        print(f"| {name} | {cov:.3f} | {n} | {kept:.2f} |")
    print(f"| α model: 8 planted pairs (logit sd 0.2), a new draft's α | {alpha_model_study(a.reps, a.seed):.3f} | {a.reps} | — |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
