"""Per-request engine readers (issue 29): vLLM per-request acceptance histograms, SGLang accept length,
llama.cpp drafted/accepted counts, from fixtures written to each engine's documented response format
(tests/fixtures/engines/README.md); each request is the cluster of its intervals; anything else is one
line naming the file and what is wrong, exit code 2."""
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("scipy")

from specperf.calibration.acceptance_fit import fit_acceptance  # noqa: E402
from specperf.calibration.data import TraceError  # noqa: E402
from specperf.calibration.traces import read_trace  # noqa: E402
from specperf.cli.main import app  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "engines"
runner = CliRunner()


def test_vllm_per_request_histograms_give_per_position_rates_clustered_by_request():
    d = read_trace(FIX / "vllm_requests.jsonl")
    assert d.format == "vllm-requests" and d.gammas == (3,) and d.n_drafts == 30 and d.extra["requests"] == 3
    # pooled histogram [12, 7, 6, 5]: α_1 = 18/30, α_2 = 11/18, α_3 = 5/11
    assert (d.accepted / d.reached).tolist() == pytest.approx([18 / 30, 11 / 18, 5 / 11])
    fit = fit_acceptance(d, range(1, 5), model="per-position")
    assert any("per-request" in n for n in fit.report.notes)
    assert fit.model.alpha == pytest.approx(34 / (34 + 25))  # S = 10+17+7, F = steps with j < 3


def test_vllm_detailed_per_step_arrays_keep_short_proposals():
    d = read_trace(FIX / "vllm_requests_detailed.jsonl")
    assert d.gammas == (2, 3) and d.n_drafts == 8
    h3, h2 = d.histogram[3].tolist(), d.histogram[2].tolist()
    assert h2 == [0, 0, 1] and h3 == [3, 2, 0, 2]  # b1: (1,3) (3,3) (0,3); b2: (0,3) (3,3) (1,3) (0,3)


def test_sglang_and_llamacpp_means_per_request():
    s = read_trace(FIX / "sglang_requests.jsonl")
    assert s.format == "sglang-requests" and s.kind == "mean" and s.gammas == (4,)
    assert s.mean_accepted == pytest.approx(77 / 55) and s.n_drafts == 55
    l_ = read_trace(FIX / "llamacpp_requests.jsonl")
    assert l_.format == "llamacpp-requests" and l_.gammas == (4,)
    assert l_.mean_accepted == pytest.approx(37 / 35) and l_.n_drafts == 35
    fit = fit_acceptance(s, range(1, 5))
    iid = fit_acceptance(s.__class__(**{**s.__dict__, "extra": {}}), range(1, 5))
    lo, hi = fit.model.alpha_ci
    assert lo <= iid.model.alpha_ci[0] and hi >= iid.model.alpha_ci[1]  # clustered: never narrower


@pytest.mark.parametrize("name,text,word", [
    ("vllm_requests_short.jsonl", None, "detailed"),
    ("llamacpp_varied.jsonl", None, "--draft-min"),
    ("sg_nogamma.jsonl", '{"meta_info": {"spec_verify_ct": 5, "spec_accept_length": 2.0}}\n', "gamma"),
    ("v_bad.jsonl", '{"metrics": {"speculative_decoding": {"num_spec_tokens": 2, "acceptance_histogram": [1, 1, 1], '
                    '"num_spec_steps": 3, "num_accepted_draft_tokens": 9, "num_draft_tokens": 6}}}\n', "disagrees"),
    ("other.jsonl", '{"foo": 1}\n{"foo": 2}\n', "lacks"),
])
def test_anything_else_is_one_clear_error(tmp_path, name, text, word):
    p = FIX / name if text is None else tmp_path / name
    if text is not None:
        p.write_text(text)
    with pytest.raises(TraceError) as e:
        read_trace(p)
    assert word in str(e.value) and "\n" not in str(e.value)
    r = runner.invoke(app, ["calibrate", "acceptance", str(p)])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_cli_reads_per_request_files():
    r = runner.invoke(app, ["calibrate", "acceptance", str(FIX / "vllm_requests.jsonl"), "--json"])
    assert r.exit_code == 0, r.output
    for f, fmt in (("sglang_requests.jsonl", "sglang-requests"), ("llamacpp_requests.jsonl", "llamacpp-requests")):
        r = runner.invoke(app, ["calibrate", "acceptance", str(FIX / f), "--format", fmt])
        assert r.exit_code == 0, r.output
