"""The two pooled facts of the first miniature run, pooled versus within prompts (issue 29): α_2 − α_1,
and first-position acceptance in iterations starting after 50 generated tokens versus before, per
draft, from the committed greedy traces (data/traces.jsonl; prompts = the trace's sequences).

    PYTHONPATH=. python -m studies.miniature.simpson          # prints one JSON row per draft

Within prompts: α_2 − α_1 as a prompt-weighted mean of per-prompt differences (calibration.hierarchical.
within_prompt_difference, cluster-robust 95 % t interval) and the early/late change as the average
marginal effect of a prompt fixed-effects logistic fit (fit_hierarchical, trend "after:50"). Key
assumption: prompts are the clusters (iterations within one prompt are dependent).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TRACES = Path(__file__).resolve().parent / "data" / "traces.jsonl"


def rows(traces: Path = TRACES) -> list[dict]:
    from specperf.calibration.hierarchical import fit_hierarchical, trials_from_counts, within_prompt_difference

    out = []
    for ln in traces.read_text().splitlines():
        r = json.loads(ln)
        if r["kind"] != "greedy":
            continue
        a, g = np.asarray(r["accepted"]), int(r["gamma"])
        w, ci, pooled = within_prompt_difference(a, g)
        start = np.cumsum(a + 1, axis=0) - (a + 1)
        early, late = float((a >= 1)[start < 50].mean()), float((a >= 1)[start >= 50].mean())
        f = fit_hierarchical(trials_from_counts(a, g), positions=1, trend="after:50")
        key = "iteration starts after 50 tokens"
        out.append({"draft": r["draft"], "a2_minus_a1_pooled": pooled, "a2_minus_a1_within": w,
                    "a2_minus_a1_within_ci95": list(ci), "a1_before_50_pooled": early, "a1_after_50_pooled": late,
                    "a1_after_minus_before_within": f.marginal[key], "logit_slope_within_ci95": list(f.slopes[key][1]),
                    "prompts": int(a.shape[1]), "between_prompt_sd_logit": f.tau})
    return out


if __name__ == "__main__":
    for row in rows():
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
