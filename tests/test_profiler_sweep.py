"""profiler.sweep and `specperf profile` on CPU: LatencyTable round trip, resume, dedup by shape,
OOM → skipped rows and the sweep goes on, bad input → one line and exit 2."""
import json

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from specperf.cli.main import app  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.latency.table import LatencyTable, layer_shape_key  # noqa: E402
from specperf.profiler import measure, sweep  # noqa: E402

TINY = "opt-125m:n_layers=1,d_model=64,n_heads=4,d_ff=128,vocab=256"
TINY_LLAMA = "llama-7b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=2,d_ff=96,vocab=128"
runner = CliRunner()
FAST = dict(min_repeats=3, max_repeats=3)


@pytest.fixture(autouse=True)
def fast_timing(monkeypatch):
    """Three samples per point: these tests check bookkeeping, not timing quality."""
    import specperf.profiler.timing as tm

    monkeypatch.setattr(tm, "MIN_REPEATS", 3)
    monkeypatch.setattr(tm, "MAX_REPEATS", 3)
    monkeypatch.setattr(tm, "CHUNK", 1)
    orig = tm.time_callable

    def quick(call, device, **kw):
        kw.update(FAST)
        kw.setdefault("warmup", 1)
        return orig(call, device, **kw)

    monkeypatch.setattr(tm, "time_callable", quick)
    orig_host = tm.time_host
    monkeypatch.setattr(tm, "time_host", lambda fn, device, **kw: orig_host(fn, device, **{**kw, **FAST}))
    monkeypatch.setattr(measure, "time_host", tm.time_host)


def _profile(out, *extra):
    return runner.invoke(app, ["profile", "--models", TINY, "--batch", "1,2", "--context", "16",
                               "--gamma-max", "1", "--mode", "eager", "--dtype", "fp32", "--device", "cpu",
                               "--out", str(out), "--quiet", *extra])


def test_profile_cpu_writes_table_and_metadata_then_resumes(tmp_path):
    out = tmp_path / "p.csv"
    r = _profile(out)
    assert r.exit_code == 0, r.output
    t = LatencyTable.load(out)
    comps = sorted({x["component"] for x in t.rows})
    assert comps == ["layer", "lm_head", "overhead"]
    # layer: 2 batches × 2 new-token counts; head: same; overhead: 2 batches × γ∈{0,1}
    assert len(t) == 12 and len(t.ok_rows()) == 12
    assert all(x["median_s"] > 0 and x["p10_s"] <= x["median_s"] <= x["p90_s"] for x in t.rows)
    for k in ("gpu", "gpu_name", "driver", "torch", "cuda", "date", "schema_version", "specperf_version"):
        assert k in t.meta
    assert t.meta["gpu"] == "cpu"
    before = [dict(x) for x in t.rows]
    r = _profile(out, "--batch", "1,2,4")  # resume: only batch 4 is new
    assert r.exit_code == 0, r.output
    t2 = LatencyTable.load(out)
    assert len(t2) == 18 and t2.rows[:12] == before
    assert sorted({x["batch"] for x in t2.rows[12:]}) == [4]


def test_table_round_trip_keeps_values_and_skipped_rows(tmp_path):
    spec = resolve_model(TINY)
    t = LatencyTable(meta={"gpu": "cpu"})
    job = sweep.Job("layer", spec, 1, 2, 16, [1], ("eager",))
    t.add(sweep._row(job, "cpu", "fp32", 1, "eager", measure.Timing(1.5e-4, 1e-4, 2e-4, 20, 3)))
    t.add(sweep._row(job, "cpu", "fp32", 2, "eager", reason="out of memory: boom"))
    p = tmp_path / "r.csv"
    t.save(p)
    t2 = LatencyTable.load(p)
    assert t2.rows[0]["median_s"] == 1.5e-4 and t2.rows[0]["shape"] == layer_shape_key(spec)
    assert t2.rows[1]["status"] == "skipped" and t2.rows[1]["reason"] == "out of memory: boom"
    assert len(t2.ok_rows()) == 1 and t2.done_keys() == t.done_keys()


def test_oom_job_is_recorded_as_skipped_and_sweep_goes_on(tmp_path, monkeypatch):
    real = measure.DecoderLayer

    def fake(spec, max_batch, *a, **k):
        if max_batch == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")
        return real(spec, max_batch, *a, **k)

    monkeypatch.setattr(measure, "DecoderLayer", fake)
    out = tmp_path / "o.csv"
    r = _profile(out)
    assert r.exit_code == 0, r.output
    t = LatencyTable.load(out)
    skipped = [x for x in t.rows if x["status"] == "skipped"]
    assert len(skipped) == 2 and all(x["batch"] == 2 and x["component"] == "layer" for x in skipped)
    assert "out of memory" in skipped[0]["reason"]
    assert len(t.ok_rows()) == 10  # everything else was measured


