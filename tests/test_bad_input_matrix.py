"""Issue 16's bad-input matrix: every command, table-driven. Each case must exit 2 with exactly one
line on stderr (`error: …`), no traceback, no file left behind; with `--json` stdout holds one JSON
document {"error", "value", "allowed"} whose error is that line."""
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from casebounds import LIMIT_BYTES, LIMIT_S, bounded
from specperf.cli.main import app

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


def _invoke(args):
    """One case under the enforced per-case bounds: < 60 s (an alarm ends it) and < 4 GiB peak
    resident memory measured for this case alone (tests/casebounds.py)."""
    with bounded() as used:
        r = runner.invoke(app, args)
    if os.environ.get("SPECPERF_MATRIX_LOG"):  # one JSON line per case: its wall time and peak memory
        with open(os.environ["SPECPERF_MATRIX_LOG"], "a") as f:
            f.write(json.dumps({"args": args, **used}) + "\n")
    assert used["wall_s"] < LIMIT_S, used
    assert used["peak_bytes"] < LIMIT_BYTES, used
    assert "Unable to allocate" not in r.stderr and not isinstance(r.exception, MemoryError), r.stderr[-300:]
    return r


@pytest.mark.parametrize("args", CASES + JSON_CASES, ids=lambda a: " ".join(a)[:90])
def test_bad_input_is_one_line_exit_2(workdir, args):
    before = _files(workdir)
    r = _invoke(args)
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


# ---- issue 25: hostile files, outputs, budgets, bounds, intervals, silent wrong answers ---------------
# Each case below exits 2 with one line, leaves no file behind and changes no file a link points to;
# the "silent wrong answer" cases of the issue (exit 0 before) are among them. Every case of the
# matrix runs under enforced bounds (tests/casebounds.py): an alarm at 60 s, an address-space
# ceiling, and its own peak resident memory (reset before it) below 4 GiB.
import math as _math  # noqa: E402

CAL = ROOT / "tests" / "data" / "calibration"
TINY = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 4096, "num_attention_heads": 32,
        "intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096}
_CORR = {"kind": "specperf latency correction", "schema_version": 1, "provider": "x", "source": "x",
         "entries": [{"gpu": "h100-sxm", "mode": "graph", "k_draft": 1.0, "k_verify": 1.0, "extra_overhead_s": -1.0,
                      "targets": ["llama-7b"], "drafts": ["llama-7b:n_layers=2"]}]}
_ACC = {  # acceptance files whose intervals are not intervals of α
    "inv_ci": {"alpha": 0.7, "alpha_ci": [0.9, 0.1]}, "miss_ci": {"alpha": 0.7, "alpha_ci": [0.8, 0.9]},
    "nan_ci": {"alpha": 0.7, "alpha_ci": [float("nan"), 0.9]}, "wide_ci": {"alpha": 0.7, "alpha_ci": [-0.1, 1.2]},
    "three_ci": {"alpha": 0.7, "alpha_ci": [0.6, 0.7, 0.8]}, "str_ci": {"alpha": 0.7, "alpha_ci": "0.6-0.8"},
    "pos_len": {"alpha": 0.7, "alpha_by_position": [0.8, 0.7], "alpha_by_position_ci": [[0.7, 0.9]]},
    "pos_inv": {"alpha": 0.7, "alpha_by_position": [0.8, 0.7], "alpha_by_position_ci": [[0.9, 0.7], [0.6, 0.8]]},
}


def _runs(scale) -> str:
    lines = (CAL / "h100" / "v_graph.csv").read_text().splitlines()
    head = lines[0].split(",")
    i, b = head.index("measured_iteration_s"), head.index("batch")
    out = [lines[0]]
    for k, ln in enumerate(lines[1:]):
        c = ln.split(",")
        c[i] = repr(float(c[i]) * scale(k))
        if scale(k) == "batch":
            c[b] = "1e12"
        out.append(",".join(c))
    return "\n".join(out) + "\n"


