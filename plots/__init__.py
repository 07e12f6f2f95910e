"""specperf's interactive figures (plotly): speedup surfaces, optimal lookahead, time breakdowns,
the depth × width latency map, draft design and break-even maps, calibrated acceptance. plotly is imported only inside
this package; perfmodel and calibration never import it.

Key assumption: every number drawn comes from perfmodel (predict, specdec, optimize) or a measured
LatencyTable, and hover text names its latency source (measured or analytical).
"""
from __future__ import annotations

import importlib

KINDS = {"speedup": "speedup", "gamma": "gamma", "breakdown": "breakdown", "depth-width": "depth_width",
         "design": "design", "breakeven": "breakeven", "acceptance": "acceptance",
         "serve": "serve"}


def figure(kind: str, setting, **kw):
    """Build the plotly Figure of `kind` for a plots.common.Setting."""
    from specperf.perfmodel.specs.models import SpecError

    if kind not in KINDS:
        raise SpecError(f"unknown plot kind {kind!r}; use one of {', '.join(KINDS)}")
    return importlib.import_module(f"specperf.plots.{KINDS[kind]}").figure(setting, **kw)


def show(fig):
    """Notebook output of a figure: interactive plotly plus a static PNG (reads on GitHub)."""
    from .layout import Shown

    return Shown(fig)


def write_html(fig, path):
    from .common import write_html as _w

    return _w(fig, path)


def write_png(fig, path, scale: float = 2.0):
    from .common import write_png as _w

    return _w(fig, path, scale)
