"""specperf: which draft model and which lookahead make speculative decoding fastest on your GPU.

The distribution's one top-level name. Its subpackages are `specperf.perfmodel` (the model),
`specperf.profiler` (GPU timing), `specperf.calibration`, `specperf.plots` and `specperf.cli`.
Installed from a wheel they sit inside this folder; in a source checkout they are the repository's
top-level folders (pyproject.toml maps them), which this module then adds to the package's search
path so that `import specperf.perfmodel` works from the checkout with `PYTHONPATH=.` alone.
"""
from pathlib import Path as _Path

_here = _Path(__file__).resolve().parent
if not (_here / "perfmodel").is_dir() and (_here.parent / "perfmodel" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # noqa: F821 — a source checkout: subpackages beside this folder

from specperf.perfmodel import __version__  # noqa: E402
