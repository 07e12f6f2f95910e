"""scripts/hf_assisted_check.py's CPU smoke path end to end (real HF transformers assisted generation,
tiny random-weight Llama and Qwen2 pairs, in .venv-vllm), then scripts/hf_assisted_report.py on its
table. Checks the client's mechanics (fixed lookahead, decode window, forward counts, greedy
identity), not timings: CPU timings of a shared machine say nothing. Skipped without .venv-vllm."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv-vllm" / "bin" / "python"


def test_check_smoke_then_report(tmp_path):
    if not VENV_PY.exists():
        why = ".venv-vllm is absent (it has transformers); run `bash scripts/setup_vllm.sh`"
        if os.environ.get("SPECPERF_REQUIRE_ENGINE"):
            pytest.fail(why)
        pytest.skip(why)
    out = tmp_path / "hfa"
    r = subprocess.run([str(VENV_PY), "scripts/hf_assisted_check.py", "--out", str(out), "--device", "cpu", "--smoke",
                        "--deadline-s", "240"], cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = list(csv.DictReader((out / "hf_assisted.csv").open()))
    assert rows and (out / "log.txt").exists() and (out / "hf_assisted_runs.csv").exists()
    for row in rows:
        g, di = int(row["gamma"]), int(row["decode_iterations"])
        assert di >= 1 and float(row["decode_tok_s"]) > 0
        assert int(row["decode_tokens"]) == int(row["new_tokens"]) - int(row["tokens_first_iteration"])
        if g == 0:
            assert float(row["tokens_per_iteration"]) == 1.0 and int(row["draft_forwards"]) == 0
        else:
            # a fixed lookahead: γ draft forwards per iteration, fewer only where max_new_tokens caps the last two
            assert g * (di - 2) / di - 1e-9 <= float(row["draft_forwards_per_iteration"]) <= g
            assert 1.0 <= float(row["tokens_per_iteration"]) <= g + 1
            assert float(row["t_draft_s"]) > 0 and float(row["t_draft2_s"]) > 0
        assert row["equals_target_greedy"] in ("0", "1")
    rep = subprocess.run([sys.executable, "scripts/hf_assisted_report.py", str(out / "hf_assisted.csv"), "--gpu",
                          "h100-sxm"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert rep.returncode == 0, rep.stderr[-2000:]
    doc = json.loads(rep.stdout.strip().splitlines()[-1])
    assert doc["runs"] == len(rows) and doc["card"].startswith("cpu")