def _hostile(d: Path) -> None:
    h = d / "h"
    h.mkdir()
    os.mkfifo(h / "fifo")
    (h / "adir").mkdir()
    (h / "deep.json").write_text("[" * 200000 + "]" * 200000)
    (h / "deep_cfg").mkdir()
    (h / "deep_cfg" / "config.json").write_text('{"a":' * 200000 + "1" + "}" * 200000)
    for name, size in (("huge.json", 17 * 2 ** 20), ("huge.csv", 300 * 2 ** 20)):
        with open(h / name, "wb") as f:  # sparse: the size is refused before a byte is read
            f.truncate(size)
    (h / "zero_link").symlink_to("/dev/zero")
    rows = (CAL / "h100" / "p_graph.csv").read_text().splitlines()
    blank = [rows[0]] + ["," + r.split(",", 1)[1] for r in rows[1:]]
    (h / "blank_gpu.csv").write_text("\n".join(blank) + "\n")
    (h / "blank_gpu.csv.meta.json").write_text(json.dumps({"gpu": "h200", "schema_version": 1}))
    (h / "mixed_gpu.csv").write_text("\n".join(rows) + "\n")
    (h / "mixed_gpu.csv.meta.json").write_text(json.dumps({"gpu": "h200", "schema_version": 1}))
    (h / "negcal.json").write_text(json.dumps(_CORR))
    for k, v in _ACC.items():
        (h / f"{k}.json").write_text(json.dumps(v))
    (h / "inv_pairs.json").write_text(json.dumps({"pairs": [{"draft": "sheared-llama-1.3b", "alpha": 0.7,
                                                             "alpha_ci": [0.9, 0.1]}]}))
    (h / "awful_runs.csv").write_text(_runs(lambda k: (0.05, 1.0, 30.0)[k % 3]))
    lines = (CAL / "h100" / "v_graph.csv").read_text().splitlines()
    bi = lines[0].split(",").index("batch")
    lines[1] = ",".join("1e12" if j == bi else c for j, c in enumerate(lines[1].split(",")))
    (h / "b12_runs.csv").write_text("\n".join(lines) + "\n")
    m = (CAL / "vllm_metrics.txt").read_text()
    for tag, pos in (("sup", "²"), ("hex", "0x1"), ("neg", "-1"), ("arabic", "١")):
        (h / f"pos_{tag}.txt").write_text(m.replace('position="1"', f'position="{pos}"'))
    (h / "victim.txt").write_text("keep")
    for sfx in (".json", ".html", ".sh", ".csv"):  # every output kind: a link, a dangling link, a FIFO
        (h / f"out_link{sfx}").symlink_to(h / "victim.txt")
        (h / f"dangling{sfx}").symlink_to(h / "nowhere" / f"x{sfx}")
        os.mkfifo(h / f"fifo{sfx}")
    sd = {"acceptance_histogram": [0, 1], "num_spec_steps": 1, "num_accepted_draft_tokens": 1, "num_draft_tokens": 1,
          "num_spec_tokens": 1, "per_step_accepted": [1], "per_step_drafted": [2 ** 53]}
    (h / "big_gamma.jsonl").write_text(json.dumps({"id": "a", "metrics": {"speculative_decoding": sd}}) + "\n")
    (h / "sglang_nan.jsonl").write_text('{"meta_info": {"id": "a", "spec_verify_ct": 0, "spec_accept_length": NaN}, '
                                        '"gamma": 4}\n{"meta_info": {"id": "b", "spec_verify_ct": 10, '
                                        '"spec_accept_length": 2.5}, "gamma": 4}\n')
    (h / "scalar_hist.json").write_text('{"accept_counts": [3, 2, 1], "accept_counts": 2}')
    (h / "ck").mkdir()
    (h / "ck" / "config.json").write_text(json.dumps(dict(TINY, hidden_size=64, num_attention_heads=4,
                                                          intermediate_size=128, vocab_size=100)))
    (h / "ck" / "model.safetensors").write_bytes(b"\xff" * 100)
    (h / "prompts.jsonl").write_text(json.dumps({"id": "a", "tokens": [1, 2, 3]}) + "\n")
    (h / "cfg_neg_embed").mkdir()
    (h / "cfg_neg_embed" / "config.json").write_text(json.dumps(
        {"model_type": "opt", "num_hidden_layers": 2, "hidden_size": 1024, "num_attention_heads": 16,
         "ffn_dim": 4096, "vocab_size": 50272, "max_position_embeddings": 2048, "word_embed_proj_dim": -512}))


