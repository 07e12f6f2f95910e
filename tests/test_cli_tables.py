"""Human output fits the terminal and never drops the answer: `predict`, `optimize` and `gpus` at 80
and 120 columns (COLUMNS, as a terminal or pipe sets it) print lines no wider than the terminal, and
the answer's numbers — taken from the same command's --json — are all visible; --wide prints one
table per section."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.cli.tables import Col, groups, needed_width

runner = CliRunner()
PREDICT = ["predict", "--target", "llama-7b", "--draft", "sheared-llama-1.3b", "--alpha", "0.7", "--gpu", "h100-sxm",
           "--gamma", "1..6"]
OPTIMIZE = ["optimize", "--target", "llama-65b", "--gpu", "h100-sxm", "--tp", "4", "--drafts",
            "sheared-llama-1.3b,tinyllama-1.1b,opt-1.3b", "--layers", "1..8", "--d-model", "4096", "--alpha-model",
            "docs/worked_example_alpha.json", "--batch", "1", "--context", "512", "--mode", "both", "--top", "11",
            "--reference", "sheared-llama-1.3b"]


def _run(args, columns):
    r = runner.invoke(app, args, env={"COLUMNS": str(columns)})
    assert r.exit_code == 0, r.output
    return r.output


def _fits(out, columns):
    assert max(len(line) for line in out.splitlines()) <= columns


@pytest.mark.parametrize("columns", [80, 120])
def test_predict_shows_every_rows_answer(columns):
    doc = json.loads(_run(PREDICT + ["--json"], columns))
    out = _run(PREDICT, columns)
    _fits(out, columns)
    for r in doc["rows"]:
        assert f"{r['throughput_tok_s']:.0f} [{r['throughput_tok_s_lo']:.0f}–{r['throughput_tok_s_hi']:.0f}]" in out
        assert f"{r['speedup']:.2f} [{r['speedup_lo']:.2f}–{r['speedup_hi']:.2f}]" in out
        assert f"{r['iteration_s'] * 1e3:.2f} [" in out  # secondary columns stacked, not dropped
    assert "◀ optimal" in out and "…" not in out


@pytest.mark.parametrize("columns", [80, 120])
def test_optimize_shows_the_ranking_answer(columns):
    doc = json.loads(_run(OPTIMIZE + ["--json"], columns))
    out = _run(OPTIMIZE, columns)
    _fits(out, columns)
    assert "…" not in out
    for rk in doc["rankings"]:
        for r in rk["rows"]:
            want = (f" {r['draft']}", f"{r['speedup']:.2f}×", f"{r['throughput_tok_s']:.1f}", f" {r['gamma']} ",
                    f"{r['speedup_lo']:.2f}–{r['speedup_hi']:.2f} ({r['gamma_lo']}–{r['gamma_hi']})")
            # name, γ*, tok/s, speedup and its range on one line of the first table
            assert any(all(w in ln for w in want) for ln in out.splitlines()), (r["draft"], rk["mode"])
            assert f"{100 * r['gain_vs_reference']:+.0f}%" in out


@pytest.mark.parametrize("columns", [80, 120])
def test_gpus_fit_and_keep_every_source(columns):
    out = _run(["gpus"], columns)
    _fits(out, columns)
    doc = json.loads(_run(["gpus", "--json"], columns))
    flat = " ".join(out.split())
    for g in doc:
        assert f" {g['name']} " in out and f"{g['peak_flops_per_s'] / 1e12:.1f}" in out
        words = g["sources"]["datasheet"].split()
        assert words[0] in flat and words[-1] in flat  # the source folds onto lines, never cut


def test_wide_puts_every_column_in_one_table():
    out = _run(PREDICT + ["--wide"], 80)
    header = next(ln for ln in out.splitlines() if "speedup [90 %]" in ln)
    assert "tokens/iter" in header and "iteration ms" in header
    assert max(len(ln) for ln in out.splitlines()) > 80


def test_groups_keep_the_answer_first_and_repeat_the_row_names():
    cols = [Col("name", key=True, repeat=True), Col("answer", key=True), Col("a"), Col("b"), Col("c")]
    rows = [["x" * 10, "1" * 10, "2" * 20, "3" * 20, "4" * 20]]
    assert groups(cols, rows, needed_width(cols, rows)) == [[0, 1, 2, 3, 4]]  # fits: one table
    g = groups(cols, rows, 60)
    assert g[0][:2] == [0, 1] and len(g) > 1 and all(x[0] == 0 for x in g)  # answer first; name in every table
    assert sorted({i for x in g for i in x}) == [0, 1, 2, 3, 4]  # nothing dropped
    assert all(needed_width([cols[i] for i in x], [[rows[0][i] for i in x]]) <= 60 for x in g)
    assert groups(cols, rows, 60, wide=True) == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("columns", [80, 120])
def test_models_fit_and_keep_every_shape(columns):
    out = _run(["models"], columns)
    _fits(out, columns)
    for m in json.loads(_run(["models", "--json"], columns)):
        assert f" {m['name']} " in out and f"{m['params'] / 1e9:.2f} B" in out and f" {m['d_ff']} " in out


def _csv(out):
    import csv
    import io

    return list(csv.DictReader(io.StringIO(out)))


def test_format_csv_has_one_line_per_answer_row_and_agrees_with_json():
    doc = json.loads(_run(PREDICT + ["--json"], 80))
    rows = _csv(_run(PREDICT + ["--format", "csv"], 80))
    assert len(rows) == len(doc["rows"])
    assert [float(r["speedup"]) for r in rows] == [r["speedup"] for r in doc["rows"]]
    assert {r["target"] for r in rows} == {"llama-7b"} and rows[0]["mode"] == "graph"
    odoc = json.loads(_run(OPTIMIZE + ["--json"], 80))
    orows = _csv(_run(OPTIMIZE + ["--format", "csv"], 80))
    assert [(r["mode"], r["draft"], float(r["speedup"])) for r in orows] == [
        (rk["mode"], x["draft"], x["speedup"]) for rk in odoc["rankings"] for x in rk["rows"]]
    assert len(_csv(_run(["gpus", "--format", "csv"], 80))) == len(json.loads(_run(["gpus", "--json"], 80)))
    models = json.loads(_run(["models", "--format", "json"], 80))  # --format json is --json
    assert models == json.loads(_run(["models", "--json"], 80))
    assert [r["name"] for r in _csv(_run(["models", "--format", "csv"], 80))] == [m["name"] for m in models]


def test_csv_cells_never_run_as_spreadsheet_formulas(tmp_path):
    cfg = json.loads((Path(__file__).parent / "fixtures" / "hf_configs" / "llama-3.1-8b" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(cfg, _name_or_path="=HYPERLINK(\"x\")")))
    out = _run(["predict", "--target", str(tmp_path), "--draft", "tinyllama-1.1b", "--alpha", "0.7", "--gamma", "2",
                "--format", "csv"], 80)
    assert _csv(out)[0]["target"] == "'=HYPERLINK(\"x\")"


@pytest.mark.parametrize("args", [["gpus", "--format", "xml"], ["models", "--format", "csv", "--json"],
                                  PREDICT + ["--format", "yaml"], OPTIMIZE + ["--format", "csv", "--json"]])
def test_bad_format_is_one_line(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and r.stderr.strip().startswith("error: ") and "\n" not in r.stderr.strip()
