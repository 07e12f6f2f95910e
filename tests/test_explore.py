"""The explorer's tables (plots.explore_data) give exactly predict's numbers when combined by the
closed form, for any draft × target × GPU × mode × tp cell; the page embeds them and plotly.js and
fetches nothing; the command's defaults are the study's case and bad input is one line, exit 2."""
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("plotly")

from specperf.cli.main import app  # noqa: E402
from specperf.perfmodel.latency.providers import build_provider  # noqa: E402
from specperf.perfmodel.specdec.acceptance import AcceptanceModel  # noqa: E402
from specperf.perfmodel.specdec.maths import tokens_per_iteration  # noqa: E402
from specperf.perfmodel.specdec.predict import predict  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.specs.hardware import resolve_gpu  # noqa: E402
from specperf.perfmodel.specdec.uncertainty import propagate  # noqa: E402
from specperf.plots.explore_data import explorer_data, mc_stream  # noqa: E402

runner = CliRunner()
GRID = dict(batches=(1, 16), contexts=(512, 4096), gammas=tuple(range(1, 7)))


@pytest.fixture(scope="module")
def data():
    return explorer_data(drafts=("sheared-llama-1.3b", "llama-7b:n_layers=2"), gpus=("h100-sxm", "h200"),
                         tps=(2, 4), **GRID)


@pytest.mark.parametrize("draft,gpu,mode,tp", [("sheared-llama-1.3b", "h100-sxm", "graph", 4),
                                               ("llama-7b:n_layers=2", "h200", "eager", 2)])
def test_tables_recombine_to_predict(data, draft, gpu, mode, tp):
    d, t = data["draft"][f"{draft}|{gpu}|{mode}"], data["target"][f"llama-65b|{gpu}|{mode}|{tp}"]
    lat = build_provider(resolve_gpu(gpu)).target
    p = predict(resolve_model("llama-65b"), resolve_model(draft), lat, AcceptanceModel(alpha=0.73),
                GRID["gammas"], GRID["batches"], GRID["contexts"], tp=tp, mode=mode)
    g = np.asarray(GRID["gammas"])
    B = np.asarray(GRID["batches"])[:, None, None]
    it = np.asarray(d["proposal_s"]) + np.asarray(t["t_verify_s"]) + np.asarray(t["overhead_s"])
    np.testing.assert_allclose(d["proposal_s"], g * np.asarray(d["t_draft_s"]), rtol=1e-13)
    thr = B * tokens_per_iteration(0.73, g) / it
    base = B / (np.asarray(t["t_target_s"]) + np.asarray(t["baseline_overhead_s"]))[:, :, None]
    np.testing.assert_allclose(it, p.iteration_s, rtol=1e-13)
    np.testing.assert_allclose(thr / base, p.speedup, rtol=1e-13)
    assert d["badge"] in ("measured", "operator", "analytical", "mixed")
    assert np.shape(d["cell_badge"]) == (2, 2) and np.shape(t["cell_badge"]) == (2, 2)
    # each (batch, context, γ) cell's band is what propagate reads for that cell, from that cell alone
    for bi, b in enumerate(GRID["batches"]):
        for ci, c in enumerate(GRID["contexts"]):
            for k, gam in enumerate(GRID["gammas"]):
                one = predict(resolve_model("llama-65b"), resolve_model(draft), lat, AcceptanceModel(alpha=0.73),
                              [gam], [b], [c], tp=tp, mode=mode)
                roles = propagate(one, AcceptanceModel(alpha=0.73), n=10).cell_latency(0, 0, 0)
                got = {"draft": d["cell_band"][bi][ci][k], **t["cell_band"][bi][ci][k],
                       "baseline": t["base_band"][bi][ci]}
                assert got == roles


@pytest.mark.parametrize("method", ["eagle3", "ngram"])
def test_method_tables_recombine_to_predict(data, method):
    """The method control's tables: the page adds the exported parts; predict gets the same numbers."""
    from specperf.perfmodel.specdec.registry import make_method

    d, t = data["draft"][f"{method}@llama-65b|h100-sxm|graph"], data["target"]["llama-65b|h100-sxm|graph|4"]
    lat = build_provider(resolve_gpu("h100-sxm")).target
    m = make_method(method)  # n-gram: the host timing is measured once per process (the page's numbers)
    p = predict(resolve_model("llama-65b"), None, lat, AcceptanceModel(alpha=0.73), GRID["gammas"], GRID["batches"],
                GRID["contexts"], tp=4, mode="graph", method=m)
    it = np.asarray(d["proposal_s"]) + np.asarray(d["catchup_s"]) + np.asarray(t["t_verify_s"]) + np.asarray(t["overhead_s"])
    np.testing.assert_allclose(it, p.iteration_s, rtol=1e-12)
    assert d["catchup_optional"] is False and data["models"][f"{method}@llama-65b"]["name"]


def test_mc_stream_is_propagates_draws():
    """propagate draws standard_normal(n) from one stream per kind, α's (n, 1) and the baseline's."""
    from specperf.perfmodel.specdec.cell_bands import kind_normals, stream

    z = mc_stream(50, 0)["z"]
    np.testing.assert_array_equal(kind_normals(["operator"], 50, 0)["operator"], z["kind:operator"])
    np.testing.assert_array_equal(stream(0, "acceptance").standard_normal((50, 1)).ravel(), z["acceptance"])
    np.testing.assert_array_equal(stream(0, "baseline").standard_normal(50), z["baseline"])


def test_badges_say_where_numbers_come_from():
    # no profile ships for the A100: its layers are the H200's operator tables rescaled (kind operator),
    # the MI300X (not CUDA) gets the datasheet roofline
    d = explorer_data(drafts=("tinyllama-1.1b",), gpus=("a100-sxm-80gb", "mi300x"), tps=(4,), modes=("graph",), **GRID)
    assert d["draft"]["tinyllama-1.1b|a100-sxm-80gb|graph"]["badge"] == "operator"
    assert d["target"]["llama-65b|a100-sxm-80gb|graph|4"]["badge"] == "mixed"  # operator layers, analytical all-reduce
    assert d["draft"]["tinyllama-1.1b|mi300x|graph"]["badge"] == "analytical"


def test_command_defaults_are_the_study_case(tmp_path):
    out = tmp_path / "e.html"
    r = runner.invoke(app, ["explore", "--out", str(out), "--json", "--gpus", "h100-sxm", "--modes", "graph"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["targets"] == ["llama-65b"] and "sheared-llama-1.3b" in doc["drafts"] and 4 in doc["tps"]
    html = out.read_text()
    assert not re.search(r"<script[^>]+src=", html) and "plotly.js" in html[:200_000]  # offline
    blob = re.search(r'<script id="specperf-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    emb = json.loads(blob.replace("<\\/", "</"))
    assert emb["defaults"] == {**emb["defaults"], "target": "llama-65b", "gpu": "h100-sxm", "tp": 4}
    assert doc["bytes"] < 10e6


@pytest.mark.parametrize("args,msg", [(["--modes", "fused"], "mode='fused'"),
                                      (["--tps", "3"], "tp=3"), (["--gamma-max", "0"], "gamma-max=0"),
                                      (["--out", "x.png"], "must end in .html")])
def test_bad_input_is_one_line_exit_2(tmp_path, args, msg):
    r = runner.invoke(app, ["explore", "--out", str(tmp_path / "e.html"), *args])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output
