"""Issue 16's bad-input matrix: every command, table-driven. Each case must exit 2 with exactly one
line on stderr (`error: …`), no traceback, no file left behind; with `--json` stdout holds one JSON
document {"error", "value", "allowed"} whose error is that line."""
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "perfmodel" / "data" / "h100-sxm.csv").read_text().splitlines()
HEADER, ROW = SHIPPED[0], SHIPPED[1]
runner = CliRunner()


def _row(**change) -> str:
    cols, vals = HEADER.split(","), ROW.split(",")
    return ",".join(str(change.get(c, v)) for c, v in zip(cols, vals))


FILES = {  # name → content (bytes or text) of the bad inputs the cases point at (under in/)
    "binary.csv": bytes(range(256)) * 4,
    "empty.csv": "",
    "header_only.csv": HEADER + "\n",
    "text_median.csv": HEADER + "\n" + _row(median_s="fast") + "\n",
    "inf_median.csv": HEADER + "\n" + _row(median_s="inf") + "\n",
    "neg_median.csv": HEADER + "\n" + _row(median_s="-1e-4") + "\n",
    "nan_median.csv": HEADER + "\n" + _row(median_s="nan") + "\n",
    "conflict.csv": HEADER + "\n" + ROW + "\n" + _row(median_s="0.0009") + "\n",
    "other_gpu.csv": HEADER + "\n" + _row(gpu="a100-sxm-80gb") + "\n",
    "newer.csv": HEADER + "\n" + ROW + "\n",
    "newer.csv.meta.json": json.dumps({"schema_version": 99}),
    "ragged.csv": HEADER + "\n" + ROW + ",extra\n",
    "not_a_table.csv": "a,b,c\n1,2,3\n",
    "not_json.json": "{not json",
    "scalar_counts.json": json.dumps({"accept_counts": 100}),
    "huge_count.csv": "gamma,accepted,count\n4,2,1e30\n",
    "list.json": "[1, 2, 3]",
    "empty_obj.json": "{}",
    "neg_counts.json": json.dumps({"accept_counts": [5, -3, 2]}),
    "config_huge/config.json": json.dumps({"model_type": "llama", "hidden_size": 10**12, "num_hidden_layers": 2,
                                           "num_attention_heads": 8, "intermediate_size": 1024,
                                           "vocab_size": 1000, "max_position_embeddings": 2048}),
}
_LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
          "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 8192}
HF_BAD = {  # config.json folders whose fields this model would price wrongly (perfmodel/specs/hf_config.py)
    "gemma2": dict(_LLAMA, model_type="gemma2", head_dim=256), "fp8": dict(_LLAMA, quantization_config={"quant_method": "fp8"}),
    "int4_dtype": dict(_LLAMA, torch_dtype="int4"), "moe": dict(_LLAMA, num_local_experts=8),
    "mlp_bias": dict(_LLAMA, mlp_bias=True), "head_dim0": dict(_LLAMA, head_dim=0)}
FILES.update({f"{k}/config.json": json.dumps(v) for k, v in HF_BAD.items()})
P = "predict --target llama-7b --draft sheared-llama-1.3b --alpha 0.7".split()
O = "optimize --target llama-7b --drafts sheared-llama-1.3b --alpha 0.7 --batch 1 --mode graph".split()
PLOT = "plot speedup --target llama-7b --draft sheared-llama-1.3b --alpha 0.7 --out f.html".split()
PROF = "profile --models llama-7b:n_layers=1 --out p.csv --device cpu --estimate".split()
VAL = "validate --target llama-7b:n_layers=1 --draft llama-7b:n_layers=1 --device cpu".split()
CA = ["calibrate", "acceptance"]
CL = ["calibrate", "latency"]
PROFILES = ["binary.csv", "empty.csv", "header_only.csv", "text_median.csv", "inf_median.csv", "neg_median.csv",
            "nan_median.csv", "conflict.csv", "other_gpu.csv", "newer.csv", "ragged.csv", "not_a_table.csv",
            "missing.csv"]

