"""scripts/specloop_eagle_tree.py --smoke on CPU (seconds): the GPU check of issue 28 runs end to end —
head trained, rank acceptance measured, components timed, chains and trees run and priced as the trees
that ran — and a budget cut keeps what was measured (the GPU call once died with nothing written)."""
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts import specloop_eagle_tree as script  # noqa: E402


def test_smoke_run_writes_every_run(tmp_path):
    assert script.main(["--out", str(tmp_path), "--smoke"]) == 0
    doc = json.loads((tmp_path / "specloop_eagle_tree.json").read_text())
    assert doc["phase"] == "done" and {r["kind"] for r in doc["rows"]} == {"chain", "tree"}
    for r in doc["rows"]:
        assert r["measured_tok_s"] > 0 and r["predicted_iteration_s"] > 0 and "error_pct" in r
        if r["kind"] == "tree":
            assert sum(r["tree_widths"]) == r["gamma_or_tree_tokens"] and r["predicted_tokens_per_iteration"] >= 1


def test_budget_cut_keeps_what_was_measured(tmp_path):
    assert script.main(["--out", str(tmp_path), "--smoke", "--budget-s", "0"]) == 0
    doc = json.loads((tmp_path / "specloop_eagle_tree.json").read_text())
    assert doc["rows"] == [] and "t_target_s" in doc and "rank_acceptance" in doc
    assert any("budget" in n for n in doc["notes"])
