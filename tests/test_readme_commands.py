"""Every `.venv/bin/specperf …` command the README shows runs as written (continuation lines joined,
from the repository root, in a fresh shell with no venv activated) and exits 0. The set-up, test and
benchmark lines are exercised by .ci/run and the benchmark tests; the notebook loop by test_notebooks;
commands against a live vLLM server or the user's own config.json files (NEEDS_OUTSIDE) only by name.
Here `.venv/bin/specperf` is this interpreter running this checkout's CLI, so the commands test the code
under test; where the checkout has its own .venv, the launcher the README names must exist too."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ".venv/bin/specperf"
# commands that need something the README says to bring: a live vLLM server, the user's own config.json
NEEDS_OUTSIDE = ("http://", "TARGET/", "DRAFT/")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(LAUNCHER + " "):
                cmds.append(line)
    return cmds


def runnable() -> list[str]:
    return [c for c in readme_commands() if not any(m in c for m in NEEDS_OUTSIDE)]


def test_readme_shows_runnable_specperf_commands():
    cmds = runnable()
    assert len(cmds) >= 5, cmds
    assert any(" explore " in c for c in cmds)
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):  # no bare `specperf` that needs an activated venv
        assert not re.search(r"^\s*specperf ", block, re.M), block
    if (ROOT / ".venv").is_dir():
        assert (ROOT / LAUNCHER).exists(), f"{LAUNCHER} missing after set-up"


@pytest.mark.parametrize("cmd", runnable())
def test_readme_command_runs(cmd, tmp_path):
    argv = shlex.split(cmd)[1:]
    argv = [str(tmp_path / Path(a).name) if a.endswith(".html") else a for a in argv]  # write pages to tmp
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-m", "specperf", *argv], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, (cmd, p.stdout[-800:], p.stderr[-1500:])
    assert p.stdout.strip(), cmd