CASES = [
    # top level and catalogs
    ["--bogus"], ["nosuchcommand"], ["models", "--foo"], ["gpus", "extra"], ["models", "--json", "--x"],
    # predict: values
    *[P + [opt, v] for opt, vals in {
        "--target": ["llama-7", "", "llama-7b:d_model=1000000000", "llama-7b:n_layers=0", "llama-7b:n_layers=2000",
                     "in/missing/config.json", "in/config_huge/config.json", "in/binary.csv", "llama-7b:vocab=x"],
        "--draft": ["sheared-llama-13b", "llama-7b:d_ff=-1", "llama-7b:n_heads=7"],
        "--gpu": ["h1000", ""],
        "--alpha": ["1", "-0.1", "nan", "abc", "inf"],
        "--gamma": ["0", "65", "two", "1..", "5..2", "1..100", "", "1..8:0", "-3"],
        "--gamma-max": ["0", "65", "x"],
        "--batch": ["0", "-2", "x", "1..1000000", "70000", ",", "1.5", "1..8:-1"],
        "--context": ["0", "1e3", "20000000", "-1"],
        "--tp": ["0", "3", "-4", "1025", "two"],
        "--mode": ["turbo", "graph,turbo", "", "graph;eager"],
        "--dtype": ["int8", ""],
        "--calibration": ["in/missing.json", "in/binary.csv", "in/not_json.json", "in/list.json"],
        "--acceptance": ["in/missing.json", "in/binary.csv", "in/not_json.json", "in/scalar_counts.json"],
    }.items() for v in vals],
    *[P + ["--profile", f"in/{f}"] for f in PROFILES],
    P + ["--batch", "65536", "--context", "100000"],
    P + ["--profile", "in/other_gpu.csv", "--analytical"],
    P + ["--acceptance", "in/scalar_counts.json"],
    ["predict", "--cost-ratio", "-1", "--alpha", "0.7"], ["predict", "--cost-ratio", "nan", "--alpha", "0.7"],
    ["predict", "--cost-ratio", "0.1"], ["predict", "--cost-ratio", "0.1", "--alpha", "0.7", "--target", "llama-7b"],
    ["predict", "--alpha", "0.7"], ["predict", "--target", "llama-7b", "--alpha", "0.7"],
    P + ["--batch"], P + ["--unknown", "1"],
    # optimize
    *[O + [opt, v] for opt, vals in {
        "--target": ["llama-7", "llama-7b:d_model=1000000000"], "--drafts": ["", "nope-1b"],
        "--batch": ["1..1000000", "0"], "--context": ["0", "x"], "--mode": ["fast", "graph,fast"],
        "--gamma-max": ["0", "65"], "--top": ["0"], "--tp": ["0", "3"], "--alpha": ["2", "-1"],
        "--emit": ["foo"], "--layers": ["0", "1..5000"], "--d-model": ["1000000000", "x"], "--ffn-ratio": ["abc"],
        "--head-dim": ["0"], "--kv-heads": ["x"], "--acceptance": ["in/missing.json"],
        "--alpha-model": ["in/missing.json", "in/binary.csv"], "--dtype": ["int4"]}.items() for v in vals],
    *[O + ["--profile", f"in/{f}"] for f in PROFILES[:10]],
    O + ["--emit-out", "x.txt"],
    O[:3] + ["--drafts", "llama-7b:n_layers=2,vocab=1000", "--alpha", "0.7", "--batch", "1", "--emit", "vllm"],
    # plot
    *[PLOT + [opt, v] for opt, vals in {
        "--out": ["nodir/f.html", "f.txt", ""], "--png": ["f.jpg", "nodir/f.png"], "--mode": ["fast"],
        "--style": ["x"], "--gamma-max": ["0", "65"], "--layers": ["1,2"], "--drafts": ["a"], "--batch": ["1,4", "0"],
        "--context": ["0"], "--tp": ["0"], "--dtype": ["x"], "--gpu": ["h1000"], "--target": ["nope"]}.items()
      for v in vals],
    *[PLOT + ["--profile", f"in/{f}"] for f in PROFILES[:8]],
    ["plot", "nokind", "--out", "f.html"], ["plot", "gamma", "--out", "f.html", "--target", "llama-7b"],
    ["plot", "gamma", "--out", "f.html", "--target", "llama-7b", "--draft", "sheared-llama-1.3b"],
    ["plot", "breakdown", "--out", "f.html", "--cost-ratio", "0.1"], ["plot", "design", "--out", "f.html", "--drafts", "nope-1b"],
    # profile (--estimate: nothing is measured even if a check were missed)
    *[PROF + [opt, v] for opt, vals in {
        "--models": ["nope", "", "llama-7b:d_model=1000000000"], "--out": ["p.txt", "nodir/p.csv", "in"],
        "--batch": ["0", "1..1000000"], "--context": ["0"], "--mode": ["fast", "graph,fast"], "--dtype": ["int8"],
        "--device": ["tpu"], "--gamma-max": ["0", "65"], "--new-tokens": ["0", "x"], "--tp": ["0"]}.items()
      for v in vals],
    # validate
    *[VAL + [opt, v] for opt, vals in {
        "--target": ["nope"], "--draft": ["nope"], "--gamma": ["0", "65"], "--batch": ["0", "x"],
        "--alpha": ["1.5", "x"], "--mode": ["fast"], "--device": ["tpu"], "--repeats": ["0"],
        "--iterations": ["0"], "--context": ["0", "1..300"], "--out": ["v.txt"], "--dtype": ["int8"]}.items()
      for v in vals],
    # calibrate acceptance / latency
    *[CA + [f"in/{f}"] for f in ("missing.csv", "binary.csv", "empty.csv", "scalar_counts.json", "huge_count.csv",
                                 "empty_obj.json", "neg_counts.json", "not_a_table.csv")],
    CA + ["in/huge_count.csv", "--format", "foo"], CA + ["in/huge_count.csv", "--gamma-max", "0"],
    CA + ["in/huge_count.csv", "--model", "foo"], CA + ["in/huge_count.csv", "--label", "x"],
    CA + ["in/huge_count.csv", "--seed", "-1"],
    *[CL + [f"in/{f}"] for f in ("missing.csv", "binary.csv", "empty.csv", "header_only.csv", "not_a_table.csv")],
    CL + ["in/header_only.csv", "--fit", "foo"], CL + ["in/header_only.csv", "--mode", "fast"],
    CL + ["in/header_only.csv", "--gpu", "h1000"], CL + ["in/header_only.csv", "--profile", "in/conflict.csv"],
    # issue 26: config.json fields priced wrongly are refused; --cost-ratio checks what it does not use
    *[P[:2] + [f"in/{c}/config.json"] + P[3:] for c in HF_BAD],
    *[O[:2] + [f"in/{c}/config.json"] + O[3:] for c in ("gemma2", "fp8")],
    *[["predict", "--cost-ratio", "0.05", "--alpha", "0.8", opt, v] for opt, v in
      (("--batch", "-3"), ("--batch", "8"), ("--context", "0"), ("--tp", "2"))],
    ["data", "rebuild", "--bogus"], ["data", "nosuch"], ["gpus", "--wide", "x"], P + ["--wide", "x"],
]
# every command also with --json: the error must then be a JSON document on stdout as well
JSON_CASES = [c + ["--json"] for c in CASES if c and c[0] not in ("--bogus", "nosuchcommand", "gpus")][::3]


def _files(d: Path) -> set:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name, content in FILES.items():
        p = tmp_path / "in" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content) if isinstance(content, bytes) else p.write_text(content)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_matrix_has_at_least_150_cases():
    assert len(CASES) + len(JSON_CASES) >= 150 and len(CASES) >= 150


@pytest.mark.parametrize("args", CASES + JSON_CASES, ids=lambda a: " ".join(a)[:90])
def test_bad_input_is_one_line_exit_2(workdir, args):
    before = _files(workdir)
    r = runner.invoke(app, args)
    out, err = r.stdout, r.stderr.strip()
    assert r.exit_code == 2, (r.exit_code, out[-500:], err[-500:], repr(r.exception))
    assert "Traceback" not in out + err
    assert err.startswith("error: ") and "\n" not in err, err
    assert _files(workdir) == before, _files(workdir) ^ before
    if "--json" in args:
        doc = json.loads(out)
        assert set(doc) == {"error", "value", "allowed"} and err.startswith("error: " + doc["error"][:40])
    else:
        assert out == "", out
