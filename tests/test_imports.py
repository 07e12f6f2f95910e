"""Layering: importing the model and the CLI keeps heavy packages out (fresh interpreter each)."""
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(imports: list[str], watch: list[str]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {imports!r}: importlib.import_module(m if m in ('json', 'numpy') else 'specperf.' + m)\n"
        f"print(json.dumps(sorted(w for w in {watch!r} if w in sys.modules)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _modules(package: str) -> list[str]:
    path = ROOT / package
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


def test_perfmodel_core_has_no_torch_or_plotly():
    mods = ["perfmodel", "perfmodel.specdec.predict", "perfmodel.specs.catalog", "perfmodel.latency.analytical", "perfmodel.latency.providers"]
    assert _loaded_after(mods, ["torch", "plotly"]) == []


def test_every_perfmodel_module_has_no_torch_plotly_or_scipy():
    """Ground rules: perfmodel is numpy-only at import time (scipy, if used, inside functions)."""
    mods = [m for m in _modules("perfmodel") if m != "perfmodel.specdec.symbolic"]
    assert _loaded_after(mods, ["torch", "plotly", "scipy"]) == []


def test_sympy_only_with_symbolic():
    mods = ["perfmodel", "perfmodel.specdec.predict", "perfmodel.specs.catalog", "perfmodel.latency.analytical", "perfmodel.latency.providers",
            "perfmodel.specdec.maths", "perfmodel.specs.models", "perfmodel.specs.hardware"]
    assert _loaded_after(mods, ["sympy"]) == []
    assert _loaded_after(["perfmodel.specdec.symbolic"], ["sympy"]) == ["sympy"]  # the check can fire


@pytest.mark.skipif(not (ROOT / "calibration").is_dir(), reason="no calibration package")
def test_calibration_has_no_torch_or_plotly():
    assert _loaded_after(_modules("calibration"), ["torch", "plotly"]) == []


def test_cli_main_is_light():
    assert _loaded_after(["cli.main"], ["torch", "plotly", "scipy", "pandas"]) == []


def test_watcher_detects_an_import():
    """The helper itself must be able to fail: importing numpy shows up as numpy."""
    assert _loaded_after(["json", "numpy"], ["numpy", "torch"]) == ["numpy"]
