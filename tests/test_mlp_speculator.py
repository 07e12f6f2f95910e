"""The MLP speculator, the method added last (issue 28: adding a method touches its module, the
registry and its tests): sequential stages timed through the latency provider, no catch-up, γ capped
at the checkpoint's n_predict, predict/optimize/exports/explorer reach it from the registry alone."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.optimize.export_methods import export_method
from specperf.perfmodel.optimize.export_schema import validate_export
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.heads import projection_s
from specperf.perfmodel.specdec.methods import SpeculationMethod
from specperf.perfmodel.specdec.registry import NAMES, make_method
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

LAT = build_provider(GPUS["h100-sxm"]).target
T = resolve_model("llama-7b")
runner = CliRunner()


def test_stages_are_sequential_projection_plus_lm_head_and_capped_at_n_predict():
    m = make_method("mlp_speculator", n_predict=4)
    assert isinstance(m, SpeculationMethod) and "mlp_speculator" in NAMES
    c = m.costs(LAT, T, [1, 8], [512], [1, 2, 3, 4, 6])
    one = T.replace(n_layers=1, tied_embeddings=False)
    stage = projection_s(LAT, one, 1, np.array([[1]]), 1, 512, "graph")[0] + LAT.forward(one, 1, 1, 512, 1, "graph").lm_head_s
    assert c.step_s[0, 0, 0] == pytest.approx(float(np.squeeze(stage)), rel=1e-9)
    assert np.allclose(c.proposal_s[..., :4], c.step_s[..., :4] * np.array([1, 2, 3, 4]))
    assert np.all(c.catchup_s == 0)
    assert np.allclose(c.proposal_s[..., 4], c.proposal_s[..., 3]) and np.allclose(c.verify_s[..., 4], c.verify_s[..., 3])
    tpi = m.tokens_per_iteration(AcceptanceModel(alpha=0.6), [1, 4, 6])
    assert tpi[2] == tpi[1] and tpi[0] == pytest.approx(1.6)
    assert list(c.gamma) == [1, 2, 3, 4, 6] and any("proposes 4" in n for n in c.notes)


def test_cli_and_exports_reach_it_from_the_registry():
    r = runner.invoke(app, ["predict", "--target", "llama-7b", "--method", "mlp_speculator", "--alpha", "0.6",
                            "--gamma", "1..6", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["method"] == "mlp_speculator" and doc["best_gamma"] <= 3
    r = runner.invoke(app, ["optimize", "--target", "llama-7b", "--mode", "graph", "--method", "eagle,mlp_speculator",
                            "--acceptance", "mlp_speculator=0.6", "--batch", "1", "--json"])
    assert r.exit_code == 0, r.output
    rows = {x["method"]: x for x in json.loads(r.stdout)["methods"]["tables"][0]["rows"]}
    assert rows["mlp_speculator"]["gamma"] <= 3 and rows["mlp_speculator"]["acceptance_is"] == "stated"
    ex = export_method("vllm", T, "catalog", make_method("mlp_speculator"), 5)
    assert validate_export(ex) == [] and ex["config"]["num_speculative_tokens"] == 3 and "model" in ex["config"]
    bad = dict(ex, config={k: v for k, v in ex["config"].items() if k != "model"})
    assert any("'model' is required" in p for p in validate_export(bad))  # the schema learnt it from the registry
    r = runner.invoke(app, ["optimize", "--target", "llama-7b", "--mode", "graph", "--method", "mlp_speculator",
                            "--acceptance", "mlp_speculator=0.6", "--emit", "sglang"])
    assert r.exit_code == 2 and "SGLang has no such proposer" in r.output
    r = runner.invoke(app, ["optimize", "--target", "llama-7b", "--mode", "graph", "--method", "mlp_speculator"])
    assert r.exit_code == 2 and "needs an acceptance" in r.output  # no published prior is carried for it
