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
        self._cache: dict = {}

    @classmethod
    def from_points(cls, pts: np.ndarray) -> "OpGrid":
        """pts [N, ndim + 1]: sizes then median seconds (duplicates: the last wins)."""
        axes = [np.unique(pts[:, k]) for k in range(pts.shape[1] - 1)]
        v = np.full([len(a) for a in axes], np.nan)
        idx = tuple(np.searchsorted(a, pts[:, k]) for k, a in enumerate(axes))
        v[idx] = pts[:, -1]
        return cls(axes, v)

    def _slice(self, fixed: tuple):
        """The grid contracted over the axes given as scalars (fixed: ((axis, value), ...)), cached."""
        hit = self._cache.get(fixed)
        if hit is not None:
            return hit
        v = self.v
        for k, x in sorted(fixed, reverse=True):  # highest axis first keeps lower axis numbers valid
            a = self.axes[k]
            if len(a) == 1:
                v = np.take(v, 0, axis=k)
                continue
            xc = min(max(x, a[0]), a[-1])
            i = int(np.clip(np.searchsorted(a, xc, side="right") - 1, 0, len(a) - 2))
            w = (xc - a[i]) / (a[i + 1] - a[i])
            v = (1 - w) * np.take(v, i, axis=k) + w * np.take(v, i + 1, axis=k)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[fixed] = v
        return v

    def __call__(self, *xs) -> np.ndarray:
        xs = [np.asarray(x, dtype=float) for x in xs]
        fixed = tuple((k, float(x.reshape(-1)[0])) for k, x in enumerate(xs) if x.size == 1)
        free = [k for k, x in enumerate(xs) if x.size != 1]
        shape = np.broadcast(*xs).shape
        v = self._slice(fixed)
        if not free:
            return np.full(shape, float(v))
        if len(free) == 1:
            a = self.axes[free[0]]
            return np.broadcast_to(np.interp(xs[free[0]], a, v) if len(a) > 1 else np.full(xs[free[0]].shape, v[0]),
                                   shape).copy()
        fx = np.broadcast_arrays(*[xs[k] for k in free])
        axes = [self.axes[k] for k in free]
        lo, w = [], []
        for x, a in zip(fx, axes):
            xc = np.clip(x, a[0], a[-1])
            if len(a) == 1:
                lo.append(np.zeros(x.shape, int))
                w.append(np.zeros(x.shape))
            else:
                i = np.clip(np.searchsorted(a, xc, side="right") - 1, 0, len(a) - 2)
                lo.append(i)
                w.append((xc - a[i]) / (a[i + 1] - a[i]))
        out = np.zeros(fx[0].shape)
        for corner in range(2 ** len(fx)):
            wt = np.ones(fx[0].shape)
            ix = []
            for k in range(len(fx)):
                up = (corner >> k) & 1
                wt = wt * (w[k] if up else 1.0 - w[k])
                ix.append(np.minimum(lo[k] + up, len(axes[k]) - 1))
            out = out + wt * v[tuple(ix)]
        return np.broadcast_to(out, shape).copy()


__all__ = ["OpGrid", "fill_holes"]
