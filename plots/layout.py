"""Presentation helpers shared by the figures: label placement without overlap, and a figure as a
notebook output with a static PNG beside the interactive plotly bundle (so it reads on GitHub).

Key assumption: label boxes are estimated from character counts (about 7.5 px per character at the
figures' 13 px font); good enough to keep names apart, not a text-layout engine.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .common import PNG_SIZE

# ---- labels that do not overlap ----------------------------------------------------------------
POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left",
             "top left", "bottom right")


def _clear(box, boxes) -> bool:
    return all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in boxes)


def label_positions(x, y, texts, x_range, y_range, size_px=(1000, 440), char_px=7.5, line_px=16,
                    markers=(), marker_px=6.0) -> list[str]:
    """A textposition per point so that no label's box overlaps another label, a marker (each point's
    own, radius marker_px (one number or one per point), and `markers`: (x, y, radius px) or (x, y_lo, y_hi, half-width px) for an
    error bar) or leaves the plot area; greedy, left to right; a label that fits nowhere takes the
    position with the least overlap. Ranges are the axes' data ranges, size_px the plot area."""
    sx = size_px[0] / max(x_range[1] - x_range[0], 1e-30)
    sy = size_px[1] / max(y_range[1] - y_range[0], 1e-30)
    px_ = lambda v: (v - x_range[0]) * sx  # noqa: E731
    py_ = lambda v: (v - y_range[0]) * sy  # noqa: E731
    rad = [float(marker_px)] * len(x) if np.ndim(marker_px) == 0 else [float(r) for r in marker_px]
    obstacles = [(px_(a) - r, py_(b) - r, px_(a) + r, py_(b) + r) for a, b, r in zip(x, y, rad)]
    for m in markers:
        if len(m) == 3:
            obstacles.append((px_(m[0]) - m[2], py_(m[1]) - m[2], px_(m[0]) + m[2], py_(m[1]) + m[2]))
        else:
            obstacles.append((px_(m[0]) - m[3], py_(m[1]), px_(m[0]) + m[3], py_(m[2])))
    placed, out = [], ["top center"] * len(texts)
    for i in sorted(range(len(texts)), key=lambda k: x[k]):
        px, py, w = px_(x[i]), py_(y[i]), len(str(texts[i])) * char_px
        gap = rad[i] + 2
        boxes = {}
        for pos in POSITIONS:
            v, h = pos.split()
            x0 = {"center": px - w / 2, "right": px + gap, "left": px - gap - w}[h]
            y0 = {"top": py + gap, "bottom": py - gap - line_px, "middle": py - line_px / 2}[v]
            boxes[pos] = (x0, y0, x0 + w, y0 + line_px)
        inside = {p: b[0] >= 0 and b[2] <= size_px[0] and b[1] >= 0 and b[3] <= size_px[1] for p, b in boxes.items()}
        ok = [p for p in POSITIONS if inside[p] and _clear(boxes[p], placed + obstacles)]
        if not ok:  # nothing is clear: the fewest collisions, labels before markers
            ok = [min(POSITIONS, key=lambda p: (not inside[p], 3 * (not _clear(boxes[p], placed))
                                                 + sum(not _clear(boxes[p], [o]) for o in obstacles)))]
        out[i] = ok[0]
        placed.append(boxes[ok[0]])
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
