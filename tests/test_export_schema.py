"""Engine exports checked against the engines' documented schemas (perfmodel.export_schema): every
export specperf writes passes, and each kind of mistake a hand edit or an engine change makes fails."""
import pytest

from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.optimize.export import export_config
from specperf.perfmodel.optimize.export_schema import validate_export

T, D = resolve_model("llama-65b"), resolve_model("sheared-llama-1.3b")


@pytest.mark.parametrize("engine", ["vllm", "sglang", "hf"])
@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_every_export_matches_its_documented_schema(engine, mode):
    doc = export_config(engine, T, "catalog", D, "catalog", 5, tp=4, mode=mode, disable_by_batch_size=8)
    assert validate_export(doc) == []


def test_vllm_schema_rejects_what_the_pinned_server_rejects():
    doc = export_config("vllm", T, "catalog", D, "catalog", 3)
    bad = dict(doc, config={**doc["config"], "disable_by_batch_size": 4})
    assert validate_export(bad) == ["vllm --speculative-config: 'disable_by_batch_size' is not a documented field"]
    assert "should be int" in validate_export(dict(doc, config={**doc["config"], "num_speculative_tokens": "3"}))[0]
    assert "is below 1" in validate_export(dict(doc, config={**doc["config"], "num_speculative_tokens": 0}))[0]
    assert "not one of" in validate_export(dict(doc, config={**doc["config"], "method": "draft"}))[0]
    assert "'model' is required" in validate_export(dict(doc, config={"num_speculative_tokens": 3}))[0]


def test_sglang_schema_checks_flags_and_the_topk_rule():
    doc = export_config("sglang", T, "catalog", D, "catalog", 4)
    wrong = doc["command"].replace("--speculative-num-draft-tokens 5", "--speculative-num-draft-tokens 4")
    assert "num-steps + 1" in validate_export(dict(doc, command=wrong))[0]
    typo = doc["command"].replace("--speculative-num-steps", "--speculative-steps")
    assert any("'--speculative-steps' is not a documented field" in p for p in validate_export(dict(doc, command=typo)))
    algo = doc["command"].replace("STANDALONE", "DRAFT")
    assert any("not one of" in p for p in validate_export(dict(doc, command=algo)))


def test_hf_schema_checks_generate_arguments():
    doc = export_config("hf", T, "catalog", D, "catalog", 6)
    sched = dict(doc, config={**doc["config"], "num_assistant_tokens_schedule": "fixed"})
    assert "not one of heuristic, heuristic_transient, constant" in validate_export(sched)[0]
    assert "not a documented field" in validate_export(dict(doc, config={**doc["config"], "num_draft": 6}))[0]
    assert validate_export({"engine": "trtllm", "config": {}}) == [
        "engine 'trtllm' has no documented schema here (vllm, sglang, hf)"]
