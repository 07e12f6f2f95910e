"""The distribution: one namespace (`specperf.*`), the folder map in pyproject.toml covers every package
in the tree, and a built wheel alone — unpacked away from the checkout — answers `specperf predict`."""
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("perfmodel", "profiler", "calibration", "cli", "plots")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_in_the_tree_is_in_the_distribution_under_the_namespace():
    st = _pyproject()["tool"]["setuptools"]
    found = {"specperf"} | {"specperf." + ".".join(p.parent.relative_to(ROOT).parts)
                            for top in FOLDERS for p in (ROOT / top).rglob("__init__.py")}
    assert set(st["packages"]) == found
    assert st["package-dir"] == {"specperf": "specperf", **{f"specperf.{t}": t for t in FOLDERS}}
    assert _pyproject()["project"]["scripts"] == {"specperf": "specperf.cli.main:main"}


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_name_and_answers_predict_alone(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            str(ROOT), "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (whl,) = tmp_path.glob("specperf-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert {n.split("/")[0] for n in names} == {"specperf", whl.name.split("-py3")[0] + ".dist-info"}
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    manifest = json.loads((ROOT / "perfmodel" / "data" / "manifest.json").read_text())
    data = {n.removeprefix("specperf/perfmodel/data/") for n in names if n.startswith("specperf/perfmodel/data/")}
    assert {f["file"] for f in manifest["files"]} <= data
    site = tmp_path / "site"
    zipfile.ZipFile(whl).extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import specperf; "
            "assert specperf.__file__.startswith(sys.argv[1]), specperf.__file__; "
            "from specperf.cli.main import main; sys.argv = ['specperf'] + sys.argv[2:]; main()")
    args = ["predict", "--target", "llama-7b", "--draft", "tinyllama-1.1b", "--gpu", "h100-sxm", "--alpha", "0.7",
            "--gamma", "4", "--json"]
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", code, str(site), *args], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    here = subprocess.run([sys.executable, "-m", "specperf", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={**env, "PYTHONPATH": str(ROOT)})
    assert here.returncode == 0, here.stderr[-2000:]
    wheel_doc, checkout_doc = json.loads(run.stdout), json.loads(here.stdout)
    assert wheel_doc["speedup"] > 1 and wheel_doc == checkout_doc  # the shipped data came along
