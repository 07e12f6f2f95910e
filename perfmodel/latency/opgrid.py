"""Interpolation of measured operator times on a log-spaced, possibly incomplete tensor grid.

Inside the grid: multilinear in the raw sizes (not their logs), as perfmodel.latency.measured
argues — an operator's time is a sum of terms affine in each size (a fixed cost, bytes ∝ N·K,
FLOPs ∝ M·N·K, KV bytes ∝ batch·heads·keys), and multilinear interpolation reproduces such terms
exactly between nodes, while log-log interpolation bends a "constant + linear" segment. Above the
grid: affine extrapolation along each axis from its last two nodes (slope ≥ 0; large operators are
bandwidth- or compute-bound, so their cost is affine in each size); below it: the first node
(small operators cost their fixed part). Holes (points a sweep
did not reach, or skipped) are filled the same way along each axis before use, so a sweep stopped
at its deadline on its coarse level still gives a complete grid. numpy only.
"""
from __future__ import annotations

import numpy as np


PAD = 1e3  # a virtual node at PAD × the last node on each axis carries the affine extrapolation


def _fill_line(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """NaNs of one line: linear between finite neighbours, affine (slope ≥ 0) beyond the last,
    the first finite value below it (small sizes cost their fixed part)."""
    ok = np.isfinite(v)
    if ok.all() or ok.sum() == 0:
        return v
    xs, vs = x[ok], v[ok]
    out = np.interp(x, xs, vs)
    if ok.sum() >= 2:
        slope = max((vs[-1] - vs[-2]) / (xs[-1] - xs[-2]), 0.0)
        out = np.where(x > xs[-1], vs[-1] + (x - xs[-1]) * slope, out)
    return np.where(ok, v, out)


def fill_holes(axes, v: np.ndarray) -> np.ndarray:
    """Fill NaN entries of `v` (shape = lengths of `axes`) along each axis in turn, until none is left."""
    v = v.copy()
    for _ in range(2 * v.ndim + 2):
        if np.isfinite(v).all():
            break
        for ax, x in enumerate(axes):
            v = np.apply_along_axis(lambda line, x=x: _fill_line(x, line), ax, v)
    return v


def _pad(axes, v):
    """Append the virtual node PAD × last on every axis of length ≥ 2, valued by affine extrapolation."""
    axes = list(axes)
    for k, a in enumerate(axes):
        if len(a) < 2:
            continue
        last, prev = np.take(v, -1, axis=k), np.take(v, -2, axis=k)
        slope = np.maximum((last - prev) / (a[-1] - a[-2]), 0.0)
        far = a[-1] * PAD
        v = np.concatenate([v, np.expand_dims(last + (far - a[-1]) * slope, k)], axis=k)
        axes[k] = np.append(a, far)
    return axes, v


class OpGrid:
    """Times of one operator (one mode, one dtype) over `axes`; call with broadcastable size arrays."""

    def __init__(self, axes, values: np.ndarray):
        axes = [np.asarray(a, dtype=float) for a in axes]
        self.axes, self.v = _pad(axes, fill_holes(axes, np.asarray(values, dtype=float)))

    @classmethod
    def from_points(cls, pts: np.ndarray) -> "OpGrid":
        """pts [N, ndim + 1]: sizes then median seconds (duplicates: the last wins)."""
        axes = [np.unique(pts[:, k]) for k in range(pts.shape[1] - 1)]
        v = np.full([len(a) for a in axes], np.nan)
        idx = tuple(np.searchsorted(a, pts[:, k]) for k, a in enumerate(axes))
        v[idx] = pts[:, -1]
        return cls(axes, v)

    def __call__(self, *xs) -> np.ndarray:
        xs = np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in xs])
        shape = xs[0].shape
        lo, w = [], []
        for x, a in zip(xs, self.axes):
            xc = np.clip(x, a[0], a[-1])
            if len(a) == 1:
                lo.append(np.zeros(shape, int))
                w.append(np.zeros(shape))
            else:
                i = np.clip(np.searchsorted(a, xc, side="right") - 1, 0, len(a) - 2)
                lo.append(i)
                w.append((xc - a[i]) / (a[i + 1] - a[i]))
        out = np.zeros(shape)
        for corner in range(2 ** len(xs)):
            wt = np.ones(shape)
            ix = []
            for k in range(len(xs)):
                up = (corner >> k) & 1
                wt = wt * (w[k] if up else 1.0 - w[k])
                ix.append(np.minimum(lo[k] + up, len(self.axes[k]) - 1))
            out = out + wt * self.v[tuple(ix)]
        return out


__all__ = ["OpGrid", "fill_holes"]
