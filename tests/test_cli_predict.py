"""`specperf predict`, `models` and `gpus` through typer's CliRunner on cli.main.app."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.specs.catalog import MODELS
from specperf.perfmodel.specs.hardware import GPUS

ROOT = Path(__file__).resolve().parents[1]
MUST_SHOW = ["predict", "--target", "llama-65b", "--draft", "sheared-llama-1.3b", "--gpu", "h100-sxm",
             "--tp", "4", "--alpha", "0.8", "--gamma", "auto", "--json"]
runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # rich wraps tables at 80 columns without a terminal


def _json(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))


def test_must_show_command():
    doc = _json(MUST_SHOW)
    for key in ("speedup", "tokens_per_iteration", "throughput_tok_s", "iteration_s", "optimal_gamma", "rows"):
        assert key in doc, key
    rows = doc["rows"]
    assert [r["gamma"] for r in rows] == list(range(1, 9))  # auto = 1..gamma-max (8)
    best = max(rows, key=lambda r: r["speedup"])
    assert doc["optimal_gamma"] == best["gamma"] and doc["speedup"] == best["speedup"]
    assert sum(r["optimal"] for r in rows) == 1 and best["optimal"]
    assert doc["speedup"] > 1.0 and doc["target"] == "llama-65b" and doc["tp"] == 4
    assert doc["sources"]  # states where each latency came from


def test_rows_are_self_consistent():
    doc = _json(MUST_SHOW + ["--analytical", "--batch", "3"])
    for r in doc["rows"]:
        g = r["gamma"]
        assert r["iteration_s"] == pytest.approx(g * r["t_draft_s"] + r["t_verify_s"] + r["overhead_s"], rel=1e-12)
        assert r["tokens_per_iteration"] == pytest.approx((1 - 0.8 ** (g + 1)) / 0.2, rel=1e-12)
        assert r["throughput_tok_s"] == pytest.approx(3 * r["tokens_per_iteration"] / r["iteration_s"], rel=1e-12)
        assert r["baseline_tok_s"] == pytest.approx(3 / (r["t_target_s"] + r["baseline_overhead_s"]), rel=1e-12)
        assert r["speedup"] == pytest.approx(r["throughput_tok_s"] / r["baseline_tok_s"], rel=1e-12)
        assert r["t_verify_s"] >= r["t_target_s"]  # verifying γ+1 tokens costs at least one token
    assert all("analytical" in v for k, v in doc["sources"].items() if k.endswith("_layer"))


def test_must_show_without_torch_in_a_subprocess():
    """The prediction needs no torch: run it with `import torch` made to fail."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from cli.main import main\n"
            f"sys.argv = ['specperf'] + {MUST_SHOW!r}\n"
            "main()\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["optimal_gamma"] >= 1


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_depth_effect_shallow_wide_draft_is_faster(mode):
    common = ["predict", "--target", "llama-65b", "--gpu", "h100-sxm", "--tp", "4", "--alpha", "0.8",
              "--gamma", "4", "--batch", "1", "--mode", mode, "--analytical", "--json"]
    shallow = _json(common + ["--draft", "llama-7b:n_layers=4"])["rows"][0]
    deep = _json(common + ["--draft", "sheared-llama-1.3b"])["rows"][0]
    # the 4-layer draft has more parameters than Sheared-LLaMA-1.3B (0.94 B vs 1.35 B total, but
    # 0.81 B vs 1.21 B in layers) yet only 4 layers against 24: its step is predicted faster
    assert shallow["t_draft_s"] < deep["t_draft_s"]
    assert shallow["t_verify_s"] == deep["t_verify_s"]


def test_depth_effect_grows_in_eager_mode():
    def ratio(mode):
        common = ["predict", "--target", "llama-65b", "--gpu", "h100-sxm", "--tp", "4", "--alpha", "0.8",
                  "--gamma", "4", "--mode", mode, "--analytical", "--json"]
        s = _json(common + ["--draft", "llama-7b:n_layers=4"])["rows"][0]["t_draft_s"]
        d = _json(common + ["--draft", "sheared-llama-1.3b"])["rows"][0]["t_draft_s"]
        return d / s
    assert ratio("eager") > ratio("graph") > 1.0


def test_human_table():
    r = runner.invoke(app, MUST_SHOW[:-1] + ["--analytical"], env=WIDE)
    assert r.exit_code == 0, r.stderr
    assert "optimal" in r.stdout and "speedup" in r.stdout and "llama-65b" in r.stdout


def test_acceptance_file_per_position(tmp_path):
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"alpha": 0.6, "alpha_by_position": [0.84, 0.60, 0.39, 0.27]}))
    doc = _json(["predict", "--target", "llama-65b", "--draft", "llama-7b:n_layers=4", "--tp", "4",
                 "--acceptance", str(acc), "--gamma", "2,4,6", "--analytical", "--json"])
    by_g = {r["gamma"]: r for r in doc["rows"]}
    assert by_g[4]["tokens_per_iteration"] == pytest.approx(1 + 0.84 + 0.84 * 0.6 + 0.84 * 0.6 * 0.39
                                                            + 0.84 * 0.6 * 0.39 * 0.27, rel=1e-12)
    assert not by_g[4]["extrapolated_acceptance"] and by_g[6]["extrapolated_acceptance"]
    assert doc["notes"]


