"""`breakeven` figure: over (batch, context), the best speedup over γ, with the line where
speculation stops paying (best speedup = 1) drawn; cells below it are better served autoregressively.

Key assumption: perfmodel.specdec.predict over γ × batch × context with the setting's acceptance; the best
speedup is the maximum over the setting's γ range, so "stops paying" means no γ in that range helps.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from perfmodel.specdec.predict import predict

from .common import MS, Setting, footnote, source_line, sources_note, style, tag
from .gamma import BATCHES, default_contexts

BREAKEVEN_BATCHES = BATCHES + (512,)


def surface(setting: Setting, batches=BREAKEVEN_BATCHES, contexts=None):
    setting.need("target", "draft", "latency", "acceptance", kind="breakeven")
    contexts = list(contexts) if contexts is not None else default_contexts(setting)
    return predict(setting.target, setting.draft, setting.latency, setting.acceptance, setting.gammas,
                   list(batches), contexts, tp=setting.tp, mode=setting.single_mode("breakeven"))


def figure(setting: Setting, batches=BREAKEVEN_BATCHES, contexts=None) -> go.Figure:
    p = surface(setting, batches, contexts)
    best = p.optimal_speedup  # (B, C)
    k = p.optimal_index
    src = source_line(p.sources)
    text = np.empty(best.shape, dtype=object)
    for i, b in enumerate(p.batch):
        for j, c in enumerate(p.context):
            g = int(k[i, j])
            verdict = "speculation pays" if best[i, j] > 1 else "autoregressive is faster"
            text[i, j] = (f"batch = {b}   context = {c}<br>best speedup = {best[i, j]:.3f}× at γ* = {p.gamma[g]}"
                          f" ({verdict})<br>tokens/s = {p.throughput_tok_s[i, j, g]:,.1f} vs baseline "
                          f"{p.baseline_tok_s[i, j, g]:,.1f}<br>t_draft = {p.t_draft_s[i, j, g] * MS:.4f} ms, "
                          f"t_verify = {p.t_verify_s[i, j, g] * MS:.4f} ms, t_target = "
                          f"{p.t_target_s[i, j, g] * MS:.4f} ms<br>{src}")
    # x/y as category indices so log-spaced grids get equal cells; tick labels carry the values
    xi, yi = np.arange(len(p.context)), np.arange(len(p.batch))
    lim = max(float(np.max(np.abs(np.log2(best)))), 0.05)
    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=xi, y=yi, z=np.log2(best), text=text, hovertemplate="%{text}<extra></extra>",
                             colorscale="RdBu", zmid=0.0, zmin=-lim, zmax=lim, name="best speedup",
                             colorbar=dict(title="best speedup ×", tickvals=np.log2([0.5, 0.75, 1, 1.5, 2, 3, 4]),
                                           ticktext=["0.5", "0.75", "1", "1.5", "2", "3", "4"])))
    if best.min() < 1.0 < best.max():
        fig.add_trace(go.Contour(x=xi, y=yi, z=best, showscale=False, hoverinfo="skip",
                                 contours=dict(coloring="lines", start=1.0, end=1.0, size=1.0),
                                 colorscale=[[0, "black"], [1, "black"]], line=dict(width=3),
                                 name="speedup = 1: speculation stops paying", showlegend=True))
    fig.add_trace(go.Scatter(x=np.repeat(xi, len(yi)), y=np.tile(yi, len(xi)), mode="text",
                             text=[f"γ*={p.gamma[k[i, j]]}" for j in xi for i in yi], hoverinfo="skip",
                             textfont=dict(size=9, color=["white" if abs(np.log2(best[i, j])) > 0.6 * lim else "#333"
                                                          for j in xi for i in yi]),
                             showlegend=False, name="γ* labels"))
    fig.update_xaxes(title="context (tokens in KV cache)", tickvals=xi, ticktext=[str(c) for c in p.context])
    fig.update_yaxes(title="batch (sequences)", tickvals=yi, ticktext=[str(b) for b in p.batch])
    style(fig, f"Where speculation stops paying: {setting.draft.name} → {setting.target.name}",
          f"{setting.gpu}, tp={setting.tp}, {setting.mode}, {setting.acceptance.describe()}, "
          f"γ ≤ {max(setting.gammas)}", legend_y=1.02)
    tag(fig, p.sources)
    footnote(fig, sources_note(p.sources))
    return fig
