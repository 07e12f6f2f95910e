"""The one writer (perfmodel.specs.safeio) and the commands that use it: atomic replacement, no
write through symbolic links or planted temporaries, the old file intact after a failed write
(EFBIG under a file-size limit), valid documents under concurrent writers; bounded readers refuse
devices, FIFOs, oversize files and too-deep JSON with one line (issue 25)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from specperf.cli.main import app
from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.specs.errors import SpecError
from specperf.perfmodel.specs.models import read_json
from specperf.perfmodel.specs.safeio import FOLLOW_ENV, atomic_write, loads_json, read_bytes, write_json

RUN = CliRunner()
ACC = ["calibrate", "acceptance", "MEAN"]


@pytest.fixture(autouse=True)
def _no_follow(monkeypatch):
    monkeypatch.delenv(FOLLOW_ENV, raising=False)


def test_atomic_write_replaces_keeps_mode_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("old")
    p.chmod(0o640)
    write_json(p, {"x": 1})
    assert json.loads(p.read_text()) == {"x": 1} and (p.stat().st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["a.json"]
    with pytest.raises(ValueError):  # NaN is refused before anything is replaced
        write_json(p, {"x": float("nan")})
    assert json.loads(p.read_text()) == {"x": 1} and os.listdir(tmp_path) == ["a.json"]


def test_symlinks_are_refused_unless_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("secret")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    with pytest.raises(SpecError, match="symbolic link.*--follow-symlinks"):
        atomic_write(link, "x")
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere" / "f")
    with pytest.raises(SpecError, match="symbolic link"):
        atomic_write(dangling, "x")
    assert victim.read_text() == "secret"
    atomic_write(link, "new", follow_symlinks=True)
    assert victim.read_text() == "new" and link.is_symlink()


@pytest.mark.parametrize("target", ["/dev/null", "DIR", "MISSING/x.json"])
def test_non_files_and_missing_folders_are_refused(tmp_path, target):
    t = {"DIR": str(tmp_path), "MISSING/x.json": str(tmp_path / "missing" / "x.json")}.get(target, target)
    with pytest.raises(SpecError, match=r"cannot be written: (it exists and is not a regular|it is a directory|folder)"):
        atomic_write(t, "x", "--out")


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    """EFBIG for real: a child process under RLIMIT_FSIZE writes more than the limit."""
    p = tmp_path / "out.json"
    p.write_text('{"old": true}\n')
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from specperf.perfmodel.specs.safeio import write_json
        from specperf.perfmodel.specs.errors import SpecError
        try:
            write_json({str(p)!r}, {{"big": "x" * 100000}}, "--out")
        except SpecError as e:
            print(e)
            sys.exit(2)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd())
    assert r.returncode == 2, r.stderr
    assert "--out" in r.stdout and str(p) in r.stdout and "File too large" in r.stdout
    assert "unchanged" in r.stdout
    assert p.read_text() == '{"old": true}\n' and os.listdir(tmp_path) == ["out.json"]


def test_concurrent_writers_never_leave_an_invalid_document(tmp_path):
    p = tmp_path / "acc.json"
    code = textwrap.dedent(f"""
        import sys
        from specperf.perfmodel.specs.safeio import write_json
        for i in range(60):
            write_json({str(p)!r}, {{"writer": sys.argv[1], "i": i, "pad": "y" * (20000 + 997 * i)}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, w]) for w in "ab"]
    seen = 0
    while any(q.poll() is None for q in procs):
        if p.exists():
            doc = json.loads(p.read_text())  # raises on a torn or mixed document
            assert doc["writer"] in "ab" and len(doc["pad"]) == 20000 + 997 * doc["i"]
            seen += 1
    assert all(q.wait() == 0 for q in procs) and seen > 0
    assert sorted(os.listdir(tmp_path)) == ["acc.json"]


