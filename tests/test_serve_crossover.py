"""The crossover test of evidence/serve_vllm/crossover.py on synthetic loads (no server): the live
crossing of the paired ratio's median, the bracket, the bootstrap over rounds, the predicted
interval over profiles × bands and its open ends, and the shared helpers' crossing line."""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "evidence" / "serve_vllm"
sys.path.insert(0, str(HERE))
import crossover as cx  # noqa: E402
import serve_common as sc  # noqa: E402

RATES = [2.0, 4.0, 8.0, 16.0]


def _load(rnd, rate, latency_s):
    req = {"sent_s": 0.0, "arrival_s": 0.0, "done_s": 1.0, "prompt_tokens": 4, "completion_tokens": 8}
    return {"round": rnd, "rate": rate, "stream": False, "requests": [req],
            "engine": {"e2e_request_latency_seconds_p50": latency_s, "inter_token_latency_seconds_p50": 0.01,
                       "request_time_per_output_token_seconds_p50": 0.01}}


def _raw(spec_by_round):
    """off latency 1 s everywhere; spec latency per round and rate as given."""
    return {"off": {"loads": [_load(k, r, 1.0) for k in range(len(spec_by_round)) for r in RATES]},
            "spec": {"loads": [_load(k, r, v) for k, row in enumerate(spec_by_round) for r, v in zip(RATES, row)]}}


def _pred(curves: dict, rounds=3):
    """pred entries for profiles a, b: curves[(p, kind)] = spec/off ratio per rate."""
    pred = {}
    for (p, kind), row in curves.items():
        for k in range(rounds):
            for r, v in zip(RATES, row):
                pred[(p, "fitted", "spec", kind, k, r)] = {"latency_p50_s": v}
                pred[(p, "fitted", "off", "nominal", k, r)] = {"latency_p50_s": 1.0}
                pred[(p, "fitted", "off", kind, k, r)] = {"latency_p50_s": 1.0}
    return pred


def test_live_crossing_bracket_and_bootstrap():
    raw = _raw([[0.5, 0.8, 1.2, 2.0], [0.6, 0.9, 1.4, 2.5], [0.5, 0.7, 1.1, 3.0]])
    pred = _pred({("a", "nominal"): [0.6, 0.8, 1.2, 2.0], ("b", "nominal"): [0.6, 0.8, 1.2, 2.0],
                  ("a", "lo"): [0.5, 0.7, 0.9, 1.5], ("b", "hi"): [0.7, 1.0, 1.3, 2.0]})
    res = cx.analyse(raw, pred, ["a", "b"], RATES, 8, n_boot=500)
    # median curve 0.5, 0.8, 1.2, 2.5 → crosses between 4 and 8 at 4 + 0.2 / 0.4 · 4 = 6
    assert res["live"] == pytest.approx(6.0)
    assert res["live_bracket"] == [4.0, 8.0]
    lo, hi = res["live_bootstrap_90"]
    assert 4.0 <= lo <= 6.0 <= hi <= 8.0
    assert res["predicted"] == pytest.approx(6.0)
    # interval: a:lo crosses at 8 + 0.1/0.6·8 ≈ 9.33, b:hi at 4 (ratio 1.0 reached at 4)
    assert res["predicted_interval"] == [pytest.approx(4.0), pytest.approx(8 + 0.1 / 0.6 * 8)]
    assert res["inside"]
    text = "\n".join(cx.section({**raw, "off": {"loads": [dict(ld, loadavg_before=[1, 1, 1], loadavg_after=[2, 2, 2])
                                                          for ld in raw["off"]["loads"]]},
                                  "spec": {"loads": [dict(ld, loadavg_before=[1, 1, 1], loadavg_after=[2, 2, 2])
                                                     for ld in raw["spec"]["loads"]]}}, res, RATES))
    assert "the live crossover is inside the predicted interval" in text
    assert "1.0→2.0" in text


def test_a_curve_that_always_pays_opens_the_interval_and_a_flat_live_side_has_no_crossing():
    raw = _raw([[0.5, 0.6, 0.7, 0.8]] * 3)
    pred = _pred({("a", "nominal"): [0.6, 0.8, 1.2, 2.0], ("a", "draft_lo"): [0.5, 0.6, 0.7, 0.9]})
    res = cx.analyse(raw, pred, ["a"], RATES, 8, n_boot=100)
    assert res["live"] is None and "pays at every" in res["live_verdict"]
    assert res["live_bracket"] == [16.0, None] and res["live_bootstrap_90"] is None  # pays through 16, no upper end
    assert res["predicted_interval"][1] is None  # open above the highest rate
    assert not res["inside"]
    assert "NOT inside" in "\n".join(cx.section({**raw, "off": {"loads": []}, "spec": {"loads": []}}, res, RATES))


def test_shared_interval_is_the_harnesses_formula():
    xp, vp, iv = sc.predicted_interval(RATES, [0.5, 0.8, 1.2, 2.0], [0.4, 0.6, 0.9, 1.5], [0.6, 1.0, 1.3, 2.0], 0.1)
    assert xp == pytest.approx(6.0) and vp == "stops paying"
    assert iv == (pytest.approx(4.0 / 1.1), pytest.approx((8 + 0.1 / 0.6 * 8) / 0.9))
    assert sc.predicted_interval(RATES, [0.5] * 4, [0.5] * 4, [0.5] * 4, 0.1)[2] is None
    assert sc.ratio_line([0.5], [0.6], [0.4], [0.7]) == ("median request latency with / without speculation, per rate "
                                                       "— live: 0.50; predicted: 0.60 (draft band and profiles: 0.40–0.70)")
