"""scripts/hf_assisted_report.py's calibration maths on a synthetic run table with planted HF
overheads (a per iteration, b per forward): the fit recovers them from at most 4 runs chosen by the
fixed rules, and the held-out runs are then predicted exactly. Runs without transformers or a GPU."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hf_assisted_report.py"
A_S, B_S, C_S = 4.0e-3, 1.5e-3, 0.2e-3  # planted: 4 ms per iteration, 1.5 ms per forward, 0.2 ms per layer


@pytest.fixture(scope="module")
def rep():
    spec = importlib.util.spec_from_file_location("hf_assisted_report", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cfg(layers: int, d: int, h: int, kv: int) -> str:
    return json.dumps({"model_type": "llama", "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": h,
                       "num_key_value_heads": kv, "intermediate_size": 4 * d, "vocab_size": 32000,
                       "head_dim": d // h, "max_position_embeddings": 4096, "tie_word_embeddings": False})


def synthetic(path: Path, per_layer: float = 0.0) -> list[dict]:
    """Pair-major, γ ascending (as hf_assisted_check writes): 4 pairs × γ 0..6, iteration times built
    from the forwards with the planted overhead (plus `per_layer` per decoder layer executed)."""
    rows = []
    pairs = [("p-a", 6e-3, 1.5e-3, 0.8, 16, 4), ("p-b", 9e-3, 1.0e-3, 0.6, 24, 2), ("p-c", 4e-3, 2.0e-3, 0.9, 8, 8),
             ("p-d", 7e-3, 1.2e-3, 0.7, 12, 3)]
    for name, t_t, t_d, alpha, lt, ld in pairs:
        for g in range(7):
            t_v = t_t * (1 + 0.05 * g)
            t_d2 = 1.2 * t_d
            if g == 0:
                it, tpi = t_t + B_S + per_layer * lt, 1.0
            else:
                it = g * t_d + (t_d2 - t_d) + t_v + A_S + B_S * (g + 1) + per_layer * (g * ld + lt)
                tpi = (1 - alpha ** (g + 1)) / (1 - alpha)
            rows.append({"gpu_name": "NVIDIA H100 80GB HBM3", "dtype": "fp16", "pair": name, "gamma": g, "batch": 1,
                         "prompt_len": 256, "new_tokens": 96, "context": 304, "repeats": 3,
                         "t_n_layers": lt, "d_n_layers": ld, "target_config": _cfg(lt, 2048, 16, 4),
                         "draft_config": _cfg(ld, 2048, 16, 4),
                         "decode_tok_s": tpi / it, "tokens_per_iteration": tpi, "t_target_s": t_t, "t_verify_s": t_v,
                         "t_draft_s": t_d if g else "", "t_draft2_s": t_d2 if g else ""})
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def test_calibration_rules(rep, tmp_path):
    p = tmp_path / "hfa.csv"
    synthetic(p)
    rows = rep.read(p)
    first = rep.calibration_indices(rows, "first")
    assert [(rows[i]["pair"], rows[i]["gamma"]) for i in first] == [("p-a", 1), ("p-a", 2), ("p-a", 3), ("p-a", 4)]
    spread = rep.calibration_indices(rows, "spread")
    assert [(rows[i]["pair"], rows[i]["gamma"]) for i in spread] == [("p-a", 1), ("p-b", 6), ("p-c", 2), ("p-d", 5)]
    assert len(first) <= 4 and len(spread) <= 4


@pytest.mark.parametrize("rule", ["first", "spread"])
def test_planted_overhead_recovered(rep, tmp_path, rule):
    p = tmp_path / "hfa.csv"
    synthetic(p)
    rows = rep.read(p)
    fw = [rep.forwards_measured(r) for r in rows]
    res = rep.predict(rows, fw, rep.calibration_indices(rows, rule))
    assert res["a_s"] == pytest.approx(A_S, rel=1e-9)
    assert res["b_s"] == pytest.approx(B_S, rel=1e-9)
    held = [x for x in res["rows"] if x["role"] == "held-out"]
    assert len(held) == 24 - 4
    assert max(abs(x["error"]) for x in res["rows"]) < 1e-9  # held-out, calibration and the target alone
    s = rep.summary(res["rows"])
    assert s["n"] == 20 and s["median_abs"] < 1e-9
    assert all(x["role"] == "baseline" for x in res["rows"] if x["gamma"] == 0)


def test_planted_per_layer_overhead_recovered(rep, tmp_path):
    """The per-layer model, calibrated on the spread rule's 4 runs (4 shapes), recovers a, b and c;
    the 2-parameter model on the first pair alone cannot, and says so in its held-out error."""
    p = tmp_path / "hfa.csv"
    synthetic(p, per_layer=C_S)
    rows = rep.read(p)
    fw = [rep.forwards_measured(r) for r in rows]
    res = rep.predict(rows, fw, rep.calibration_indices(rows, "spread"), "iter+fwd+layer")
    assert (res["a_s"], res["b_s"], res["c_s"]) == (pytest.approx(A_S, rel=1e-6), pytest.approx(B_S, rel=1e-6),
                                                    pytest.approx(C_S, rel=1e-6))
    assert rep.summary(res["rows"])["max_abs"] < 1e-9
    two = rep.predict(rows, fw, rep.calibration_indices(rows, "first"), "iter+fwd")
    assert rep.summary(two["rows"])["max_abs"] > 0.01
    # on one pair the per-layer column is collinear with the others: dropped, never a wild fit
    one = rep.predict(rows, fw, rep.calibration_indices(rows, "first"), "iter+fwd+layer")
    assert one["c_s"] == 0.0


def test_failed_prediction_counts(rep):
    rows = [{"pair": "p", "gamma": 2, "decode_tok_s": 100.0, "tokens_per_iteration": 2.0, "measured_iteration_s": 0.02,
             "t_n_layers": 4, "d_n_layers": 1}] * 2
    res = rep.predict(rows, [-1.0, 0.01], [])  # a negative forward sum: the first run cannot be predicted
    s = rep.summary(res["rows"])
    assert s["n"] == 2 and s["failed"] == 1 and s["max_abs"] == float("inf")


def test_fit_overhead_degenerate(rep):
    assert rep.fit_overhead([], []) == (0.0, 0.0)
    a, b = rep.fit_overhead([3, 3], [0.01, 0.012])  # one distinct γ: a alone
    assert (a, b) == (pytest.approx(0.011), 0.0)


def test_noisy_overhead_least_squares(rep):
    g = [1, 2, 3, 4]
    y = [A_S + B_S * (x + 1) + e for x, e in zip(g, (1e-4, -1e-4, -1e-4, 1e-4))]
    a, b = rep.fit_overhead(g, y)
    assert abs(a - A_S) < 3e-4 and abs(b - B_S) < 1e-4


def test_speedups_and_gpu_key(rep, tmp_path):
    p = tmp_path / "hfa.csv"
    synthetic(p)
    rows = rep.read(p)
    res = rep.predict(rows, [rep.forwards_measured(r) for r in rows], rep.calibration_indices(rows))
    sp = rep.speedups(rows, res["rows"])
    assert len(sp) == 24 and all(abs(x["error"]) < 1e-9 for x in sp)
    assert rep.gpu_key("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert rep.gpu_key("NVIDIA H200") == "h200"
    with pytest.raises(SystemExit):
        rep.gpu_key("cpu (x86_64)")


def test_specperf_forwards_finite(rep, tmp_path):
    """The shipped providers price the synthetic shapes (specs read from the rows' config.json text)."""
    p = tmp_path / "hfa.csv"
    synthetic(p)
    rows = [r for r in rep.read(p) if r["pair"] == "p-a" and r["gamma"] in (0, 4)]
    fs = rep.forwards_specperf(rows, "h100-sxm")
    assert all(math.isfinite(f[0]) and f[0] > 0 for f in fs)
    assert fs[1][0] > fs[0][0]  # γ = 4: four draft forwards and a 5-token verification cost more than one step


def test_report_main_end_to_end(rep, tmp_path, capsys):
    """The whole report on the synthetic table: exit 0, every variant printed, a last JSON line with
    finite numbers (or null), the headline held out on 20 runs, per-run errors written."""
    p = tmp_path / "hfa.csv"
    synthetic(p)
    errs = tmp_path / "errors.csv"
    assert rep.main([str(p), "--errors-out", str(errs)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    doc = json.loads(out[-1])
    assert doc["gpu"] == "h100-sxm" and doc["headline"] == "specperf/first" and doc["held_out"]["n"] == 20
    assert set(doc["variants"]) == {f"{s}/{v}" for s in ("measured", "specperf")
                                    for v in ("first", "spread", "spread+layer")}
    assert doc["variants"]["measured/first"]["held_out"]["median_abs"] < 1e-9  # planted overhead, measured forwards
    with errs.open() as f:
        assert sum(1 for _ in f) == 1 + 6 * 28


def test_report_bad_input_one_line(rep, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert rep.main([str(bad)]) == 2
    assert rep.main([str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "missing" in err[0]


def test_check_script_is_independent():
    """scripts/hf_assisted_check.py imports nothing from specperf (it is the truth, not specperf's code)."""
    import ast

    tree = ast.parse((SCRIPT.parent / "hf_assisted_check.py").read_text())
    mods = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    mods |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not mods & {"perfmodel", "profiler", "calibration", "cli", "plots", "studies", "specperf"}, mods
