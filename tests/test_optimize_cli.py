"""`specperf optimize`: the study's worked example, JSON output, engine export, and bad input
(one line, exit code 2)."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.optimize.export import ENGINE_MODE, PLACEHOLDER, export_config
from specperf.perfmodel.specs.models import SpecError

runner = CliRunner()
STUDY = ["optimize", "--target", "llama-65b", "--gpu", "h100-sxm", "--tp", "4", "--analytical",
         "--drafts", "sheared-llama-1.3b,tinyllama-1.1b,opt-1.3b", "--layers", "1..8", "--d-model", "4096",
         "--alpha-model", str(Path(__file__).resolve().parents[1] / "docs" / "worked_example_alpha.json"), "--batch", "1,8,32", "--context", "512",
         "--reference", "sheared-llama-1.3b"]


def run(args):
    return runner.invoke(app, args)


@pytest.fixture(scope="module")
def study_doc():
    r = run(STUDY + ["--json", "--emit", "vllm"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_study_shallow_wide_draft_ranks_first_at_batch_1(study_doc):
    """The worked example (analytical H100 latency, stated α): a shallow LLaMA-7B-width draft wins
    at batch 1 in both modes and beats sheared-llama-1.3b."""
    for mode in ("graph", "eager"):
        rk = next(r for r in study_doc["rankings"] if r["mode"] == mode and r["batch"] == 1)
        top = rk["rows"][0]
        assert top["origin"] == "design" and top["d_model"] == 4096 and top["n_layers"] <= 8
        ref = next(r for r in rk["rows"] if r["is_reference"])
        assert ref["draft"] == "sheared-llama-1.3b" and ref["alpha_kind"] == "stated"
        assert top["gain_vs_reference"] > 0.05
        assert top["alpha_kind"] == "predicted"
        assert top["alpha_to_match_reference"] < top["alpha"]  # it would still win at a lower α


def test_study_json_is_complete_and_finite(study_doc):
    assert study_doc["n_candidates"] == 11 and study_doc["n_design_points"] == 8
    assert len(study_doc["rankings"]) == 2 * 3
    for rk in study_doc["rankings"]:
        for r in rk["rows"]:
            assert 0 < r["draft_share"] < 1 and 0 < r["verify_share"] < 1
            assert r["speedup_lo"] <= r["speedup"] <= r["speedup_hi"]
            assert r["alpha_kind"] in ("measured", "stated", "predicted", "assumed")
    opt_rows = [r for rk in study_doc["rankings"] for r in rk["rows"] if r["draft"] == "opt-1.3b"]
    assert all(any("shared tokenizer" in n for n in r["notes"]) for r in opt_rows)
    pol = study_doc["policy"][0]
    assert pol["draft"]["origin"] == "design" and len(pol["gamma_table"]) == 3
    assert study_doc["mode_comparison"][0]["graph"]["best_draft"].startswith("design")
    ex = study_doc["export"]
    assert ex["engine"] == "vllm" and ex["placeholder"] and ex["config"]["model"].startswith("<FILL-IN")
    sched = ex["config"].get("num_speculative_tokens_per_batch_size")  # γ per batch where it differs
    assert ex["config"]["num_speculative_tokens"] == (max(g for _, _, g in sched) if sched else pol["export_gamma"])
    if sched:  # each grid batch's γ at the smallest context (0 where speculation loses), ranges from batch 1
        c0 = min(c["context"] for c in pol["cells"])
        want = [c["gamma"] if c["advice"] == "speculate" else 0
                for c in sorted(pol["cells"], key=lambda c: c["batch"]) if c["context"] == c0]
        assert sched[0][0] == 1 and [e[2] for e in sched] == want
    assert ex["config"]["method"] == "draft_model"


def test_human_output_and_emit_file(tmp_path):
    out = tmp_path / "spec.json"
    r = run(STUDY + ["--mode", "graph", "--emit", "vllm", "--emit-out", str(out), "--top", "3"])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())  # titles wrap at the terminal's width
    assert "lookahead policy and break-even map" in flat and "ref = sheared-llama-1.3b" in flat
    cfg = json.loads(out.read_text())
    assert set(cfg) >= {"model", "num_speculative_tokens"} and cfg["model"].startswith("<FILL-IN")


def test_export_engines_field_names():
    t, d = resolve_model("llama-65b"), resolve_model("sheared-llama-1.3b")
    v = export_config("vllm", t, "catalog", d, "catalog", 5, tp=4, disable_by_batch_size=1)
    # vLLM 0.32's SpeculativeConfig rejects disable_by_batch_size: the threshold is a note, not a key
    assert v["config"] == {"model": "princeton-nlp/Sheared-LLaMA-1.3B", "num_speculative_tokens": 5,
                           "method": "draft_model", "draft_tensor_parallel_size": 1}
    assert v["speculation_off_above_batch"] == 1 and any("above batch 1" in n for n in v["notes"])
    assert "huggyllama/llama-65b" in v["command"] and not v["placeholder"]
    s = export_config("sglang", t, "catalog", d, "catalog", 5, tp=4, mode="eager")
    assert "--speculative-algorithm STANDALONE" in s["text"] and "--speculative-num-draft-tokens 6" in s["text"]
    assert "--speculative-eagle-topk 1" in s["text"] and "--disable-cuda-graph" in s["text"]
    h = export_config("hf", t, "catalog", resolve_model("llama-7b:n_layers=4"), "shape", 6)
    assert h["config"]["num_assistant_tokens"] == 6 and h["config"]["num_assistant_tokens_schedule"] == "constant"
    assert PLACEHOLDER.split("{")[0] in h["text"] and "does not exist" not in h["text"]
    compile(h["text"], "hf_snippet", "exec")  # the snippet is valid Python
    with pytest.raises(SpecError, match="unknown"):
        export_config("trtllm", t, "catalog", d, "catalog", 5)


@pytest.mark.parametrize("args, msg", [
    (["--drafts", ""], "empty"),
    ([], "no draft candidates"),
    (["--layers", "1..2", "--d-model", "1000", "--head-dim", "128"], "no valid model"),
    (["--drafts", "sheared-llama-1.3b", "--acceptance", "tinyllama-1.1b=ACC"], "not among the candidates"),
    (["--drafts", "sheared-llama-1.3b", "--emit", "trtllm"], "emit target 'trtllm' is unknown"),
    (["--drafts", "sheared-llama-1.3b", "--mode", "fast"], "mode='fast'"),
    (["--drafts", "no-such-model"], "unknown model"),
    (["--drafts", "sheared-llama-1.3b", "--reference", "tinyllama-1.1b"], "not among the candidates"),
    (["--layers", "1..4"], "needs both --layers and --d-model"),
    (["--drafts", "sheared-llama-1.3b", "--alpha-model", "missing.json"], "does not exist"),
])
def test_bad_input_one_line_exit_2(tmp_path, args, msg):
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"alpha": 0.6}))
    args = [a.replace("ACC", str(acc)) for a in args]
    r = run(["optimize", "--target", "llama-65b", "--tp", "4"] + args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], r.output


def _cells(spec):
    return [{"batch": b, "context": c, "verdict": v, "fits_memory": f} for b, c, v, f in spec]


def test_vllm_disable_threshold_from_break_even_map():
    from specperf.perfmodel.optimize.run import _disable_threshold

    suffix = _cells([(1, 512, "speculate", True), (8, 512, "uncertain", True), (32, 512, "off", True),
                     (64, 512, "off", True), (128, 512, "speculate", False)])  # 128 does not fit: ignored
    assert _disable_threshold(suffix)[0] == 8
    gap = _cells([(1, 512, "off", True), (8, 512, "speculate", True), (32, 512, "off", True)])
    d, notes = _disable_threshold(gap)
    assert d is None and "can only switch it off above one size" in notes[0]
    assert _disable_threshold(_cells([(1, 512, "off", True)]))[1][0].startswith("speculation loses at every")
    mixed = _cells([(1, 512, "speculate", True), (1, 4096, "off", True), (8, 512, "off", True), (8, 4096, "off", True)])
    assert _disable_threshold(mixed)[0] == 1  # batch 1 wins at one context: only batch 8 is off everywhere
    assert _disable_threshold(_cells([(1, 512, "speculate", True)])) == (None, [])


def test_low_acceptance_shows_losing_cells_and_json_policy():
    # a profiled GPU: the policy's range carries latency bands (issue 26), and the datasheet roofline's
    # ±134 % band (--analytical) leaves α 0.2 'uncertain' rather than 'off'
    r = run(["optimize", "--target", "llama-2-7b", "--gpu", "h100-sxm", "--drafts", "tinyllama-1.1b", "--alpha", "0.2",
             "--batch", "1,64", "--context", "512", "--mode", "graph", "--json", "--emit", "vllm"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    cells = doc["policy"][0]["cells"]
    assert cells[0]["verdict"] == "off" and cells[0]["speedup"] < 1 and cells[0]["margin"] < 0
    assert all(c["speedup_lo"] <= c["speedup"] <= c["speedup_hi"] for c in cells)


@pytest.mark.parametrize("engine,modes,expect", [("vllm", "all", "compiled"), ("sglang", "all", "compiled"),
                                                 ("hf", "all", "eager"), ("vllm", "both", "graph")])
def test_the_export_takes_gamma_from_the_mode_the_engine_runs(engine, modes, expect):
    r = run(["optimize", "--target", "llama-65b", "--gpu", "h100-sxm", "--tp", "4", "--drafts", "sheared-llama-1.3b",
             "--batch", "1", "--context", "512", "--alpha", "0.7", "--mode", modes, "--emit", engine, "--json"])
    assert r.exit_code == 0, r.output
    e = json.loads(r.output)["export"]
    assert e["mode"] == expect
    fell_back = [n for n in e["notes"] if "runs compiled mode by default" in n]
    assert bool(fell_back) == (expect != ENGINE_MODE[engine])