def test_interrupt_keeps_finished_rows(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = measure.head_points

    def boom(*a, **k):
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(measure, "head_points", boom)
    out = tmp_path / "i.csv"
    r = _profile(out)
    assert r.exit_code == 130
    t = LatencyTable.load(out)
    assert len(t) >= 2 and {x["component"] for x in t.rows} == {"layer"}
    monkeypatch.setattr(measure, "head_points", real)
    assert _profile(out).exit_code == 0 and len(LatencyTable.load(out)) == 12


def test_plan_dedups_layers_by_shape():
    g = sweep.Grid((1,), (16,), (1, 2), ("eager",))
    a, b = resolve_model(TINY_LLAMA), resolve_model(TINY_LLAMA.replace("n_layers=2", "n_layers=5"))
    jobs = sweep.plan([(a, g), (b, g)])
    assert [j.component for j in jobs] == ["layer", "lm_head"]
    c = resolve_model(TINY_LLAMA.replace("vocab=128", "vocab=64"))
    assert len(sweep.plan([(a, g), (c, g)])) == 3  # same layer, another head


def test_tp_rows_measure_the_sharded_layer():
    spec = resolve_model(TINY_LLAMA)
    jobs = sweep.plan([(spec, sweep.Grid((1,), (16,), (1,), ("eager",), tps=(1, 2)))])
    assert sorted((j.component, j.tp) for j in jobs) == [("layer", 1), ("layer", 2), ("lm_head", 1), ("lm_head", 2)]


@pytest.mark.parametrize("args, msg", [
    (["--models", "llama-9000b"], "unknown model"),
    (["--batch", ""], "empty"),
    (["--batch", "0"], "batch=0"),
    (["--context", "-5"], "context"),
    (["--models", "opt-125m", "--context", "2048"], "max_positions"),
    (["--device", "cuda"], "CUDA"),
    (["--mode", "fast"], "mode"),
    (["--tp", "3"], "tp=3"),
    (["--out", "/nonexistent-dir/x.csv"], "not writable"),
    (["--out", "x.txt"], ".csv or .parquet"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, msg):
    if args[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA present")
    base = {"--models": TINY, "--out": str(tmp_path / "b.csv"), "--device": "cpu", "--batch": "1",
            "--context": "16", "--gamma-max": "1", "--mode": "eager"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    r = runner.invoke(app, ["profile", *[x for kv in base.items() for x in kv], "--quiet"])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], r.output


def test_foreign_out_file_is_rejected_and_left_alone(tmp_path):
    p = tmp_path / "foreign.csv"
    p.write_text("a,b\n1,2\n")
    r = _profile(p)
    assert r.exit_code == 2 and "not a specperf latency table" in r.output
    assert p.read_text() == "a,b\n1,2\n"
    out = tmp_path / "other_gpu.csv"
    LatencyTable(meta={"gpu": "h100-sxm"}).save(out)
    r = _profile(out)
    assert r.exit_code == 2 and "measured on 'h100-sxm'" in r.output


def test_interleaved_timing_survives_a_host_burst_that_sequential_timing_does_not():
    """Planted: call k costs (k+1) ms; during one window of wall time every call costs 4 ms more
    (host contention). Sequential timing puts the whole burst on whichever point runs then, so a
    shorter call comes out slower than a longer one; interleaving spreads it over every point's
    samples and the medians keep the planted order and size."""
    import time as _t

    from specperf.profiler.timing import time_callable, time_interleaved

    burst = {"start": None, "end": None}

    def busy(s):
        t0 = _t.perf_counter()
        while _t.perf_counter() - t0 < s:
            pass

    def make(k):
        def call():
            now = _t.perf_counter()
            extra = 4e-3 if burst["start"] is not None and burst["start"] <= now < burst["end"] else 0.0
            busy((k + 1) * 1e-3 + extra)
        return call

    calls = [make(k) for k in range(3)]
    # interleaved: the burst covers the first ~25 ms of sampling (a few rounds of 20+)
    burst["start"] = _t.perf_counter()
    burst["end"] = burst["start"] + 0.025
    ts = time_interleaved(calls, "cpu", warmup=0)
    meds = [t.median_s for t in ts]
    assert meds[0] < meds[1] < meds[2]
    for k, m in enumerate(meds):
        assert m == pytest.approx((k + 1) * 1e-3, rel=0.25)
    # sequential: a burst over the whole of the first point's sampling, over before the second's
    burst["start"], burst["end"] = _t.perf_counter(), float("inf")
    seq = [time_callable(calls[0], "cpu", warmup=0).median_s]
    burst["end"] = _t.perf_counter()
    seq += [time_callable(c, "cpu", warmup=0).median_s for c in calls[1:]]
    assert seq[0] > seq[1]  # the artefact interleaving removes: the 1 ms call timed slower than the 2 ms one


def test_order_check_finds_a_planted_fall_and_passes_monotone_groups():
    from specperf.perfmodel.latency.integrity import order_violations

    def rows(mode, times, b=1):
        return [{"component": "layer", "mode": mode, "shape": "s", "tp": 1, "batch": b, "context": 512,
                 "new_tokens": n, "median_s": t, "status": "ok"} for n, t in zip((1, 2, 3, 5), times)]
    out = order_violations(rows("eager", [1.0, 1.6, 1.1, 1.2]) + rows("eager", [1.0, 1.0, 1.05, 1.1], b=8)
                           + rows("graph", [1.0, 1.02, 0.95, 1.1]))
    assert out["eager"]["groups"] == 1 and out["eager"]["of"] == 2
    assert out["eager"]["worst"] == pytest.approx(1 - 1.1 / 1.6)
    assert "b1" in out["eager"]["examples"][0]
    assert out["graph"]["groups"] == 0  # a 7 % dip is under the 10 % threshold


def test_cpu_profile_reports_its_order_check(tmp_path):
    r = runner.invoke(app, ["profile", "--models", "llama-7b:d_model=64,n_heads=4,n_kv_heads=2,d_ff=128,n_layers=1,vocab=256",
                            "--batch", "1", "--context", "16", "--new-tokens", "1,2", "--mode", "eager",
                            "--device", "cpu", "--dtype", "fp32", "--no-overhead", "--json", "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    assert doc["order_check"]["eager"]["of"] == 1
