"""Issue 12 (CLI) and 16 behaviour, one test per rule: shared list options and --mode both, --version,
multi-cell predict, γ auto widening to an interior optimum, optimal γ = 0, the memory check,
profile integrity (duplicates with line numbers, GPU override), BOM files, no truncated names, no
HTML left by a failed PNG, the tokenizer guard on --emit, calibrated times never ≤ 0."""
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli import options as o
from specperf.cli.common import UsageError
from specperf.cli.main import app
from specperf.perfmodel.specdec.maths import speedup_cost_ratio

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "perfmodel" / "data" / "h100-sxm.csv").read_text().splitlines()
runner = CliRunner()
P = ["predict", "--target", "llama-7b", "--draft", "sheared-llama-1.3b", "--alpha", "0.7", "--json"]


def _json(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("text, want", [("1,4,16", [1, 4, 16]), ("1..4", [1, 2, 3, 4]), ("1..16:5", [1, 6, 11, 16]),
                                        ("8,1..3,8", [1, 2, 3, 8])])
def test_int_lists(text, want):
    assert o.int_list(text, "batch") == want


@pytest.mark.parametrize("text", ["1..1000000", "0", "1..70000:1000", "x", "3..1"])
def test_int_lists_bounded(text):
    with pytest.raises(UsageError):
        o.int_list(text, "batch")


@pytest.mark.parametrize("text, want", [("graph", ("graph",)), ("eager", ("eager",)), ("both", ("graph", "eager")),
                                        ("graph,eager", ("graph", "eager")), ("eager,graph", ("graph", "eager"))])
def test_modes_everywhere_same(text, want):
    assert o.modes(text) == want


def test_version():
    from specperf.perfmodel import __version__

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"specperf {__version__}"


def test_single_cell_predict_keeps_its_keys_and_several_cells_list():
    one = _json(P + ["--gamma", "4"])
    assert {"t_draft_s", "t_verify_s", "t_target_s", "iteration_s"} <= set(one["rows"][0]) and "sources" in one
    many = _json(P + ["--gamma", "4", "--batch", "1,4", "--context", "512..1024:512", "--mode", "both"])
    cells = many["cells"]
    assert [(c["mode"], c["batch"], c["context"]) for c in cells] == [
        (m, b, c) for m in ("graph", "eager") for b in (1, 4) for c in (512, 1024)]
    first = next(c for c in cells if c["mode"] == "graph" and c["batch"] == 1 and c["context"] == 512)
    assert first["rows"] == one["rows"]  # a cell of many = the same cell asked alone
    text = " ".join(runner.invoke(app, P[:-1] + ["--batch", "1,4"]).stdout.split())  # titles wrap at 80 columns
    assert text.count("batch 1, context 512") == 1 and text.count("batch 4, context 512") == 1


def test_gamma_auto_searches_until_interior():
    doc = _json(["predict", "--cost-ratio", "0.01", "--alpha", "0.9", "--json"])
    g = np.arange(1, 65)
    assert doc["optimal_gamma"] == int(g[np.argmax(speedup_cost_ratio(0.9, g, 0.01))]) > 8
    assert doc["optimal_gamma"] < doc["rows"][-1]["gamma"] and any("widened" in n for n in doc["notes"])
    capped = _json(["predict", "--cost-ratio", "0.0", "--alpha", "0.99", "--json"])
    assert capped["rows"][-1]["gamma"] == 64 and any("cap 64 binds" in n for n in capped["notes"])


def test_no_gamma_beats_autoregressive_gives_zero():
    doc = _json(["predict", "--cost-ratio", "0.9", "--alpha", "0.2", "--json"])
    assert doc["optimal_gamma"] == 0 and doc["verdict"] == "do not speculate" and doc["speedup"] == 1.0
    assert not any(r["optimal"] for r in doc["rows"])
    doc = _json(["predict", "--target", "llama-7b", "--draft", "llama-7b", "--alpha", "0.3", "--json"])
    assert doc["optimal_gamma"] == 0 and doc["verdict"] == "do not speculate"
    assert doc["throughput_tok_s"] == pytest.approx(doc["baseline_tok_s"])


def test_cost_ratio_with_acceptance_file(tmp_path):
    acc = tmp_path / "a.json"
    acc.write_text(json.dumps({"alpha": 0.8, "source": "test"}))
    doc = _json(["predict", "--cost-ratio", "0.1", "--acceptance", str(acc), "--json"])
    assert doc["alpha"] == pytest.approx(0.8) and doc["optimal_gamma"] >= 1


def test_memory_checked_in_predict_optimize_and_plot(tmp_path):
    doc = _json(["predict", "--target", "llama-65b", "--draft", "sheared-llama-1.3b", "--alpha", "0.8",
                 "--gpu", "h100-sxm", "--json"])
    assert doc["fits_memory"] is False and doc["memory_needed_bytes"] > 80e9 > 0
    assert any("does not fit" in n for n in doc["notes"])
    ok = _json(["predict", "--target", "llama-65b", "--draft", "sheared-llama-1.3b", "--alpha", "0.8", "--tp", "4",
                "--json"])
    assert ok["fits_memory"] is True and ok["memory_needed_bytes"] < doc["memory_needed_bytes"]
    opt = _json(["optimize", "--target", "llama-65b", "--drafts", "sheared-llama-1.3b", "--alpha", "0.8",
                 "--batch", "1", "--mode", "graph", "--json"])
    assert opt["fits_memory"] is False
    assert opt["policy"][0]["cells"][0]["memory_needed_bytes"] == pytest.approx(doc["memory_needed_bytes"], rel=0.01)
    pl = _json(["plot", "breakdown", "--target", "llama-65b", "--draft", "sheared-llama-1.3b", "--alpha", "0.8",
                "--out", str(tmp_path / "f.html"), "--json"])
    assert pl["fits_memory"] is False and pl["memory_needed_bytes"] > 80e9


def test_optimize_cells_say_do_not_speculate():
    doc = _json(["optimize", "--target", "llama-7b", "--drafts", "llama-7b", "--alpha", "0.2", "--batch", "1",
                 "--mode", "graph", "--json"])
    cell = doc["policy"][0]["cells"][0]
    assert cell["optimal_gamma"] == 0 and cell["advice"] == "do not speculate"


def _profile(tmp_path, rows, name="p.csv"):
    p = tmp_path / name
    p.write_text("\n".join([SHIPPED[0], *rows]) + "\n")
    return p


def test_conflicting_duplicates_named_by_line(tmp_path):
    row = SHIPPED[1].split(",")
    other = list(row)
    other[11] = "0.5"
    p = _profile(tmp_path, [SHIPPED[1], SHIPPED[2], ",".join(other)])
    r = runner.invoke(app, P + ["--profile", str(p)])
    assert r.exit_code == 2 and "lines 2 and 4" in r.stderr and "conflicting duplicate" in r.stderr
    same = _profile(tmp_path, [SHIPPED[1], SHIPPED[1], *SHIPPED[2:200]], "same.csv")
    assert runner.invoke(app, P + ["--profile", str(same)]).exit_code == 0  # equal repeats are harmless


def test_profile_gpu_must_match_unless_overridden(tmp_path):
    p = _profile(tmp_path, [r.replace("h100-sxm", "h200", 1) for r in SHIPPED[1:400]])
    r = runner.invoke(app, P + ["--profile", str(p)])
    assert r.exit_code == 2 and "measured on h200" in r.stderr
    assert runner.invoke(app, P + ["--profile", str(p), "--gpu", "h200"]).exit_code == 0
    assert runner.invoke(app, P + ["--profile", str(p), "--allow-gpu-mismatch"]).exit_code == 0


def test_utf8_bom_files_accepted(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeff".encode() + "\n".join(SHIPPED[:300]).encode() + b"\n")
    plain = _profile(tmp_path, SHIPPED[1:300], "plain.csv")
    a, b = _json(P + ["--profile", str(p)]), _json(P + ["--profile", str(plain)])
    assert a["rows"] == b["rows"]
    trace = tmp_path / "t.csv"
    trace.write_bytes("\ufeffgamma,accepted\n4,2\n4,4\n4,1\n".encode())
    assert runner.invoke(app, ["calibrate", "acceptance", str(trace), "--json"]).exit_code == 0


def test_catalog_tables_never_truncate_names():
    from specperf.perfmodel.specs.catalog import MODELS
    from specperf.perfmodel.specs.hardware import GPUS

    models = runner.invoke(app, ["models"], terminal_width=60).stdout
    assert all(name in models for name in MODELS)
    gpus = " ".join(runner.invoke(app, ["gpus"], terminal_width=60).stdout.split())  # text wraps, never cut
    assert all(name in gpus and " ".join(g.sources.get("datasheet", "").split()) in gpus for name, g in GPUS.items())


def test_failed_png_leaves_no_html(tmp_path, monkeypatch):
    from specperf import plots
    from specperf.perfmodel.specs.models import SpecError

    def boom(fig, path, scale=2.0):
        raise SpecError("--png export failed (kaleido needs Chrome or Chromium): no browser")

    monkeypatch.setattr(plots, "write_png", boom)
    r = runner.invoke(app, ["plot", "breakdown", "--target", "llama-7b", "--draft", "sheared-llama-1.3b",
                            "--alpha", "0.7", "--out", str(tmp_path / "f.html"), "--png", str(tmp_path / "f.png")])
    assert r.exit_code == 2 and "--png export failed" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_tokenizer_mismatch_blocks_emit_unless_allowed(tmp_path):
    args = ["optimize", "--target", "llama-7b", "--drafts", "opt-125m", "--alpha", "0.7", "--batch", "1",
            "--mode", "graph", "--emit", "vllm", "--emit-out", str(tmp_path / "v.json")]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "--allow-tokenizer-mismatch" in r.stderr and not (tmp_path / "v.json").exists()
    r = runner.invoke(app, args + ["--allow-tokenizer-mismatch"])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "v.json").exists()


def test_calibration_is_physical_and_times_stay_positive(tmp_path):
    """A 3-parameter fit where free least squares would give a negative overhead: the bounded fit
    keeps k > 0 and the corrected overhead ≥ 0, and predict then has only positive times."""
    runs = tmp_path / "runs.csv"
    lines = ["gamma,batch,context,iteration_s,target,draft,gpu,mode"]
    for g, b, t in [(1, 1, 0.0125), (2, 1, 0.0131), (4, 1, 0.0142), (8, 1, 0.0166), (4, 8, 0.0150), (4, 32, 0.0170)]:
        lines.append(f"{g},{b},512,{t},llama-7b,sheared-llama-1.3b,h100-sxm,graph")
    runs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "c.json"
    r = runner.invoke(app, ["calibrate", "latency", str(runs), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.stderr
    e = json.loads(r.stdout)["entries"][0]
    assert e["k_draft"] > 0 and e["k_verify"] > 0
    doc = _json(P + ["--calibration", str(out)])
    assert all(r_[k] > 0 for r_ in doc["rows"] for k in ("t_draft_s", "t_verify_s", "iteration_s", "overhead_s"))
