"""With only the core installed, a command that needs an extra exits 2 with one line naming the
extra to install (simulated: the optional module blocked in sys.modules, in a fresh interpreter);
the LICENSE is the one pyproject names."""
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ("import sys\nfor m in sys.argv[1].split(','):\n    sys.modules[m] = None\n"
       "sys.argv = ['specperf'] + sys.argv[2:]\nfrom cli.main import main\nmain()\n")


@pytest.mark.parametrize("module,extra,args", [
    ("plotly", "plot", ["plot", "gamma", "--target", "llama-7b", "--draft", "tinyllama-1.1b", "--alpha", "0.7",
                        "--out", "{tmp}/x.html"]),
    ("plotly", "plot", ["explore", "--targets", "llama-7b", "--out", "{tmp}/x.html"]),
    ("scipy", "calibrate", ["calibrate", "acceptance", "tests/data/calibration/vllm_metrics.txt"]),
    ("torch", "profile", ["profile", "--estimate", "--models", "llama-7b", "--out", "{tmp}/x.csv"]),
])
def test_missing_extra_is_one_line_and_exit_2(tmp_path, module, extra, args):
    r = subprocess.run([sys.executable, "-c", RUN, module] + [a.format(tmp=tmp_path) for a in args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                                                          "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"pip install 'specperf[{extra}]'" in lines[0] and module in lines[0]
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_extras_named_exist_in_pyproject_and_license_matches():
    from specperf.cli.common import EXTRAS

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(EXTRAS.values()) <= set(meta["optional-dependencies"])
    for mod, extra in EXTRAS.items():
        assert any(dep.split(">")[0].split("=")[0].strip() == mod for dep in meta["optional-dependencies"][extra])
    assert meta["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
