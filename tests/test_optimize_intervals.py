"""optimize's ranges and win probabilities (issue 26): a cell's numbers do not depend on the mode list
or the other batch / context values searched; ranges carry latency bands as well as acceptance, so
they are a point only where every source is exact (and the row says so)."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.base import ComponentTimes
from specperf.perfmodel.latency.source import Provenance, Source
from specperf.perfmodel.optimize.report import EXACT_NOTE, optimize, ranking
from specperf.perfmodel.optimize.search import make_candidates
from specperf.perfmodel.optimize.space import assign_acceptance
from specperf.perfmodel.specdec.alpha_model import default_model
from specperf.perfmodel.specs.catalog import resolve_model

runner = CliRunner()
BASE = ["optimize", "--target", "llama-65b", "--gpu", "h100-sxm", "--tp", "4", "--drafts",
        "sheared-llama-1.3b,tinyllama-1.1b,opt-1.3b", "--layers", "1..4", "--d-model", "4096", "--top", "7",
        "--reference", "sheared-llama-1.3b", "--json"]
KEYS = ("p_beats_next", "p_beats_reference", "p_best_shown", "speedup_lo", "speedup_hi", "gamma_lo", "gamma_hi",
        "robust_gamma", "p_gamma_is_best")


def _cells(args) -> dict:
    r = runner.invoke(app, BASE + args)
    assert r.exit_code == 0, r.output
    out = {}
    for rk in json.loads(r.output)["rankings"]:
        for row in rk["rows"]:
            out[(rk["mode"], rk["batch"], rk["context"], row["draft"])] = {k: row.get(k) for k in KEYS}
    return out


@pytest.mark.parametrize("alpha", [["--alpha-model", "docs/worked_example_alpha.json"], ["--alpha", "0.7"]])
def test_cell_numbers_do_not_depend_on_modes_or_other_cells(alpha):
    graph = _cells(alpha + ["--mode", "graph", "--batch", "1", "--context", "512"])
    both = _cells(alpha + ["--mode", "both", "--batch", "1", "--context", "512"])
    grid = _cells(alpha + ["--mode", "graph", "--batch", "1,16", "--context", "512,2048"])
    for k, v in graph.items():
        assert both[k] == v, k
        assert grid[k] == v, k


def test_stated_alpha_without_interval_still_has_a_latency_range():
    """The issue's zero-width [1.53–1.53]: an exact α left the range acceptance-only."""
    for k, v in _cells(["--alpha", "0.7", "--mode", "graph", "--batch", "1", "--context", "512"]).items():
        assert v["speedup_lo"] < v["speedup_hi"], k


class ExactLatency:
    """Every component from a source with a zero band (a planted 'measured' row)."""
    name = "exact"

    def forward(self, spec, batch, new_tokens, context, tp=1, mode="graph"):
        shape = np.broadcast(np.asarray(batch), np.asarray(new_tokens), np.asarray(context)).shape
        t = 1e-4 * (1 + 0.1 * np.asarray(new_tokens)) + np.zeros(shape)
        src = Provenance((Source("measured", "planted.csv", band=0.0),))
        return ComponentTimes(t, np.zeros(shape), 1e-5 + np.zeros(shape), spec.n_layers, {"layer": src})

    def overhead_s(self, spec, batch, gamma, mode="graph"):
        return 1e-5 + 0 * np.asarray(gamma, dtype=float), Provenance((Source("measured", "planted.csv", band=0.0),))


def _exact_ranking(alpha_ci):
    target = resolve_model("llama-7b")
    cands = make_candidates([resolve_model("tinyllama-1.1b"), resolve_model("sheared-llama-1.3b")])
    acc = assign_acceptance(cands, target, default_model(), alpha=0.7)
    if alpha_ci:
        acc = type(acc)(**{**acc.__dict__, "lo": acc.alpha - 0.05, "hi": acc.alpha + 0.05})
    res = optimize(target, cands, acc, ExactLatency(), [1], [512], range(1, 9))
    return ranking(res, "graph", 0, 0, top=2)


def test_exact_sources_give_a_point_and_say_so():
    for r in _exact_ranking(False)["rows"]:
        assert r["speedup_lo"] == pytest.approx(r["speedup"]) == pytest.approx(r["speedup_hi"])
        assert r["range_exact"] and EXACT_NOTE in r["notes"]


def test_exact_latency_with_an_alpha_interval_is_not_a_point():
    for r in _exact_ranking(True)["rows"]:
        assert r["speedup_lo"] < r["speedup"] < r["speedup_hi"]
        assert not r["range_exact"] and EXACT_NOTE not in r["notes"]
