"""Acceptance calibration on real traces (tests/fixtures/miniature: a trained target and two drafts of
the miniature study, NVIDIA H200, specperf's own loop with real greedy verification and T = 1 rejection
sampling): the calibration's per-position rates are the trace's counts, its per-position model
reproduces observed tokens per iteration at every γ, and the properties real acceptance showed there
hold (not i.i.d.; the shallow-wide draft beats the deep-narrow one; sampling accepts less than greedy), while
the pooled rise of α_2 over α_1 and of α_1 along a generation are between-prompt (Simpson) effects that
vanish or reverse within prompts."""
import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

from specperf.calibration.acceptance_fit import fit_acceptance  # noqa: E402
from specperf.calibration.traces import read_trace  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "miniature"
GREEDY = ("draft-1x1024_greedy", "draft-24x192_greedy")


def counts(name):
    """[iterations, sequences] accepted counts as written in the trace file."""
    rows = list(csv.DictReader((FIX / f"{name}.csv").open()))
    its = 1 + max(int(r["iteration"]) for r in rows)
    seqs = 1 + max(int(r["sequence"]) for r in rows)
    a = np.full((its, seqs), -1)
    for r in rows:
        a[int(r["iteration"]), int(r["sequence"])] = int(r["accepted"])
    assert (a >= 0).all() and int(rows[0]["gamma"]) == 8
    return a


def fit(name, model="auto"):
    return fit_acceptance(read_trace(FIX / f"{name}.csv"), range(1, 9), model=model).to_dict()


@pytest.mark.parametrize("name", GREEDY + ("draft-1x1024_sampling",))
def test_per_position_rates_are_the_traces_counts(name):
    a = counts(name).ravel()
    doc = fit(name, "per-position")
    reach = [(a >= i).sum() for i in range(9)]
    assert doc["alpha_by_position"] == pytest.approx([reach[i] / reach[i - 1] for i in range(1, 9)])
    assert doc["alpha"] == pytest.approx(a.sum() / (a.sum() + (a < 8).sum()))  # i.i.d. MLE: S / (S + F)
    for (lo, hi), p in zip(doc["alpha_by_position_ci"], doc["alpha_by_position"]):
        assert lo <= p <= hi


@pytest.mark.parametrize("name", GREEDY)
def test_per_position_model_reproduces_observed_tokens_per_iteration(name):
    """E = 1 + Σ Π α_i from a γ = 8 trace equals the mean of min(accepted, γ) + 1 for every γ ≤ 8."""
    a = counts(name)
    res = fit_acceptance(read_trace(FIX / f"{name}.csv"), range(1, 9), model="per-position")
    by_gamma = {r["gamma"]: r for r in res.predictions}
    for g in range(1, 9):
        assert by_gamma[g]["per_position"] == pytest.approx(np.minimum(a, g).mean() + 1, rel=1e-9)


@pytest.mark.parametrize("name", GREEDY + ("draft-1x1024_sampling",))
def test_real_acceptance_is_not_iid(name):
    doc = fit(name)
    assert doc["model"] == "per-position" and doc["lr_test"]["p_value"] < 0.05


def test_pooled_alpha2_above_alpha1_is_a_between_prompt_effect():
    """Pooled over prompts α_2 exceeds α_1 for both drafts, but within prompts α_2 − α_1 is negative
    (Simpson: easy prompts reach position 2 more often) — the pooled rise is not a position effect."""
    from specperf.calibration.hierarchical import within_prompt_difference

    for name in GREEDY:
        ab = fit(name, "per-position")["alpha_by_position"]
        assert ab[1] > ab[0]
        within, ci, pooled = within_prompt_difference(counts(name), 8)
        assert pooled == pytest.approx(ab[1] - ab[0]) and within < 0 < pooled


def test_shallow_wide_draft_is_accepted_more_than_deep_narrow():
    wide, narrow = fit(GREEDY[0]), fit(GREEDY[1])
    assert wide["alpha_ci"][0] > narrow["alpha_ci"][1]  # intervals do not overlap


def test_sampling_at_t1_accepts_less_than_greedy():
    g, s = fit("draft-1x1024_greedy"), fit("draft-1x1024_sampling")
    assert s["alpha_ci"][1] < g["alpha_ci"][0]


def test_acceptance_rise_along_the_generation_is_mostly_between_prompts():
    """Pooled, first-position acceptance in iterations starting after 50 generated tokens is far above
    that before them; within prompts (prompt fixed effects) the rise is under a third of that and its
    cluster-robust interval includes 0: hard prompts never get past 50 tokens."""
    from specperf.calibration.hierarchical import fit_hierarchical, trials_from_counts

    for name in GREEDY:
        a = counts(name)
        start = np.cumsum(a + 1, axis=0) - (a + 1)
        early, late = (a >= 1)[start < 50], (a >= 1)[start >= 50]
        assert late.mean() > early.mean() + 0.15
        f = fit_hierarchical(trials_from_counts(a, 8), positions=1, trend="after:50")
        key = "iteration starts after 50 tokens"
        assert f.marginal[key] < (late.mean() - early.mean()) / 3
        assert f.slopes[key][1][0] < 0 < f.slopes[key][1][1]
