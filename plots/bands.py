"""90 % bands on figures (issue 14): the Monte Carlo intervals of perfmodel.specdec.uncertainty for a
Prediction, picked at γ* or per γ, and the two plotly shapes that draw them (error bars, filled band).

Key assumption: a figure's band is exactly `specperf predict --json`'s `<field>_lo/_hi` for the same
inputs (same propagate call, same seed); traces carry the numbers in `customdata` as [lo, hi] so tests
and readers can check them.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from specperf.perfmodel.specdec.predict import predict
from specperf.perfmodel.specdec.uncertainty import LEVEL, propagate

BAND_NOTE = (f"bands / error bars: {LEVEL:.0%} intervals (Monte Carlo over each latency source's validated "
             "error band and α's interval where one is given; α without an interval is taken as exact)")


def at_optimum(setting, mode: str, batches, contexts, field: str = "speedup"):
    """(lo, hi) arrays (batch, context) of `field` at each cell's γ*, each cell propagated on its own
    one-cell prediction — as `predict --json` for that cell does (a sweep's propagate would take the
    widest latency source anywhere in the sweep for every cell)."""
    lo = np.empty((len(batches), len(contexts)))
    hi = np.empty_like(lo)
    for i, b in enumerate(batches):
        for j, c in enumerate(contexts):
            p = predict(setting.target, setting.draft, setting.latency, setting.acceptance, setting.gammas,
                        [int(b)], [int(c)], tp=setting.tp, mode=mode)
            u, k = propagate(p, setting.acceptance), int(p.optimal_index[0, 0])
            lo[i, j], hi[i, j] = getattr(u, f"{field}_lo")[0, 0, k], getattr(u, f"{field}_hi")[0, 0, k]
    return lo, hi


def error_y(y, lo, hi) -> dict:
    """Asymmetric error bars from y to [lo, hi] (NaN where y is masked)."""
    y, lo, hi = (np.asarray(v, dtype=float) for v in (y, lo, hi))
    return dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo, thickness=1.2, width=3)


def filled(x, lo, hi, name: str, color: str, **kw) -> list[go.Scatter]:
    """A shaded band: the upper edge (invisible), then the lower edge filled up to it."""
    cd = np.stack([np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)], axis=-1)
    return [go.Scatter(x=x, y=hi, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip",
                       name=f"{name} (upper)", **kw),
            go.Scatter(x=x, y=lo, mode="lines", line=dict(width=0), fill="tonexty", fillcolor=color,
                       name=name, hoverinfo="skip", customdata=cd, meta="band", **kw)]
