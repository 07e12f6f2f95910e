"""perfmodel.serving against closed forms and planted engines: Little's law, the M/D/1 mean wait
(Pollaczek–Khinchine), planted step times and acceptance (TTFT, TPOT, the users crossover), the
time-scaling identity the intervals use, and the step tables against predict (two implementations)."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.serving.report import Slo, gamma_schedule, metrics, sweep
from specperf.perfmodel.serving.sim import EngineConfig, simulate
from specperf.perfmodel.serving.step import StepModel, StepTable, build_step_table
from specperf.perfmodel.serving.workload import LengthDist, Workload, parse_length, read_trace
from specperf.perfmodel.specs.errors import InputError

runner = CliRunner()


class Fixed:
    """A planted proposer: every decoding sequence gains exactly `k(γ)` tokens per iteration."""
    name, band, sources = "planted", 0.0, {}

    def __init__(self, k):
        self.k = k

    def tokens_per_iteration(self, g):
        return np.vectorize(self.k)(np.asarray(g))

    def sample_tokens(self, rng, n, g):
        k = self.k(g)
        assert float(k).is_integer(), "a planted proposer draws whole tokens"
        return np.full(n, int(k), dtype=int)


def planted(step_off, step_spec=None, gmax=0, prefill_s=0.0, max_batch=64, k=None):
    """A StepTable with decode step times step_off(b) (γ = 0) and step_spec(b, γ), constant in context;
    a prefill step of its own costs `prefill_s`; prefill inside a decode step costs nothing."""
    ctx = np.array([16.0, 1e7])
    gam = np.arange(gmax + 1)
    B = np.arange(1, max_batch + 1)
    tgt = np.zeros((max_batch, 2, gmax + 1))
    for gi in gam:
        col = np.array([step_off(b) if gi == 0 else step_spec(b, gi) for b in B])
        tgt[:, :, gi] = col[:, None]
    ptok = np.array([1.0, 1e6])
    return StepTable(name="planted", contexts=ctx, gammas=gam, propose_s=np.zeros_like(tgt), target_s=tgt,
                     prefill_tokens=ptok, prefill_target_s=np.full((2, 2), prefill_s),
                     prefill_target_1_s=np.full(2, prefill_s), prefill_propose_s=np.zeros((2, 2)),
                     prefill_propose_1_s=np.zeros(2), overhead0_s=np.zeros(2), proposer=Fixed(k) if k else None,
                     sources={})


def test_step_table_is_a_step_model():
    assert isinstance(planted(lambda b: 1.0), StepModel)


def test_littles_law_from_the_loops_own_occupancy():
    tab = planted(lambda b: 0.01 + 0.001 * b, prefill_s=0.02)
    wl = Workload(LengthDist(1, 1), LengthDist(5, 40), n_requests=3000, rate_per_s=12.0, seed=3)
    res = simulate(wl.requests(), tab, EngineConfig(max_num_seqs=8), lambda b: 0)
    L = res.occupancy_integral / res.end_s  # time-average requests in system, integrated by the loop
    lam = len(res.arrival_s) / res.end_s
    W = float(np.mean(res.latency_s))
    assert L == pytest.approx(lam * W, rel=1e-9)
    assert 2.0 < L < 40.0  # a busy but stable system (more than a request or two at a time)


def test_md1_mean_wait_matches_pollaczek_khinchine():
    D, rho = 0.05, 0.7  # one request at a time, each served in one constant step of D seconds
    lam = rho / D
    tab = planted(lambda b: D, prefill_s=D)
    wl = Workload(LengthDist(1, 1), LengthDist(1, 1), n_requests=40000, rate_per_s=lam, seed=1)
    res = simulate(wl.requests(), tab, EngineConfig(max_num_seqs=1), lambda b: 0)
    wait = res.ttft_s - D
    wq = lam * D ** 2 / (2 * (1 - rho))  # Pollaczek–Khinchine, deterministic service
    assert float(np.mean(wait)) == pytest.approx(wq, rel=0.05)
    assert np.all(wait >= -1e-12)
    assert metrics(res)["saturated"] is False


def test_md1_saturates_above_capacity():
    D = 0.05
    tab = planted(lambda b: D, prefill_s=D)
    wl = Workload(LengthDist(1, 1), LengthDist(1, 1), n_requests=2000, rate_per_s=1.5 / D, seed=1)
    m = metrics(simulate(wl.requests(), tab, EngineConfig(max_num_seqs=1), lambda b: 0))
    assert m["saturated"] and m["served_req_s"] == pytest.approx(1 / D, rel=0.02)


def test_planted_batch_ttft_tpot_and_speculation():
    s, p, L, N = 0.02, 0.1, 41, 8
    off = planted(lambda b: s, lambda b, g: 2 * s, gmax=3, prefill_s=p, k=lambda g: g + 1)
    wl = Workload(LengthDist(16, 16), LengthDist(L, L), n_requests=N, users=N)
    res = simulate(wl.requests(), off, EngineConfig(max_num_seqs=N, max_batched_tokens=4096), lambda b: 0, users=N)
    assert np.allclose(res.ttft_s, p)  # all eight prompts in one prefill step
    assert np.allclose(res.tpot_s, s)
    assert np.allclose(res.finish_s, p + (L - 1) * s)
    spec = simulate(wl.requests(), off, EngineConfig(max_num_seqs=N, max_batched_tokens=4096), lambda b: 3, users=N)
    assert np.allclose(spec.tpot_s, 2 * s / 4)  # 4 tokens per 2s-long iteration; 40 = 10 iterations
    assert np.allclose(spec.chunk_gaps_s, 2 * s)
    import dataclasses

    from specperf.perfmodel.serving.step import EngineOverhead

    x = 0.004  # an engine cost per proposal forward: three per speculative step
    charged = dataclasses.replace(off, overhead=EngineOverhead(per_proposal_s=x))
    spec = simulate(wl.requests(), charged, EngineConfig(max_num_seqs=N, max_batched_tokens=4096), lambda b: 3, users=N)
    assert np.allclose(spec.tpot_s, (2 * s + 3 * x) / 4)


def test_chunked_prefill_splits_a_long_prompt():
    tab = planted(lambda b: 0.01, prefill_s=0.01)
    wl = Workload(LengthDist(1000, 1000), LengthDist(2, 2), n_requests=1, users=1)
    res = simulate(wl.requests(), tab, EngineConfig(max_batched_tokens=256), lambda b: 0, users=1)
    assert res.steps == 4 + 1  # ceil(1000 / 256) prefill steps, then one decode step
    res2 = simulate(wl.requests(), tab, EngineConfig(max_batched_tokens=256, chunked_prefill=False), lambda b: 0, users=1)
    assert res2.steps == 2  # the whole prompt in one step of its own


def test_users_crossover_at_the_closed_form_batch():
    a, c, d, g, k = 0.010, 0.0004, 0.001, 3, 2  # s_off = a + cb; s_spec = a + cb(γ+1) + γd; E = k
    tab = planted(lambda b: a + c * b, lambda b, gg: a + c * b * (gg + 1) + gg * d, gmax=g, k=lambda gg: k, prefill_s=a,
                  max_batch=64)
    b_star = (a * (k - 1) - g * d) / (c * (g + 1 - k))  # spec/off TPOT = 1 here
    wl = Workload(LengthDist(1, 1), LengthDist(201, 201), n_requests=120, users=1)
    loads = list(range(2, 42, 4))
    doc = sweep(tab, tab, wl.with_load(users=1), loads, [g], EngineConfig(max_num_seqs=64), kind="users",
                intervals=False)
    x = doc["crossover"]["load"]
    assert doc["crossover"]["verdict"] == "stops paying"
    assert x == pytest.approx(b_star, abs=1.0), (x, b_star)


def test_rate_crossover_scales_with_the_time_scaling_identity():
    tab = planted(lambda b: 0.01 + 0.0004 * b, lambda b, gg: 0.01 + 0.0016 * b + 0.003, gmax=3, k=lambda gg: 2,
                  prefill_s=0.01)
    wl = Workload(LengthDist(8, 8), LengthDist(20, 80), n_requests=400, rate_per_s=1.0, seed=2)
    r1 = simulate(wl.with_load(rate_per_s=40.0).requests(), tab, EngineConfig(), lambda b: 3)
    r2 = simulate(wl.with_load(rate_per_s=20.0).requests(), tab.scaled(2.0, 2.0), EngineConfig(), lambda b: 3)
    assert np.allclose(r2.tpot_s[np.isfinite(r2.tpot_s)], 2 * r1.tpot_s[np.isfinite(r1.tpot_s)])
    assert np.allclose(r2.ttft_s, 2 * r1.ttft_s)


@pytest.fixture(scope="module")
def h100():
    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    return build_provider(resolve_gpu("h100-sxm")), resolve_model("llama-13b"), resolve_model("llama-7b:n_layers=2")


def spec_of(d, prov, acc, t):
    from specperf.perfmodel.serving.proposer import Speculation
    from specperf.perfmodel.specdec.registry import make_method

    return Speculation(make_method("draft", draft=d), acc, prov.draft, t)


def test_step_table_equals_predict(h100):
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel
    from specperf.perfmodel.specdec.predict import predict

    prov, t, d = h100
    acc = AcceptanceModel(alpha=0.7)
    tab = build_step_table(t, spec_of(d, prov, acc, t), prov.target, max_batch=32, max_context=2048,
                           max_prefill=512, gamma_max=4)
    c = float(tab.contexts[5])  # a grid context: no interpolation between table points
    p = predict(t, d, prov.target, acc, [1, 2, 3, 4], [1, 8, 32], [c], draft_latency=prov.draft)
    for bi, b in enumerate((1, 8, 32)):
        for gi, g in enumerate((1, 2, 3, 4)):
            assert tab.decode_s(b, c, g) == pytest.approx(float(p.iteration_s[bi, 0, gi]), rel=1e-9)
        assert tab.decode_s(b, c, 0) == pytest.approx(float(p.t_target_s[bi, 0, 0] + p.baseline_overhead_s[bi, 0, 0]),
                                                      rel=1e-9)
    assert tab.best_gamma(1, c) == int(p.optimal_gamma[0, 0])


def test_closed_loop_throughput_matches_predict(h100):
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel
    from specperf.perfmodel.specdec.predict import predict

    prov, t, d = h100
    acc = AcceptanceModel(alpha=0.7)
    tab = build_step_table(t, spec_of(d, prov, acc, t), prov.target, max_batch=16, max_context=4096,
                           max_prefill=2048, gamma_max=3)
    wl = Workload(LengthDist(16, 16), LengthDist(2000, 2000), n_requests=16, users=16)
    res = simulate(wl.requests(), tab, EngineConfig(max_num_seqs=16), lambda b: 3, users=16, seed=4)
    p = predict(t, d, prov.target, acc, [3], [16], [16 + 1000], draft_latency=prov.draft)
    thr = res.output_tokens.sum() / res.end_s
    assert thr == pytest.approx(float(p.throughput_tok_s[0, 0, 0]), rel=0.03)


def test_gamma_schedule_turns_speculation_off_at_large_batch():
    tab = planted(lambda b: 0.01 + 0.0004 * b, lambda b, gg: 0.01 + 0.0004 * b * (gg + 1) + 0.001 * gg, gmax=4,
                  k=lambda gg: 1 + 0.6 * (1 - 0.6 ** gg) / 0.4, max_batch=64)
    segs = gamma_schedule(tab, 100.0, 64)
    assert segs[0]["batch_lo"] == 1 and segs[0]["gamma"] > 0 and segs[-1]["gamma"] == 0
    gs = [s["gamma"] for s in segs]
    assert gs == sorted(gs, reverse=True)  # lookahead shrinks as the batch grows


def test_workload_poisson_rate_and_validation(tmp_path):
    wl = Workload(LengthDist(1, 1), LengthDist(1, 1), n_requests=20000, rate_per_s=5.0, seed=0)
    a = wl.requests()["arrival_s"]
    assert len(a) / a[-1] == pytest.approx(5.0, rel=0.03)
    assert parse_length("64..256", "prompt-len") == LengthDist(64, 256)
    for bad in ("0", "abc", "10..5", "1..99999999"):
        with pytest.raises(InputError, match=r"^prompt-len="):
            parse_length(bad, "prompt-len")
    with pytest.raises(InputError, match="rate"):
        Workload(LengthDist(), LengthDist(), rate_per_s=-1.0)
    with pytest.raises(InputError, match="not both"):
        Workload(LengthDist(), LengthDist(), rate_per_s=1.0, users=2)
    f = tmp_path / "t.csv"
    f.write_text("prompt_tokens,output_tokens\n10,20\n30,40\n")
    p, o = read_trace(str(f))
    assert p.values == (10, 30) and o.values == (20, 40)
    f.write_text("prompt_tokens,output_tokens\n10,-2\n")
    with pytest.raises(InputError, match=r"^trace=.*output_tokens"):
        read_trace(str(f))
    j = tmp_path / "t.jsonl"
    j.write_text('{"prompt_tokens": 5, "output_tokens": 7}\nnot json\n')
    with pytest.raises(InputError, match="one JSON object per line"):
        read_trace(str(j))


def test_cli_serve_sim_json_and_table():
    args = ["serve-sim", "--target", "llama-13b", "--draft", "llama-7b:n_layers=2", "--alpha", "0.7",
            "--rate", "1,8", "--requests", "40", "--gamma", "2,3", "--output-len", "32", "--prompt-len", "64..128"]
    r = runner.invoke(app, args + ["--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["load"] for row in doc["rows"]] == [1.0, 8.0]
    row = doc["rows"][0]
    assert set(row["gamma"]) == {"2", "3"} and row["best_gamma"] in (2, 3)
    lo, hi = row["interval"]["off"]["tpot_p50_s"]
    assert lo < row["off"]["tpot_p50_s"] < hi
    assert doc["crossover"]["verdict"] and doc["schedule"][0]["batch_lo"] == 1
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "crossover:" in r.output and "γ schedule" in r.output


@pytest.mark.parametrize("extra,flag", [
    (["--rate", "-1"], "rate="), (["--rate", "1", "--users", "4"], "--rate"), (["--rate", "x"], "rate="),
    (["--users", "0"], "users="), (["--rate", "1", "--prompt-len", "0"], "prompt-len="),
    (["--rate", "1", "--trace", "/nonexistent.csv"], "trace="), (["--rate", "1", "--method", "tree"], "method="),
    (["--rate", "1", "--method", "ngram"], "draft="),
    (["--rate", "1", "--requests", "0"], "requests="), (["--rate", "1", "--slo-tpot-ms", "-5"], "slo-tpot-ms="),
    (["--rate", "1", "--gamma", "99"], "gamma="), (["--rate", "1", "--mode", "both"], "mode="),
])
def test_cli_bad_input_is_one_line_exit_2(extra, flag):
    r = runner.invoke(app, ["serve-sim", "--target", "llama-13b", "--draft", "llama-7b:n_layers=2", "--alpha", "0.7"]
                      + extra)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in r.output, r.output


def test_slo_goodput_counts_requests_meeting_both_targets():
    tab = planted(lambda b: 0.02, prefill_s=0.1)
    wl = Workload(LengthDist(4, 4), LengthDist(11, 11), n_requests=4, users=4)
    res = simulate(wl.requests(), tab, EngineConfig(max_num_seqs=4), lambda b: 0, users=4)
    assert metrics(res, Slo(ttft_s=0.2, tpot_s=0.03), open_loop=False)["slo_attained"] == 1.0
    assert metrics(res, Slo(ttft_s=0.2, tpot_s=0.01), open_loop=False)["slo_attained"] == 0.0


def test_serve_plot_draws_both_engines_with_bands(monkeypatch):
    pytest.importorskip("plotly")
    from specperf import plots
    import specperf.plots.serve as ps
    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu
    from specperf.plots.common import Setting, latency_sources

    monkeypatch.setattr(ps, "REQUESTS", 30)
    hw = resolve_gpu("h100-sxm")
    s = Setting(target=resolve_model("llama-13b"), draft=resolve_model("llama-7b:n_layers=2"),
                latency=build_provider(hw).target, gpu=hw.name, acceptance=AcceptanceModel(alpha=0.7), gammas=(1, 2))
    fig = plots.figure("serve", s)
    names = {t.name for t in fig.data}
    assert {"no speculation", "speculation, best γ", "speculation, γ schedule by batch"} <= names
    lines = [t for t in fig.data if t.name == "no speculation"]
    assert len(lines) == 3 and all(len(t.x) == 9 for t in lines)  # three panels, nine rates
    assert "target_layer" in latency_sources(fig)


def test_per_sequence_proposal_cost_is_charged_per_decoding_row():
    import dataclasses

    from specperf.perfmodel.serving.step import EngineOverhead

    s, p, L, N, y = 0.02, 0.1, 41, 8, 0.0005
    off = planted(lambda b: s, lambda b, g: 2 * s, gmax=3, prefill_s=p, k=lambda g: g + 1)
    charged = dataclasses.replace(off, overhead=EngineOverhead(per_step_s=0.001, per_seq_s=0.0002, per_seq_proposal_s=y))
    wl = Workload(LengthDist(16, 16), LengthDist(L, L), n_requests=N, users=N)
    spec = simulate(wl.requests(), charged, EngineConfig(max_num_seqs=N, max_batched_tokens=4096), lambda b: 3, users=N)
    assert np.allclose(spec.chunk_gaps_s, 2 * s + 0.001 + 0.0002 * N + 3 * y * N)


def test_best_gamma_counts_the_engine_costs():
    import dataclasses

    from specperf.perfmodel.serving.step import EngineOverhead

    # γ = 3 gives 4 tokens for 2 s of forwards: 2× without engine costs; a per-proposal cost of 1 s
    # makes a γ = 3 step 5 s for 4 tokens (0.8 tokens/s a row), so speculation must turn off
    tab = planted(lambda b: 1.0, lambda b, g: 1.0 + g / 3, gmax=3, k=lambda g: g + 1)
    assert tab.best_gamma(1, 100.0) == 3
    assert dataclasses.replace(tab, overhead=EngineOverhead(per_proposal_s=1.0)).best_gamma(1, 100.0) == 0


def test_engine_costs_fit_recovers_planted_costs():
    from specperf.calibration.engine_costs import BurstPoint, fit_engine_costs

    a, b, c, d, g = 0.003, -0.0001, 0.0004, 0.00005, 3
    pts = [BurstPoint(n, 0, 0.005 + 0.0002 * n + a + b * n, 0.005 + 0.0002 * n) for n in (1, 2, 4, 8, 16)]
    pts += [BurstPoint(n, g, 0.01 + 0.0005 * n + a + b * n + g * (c + d * n), 0.01 + 0.0005 * n) for n in (1, 2, 4, 8, 16)]
    f = fit_engine_costs(pts)
    want = {"per_step_s": a, "per_seq_s": b, "per_proposal_s": c, "per_seq_proposal_s": d}
    assert f.parameters == pytest.approx(want, abs=1e-12)
    assert f.metrics["max_abs_rel"] < 1e-9
    assert any("per_seq_s < 0" in n for n in f.notes)  # reported, not clamped
    with pytest.raises(ValueError):
        fit_engine_costs(pts[:1])


def test_cli_serve_sim_seq_proposal_overhead_moves_the_spec_side_only():
    base = ["serve-sim", "--target", "llama-13b", "--draft", "llama-7b:n_layers=2", "--alpha", "0.7", "--rate", "1",
            "--gamma", "2", "--requests", "30", "--no-intervals", "--json"]
    r0 = runner.invoke(app, base)
    r1 = runner.invoke(app, base + ["--seq-proposal-overhead-ms", "1"])
    assert r0.exit_code == 0 and r1.exit_code == 0, r1.output
    d0, d1 = json.loads(r0.output), json.loads(r1.output)
    assert d1["engine_overhead"]["per_seq_proposal_s"] == pytest.approx(1e-3)
    assert d1["rows"][0]["off"]["tpot_p50_s"] == pytest.approx(d0["rows"][0]["off"]["tpot_p50_s"])
    assert d1["rows"][0]["gamma"]["2"]["itl_p50_s"] > d0["rows"][0]["gamma"]["2"]["itl_p50_s"] + 1.5e-3
    bad = runner.invoke(app, base[:-1] + ["--seq-proposal-overhead-ms", "-1"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_engine_costs_fit_to_loads_recovers_planted_costs():
    """Gauss–Newton through the simulation: a planted engine's costs come back from its own loads."""
    import dataclasses

    from specperf.calibration.engine_costs import LoadPoint, fit_engine_costs_to_loads
    from specperf.perfmodel.serving.step import EngineOverhead

    tab = planted(lambda b: 0.004 + 0.0002 * b, lambda b, g: 0.008 + 0.0005 * b, gmax=3, prefill_s=0.004,
                  k=lambda g: 3, max_batch=16)
    truth = {"per_step_s": 0.002, "per_seq_s": 0.0001, "per_proposal_s": 0.0003, "per_seq_proposal_s": 0.00005}
    eng = EngineConfig(max_num_seqs=16)
    reqs = {r: Workload(LengthDist(8, 8), LengthDist(40, 40), 60, rate_per_s=r, seed=1).requests() for r in (5.0, 40.0)}

    def itl(costs, key):
        rate, g = key
        t = dataclasses.replace(tab, overhead=EngineOverhead(**costs))
        return float(np.median(simulate(reqs[rate], t, eng, lambda b: g).chunk_gaps_s))
    pts = [LoadPoint((r, g), g, itl(truth, (r, g))) for r in reqs for g in (0, 3)]
    f = fit_engine_costs_to_loads(pts, itl, iterations=6)
    assert f.metrics["max_abs_rel"] < 0.02
    assert f.parameters["per_step_s"] == pytest.approx(truth["per_step_s"], rel=0.2)


