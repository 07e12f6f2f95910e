"""`acceptance` figure: a calibrated AcceptanceModel — α by position with its 95 % intervals next to
the i.i.d. α, and the expected tokens per iteration over γ under both models (extrapolated positions
marked), so one sees where assuming i.i.d. acceptance over- or under-predicts.

Key assumption: as perfmodel.specdec.acceptance — positions beyond the observed ones repeat the last rate.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from specperf.perfmodel.specdec.maths import tokens_per_iteration
from specperf.perfmodel.specs.models import SpecError

from .common import COLORS, Setting, footnote, style
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(needs=("alpha",))  # what this kind reads (cli/plot_cmds.py)


def figure(setting: Setting) -> go.Figure:
    acc = setting.acceptance
    if acc is None:
        raise SpecError("the acceptance figure needs --acceptance FILE (from `specperf calibrate acceptance`) "
                        "or --alpha")
    g = np.asarray(setting.gammas, dtype=int)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("acceptance by draft position", "expected tokens per iteration"))
    src = f"source: {acc.source}" + (f", {acc.n_iterations:,} iterations" if acc.n_iterations else "")
    ci = acc.alpha_ci
    if acc.per_position:
        ab = np.asarray(acc.alpha_by_position)
        pos = np.arange(1, ab.size + 1)
        cis = np.asarray(acc.alpha_by_position_ci) if acc.alpha_by_position_ci else np.stack([ab, ab], axis=1)
        fig.add_trace(go.Scatter(
            x=pos, y=ab, mode="markers+lines", name="α by position (95 % CI)", line=dict(color=COLORS["draft"]),
            error_y=dict(type="data", symmetric=False, array=cis[:, 1] - ab, arrayminus=ab - cis[:, 0]),
            text=[f"position {i}: α = {a:.4f} [{lo:.4f}, {hi:.4f}]<br>{src}" for i, a, (lo, hi) in zip(pos, ab, cis)],
            hovertemplate="%{text}<extra></extra>"), row=1, col=1)
    xs = np.arange(1, max(len(acc.alpha_by_position or ()), int(g.max())) + 1)
    fig.add_trace(go.Scatter(
        x=xs, y=np.full(xs.size, acc.alpha), mode="lines", name="i.i.d. α" + (" (95 % CI)" if ci else ""),
        line=dict(color=COLORS["verify"], dash="dash"),
        text=[f"i.i.d. α = {acc.alpha:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + f"<br>{src}"] * xs.size,
        hovertemplate="%{text}<extra></extra>"), row=1, col=1)
    if ci:
        fig.add_trace(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=[ci[1]] * xs.size + [ci[0]] * xs.size,
                                 fill="toself", fillcolor="rgba(255,127,14,0.15)", line=dict(width=0), mode="lines",
                                 hoverinfo="skip", showlegend=False, name="i.i.d. CI"), row=1, col=1)
    iid = tokens_per_iteration(acc.alpha, g)
    fig.add_trace(go.Scatter(x=g, y=iid, mode="lines+markers", name="tokens/iteration, i.i.d. α",
                             line=dict(color=COLORS["verify"], dash="dash"),
                             text=[f"γ = {gi}: {t:.4f} tokens/iteration (i.i.d. α = {acc.alpha:.4f})" for gi, t in zip(g, iid)],
                             hovertemplate="%{text}<extra></extra>"), row=1, col=2)
    if acc.per_position:
        pp = acc.tokens_per_iteration(g)
        ext = [acc.extrapolated(int(gi)) for gi in g]
        fig.add_trace(go.Scatter(
            x=g, y=pp, mode="lines+markers", name="tokens/iteration, α by position",
            line=dict(color=COLORS["draft"]), marker=dict(symbol=["circle-open" if e else "circle" for e in ext], size=9),
            text=[f"γ = {gi}: {t:.4f} tokens/iteration (α by position)" + (" — extrapolated: positions beyond "
                  f"{acc.observed_positions} repeat the last rate" if e else "") for gi, t, e in zip(g, pp, ext)],
            hovertemplate="%{text}<extra></extra>"), row=1, col=2)
    fig.update_xaxes(title="draft position i", dtick=1, row=1, col=1)
    fig.update_yaxes(title="α_i", range=[0, 1], row=1, col=1)
    fig.update_xaxes(title="lookahead γ", dtick=1, row=1, col=2)
    fig.update_yaxes(title="E[tokens per iteration]", rangemode="tozero", row=1, col=2)
    style(fig, "Calibrated acceptance", acc.describe()[:120], legend_y=1.08, top=120)
    fig.update_layout(hovermode="x unified")  # traces share the x axis: one hover lists them all
    footnote(fig, src + "; open markers: γ beyond the observed positions (extrapolated)")
    return fig
