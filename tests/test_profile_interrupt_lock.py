"""Profiling loses nothing and never races (issue 16), on CPU: a real SIGINT mid-sweep keeps every
finished row and the same command resumes; a live lock refuses a second run cleanly, a stale one is
taken over; a table from a newer schema is refused; writes leave no temporary files."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from specperf.cli.main import app  # noqa: E402
from specperf.perfmodel.latency.table import LatencyTable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = "opt-125m:n_layers=1,d_model=64,n_heads=4,d_ff=128,vocab=256"
ARGS = ["profile", "--models", TINY, "--batch", "1..2", "--context", "16", "--gamma-max", "1", "--mode", "eager",
        "--dtype", "fp32", "--device", "cpu"]
runner = CliRunner()


def _cmd(out):
    return [sys.executable, "-m", "specperf", *ARGS, "--out", str(out)]


def test_sigint_keeps_finished_rows_and_rerun_resumes(tmp_path):
    out = tmp_path / "p.csv"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(_cmd(out), cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the first finished point
        if line.startswith("layer"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    kept = LatencyTable.load(out)
    assert 1 <= len(kept) < 12
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.lock"))
    r = subprocess.run(_cmd(out) + ["--json", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    full = LatencyTable.load(out)
    assert len(full) == 12 and doc["new_rows"] == 12 - len(kept)  # 2 b × 2 n × (layer, head) + 2 b × γ 0..1
    assert full.rows[:len(kept)] == kept.rows


def test_live_lock_refuses_a_second_run(tmp_path):
    out = tmp_path / "p.csv"
    lock = tmp_path / "p.csv.lock"
    lock.write_text(f"{os.getpid()}\n")  # this test process: alive
    r = runner.invoke(app, ARGS + ["--out", str(out), "--json"])
    assert r.exit_code == 2 and "being written by another run" in r.stderr and "\n" not in r.stderr.strip()
    assert json.loads(r.stdout)["value"] == str(out)
    assert not out.exists() and lock.read_text() == f"{os.getpid()}\n"  # the owner's lock is untouched


def test_stale_lock_is_taken_over_and_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "p.csv"
    (tmp_path / "p.csv.lock").write_text(f"{dead.pid}\n")
    r = runner.invoke(app, ARGS[:4] + ["1", "--context", "16", "--gamma-max", "1", "--mode", "eager", "--dtype",
                                       "fp32", "--device", "cpu", "--no-overhead", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(LatencyTable.load(out)) == 4 and not (tmp_path / "p.csv.lock").exists()


def test_newer_schema_table_is_refused_on_resume(tmp_path):
    out = tmp_path / "p.csv"
    out.write_text((ROOT / "perfmodel" / "data" / "h100-sxm.csv").read_text().splitlines()[0] + "\n")
    (tmp_path / "p.csv.meta.json").write_text(json.dumps({"schema_version": 7, "gpu": "cpu"}))
    r = runner.invoke(app, ARGS + ["--out", str(out)])
    assert r.exit_code == 2 and "schema_version=7" in r.stderr and "newer" in r.stderr
    assert not (tmp_path / "p.csv.lock").exists()


def test_lock_module_round_trip(tmp_path):
    from specperf.profiler.filelock import LockedError, locked

    target = tmp_path / "t.csv"
    with locked(target) as lk:
        assert lk.read_text().strip() == str(os.getpid())
        with pytest.raises(LockedError):
            with locked(target):
                pass
    assert not lk.exists()