def test_profile_save_ignores_planted_fixed_name_temporaries(tmp_path):
    """The old writer used OUT.tmp and OUT.meta.json.tmp; links planted there must not be followed."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    out = tmp_path / "p.csv"
    for name in ("p.csv.tmp", "p.csv.meta.json.tmp"):
        (tmp_path / name).symlink_to(victim)
    t = LatencyTable(rows=[], meta={"gpu": "h100-sxm"})
    t.save(out)
    assert victim.read_text() == "keep" and out.exists() and (tmp_path / "p.csv.meta.json").exists()
    out.unlink()
    out.symlink_to(victim)
    with pytest.raises(SpecError, match="symbolic link"):
        t.save(out)
    assert victim.read_text() == "keep"


def test_calibrate_out_through_a_symlink_is_refused_by_the_cli(tmp_path):
    (tmp_path / "mean.txt").write_text("gamma: 4\nmean_acceptance_length: 2.5\n")
    acc = [str(tmp_path / "mean.txt") if a == "MEAN" else a for a in ACC]
    victim = tmp_path / "victim.json"
    victim.write_text("keep")
    link = tmp_path / "acc.json"
    link.symlink_to(victim)
    r = RUN.invoke(app, acc + ["--out", str(link)])
    assert r.exit_code == 2 and "symbolic link" in r.output and "Traceback" not in r.output
    assert victim.read_text() == "keep"
    r = RUN.invoke(app, ["--follow-symlinks"] + acc + ["--out", str(link)])
    assert r.exit_code == 0, r.output
    assert "alpha" in json.loads(victim.read_text()) and link.is_symlink()


def test_emit_out_through_a_symlink_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "spec.json"
    link.symlink_to(victim)
    r = RUN.invoke(app, ["optimize", "--target", "llama-65b", "--drafts", "sheared-llama-1.3b", "--gpu", "h100-sxm",
                         "--tp", "4", "--alpha", "0.7", "--emit", "vllm", "--emit-out", str(link)])
    assert r.exit_code == 2 and "--emit-out" in r.output and "symbolic link" in r.output
    assert victim.read_text() == "keep"


def test_readers_refuse_devices_fifos_oversize_and_deep_json(tmp_path):
    with pytest.raises(SpecError, match="not a regular file"):
        read_bytes("/dev/zero", "config file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="not a regular file"):  # and does not block waiting for a writer
        read_bytes(fifo, "trace file")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(SpecError, match="2048 bytes; at most 1024"):
        read_bytes(big, "config file", limit=1024)
    deep = tmp_path / "config.json"
    deep.write_text("[" * 200000 + "]" * 200000)
    with pytest.raises(SpecError, match="nested too deeply"):
        read_json(deep, "config file")
    with pytest.raises(SpecError, match="nested too deeply"):
        loads_json('{"a":' * 100000 + "1" + "}" * 100000, "acceptance file")


@pytest.mark.parametrize("argv", [
    ["predict", "--target", "/dev/zero", "--draft", "llama-7b:n_layers=2", "--alpha", "0.7"],
    ["predict", "--target", "CONFIG_DEEP", "--draft", "llama-7b:n_layers=2", "--alpha", "0.7"],
    ["predict", "--target", "llama-7b", "--draft", "llama-7b:n_layers=2", "--acceptance", "/dev/zero"],
    ["calibrate", "acceptance", "/dev/zero"],
    ["calibrate", "latency", "/dev/zero"],
    ["predict", "--target", "llama-7b", "--draft", "llama-7b:n_layers=2", "--alpha", "0.7", "--profile", "DIR"],
])
def test_cli_bad_files_are_one_line(tmp_path, argv):
    deep = tmp_path / "config.json"
    deep.write_text("[" * 200000 + "]" * 200000)
    argv = [{"CONFIG_DEEP": str(deep), "DIR": str(tmp_path)}.get(a, a) for a in argv]
    r = RUN.invoke(app, argv)
    assert r.exit_code == 2, r.output
    err = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "Traceback" not in r.output
    assert any(w in err[0] for w in ("not a regular file", "nested too deeply", "is a directory")), err
