"""`breakeven` figure: over (batch, context), the best speedup over γ, with the line where
speculation stops paying (best speedup = 1) drawn; cells below it are better served autoregressively.

Key assumption: perfmodel.specdec.predict over γ × batch × context with the setting's acceptance; the best
speedup is the maximum over the setting's γ range, so "stops paying" means no γ in that range helps.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from specperf.perfmodel.specdec.predict import predict

from specperf.perfmodel.specs.hardware import resolve_gpu

from specperf.perfmodel.specdec.maths import draft_context

from .common import (MS, Setting, footnote, memory_needed_bytes, source_kind, source_line, sources_note,
                     speedup_colour, style, tag)
from .gamma import BATCHES, default_contexts
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(needs=("target", "draft", "alpha"), flags=("batch-list", "context-list"))  # what this kind reads (cli/plot_cmds.py)

BREAKEVEN_BATCHES = BATCHES + (512,)


def surface(setting: Setting, batches=BREAKEVEN_BATCHES, contexts=None):
    setting.need("target", "draft", "latency", "acceptance", kind="breakeven")
    contexts = list(contexts) if contexts is not None else default_contexts(setting)
    return predict(setting.target, setting.draft, setting.latency, setting.acceptance, setting.gammas,
                   list(batches), contexts, tp=setting.tp, mode=setting.single_mode("breakeven"))


def cell_estimated(setting: Setting, p) -> np.ndarray:
    """(B, C) True where the draft step or the verification at the cell's γ* is not all measured
    (analytical, operator-composed or mixed), from each forward's Provenance."""
    k = p.optimal_index
    out = np.zeros(k.shape, bool)
    mode = setting.single_mode("breakeven")
    for i, b in enumerate(p.batch):
        for j, c in enumerate(p.context):
            g = int(p.gamma[k[i, j]])
            srcs = {**setting.latency.forward(setting.draft, int(b), 1, draft_context(int(c), g), 1, mode).sources,
                    **setting.latency.forward(setting.target, int(b), g + 1, int(c), setting.tp, mode).sources}
            out[i, j] = any(source_kind(v) not in ("measured", "none") for v in srcs.values())
    return out


def figure(setting: Setting, batches=BREAKEVEN_BATCHES, contexts=None) -> go.Figure:
    p = surface(setting, batches, contexts)
    best = p.optimal_speedup  # (B, C)
    k = p.optimal_index
    src = source_line(p.sources)
    gcap = int(p.gamma[-1])
    mem = resolve_gpu(setting.gpu).memory_bytes if setting.gpu else None
    need = memory_needed_bytes(setting.target, setting.draft, setting.tp, p.batch[:, None], p.context[None, :],
                               p.gamma[k])
    fits = np.ones(best.shape, bool) if mem is None else need <= mem
    est = cell_estimated(setting, p)
    text = np.empty(best.shape, dtype=object)
    for i, b in enumerate(p.batch):
        for j, c in enumerate(p.context):
            g = int(k[i, j])
            verdict = "speculation pays" if best[i, j] > 1 else "autoregressive is faster: off"
            if p.gamma[g] == gcap and best[i, j] > 1:
                verdict += f"; γ* is the search cap {gcap}, the optimum may be larger"
            fit = "" if fits[i, j] else (f"<b>does not fit</b>: {need[i, j] / 1e9:,.0f} GB of weights + KV cache "
                                         f"> {mem / 1e9:.0f} GB<br>")
            if est[i, j]:
                fit += "<i>latency at this cell is not all measured (analytical or mixed): ~ on its label</i><br>"
            text[i, j] = fit + (f"batch = {b}   context = {c}<br>best speedup = {best[i, j]:.3f}× at γ* = {p.gamma[g]}"
                          f" ({verdict})<br>tokens/s = {p.throughput_tok_s[i, j, g]:,.1f} vs baseline "
                          f"{p.baseline_tok_s[i, j, g]:,.1f}<br>t_draft = {p.t_draft_s[i, j, g] * MS:.4f} ms, "
                          f"t_verify = {p.t_verify_s[i, j, g] * MS:.4f} ms, t_target = "
                          f"{p.t_target_s[i, j, g] * MS:.4f} ms<br>{src}")
    # x/y as category indices so log-spaced grids get equal cells; tick labels carry the values
    xi, yi = np.arange(len(p.context)), np.arange(len(p.batch))
    shown = np.where(fits, best, np.nan)  # cells whose KV cache does not fit are masked (grey)
    col = speedup_colour(shown if np.isfinite(shown).any() else best)
    lim = col["cmax"]
    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=xi, y=yi, z=np.where(fits, np.log2(best), np.nan), text=text,
                             hovertemplate="%{text}<extra></extra>", colorscale=col["colorscale"], zmid=0.0,
                             zmin=col["cmin"], zmax=col["cmax"], name="best speedup", colorbar=col["colorbar"],
                             hoverongaps=False))
    if not fits.all():
        fig.add_trace(go.Heatmap(x=xi, y=yi, z=np.where(fits, np.nan, 1.0), text=text, showscale=False,
                                 colorscale=[[0, "#d9d9d9"], [1, "#d9d9d9"]], hoverongaps=False,
                                 hovertemplate="%{text}<extra></extra>", name="does not fit in GPU memory",
                                 showlegend=True))
    if np.nanmin(shown, initial=np.inf) < 1.0 < np.nanmax(shown, initial=-np.inf):
        fig.add_trace(go.Contour(x=xi, y=yi, z=shown, connectgaps=False, showscale=False, hoverinfo="skip",
                                 contours=dict(coloring="lines", start=1.0, end=1.0, size=1.0),
                                 colorscale=[[0, "black"], [1, "black"]], line=dict(width=3),
                                 name="speedup = 1: speculation stops paying", showlegend=True))
    def label(i, j):
        if not fits[i, j]:
            return "no fit"
        if best[i, j] <= 1.0:
            return "off"
        g = int(p.gamma[k[i, j]])
        return ("~" if est[i, j] else "") + f"γ*={g}" + ("+" if g == gcap else "")

    fig.add_trace(go.Scatter(x=np.repeat(xi, len(yi)), y=np.tile(yi, len(xi)), mode="text",
                             text=[label(i, j) for j in xi for i in yi], hoverinfo="skip",
                             textfont=dict(size=9, color=["white" if fits[i, j] and abs(np.log2(best[i, j])) > 0.6 * lim else "#333"
                                                          for j in xi for i in yi]),
                             showlegend=False, name="γ* labels"))
    fig.update_xaxes(title="context (tokens in KV cache)", tickvals=xi, ticktext=[str(c) for c in p.context])
    fig.update_yaxes(title="batch (sequences)", tickvals=yi, ticktext=[str(b) for b in p.batch])
    style(fig, f"Where speculation stops paying: {setting.draft.name} → {setting.target.name}",
          f"{setting.gpu}, tp={setting.tp}, {setting.mode}, {setting.acceptance.describe()}, "
          f"γ ≤ {max(setting.gammas)}", legend_y=1.02)
    tag(fig, p.sources)
    footnote(fig, "labels: γ*=N+ at the search cap (the optimum may be larger) · off: speculation loses · "
                  "~ latency not all measured · no fit: weights + KV cache exceed the GPU<br>" + sources_note(p.sources))
    return fig
