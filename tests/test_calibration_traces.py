"""Trace readers and `specperf calibrate acceptance`: the hand-written vLLM /metrics dumps give the
expected per-position rates; every bad input is one line naming file (and line), exit code 2."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specperf.calibration.traces import read_trace
from specperf.cli.main import app

DATA = Path(__file__).parent / "data" / "calibration"
runner = CliRunner()


def test_vllm_dump_gives_conditional_per_position_rates():
    d = read_trace(DATA / "vllm_metrics.txt")
    assert d.format == "vllm-metrics" and d.n_drafts == 10000 and d.gammas == (4,)
    assert d.extra["labels"] == {"model_name": "meta-llama/Llama-3.1-70B-Instruct"}
    # vLLM's per-position counter is unconditional: c_i = drafts with ≥ i+1 accepted tokens
    assert (d.accepted / d.n_drafts).tolist() == pytest.approx([0.84, 0.60, 0.39, 0.27])
    # conditional α_i = c_i / c_(i-1), c_(-1) = drafts
    assert (d.accepted / d.reached).tolist() == pytest.approx([0.84, 6000 / 8400, 3900 / 6000, 2700 / 3900])


def test_vllm_two_scrapes_and_two_engines_use_the_difference():
    d = read_trace(DATA / "vllm_two_scrapes.txt")
    assert d.n_drafts == 3000 and d.extra["scrapes"] == 2
    assert d.accepted.tolist() == [2400, 1800, 900]
    assert (d.accepted / d.reached).tolist() == pytest.approx([0.8, 0.75, 0.5])


def test_other_formats_detected():
    assert read_trace(DATA / "gptfast_stdout.txt").histogram[4].tolist() == [120, 95, 80, 61, 144]
    it = read_trace(DATA / "iterations.csv")  # (γ, a): (4,2) (4,4) (4,0) (3,1) (2,2)
    assert it.format == "iterations" and it.n_drafts == 5 and it.gammas == (2, 3, 4)
    assert it.reached.tolist() == [5, 4, 2, 1] and it.accepted.tolist() == [4, 3, 1, 1]
    assert it.extra["context"] == [512, 521]
    m = read_trace(DATA / "mean_length.json")
    assert m.kind == "mean" and m.mean_accepted == pytest.approx(2.2) and m.n_drafts == 2000


def test_cli_acceptance_json_is_accepted_by_predict(tmp_path):
    out = tmp_path / "acc.json"
    r = runner.invoke(app, ["calibrate", "acceptance", str(DATA / "vllm_metrics.txt"), "--json", "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    for key in ("alpha", "alpha_ci", "alpha_by_position", "alpha_by_position_ci", "n_iterations",
                "tokens_per_iteration"):
        assert key in doc
    assert doc["alpha_by_position"] == pytest.approx([0.84, 6000 / 8400, 0.65, 2700 / 3900])
    assert doc["n_iterations"] == 10000
    g4 = [t for t in doc["tokens_per_iteration"] if t["gamma"] == 4][0]
    assert g4["per_position"] == pytest.approx(1 + 0.84 + 0.60 + 0.39 + 0.27)  # = 1 + Σ c_i / drafts
    assert g4["observed"] == pytest.approx(3.1)
    p = runner.invoke(app, ["predict", "--target", "llama-2-70b", "--draft", "sheared-llama-1.3b",
                            "--tp", "4", "--acceptance", str(out), "--json"])
    assert p.exit_code == 0, p.stderr
    pdoc = json.loads(p.stdout)
    assert pdoc["alpha_by_position"] == pytest.approx(doc["alpha_by_position"])
    assert any(r["extrapolated_acceptance"] for r in pdoc["rows"] if r["gamma"] > 4)


def test_cli_human_report():
    r = runner.invoke(app, ["calibrate", "acceptance", str(DATA / "vllm_two_scrapes.txt")])
    assert r.exit_code == 0, r.stderr
    assert "[[Variables]]" in r.stdout and "alpha[2]:" in r.stdout and "LR per-position" in r.stdout


BAD = [
    ("empty.txt", "  \n", None, "file is empty"),
    ("neg.csv", "gamma,accepted\n4,2\n4,-1\n", 3, "negative"),
    ("frac.csv", "gamma,accepted\n4,2\n4,1.5\n", 3, "not an integer"),
    ("over.csv", "gamma,accepted\n4,2\n4,4\n4,5\n", 4, "accepted=5 > gamma=4"),
    ("over.jsonl", '{"gamma": 3, "accepted": 1}\n{"gamma": 3, "accepted": 4}\n', 2, "accepted=4 > gamma=3"),
    ("hist.json", '{"accept_counts": [3, 4, -2]}', None, "negative"),
    ("inc.txt", '# TYPE vllm:spec_decode_num_drafts_total counter\n'
                'vllm:spec_decode_num_drafts_total{model_name="m"} 100.0\n'
                'vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name="m",position="0"} 80.0\n'
                'vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name="m",position="1"} 90.0\n',
     4, "cannot increase with position"),
    ("frac_metric.txt", 'vllm:spec_decode_num_drafts_total 100.5\n'
                        'vllm:spec_decode_num_accepted_tokens_per_pos_total{position="0"} 80\n', 1,
     "not an integer"),
    ("nospec.txt", (DATA / "vllm_no_spec.txt").read_text(), None, "no speculative-decoding counters"),
    ("garbage.txt", "hello world\nthis is not a trace\n", None, "cannot tell the trace format"),
    ("probs.txt", "Acceptance probs: [0.2, 0.3, 0.5]\n", None, "frequencies, not counts"),
    ("mean.json", '{"gamma": 4, "mean_acceptance_length": 6.0}', None, "outside [1, 5]"),
    ("flags.csv", "gamma,accepted,pos_0,pos_1\n2,2,1,0\n", 2, "start with a run of 1"),
]


@pytest.mark.parametrize("name,text,line,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_with_file_and_line(tmp_path, name, text, line, msg):
    p = tmp_path / name
    p.write_text(text)
    r = runner.invoke(app, ["calibrate", "acceptance", str(p)])
    assert r.exit_code == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "\n" not in err and err.startswith("error: ") and "Traceback" not in err
    assert msg in err
    assert f"{p}:{line}:" in err if line else f"{p}:" in err


def test_unknown_format_and_missing_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("gamma,accepted\n4,1\n")
    r = runner.invoke(app, ["calibrate", "acceptance", str(p), "--format", "sglang-log"])
    assert r.exit_code == 2 and "format='sglang-log' is not known" in r.stderr
    r = runner.invoke(app, ["calibrate", "acceptance", str(tmp_path / "nope.txt")])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_several_models_need_a_label(tmp_path):
    p = tmp_path / "two.txt"
    p.write_text('vllm:spec_decode_num_drafts_total{model_name="a"} 100\n'
                 'vllm:spec_decode_num_drafts_total{model_name="b"} 50\n'
                 'vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name="a",position="0"} 60\n'
                 'vllm:spec_decode_num_accepted_tokens_per_pos_total{model_name="b",position="0"} 10\n')
    r = runner.invoke(app, ["calibrate", "acceptance", str(p)])
    assert r.exit_code == 2 and "--label" in r.stderr
    r = runner.invoke(app, ["calibrate", "acceptance", str(p), "--label", "model_name=b", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["alpha"] == pytest.approx(10 / 50)


def test_more_shapes(tmp_path):
    p = tmp_path / "h.txt"
    p.write_text("{'accept_counts': [[10, 5, 5], [0, 5, 15]]}\n")  # Python repr, two samples summed
    d = read_trace(p)
    assert d.format == "histogram" and d.histogram[2].tolist() == [10, 10, 20]
    p = tmp_path / "m.txt"
    p.write_text("gamma: 4\nmean_accepted_tokens: 2.5\nn_drafts: 800\n")
    d = read_trace(p)
    assert d.format == "mean-length" and d.mean_accepted == 2.5 and d.n_drafts == 800
    # vLLM totals without per-position counters: mean accepted length only (i.i.d. α)
    p = tmp_path / "tot.txt"
    p.write_text("vllm:spec_decode_num_drafts_total 1000\nvllm:spec_decode_num_draft_tokens_total 3000\n"
                 "vllm:spec_decode_num_accepted_tokens_total 1500\n")
    d = read_trace(p)
    assert d.kind == "mean" and d.gammas == (3,) and d.mean_accepted == 1.5
    assert any("only an i.i.d." in n for n in d.notes)
