"""`optimize --method`: methods ranked side by side (draft model vs EAGLE-style heads vs n-gram) with
90 % intervals and win probabilities from one Monte Carlo; the draft-model row equals the draft
ranking's own answer; the winner's vLLM / SGLang / HF exports carry the fields vLLM 0.32 accepts and
a per-batch γ schedule; bad combinations get one line and exit code 2."""
import json
import shlex

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.optimize.export_methods import export_method
from specperf.perfmodel.optimize.export_schema import validate_export
from specperf.perfmodel.optimize.methods_rank import rank_methods
from specperf.perfmodel.optimize.run_methods import batch_schedule
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.registry import make_method
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.specs.models import from_hf_config

runner = CliRunner()
LAT = build_provider(GPUS["h100-sxm"]).target
T = resolve_model("llama-7b")


@pytest.fixture()
def trace(tmp_path):
    p = tmp_path / "ngram.json"
    p.write_text(json.dumps({"alpha": 0.5, "alpha_ci": [0.45, 0.55], "alpha_by_position": [0.6, 0.5, 0.45],
                             "alpha_by_position_ci": [[0.55, 0.65], [0.44, 0.56], [0.38, 0.52]], "source": "trace"}))
    return p


def _opt(*args):
    r = runner.invoke(app, ["optimize", "--target", "llama-7b", "--mode", "graph", "--context", "512", *map(str, args)])
    return r