SIM = ["serve-sim", "--target", "llama-13b", "--draft", "llama-7b:n_layers=2", "--alpha", "0.7", "--rate", "1",
       "--requests", "20"]
AGREE = ["calibrate", "agreement", "--record", "r.csv", "--draft", "h/ck", "--target", "h/ck", "--new-tokens", "4"]
VAL_CPU = VAL + ["--mode", "eager", "--gamma", "1", "--batch", "1", "--alpha", "0.6"]  # would run, but for the flag
HOSTILE_INPUTS = ["h/fifo", "h/adir", "h/deep.json", "h/huge.json", "h/zero_link", "/dev/zero", "h/deep_cfg/config.json",
                  "h/huge.csv"]
FILE_FLAGS = [  # (command before the file, after it): every flag or argument that reads a file
    (["predict", "--target"], ["--draft", "llama-7b:n_layers=2", "--alpha", "0.7"]),
    (["predict", "--target", "llama-7b", "--draft"], ["--alpha", "0.7"]),
    (P[:-2] + ["--acceptance"], []), (P + ["--calibration"], []), (P + ["--profile"], []),
    (["optimize", "--target"], ["--drafts", "sheared-llama-1.3b", "--alpha", "0.7", "--batch", "1", "--mode", "graph"]),
    (O[:3] + ["--drafts"], ["--alpha", "0.7", "--batch", "1", "--mode", "graph"]),
    (O + ["--alpha-model"], []), (O + ["--profile"], []), (CA, []), (CA + ["in/huge_count.csv", "--baseline"], []),
    (CL, []), (CL + ["in/header_only.csv", "--profile"], []),
    (["plot", "speedup", "--out", "f.html", "--draft", "sheared-llama-1.3b", "--alpha", "0.7", "--target"], []),
    (["calibrate", "agreement", "--record"], []), (SIM + ["--trace"], []), (AGREE + ["--prompts"], []),
    (["predict", "--target", "llama-7b", "--method", "eagle", "--alpha", "0.7", "--tree"], []),
]
OUTS = ["h/out_link.json", "h/dangling.json", "h/fifo.json", "/dev/null", "h/adir", "h/nowhere/x.json"]
OUT_FLAGS = [  # (command, suffix its output needs)
    (["calibrate", "acceptance", str(CAL / "mean_length.json"), "--out"], ".json"),
    (["calibrate", "latency", str(CAL / "h100" / "v_graph.csv"), "--out"], ".json"),
    (O[:3] + ["--drafts", "sheared-llama-1.3b", "--alpha", "0.7", "--batch", "1", "--mode", "graph", "--emit", "vllm",
              "--emit-out"], ".json"),
    (O[:3] + ["--drafts", "sheared-llama-1.3b", "--alpha", "0.7", "--batch", "1", "--mode", "graph", "--emit", "sglang",
              "--emit-out"], ".sh"),
    (PLOT[:-2] + ["--out"], ".html"), (["explore", "--out"], ".html"),
]


def _out(path: str, suffix: str) -> str:
    return path if suffix == ".json" or not path.endswith(".json") else path[: -len(".json")] + suffix


OVERRIDES = {"n_layers": ["-1", "0", "1025"], "d_model": ["-1", "0", "131073"], "n_heads": ["-1", "0", "2049", "3"],
             "n_kv_heads": ["-1", "0", "2049", "5"], "d_ff": ["-1", "0", "1048577"], "vocab": ["-1", "0", "4194305"],
             "dtype_bytes": ["-1", "0", "9"], "max_positions": ["-1", "0", "16777217"],
             "embed_dim": ["-512", "131073"], "attn_head_dim": ["-1", "1025", "1000000"],
             "gated_mlp": ["maybe"], "tied_embeddings": ["2"], "qkv_bias": ["yes"], "linear_bias": ["x"],
             "learned_positions": [""], "qk_norm": ["none"], "family": ["gpt5"], "norm": ["batchnorm"],
             "bogus_field": ["1"], "n_layers,d_model": ["8"]}
SAFE_FIELDS = ["n_layers=1024,d_model=131072,d_ff=1048576,n_heads=1024"]  # each in range, together 4.9e14 params

