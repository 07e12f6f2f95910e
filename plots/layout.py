"""Presentation helpers shared by the figures: label placement without overlap, and a figure as a
notebook output with a static PNG beside the interactive plotly bundle (so it reads on GitHub).

Key assumption: label boxes are estimated from character counts (about 7.5 px per character at the
figures' 13 px font); good enough to keep names apart, not a text-layout engine.
"""
from __future__ import annotations

import plotly.graph_objects as go

from .common import PNG_SIZE

# ---- labels that do not overlap ----------------------------------------------------------------
POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left",
             "top left", "bottom right")


def label_positions(x, y, texts, x_range, y_range, size_px=(1000, 440), char_px=7.5, line_px=16) -> list[str]:
    """A textposition per point so that no two labels' boxes overlap (greedy, left to right; a label
    that fits nowhere keeps 'top center'). Ranges are the axes' data ranges, size_px the plot area."""
    sx = size_px[0] / max(x_range[1] - x_range[0], 1e-30)
    sy = size_px[1] / max(y_range[1] - y_range[0], 1e-30)
    placed, out = [], ["top center"] * len(texts)
    for i in sorted(range(len(texts)), key=lambda k: x[k]):
        px, py, w = (x[i] - x_range[0]) * sx, (y[i] - y_range[0]) * sy, len(str(texts[i])) * char_px
        for pos in POSITIONS:
            v, h = pos.split()
            x0 = {"center": px - w / 2, "right": px + 6, "left": px - 6 - w}[h]
            y0 = {"top": py + 7, "bottom": py - 7 - line_px, "middle": py - line_px / 2}[v]
            box = (x0, y0, x0 + w, y0 + line_px)
            if all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in placed):
                out[i] = pos
                placed.append(box)
                break
    return out


class Shown:
    """A figure as a notebook cell's output: plotly's interactive bundle plus a static PNG of the same
    figure (kaleido), so an executed notebook still shows it where plotly.js does not run (GitHub)."""

    def __init__(self, fig: go.Figure):
        self.fig = fig

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        import base64
        import json

        bundle = {"application/vnd.plotly.v1+json": {**json.loads(self.fig.to_json()),
                                                     "config": {"displaylogo": False, "responsive": True}}}
        w, h = PNG_SIZE
        try:
            png = self.fig.to_image(format="png", width=w, height=max(h, int(self.fig.layout.height or h)), scale=1)
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        except Exception as e:  # kaleido without a browser: say so in the output instead of failing the cell
            bundle["text/plain"] = f"(static PNG not available: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        return bundle
