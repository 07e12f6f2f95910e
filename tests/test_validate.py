"""profiler.validate maths (planted errors and regrets), the validation table round trip, the
shipped H100 validation table's summary recomputed from its rows, `specperf validate` end to end on
CPU (tiny models) and its bad input: one line, exit code 2."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.profiler.validate import (COLUMNS, TARGETS, abs_error_summary, add_errors, gamma_regret, load_rows,
                               rel_err, save_rows, summarize)

DATA = Path(__file__).resolve().parents[1] / "evidence"
TINY = "llama-7b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=4,d_ff=128,vocab=256"
TINY_DRAFT = "llama-7b:n_layers=1,d_model=64,n_heads=4,n_kv_heads=4,d_ff=128,vocab=256"
runner = CliRunner()


def test_rel_err_and_summary_on_planted_errors():
    meas = np.array([100.0, 200.0, 50.0, 10.0, 80.0])
    planted = np.array([0.01, -0.02, 0.05, -0.10, 0.0])
    e = rel_err(meas * (1 + planted), meas)
    np.testing.assert_allclose(e, planted, atol=1e-12)
    s = abs_error_summary(np.append(e, np.nan))
    assert s["n"] == 5
    assert s["median_abs"] == pytest.approx(0.02)
    assert s["p90_abs"] == pytest.approx(np.percentile(np.abs(planted), 90))
    assert s["max_abs"] == pytest.approx(0.10)
    assert s["mean_signed"] == pytest.approx(planted.mean())
    assert math.isnan(rel_err(1.0, 0.0))
    assert abs_error_summary([])["n"] == 0


def _row(gamma, meas, pred, batch=1, alpha=0.8, draft="d"):
    r = {"gpu": "g", "target": "t", "draft": draft, "mode": "graph", "dtype": "fp16", "context": 512,
         "batch": batch, "alpha": alpha, "gamma": gamma, "status": "ok", "reason": "",
         "measured_tok_s": meas, "measured_tok_s_expected": meas, "predicted_tok_s": pred,
         "measured_iteration_s": 1.0 / meas, "predicted_iteration_s": 1.0 / pred,
         "measured_speedup": meas / 50, "predicted_speedup": pred / 50}
    return add_errors(r)


def test_gamma_regret_is_the_throughput_lost_by_the_predicted_gamma():
    rows = [_row(1, 100, 90), _row(2, 120, 100), _row(4, 110, 130),  # predicted γ*=4, best γ=2
            _row(1, 100, 100, batch=8), _row(2, 150, 140, batch=8)]  # predicted = measured best
    reg = {g["batch"]: g for g in gamma_regret(rows)}
    assert reg[1]["gamma_measured_best"] == 2 and reg[1]["gamma_predicted_best"] == 4
    assert reg[1]["regret"] == pytest.approx(1 - 110 / 120)
    assert reg[8]["regret"] == 0.0
    s = summarize(rows + [dict(_row(8, 1, 1), status="skipped", reason="out of memory")])
    assert s["graph"]["gamma_regret"]["max"] == pytest.approx(1 - 110 / 120)
    assert s["graph"]["gamma_regret"]["gamma_hit_rate"] == 0.5
    assert s["graph"]["points"] == 5 and s["graph"]["skipped"] == 1
    assert s["graph"]["err_tok_s"]["median_abs"] == pytest.approx(np.median(np.abs(
        [r["err_tok_s"] for r in rows])))


def test_table_round_trip(tmp_path):
    rows = [_row(1, 100.5, 90.25), dict(_row(2, 1, 1), status="skipped", reason="out of memory: x")]
    p = tmp_path / "v.csv"
    save_rows(rows, p, {"gpu_name": "test", "summary": {"x": float("nan")}})
    back = load_rows(p)
    assert back[0]["measured_tok_s"] == 100.5 and back[0]["gamma"] == 1
    assert back[1]["status"] == "skipped" and back[1]["reason"] == "out of memory: x"
    assert math.isnan(back[1]["predicted_t_draft_s"])
    assert json.loads((tmp_path / "v.csv.meta.json").read_text())["summary"]["x"] is None


@pytest.mark.parametrize("name,mode,n", [("validation_h100_graph.csv", "graph", 240),
                                         ("validation_h100_eager.csv", "eager", 48)])
def test_shipped_h100_table_summary_recomputes_from_its_rows(name, mode, n):
    """The committed table and its published summary agree (nothing hand-edited)."""
    p = DATA / name
    rows = load_rows(p)
    meta = json.loads(Path(str(p) + ".meta.json").read_text())
    assert meta["gpu_name"].startswith("NVIDIA H100")
    assert len(rows) == n and all(r["status"] == "ok" for r in rows)
    s = summarize(rows)[mode]
    for k in ("err_tok_s", "err_tok_s_expected"):
        assert s[k]["median_abs"] == pytest.approx(meta["summary"][mode][k]["median_abs"])
        assert s[k]["p90_abs"] == pytest.approx(meta["summary"][mode][k]["p90_abs"])
    for r in rows[:20]:  # each error is predicted / measured − 1 of its own row
        assert r["err_tok_s_expected"] == pytest.approx(r["predicted_tok_s"] / r["measured_tok_s_expected"] - 1)
    # the published latency-model accuracy (docs/accuracy.md) against the targets
    assert s["err_tok_s_expected"]["median_abs"] <= TARGETS["median_abs"]
    assert s["err_tok_s_expected"]["p90_abs"] <= TARGETS["p90_abs"]


def _cli(*args):
    return runner.invoke(app, ["validate", *args])


def _one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert out.startswith("error:") and "Traceback" not in out and len(out.splitlines()) <= 2, out
    for n in needles:
        assert n in out, out


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    _one_line_error(_cli("--target", "llama-7b", "--draft", "opt-125m", "--device", "cpu", "--mode", "eager"),
                    "vocab", "50272", "32000")
    _one_line_error(_cli("--target", TINY, "--draft", TINY_DRAFT, "--device", "cpu", "--mode", "graph"),
                    "graph", "CUDA")
    _one_line_error(_cli("--target", TINY, "--draft", TINY_DRAFT, "--alpha", "1.2", "--device", "cpu",
                         "--mode", "eager"), "alpha")
    _one_line_error(_cli("--target", TINY, "--draft", TINY_DRAFT, "--gamma", "0", "--device", "cpu"), "gamma")
    _one_line_error(_cli("--target", TINY, "--draft", TINY_DRAFT, "--mode", "fast", "--device", "cpu"), "mode")
    _one_line_error(_cli("--target", "llama-9b", "--draft", TINY_DRAFT, "--device", "cpu"), "unknown model")
    _one_line_error(_cli("--target", TINY, "--draft", TINY_DRAFT, "--device", "tpu"), "device")


def _synthetic_profile(path, new_tokens=(1, 2, 3), batches=(1, 2), contexts=(16, 80), overhead=True):
    """A LatencyTable for the tiny shapes with made-up times (for input handling, not accuracy)."""
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key

    rows = []
    for name in (TINY, TINY_DRAFT):
        spec = resolve_model(name, dtype_bytes=4)
        for b in batches:
            for n in new_tokens:
                base = {"gpu": "cpu", "model": spec.name, "mode": "eager", "dtype": "fp32", "tp": 1, "batch": b,
                        "new_tokens": n, "p10_s": 1e-4, "p90_s": 1e-4, "repeats": 20, "status": "ok", "reason": ""}
                for c in contexts:
                    rows.append(dict(base, shape=layer_shape_key(spec), head_shape="", component="layer",
                                     context=c, median_s=1e-4 * (1 + 0.1 * b * n + 0.001 * c)))
                rows.append(dict(base, shape="", head_shape=head_shape_key(spec), component="lm_head",
                                 context=0, median_s=5e-5 * (1 + 0.1 * b * n)))
                if overhead:
                    rows.append(dict(base, shape="", head_shape=head_shape_key(spec), component="overhead",
                                     context=0, median_s=3e-5))
    t = LatencyTable(meta={"gpu": "cpu"})
    for r in rows:
        t.add(r)
    t.save(path)
    return path


def test_gamma_beyond_the_profile_is_refused(tmp_path):
    """A profile that measured at most 3 new tokens cannot predict γ = 4 (5 tokens verified)."""
    prof = _synthetic_profile(tmp_path / "p.csv")
    _one_line_error(_cli("--target", TINY, "--draft", TINY_DRAFT, "--gamma", "1,4", "--batch", "1",
                         "--context", "32", "--mode", "eager", "--device", "cpu", "--dtype", "fp32",
                         "--gpu", "h100-sxm", "--profile", str(prof)), "gamma=4", "beyond the profile")


def test_profile_from_another_card_is_refused(tmp_path):
    from specperf.perfmodel.latency.table import LatencyTable

    prof = _synthetic_profile(tmp_path / "p.csv")
    t = LatencyTable.load(prof)
    t.meta["gpu"] = "h200"
    t.save(prof)
    _one_line_error(_cli("--target", TINY, "--draft", TINY_DRAFT, "--gamma", "1", "--batch", "1",
                         "--context", "16", "--mode", "eager", "--device", "cpu", "--dtype", "fp32",
                         "--gpu", "h100-sxm", "--profile", str(prof)), "measured on 'h200'")


def test_out_of_memory_at_a_point_is_skipped_and_recorded(monkeypatch, tmp_path):
    """OOM building one draft: its points are rows with status=skipped and the reason; the rest run."""
    torch = pytest.importorskip("torch")
    import specperf.profiler.validate_run as VR

    real = VR._build

    def build(spec, cfg, seed):
        if spec.n_layers == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(spec, cfg, seed)

    monkeypatch.setattr(VR, "_build", build)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path / "v.csv"
    prof = _synthetic_profile(tmp_path / "p.csv")
    res = _cli("--target", TINY, "--draft", f"{TINY_DRAFT},{TINY}", "--gamma", "1,2", "--batch", "2",
               "--alpha", "0.7", "--context", "16", "--mode", "eager", "--device", "cpu", "--dtype", "fp32",
               "--gpu", "h100-sxm", "--repeats", "2", "--iterations", "2", "--out", str(out), "--json",
               "--profile", str(prof))
    torch.set_num_threads(n_threads)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = doc["rows"]
    assert len(rows) == 4
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 2 and all("out of memory" in r["reason"] for r in skipped)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 and all(r["measured_tok_s"] > 0 and r["predicted_tok_s"] > 0 for r in ok)
    assert doc["summary"]["eager"]["skipped"] == 2
    assert set(load_rows(out)[0]) >= set(COLUMNS) - {"reason"}
    assert all("measured" in v or "interpolated" in v or "none" in v or "α" in v
               for v in doc["meta"]["sources"].values())


def test_several_contexts_validate_each_with_one_profile_per_context(tmp_path):
    """--context takes a list like everywhere: one steady-state pass per context, rows for each, and
    with --profile-out one profile per context."""
    torch = pytest.importorskip("torch")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path / "v.csv"
    res = _cli("--target", TINY, "--draft", TINY_DRAFT, "--gamma", "1", "--batch", "1", "--alpha", "0.7",
               "--context", "16,48", "--mode", "eager", "--device", "cpu", "--dtype", "fp32", "--gpu", "h100-sxm",
               "--repeats", "2", "--iterations", "2", "--out", str(out), "--profile-out",
               str(tmp_path / "prof.csv"), "--json")
    torch.set_num_threads(n_threads)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert sorted(r["context"] for r in doc["rows"]) == [16, 48]
    assert sorted(Path(p).name for p in doc["meta"]["profile"]) == ["prof_ctx16.csv", "prof_ctx48.csv"]
    assert sorted(r["context"] for r in load_rows(out)) == [16, 48]