def test_config_json_as_model(tmp_path):
    cfg = ROOT / "tests" / "fixtures" / "configs" / "llama-7b" / "config.json"
    a = _json(["predict", "--target", "llama-65b", "--draft", f"{cfg}:n_layers=4", "--tp", "4", "--alpha",
               "0.8", "--gamma", "3", "--analytical", "--json"])
    b = _json(["predict", "--target", "llama-65b", "--draft", "llama-7b:n_layers=4", "--tp", "4", "--alpha",
               "0.8", "--gamma", "3", "--analytical", "--json"])
    assert a["rows"][0]["t_draft_s"] == b["rows"][0]["t_draft_s"]


# ---- bad input: exit 2, one line naming the value, no traceback ---------------------------------
BASE = ["predict", "--target", "llama-65b", "--draft", "sheared-llama-1.3b", "--gpu", "h100-sxm",
        "--tp", "4", "--alpha", "0.8", "--json"]


def _replace(args, opt, value):
    out = list(args)
    if opt in out:
        out[out.index(opt) + 1] = value
    else:
        out += [opt, value]
    return out


BAD = [
    ("--target", "llama-7", "llama-7"),
    ("--draft", "sheared-llama-13b", "sheared-llama-13b"),
    ("--gpu", "h1000", "h1000"),
    ("--alpha", "1", "alpha=1"),
    ("--alpha", "-0.1", "alpha=-0.1"),
    ("--alpha", "nan", "alpha=nan"),
    ("--gamma", "0", "gamma=0"),
    ("--gamma", "65", "gamma=65"),
    ("--gamma", "two", "two"),
    ("--gamma-max", "65", "gamma-max=65"),
    ("--batch", "0", "batch=0"),
    ("--batch", "-2", "batch=-2"),
    ("--context", "0", "context=0"),
    ("--tp", "0", "tp=0"),
    ("--tp", "-4", "tp=-4"),
    ("--tp", "3", "tp=3"),
    ("--mode", "turbo", "turbo"),
    ("--dtype", "int8", "int8"),
    ("--draft", "llama-7b:n_layers=zero", "zero"),
]


def _assert_bad(r, needle):
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert needle in err, (needle, err)
    assert "Traceback" not in r.stdout + r.stderr
    # issue 16 (deliberate change): with --json the error is also one JSON document on stdout
    doc = json.loads(r.stdout) if r.stdout else None
    assert doc is None or (set(doc) == {"error", "value", "allowed"} and doc["error"] == err[len("error: "):])


@pytest.mark.parametrize("opt,value,needle", BAD)
def test_bad_input_exits_2_with_one_line(opt, value, needle):
    _assert_bad(runner.invoke(app, _replace(BASE, opt, value)), needle)


def test_malformed_config_json(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama", "hidden_size": 4096,')
    _assert_bad(runner.invoke(app, _replace(BASE, "--draft", str(bad))), str(bad))
    cfg = json.loads((ROOT / "tests" / "fixtures" / "configs" / "llama-7b" / "config.json").read_text())
    bad.write_text(json.dumps(dict(cfg, hidden_size=4096.5)))
    _assert_bad(runner.invoke(app, _replace(BASE, "--draft", str(bad))), "hidden_size=4096.5")
    _assert_bad(runner.invoke(app, _replace(BASE, "--draft", str(tmp_path / "missing" / "config.json"))),
                "does not exist")


def test_cost_ratio_bad_input():
    _assert_bad(runner.invoke(app, ["predict", "--cost-ratio", "-1", "--alpha", "0.8", "--gamma", "3"]),
                "cost-ratio=-1")
    _assert_bad(runner.invoke(app, ["predict", "--cost-ratio", "0.1", "--gamma", "3"]), "--alpha")


def test_missing_models():
    _assert_bad(runner.invoke(app, ["predict", "--alpha", "0.8"]), "--target")


# ---- models / gpus ------------------------------------------------------------------------------
def test_models_json_and_table():
    docs = _json(["models", "--json"])
    assert [d["name"] for d in docs] == list(MODELS)
    d7 = next(d for d in docs if d["name"] == "llama-7b")
    assert (d7["n_layers"], d7["d_model"], d7["params"]) == (32, 4096, MODELS["llama-7b"].params)
    r = runner.invoke(app, ["models"], env=WIDE)
    assert r.exit_code == 0
    for name in ("llama-65b", "sheared-llama-1.3b", "qwen2.5-72b", "opt-66b"):
        assert name in r.stdout
    assert "6.74 B" in r.stdout


def test_gpus_json_and_table():
    docs = _json(["gpus", "--json"])
    assert [d["name"] for d in docs] == list(GPUS)
    assert all(d["sources"]["datasheet"] for d in docs)
    r = runner.invoke(app, ["gpus"], env=WIDE)
    assert r.exit_code == 0
    for name in GPUS:
        assert name in r.stdout
    assert "989.4" in r.stdout  # H100 SXM dense bf16 TFLOP/s