ISSUE25_CASES = [
    *[pre + [f] + post for pre, post in FILE_FLAGS for f in HOSTILE_INPUTS],
    *[cmd + [_out(o, sfx)] for cmd, sfx in OUT_FLAGS for o in OUTS],
    *[P[:3] + [f"llama-7b:{k}={v}"] + P[3:] for k, vals in OVERRIDES.items() for v in vals],
    *[["predict", "--target", f"llama-65b:{k}={v}", "--draft", "sheared-llama-1.3b", "--alpha", "0.7"]
      for k, vals in OVERRIDES.items() for v in vals[:1]],
    *[P[:3] + [f"llama-7b:{s}"] + P[3:] for s in SAFE_FIELDS],
    ["predict", "--target", "llama-65b", "--draft", "opt-350m:embed_dim=-512", "--alpha", "0.7"],
    ["predict", "--target", "llama-65b", "--draft", "h/cfg_neg_embed/config.json", "--alpha", "0.7"],
    *[P[:-2] + ["--acceptance", f"h/{k}.json"] for k in _ACC], O + ["--alpha-model", "h/inv_pairs.json"],
    # work budgets: refused before anything is allocated
    P + ["--batch", "1..256", "--context", "1..16777216:65793"], P + ["--batch", "1..256", "--context", "1..256"],
    P + ["--batch", "1..64", "--context", "1..64", "--gamma", "1..64"],
    P + ["--batch", "1..16", "--context", "1..256", "--mode", "all"],
    P + ["--batch", "1e12"], P + ["--context", "99999999999"],
    ["explore", "--out", "e.html", "--batches", "1..10000000"], ["explore", "--out", "e.html", "--contexts", "1..1000000000"],
    ["explore", "--out", "e.html", "--contexts", "99999999999"], ["explore", "--out", "e.html", "--batches", "1..64", "--contexts", "1..64"],
    ["explore", "--out", "e.html", "--tps", "1,2000"], ["explore", "--out", "e.html", "--batches", "0"],
    O[:3] + ["--drafts", "sheared-llama-1.3b,tinyllama-1.1b", "--alpha", "0.7", "--batch", "1..256", "--context", "1..256"],
    O[:3] + ["--layers", "1..256", "--d-model", "256..65536:256", "--head-dim", "64,128", "--kv-heads", "1..8",
             "--ffn-ratio", "2,2.5,3", "--alpha", "0.7", "--batch", "1..8"],
    # profile identity, calibration quality, physical times, scrapes, messages
    P[:-2] + ["--alpha", "0.7", "--gpu", "h100-sxm", "--profile", "h/blank_gpu.csv"],
    P[:-2] + ["--alpha", "0.7", "--gpu", "h200", "--profile", "h/mixed_gpu.csv"],
    ["predict", "--target", "llama-7b", "--draft", "llama-7b:n_layers=2", "--alpha", "0.8", "--calibration", "h/negcal.json"],
    CL + ["h/awful_runs.csv", "--out", "cal.json"], CL + ["h/b12_runs.csv"],
    CA + [str(CAL / "mean_length.json"), "--seed", "-1"], CA + [str(CAL / "mean_length.json"), "--seed", str(2 ** 32)],
    *[CA + [f"h/pos_{t}.txt"] for t in ("sup", "hex", "neg", "arabic")],
    P + ["--profile", "h/adir"], CA + ["http://127.0.0.1:9/metrics"],
    # seeds and run lengths of every command that takes them (validate's --seed -1 used to run)
    *[VAL_CPU + [f, v] for f, v in (("--seed", "-1"), ("--seed", str(2 ** 32)), ("--repeats", "1001"),
                                    ("--iterations", "10001"), ("--repeats", "0"))],
    ["calibrate", "agreement", "--record", "r.csv", "--seed", "-1"], SIM + ["--seed", "-1"], SIM + ["--seed", str(2 ** 32)],
    # what the parser fuzz found (tests/test_fuzz_parsers.py): a 2^53-token lookahead, NaN at zero steps
    CA + ["h/big_gamma.jsonl"], CA + ["h/sglang_nan.jsonl"], CA + ["h/scalar_hist.json"],
    AGREE + ["--prompts", "h/prompts.jsonl"],  # a corrupt safetensors checkpoint (a raw SafetensorError before)
    ["calibrate", "agreement", "--record", "h/out_link.csv", "--draft", "h/ck", "--target", "h/ck", "--prompts",
     "h/prompts.jsonl"],
]
ISSUE25_JSON = [c + ["--json"] for c in ISSUE25_CASES[::4] if c[0] in ("predict", "optimize", "calibrate")]


