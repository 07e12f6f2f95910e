"""The miniature study's shipped results (studies/miniature/results.csv, summary.json, data/) are
complete and self-consistent: every draft in every mode, errors recomputed from the table's own
columns, the summary's medians from the table, and every number tied to the card it was measured on."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "studies" / "miniature"
REQUIRED = ("draft", "mode", "gamma", "layers", "d_model", "params", "perplexity", "alpha_by_position",
            "measured_tok_s", "predicted_tok_s", "error_pct")


@pytest.fixture(scope="module")
def rows():
    with (STUDY / "results.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def summary():
    return json.loads((STUDY / "summary.json").read_text())


def num(v):
    return float(v) if v not in ("", None) else math.nan


def test_columns_and_coverage(rows):
    assert set(REQUIRED) <= set(rows[0])
    drafts = {r["draft"] for r in rows if r["draft"] != "none"}
    assert len(drafts) >= 6
    for mode in ("graph", "eager", "hf"):
        assert drafts == {r["draft"] for r in rows if r["mode"] == mode and r["draft"] != "none"}, mode
        assert any(r["draft"] == "none" for r in rows if r["mode"] == mode)  # the target alone
    layers = {int(r["layers"]) for r in rows if r["draft"] != "none"}
    assert {1, 2, 4, 8} <= layers and any(12 <= L <= 24 for L in layers)


def test_errors_follow_from_the_table(rows):
    for r in rows:
        if r["draft"] == "none" and r["mode"] == "hf":
            continue
        assert num(r["error_pct"]) == pytest.approx(100 * (num(r["predicted_tok_s"]) / num(r["measured_tok_s"]) - 1), abs=1e-3)
        ab = [float(x) for x in r["alpha_by_position"].split(";")] if r["draft"] != "none" else []
        assert all(0 <= a <= 1 for a in ab)


def test_summary_medians_match_the_table(rows, summary):
    for mode in ("graph", "eager"):
        e = [abs(num(r["error_pct"])) for r in rows if r["mode"] == mode and r["draft"] != "none"]
        assert summary["errors"][mode]["tok_s"]["median_abs_pct"] == pytest.approx(float(np.median(e)), rel=1e-4)
    held = [abs(num(r["error_pct"])) for r in rows if r["mode"] == "hf" and r["in_fit"] == "no"]
    assert summary["errors"]["hf"]["tok_s"]["median_abs_pct"] == pytest.approx(float(np.median(held)), rel=1e-4)
    assert sum(r["in_fit"] == "yes" for r in rows) <= 4  # HF calibration used at most four runs


def test_measured_on_the_named_card(summary, rows):
    meta = json.loads((STUDY / "data" / "profile.csv.meta.json").read_text())
    assert meta["gpu_name"] == summary["card"]["gpu_name"] == "NVIDIA H200"
    assert {r["gpu"] for r in rows} == {"h200"}
    recs = [json.loads(ln) for ln in (STUDY / "data" / "records.jsonl").read_text().splitlines()]
    assert next(r for r in recs if r["kind"] == "env")["gpu"] == "NVIDIA H200"


def test_winner_is_consistent(rows, summary):
    for mode in ("graph", "eager", "hf"):
        rs = [r for r in rows if r["mode"] == mode and r["draft"] != "none"]
        best = max(rs, key=lambda r: num(r["measured_tok_s"]))
        assert summary["winners"][mode]["measured_best_draft"] == best["draft"]