def test_engine_costs_fit_bounds_named_terms_at_zero():
    """A planted engine with a negative per-step term: bounded, the term sits at 0, the per-sequence
    term is refitted alone (through the origin), and the note says the bound is active; a positive
    planted term is unaffected by its bound; an unknown name is refused."""
    from specperf.calibration.engine_costs import BurstPoint, fit_engine_costs

    ns = (1, 2, 4, 8, 16)
    neg = [BurstPoint(n, 0, 0.005 - 0.001 + 0.0002 * n, 0.005) for n in ns]
    free = fit_engine_costs(neg)
    assert free.parameters["per_step_s"] == pytest.approx(-0.001, abs=1e-12)
    got = fit_engine_costs(neg, nonnegative=("per_step_s",))
    x, y = np.array(ns, float), np.array([-0.001 + 0.0002 * n for n in ns])
    assert got.parameters["per_step_s"] == 0.0
    assert got.parameters["per_seq_s"] == pytest.approx(float(x @ y / (x @ x)), rel=1e-9)
    assert got.ci["per_step_s"] is None and got.ci["per_seq_s"] is not None
    assert any("per_step_s held at its bound 0" in n for n in got.notes)
    assert "bounded ≥ 0: per_step_s" in got.method
    pos = [BurstPoint(n, 0, 0.005 + 0.002 + 0.0002 * n, 0.005) for n in ns]
    assert fit_engine_costs(pos, nonnegative=("per_step_s",)).parameters == pytest.approx(
        fit_engine_costs(pos).parameters, abs=1e-12)
    with pytest.raises(ValueError, match="per_stp_s"):
        fit_engine_costs(pos, nonnegative=("per_stp_s",))