@pytest.fixture
def hostile(workdir):
    _hostile(workdir)
    return workdir


def test_matrix_has_at_least_500_cases():
    assert len(CASES) + len(JSON_CASES) + len(ISSUE25_CASES) + len(ISSUE25_JSON) >= 500, len(ISSUE25_CASES)


@pytest.mark.parametrize("args", ISSUE25_CASES + ISSUE25_JSON, ids=lambda a: " ".join(a)[:100])
def test_hostile_input_is_one_line_exit_2_fast_and_bounded(hostile, args):
    before = _files(hostile)
    r = _invoke(args)  # < 60 s and < 4 GiB, enforced per case
    out, err = r.stdout, r.stderr.strip()
    assert r.exit_code == 2, (r.exit_code, out[-400:], err[-400:], repr(r.exception))
    assert "Traceback" not in out + err
    assert err.startswith("error: ") and "\n" not in err, err
    assert _files(hostile) == before, _files(hostile) ^ before
    assert (hostile / "h" / "victim.txt").read_text() == "keep"
    if "--json" in args:
        doc = json.loads(out)
        assert set(doc) == {"error", "value", "allowed"}
    else:
        assert out == "", out


MARKUP_NAMES = ["[/bad]", "[bold red]x[/]", "[link=file:///etc/passwd]x[/link]", "x\n[/]", "[[/]]", "\\[x]"]


@pytest.mark.parametrize("name", MARKUP_NAMES)
@pytest.mark.parametrize("cmd", ["predict", "optimize"])
def test_markup_in_model_names_is_printed_not_interpreted(tmp_path, name, cmd):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(dict(TINY, _name_or_path=name)))
    args = (["predict", "--target", "llama-7b", "--draft", str(d / "config.json"), "--alpha", "0.7", "--gamma", "1..3"]
            if cmd == "predict" else
            ["optimize", "--target", "llama-7b", "--drafts", str(d / "config.json"), "--alpha", "0.7", "--batch", "1",
             "--mode", "graph"])
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.stderr[-400:], repr(r.exception))
    assert "Traceback" not in r.stdout + r.stderr and "MarkupError" not in r.stdout + r.stderr
    first = name.split("\n")[0]
    assert first in r.stdout.replace("\n", "") or first.replace("\\", "") in r.stdout.replace("\n", "")


def test_a_forced_bad_calibration_is_written_and_a_good_one_passes(hostile):
    r = runner.invoke(app, CL + ["h/awful_runs.csv", "--out", "forced.json", "--force", "--json"])
    assert r.exit_code == 0, r.stderr
    gate = json.loads(r.stdout)["quality_gate"]
    assert gate["passed"] is False and gate["problems"] and _math.isfinite(gate["limit_p90_abs_pct"])
    r = runner.invoke(app, CL + [str(CAL / "h100" / "v_graph.csv"), "--out", "good.json", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["quality_gate"]["passed"] is True


def test_the_per_case_bounds_are_enforced_not_just_observed():
    """The matrix's bounds stop a case: an allocation past the ceiling fails at once, a hang ends at
    the alarm, and the peak is that case's own (reset before it)."""
    import numpy as np

    from casebounds import Overtime

    with pytest.raises(MemoryError):
        with bounded(limit_s=30, limit_bytes=2 ** 30):
            np.ones(2 ** 31 // 8 * 3)  # 6 GiB
    with pytest.raises(Overtime):
        with bounded(limit_s=0.2):
            while True:
                pass
    with bounded() as big:
        x = np.ones(2 ** 28 // 8)  # 256 MiB, touched
        del x
    with bounded() as small:
        pass
    assert big["peak_bytes"] - small["peak_bytes"] > 2 ** 27, (big, small)
