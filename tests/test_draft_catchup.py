"""The draft catch-up step (greedy loops that keep the draft cache exact re-feed the previous token:
the first draft step of each iteration is a 2-token forward): predict charges exactly
t_draft(2 tokens) − t_draft(1 token) more per iteration, the uncertainty draws include it, and the
CLI flag carries it into the JSON rows."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.predict import predict
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

T, D = resolve_model("llama-13b"), resolve_model("llama-7b:n_layers=4")


def test_catchup_adds_the_two_token_step_cost():
    lat = build_provider(GPUS["h100-sxm"]).target
    acc = AcceptanceModel(alpha=0.7)
    a = predict(T, D, lat, acc, [1, 4], [1, 8], [512], mode="graph")
    b = predict(T, D, lat, acc, [1, 4], [1, 8], [512], mode="graph", draft_catchup=True)
    extra = (lat.forward(D, np.array([1, 8]), 2, 512, 1, "graph").total_s
             - lat.forward(D, np.array([1, 8]), 1, 512, 1, "graph").total_s)
    np.testing.assert_allclose(b.iteration_s - a.iteration_s, np.broadcast_to(extra[:, None, None], a.iteration_s.shape),
                               rtol=1e-12)
    assert np.all(extra > 0) and np.all(b.speedup < a.speedup)
    assert np.all(a.draft_catchup_s == 0) and any("2 tokens" in n for n in b.notes)


def test_cli_flag_reaches_the_rows_and_the_interval():
    r = CliRunner().invoke(app, ["predict", "--target", "llama-13b", "--draft", "llama-7b:n_layers=4", "--gpu",
                                 "h100-sxm", "--alpha", "0.7", "--gamma", "4", "--draft-catchup", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)["rows"][0]
    assert row["draft_catchup_s"] > 0
    assert row["iteration_s"] == pytest.approx(4 * row["t_draft_s"] + row["draft_catchup_s"] + row["t_verify_s"]
                                               + row["overhead_s"], rel=1e-12)
    assert row["iteration_s_lo"] <= row["iteration_s"] <= row["iteration_s_hi"]