def test_methods_side_by_side_with_intervals_and_win_probabilities(trace):
    r = _opt("--drafts", "llama-7b:n_layers=2", "--method", "draft,eagle,ngram", "--acceptance", f"ngram={trace}",
             "--alpha", "0.7", "--batch", "1,32", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    tabs = doc["methods"]["tables"]
    assert [(t["batch"], t["context"]) for t in tabs] == [(1, 512), (32, 512)]
    for t in tabs:
        rows = t["rows"]
        assert {x["method"] for x in rows} == {"draft_model", "eagle", "ngram"}
        assert sum(x["p_best"] for x in rows) == pytest.approx(1.0)
        assert [x["speedup"] for x in rows] == sorted((x["speedup"] for x in rows), reverse=True)
        for x in rows:
            assert x["speedup_lo"] <= x["speedup"] * 1.001 and x["speedup"] <= x["speedup_hi"] * 1.001
            assert (x["p_beats_draft"] is None) == (x["method"] == "draft_model")
    # the draft-model row is the draft ranking's own answer (two paths through the seam)
    drow = next(x for x in tabs[0]["rows"] if x["method"] == "draft_model")
    rk = next(k for k in doc["rankings"] if k["batch"] == 1)["rows"][0]
    assert drow["speedup"] == pytest.approx(rk["speedup"], rel=1e-9) and drow["gamma"] == rk["gamma"]


def test_a_dominated_method_never_wins():
    """EAGLE-3's head pays a fusion projection on top of EAGLE's at the same acceptance: it loses in
    every draw (its latency draws are EAGLE's: same source kinds)."""
    acc = AcceptanceModel(alpha=0.7, alpha_ci=(0.65, 0.75))
    ents = [{"label": k, "method": make_method(k), "acceptance": acc} for k in ("eagle", "eagle3")]
    t = rank_methods(ents, T, LAT, [1], [512], range(1, 9), 1, ("graph",), n=500)[0]
    rows = {x["method"]: x for x in t["rows"]}
    assert rows["eagle"]["speedup"] > rows["eagle3"]["speedup"]
    assert rows["eagle"]["p_best"] > 0.5


def test_ngram_needs_a_trace_and_bad_methods_are_one_line():
    r = _opt("--method", "eagle,ngram", "--alpha", "0.7")
    assert r.exit_code == 2 and "takes acceptance from traces only" in r.output and "Traceback" not in r.output
    r = _opt("--method", "eagle,spec", "--alpha", "0.7")
    assert r.exit_code == 2 and "method='eagle,spec' is not allowed" in r.output
    r = _opt("--method", "medusa")  # no published figure carried for Medusa: a measured or stated α is needed
    assert r.exit_code == 2 and "--acceptance medusa=FILE|α or --alpha" in r.output
    r = _opt("--method", "ngram", "--acceptance", "ngram=0.6")
    assert r.exit_code == 2 and "traces only" in r.output and "Traceback" not in r.output
    r = _opt("--method", "eagle", "--acceptance", "eagle=1.5")
    assert r.exit_code == 2 and "α must be in [0, 1)" in r.output


def test_methods_only_export_is_valid_vllm_with_a_batch_schedule(trace, tmp_path):
    out = tmp_path / "spec.json"
    r = _opt("--method", "eagle3,ngram", "--acceptance", f"ngram={trace}", "--alpha", "0.7", "--batch", "1,8,64",
             "--emit", "vllm", "--emit-out", out, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    ex = doc["export"]
    assert validate_export(ex) == [] and doc["rankings"] == [] and ex["draft"] == doc["methods"]["winner"]
    assert json.loads(out.read_text()) == ex["config"]
    sched = ex["config"].get("num_speculative_tokens_per_batch_size")
    if sched:  # γ differs across batches: the schedule is emitted, from batch 1, contiguous
        assert sched[0][0] == 1 and all(a[1] + 1 == b[0] for a, b in zip(sched, sched[1:]))
        assert ex["config"]["num_speculative_tokens"] == max(g for _, _, g in sched)


def test_batch_schedule_ranges():
    cells = [{"batch": 1, "context": 512, "gamma": 5, "verdict": "speculate"},
             {"batch": 8, "context": 512, "gamma": 3, "verdict": "speculate"},
             {"batch": 8, "context": 2048, "gamma": 2, "verdict": "speculate"},
             {"batch": 64, "context": 512, "gamma": 1, "verdict": "do not speculate"}]
    assert batch_schedule(cells) == [(1, 1, 5), (2, 8, 3), (9, 64, 0)]


@pytest.mark.parametrize("name", ["eagle", "eagle3", "mtp", "medusa", "ngram"])
def test_every_method_exports_a_valid_vllm_config(name):
    ex = export_method("vllm", T, "catalog", make_method(name), 4, 2)
    assert validate_export(ex) == [], ex["config"]
    assert ex["config"]["method"] == name and ex["config"]["num_speculative_tokens"] == 4
    assert ("model" in ex["config"]) == (name in ("eagle", "eagle3", "medusa"))
    if name == "ngram":
        assert ex["config"]["prompt_lookup_max"] == 4 and ex["config"]["prompt_lookup_min"] == 1


@pytest.mark.parametrize("name,algo", [("eagle", "EAGLE"), ("eagle3", "EAGLE3"), ("mtp", "NEXTN"), ("ngram", "NGRAM")])
def test_sglang_flags(name, algo):
    ex = export_method("sglang", T, "catalog", make_method(name), 3)
    argv = shlex.split(ex["command"])
    assert argv[argv.index("--speculative-algorithm") + 1] == algo
    assert argv[argv.index("--speculative-num-draft-tokens") + 1] == "4"
    assert validate_export(ex) == []


def test_sglang_medusa_and_hf_eagle_are_refused_in_one_line(trace):
    r = _opt("--method", "medusa", "--alpha", "0.6", "--emit", "sglang")
    assert r.exit_code == 2 and "SGLang has no such proposer" in r.output
    r = _opt("--method", "eagle", "--alpha", "0.6", "--emit", "hf")
    assert r.exit_code == 2 and "prompt lookup only" in r.output


def test_hf_prompt_lookup_export():
    ex = export_method("hf", T, "catalog", make_method("ngram"), 5)
    assert validate_export(ex) == [] and ex["config"] == {"prompt_lookup_num_tokens": 5, "max_matching_ngram_size": 4}
    compile(ex["text"], "export.py", "exec")


def test_hostile_target_path_stays_one_quoted_word(tmp_path):
    d = tmp_path / "a'b\"c;$(touch pwned) d"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
                                               "num_attention_heads": 4, "intermediate_size": 128,
                                               "vocab_size": 32000, "max_position_embeddings": 2048}))
    tgt = from_hf_config(d / "config.json")
    for engine in ("vllm", "sglang"):
        ex = export_method(engine, tgt, "config", make_method("ngram"), 3)
        argv = shlex.split(ex["command"])
        assert str(d) in argv  # one word, exactly the folder
    ex = export_method("hf", tgt, "config", make_method("ngram"), 3)
    assert repr(str(d)) in ex["text"]


def test_tree_variants_rank_beside_chains(tmp_path):
    from specperf.perfmodel.specdec.trees import best_tree, expected_tokens

    P = [[0.62, 0.15, 0.06], [0.55, 0.14, 0.05]]
    f = tmp_path / "tree.json"
    f.write_text(json.dumps({"rank_acceptance": P}))
    r = _opt("--drafts", "llama-7b:n_layers=2", "--method", "draft,eagle", "--alpha", "0.7", "--tree", f,
             "--tree-depth", "4", "--batch", "1", "--json")
    assert r.exit_code == 0, r.output
    rows = {x["method"]: x for x in json.loads(r.stdout)["methods"]["tables"][0]["rows"]}
    assert set(rows) == {"draft_model", "eagle", "draft_model_tree", "eagle_tree"}
    t = rows["eagle_tree"]
    assert t["tokens_per_iteration"] == pytest.approx(expected_tokens(best_tree(P, t["gamma"], 4), P))
    assert t["p_beats_draft"] is not None
    r = _opt("--method", "ngram", "--tree", f)
    assert r.exit_code == 2 and "drafts no tree" in r.output
