"""`gamma` figure: the optimal lookahead γ* and the speedup it gives, versus batch (at the setting's
context) and versus context length (at the setting's batch), per execution mode.

Key assumption: everything comes from perfmodel.specdec.predict over γ × batch × context; γ* is the
argmax over the setting's γ range (ties: smallest γ), so it is capped at max(γ).
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from specperf.perfmodel.specdec.predict import predict

import numpy as np

from specperf.perfmodel.specs.hardware import resolve_gpu

from .bands import BAND_NOTE, at_optimum, error_y
from .common import COLORS, MS, Setting, footnote, memory_needed_bytes, source_line, sources_note, style, tag
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(needs=("target", "draft", "alpha"), flags=("batch-list", "context-list"))  # what this kind reads (cli/plot_cmds.py)

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTEXTS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def default_contexts(setting: Setting) -> list[int]:
    """CONTEXTS, limited to what learned-position models (OPT) can hold at the largest γ."""
    limit = min((s.max_positions for s in (setting.target, setting.draft) if s and s.learned_positions),
                default=None)
    if limit is None:
        return list(CONTEXTS)
    return [c for c in CONTEXTS if c + max(setting.gammas) + 1 <= limit] or [min(CONTEXTS)]


def sweeps(setting: Setting, batches=BATCHES, contexts=None) -> dict:
    """{mode: {'batch': Prediction over batches at setting.context, 'context': … over contexts}}."""
    setting.need("target", "draft", "latency", "acceptance", kind="gamma")
    contexts = list(contexts) if contexts is not None else default_contexts(setting)
    out = {}
    for mode in setting.modes:
        kw = dict(tp=setting.tp, mode=mode)
        out[mode] = {
            "batch": predict(setting.target, setting.draft, setting.latency, setting.acceptance,
                             setting.gammas, batches, [setting.context], **kw),
            "context": predict(setting.target, setting.draft, setting.latency, setting.acceptance,
                               setting.gammas, [setting.batch], contexts, **kw)}
    return out


def _hover(p, axis: str) -> list[str]:
    k = p.optimal_index
    out = []
    flat = [(i, 0) for i in range(len(p.batch))] if axis == "batch" else [(0, j) for j in range(len(p.context))]
    src = source_line(p.sources)
    for i, j in flat:
        g = int(k[i, j])
        flag = (" — off: autoregressive is faster" if p.speedup[i, j, g] < 1 else
                " (search cap: the optimum may be larger)" if g == len(p.gamma) - 1 else "")
        out.append(f"batch = {p.batch[i]}   context = {p.context[j]}<br>γ* = {p.gamma[g]}{flag}"
                   f"<br>speedup = {p.speedup[i, j, g]:.3f}×<br>tokens/s = {p.throughput_tok_s[i, j, g]:,.1f}"
                   f" (baseline {p.baseline_tok_s[i, j, g]:,.1f})<br>tokens/iteration = {p.tokens_per_iteration[i, j, g]:.3f}"
                   f"<br>iteration = {p.iteration_s[i, j, g] * MS:.4f} ms<br>mode = {p.mode}<br>{src}")
    return out


def figure(setting: Setting, batches=BATCHES, contexts=None) -> go.Figure:
    data = sweeps(setting, batches, contexts)
    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, vertical_spacing=0.08, horizontal_spacing=0.08,
                        subplot_titles=(f"versus batch (context {setting.context})",
                                        f"versus context (batch {setting.batch})", "", ""))
    sources = {}
    mem = resolve_gpu(setting.gpu).memory_bytes if setting.gpu else np.inf
    for mode, d in data.items():
        color = COLORS[mode]
        for col, axis in ((1, "batch"), (2, "context")):
            p = d[axis]
            x = p.batch if axis == "batch" else p.context
            opt_g = p.optimal_gamma[:, 0] if axis == "batch" else p.optimal_gamma[0, :]
            opt_s = p.optimal_speedup[:, 0] if axis == "batch" else p.optimal_speedup[0, :]
            lo, hi = at_optimum(setting, mode, p.batch, p.context)
            lo, hi = (v[:, 0] if axis == "batch" else v[0, :] for v in (lo, hi))
            text = _hover(p, axis)
            show = col == 1
            gb, gc = (p.batch, setting.context) if axis == "batch" else (setting.batch, p.context)
            fits = memory_needed_bytes(setting.target, setting.draft, setting.tp, gb, gc, opt_g) <= mem
            opt_g, opt_s = np.where(fits, opt_g, np.nan), np.where(fits, opt_s, np.nan)  # gaps: does not fit
            text = [t + f"<br>90 % interval: {a:.3f}–{b:.3f}×" for t, a, b in zip(text, lo, hi)]
            cap = max(setting.gammas)  # ▲: γ* is the search cap (the optimum may lie beyond); ✕: off, speedup < 1
            sym = ["x" if s_ < 1 else "triangle-up" if g_ == cap else "circle" for g_, s_ in zip(opt_g, opt_s)]
            fig.add_trace(go.Scatter(x=x, y=opt_g, mode="lines+markers", line=dict(color=color, shape="hv"),
                                     marker=dict(symbol=sym, size=[10 if m != "circle" else 6 for m in sym]),
                                     name=f"γ* ({mode})", legendgroup=mode, showlegend=show, text=text,
                                     hovertemplate="%{text}<extra></extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=opt_s, mode="lines+markers", line=dict(color=color, dash="dot"),
                                     name=f"speedup at γ* ({mode})", legendgroup=mode, showlegend=show,
                                     error_y=dict(error_y(opt_s, lo, hi), color=color),
                                     customdata=np.stack([lo, hi], axis=-1), meta="band", text=text, hovertemplate="%{text}<extra></extra>"), row=2, col=col)
            sources.update(p.sources)
    for col, title in ((1, "batch (sequences)"), (2, "context (tokens in KV cache)")):
        fig.update_xaxes(type="log", title=title, row=2, col=col)
        fig.update_xaxes(type="log", row=1, col=col)
    fig.update_yaxes(title="optimal γ*", rangemode="tozero", dtick=1 if max(setting.gammas) <= 12 else None, row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_yaxes(title="speedup at γ* (×)", row=2, col=1)
    fig.add_hline(y=1.0, line=dict(color="#999", dash="dash", width=1), row=2, col="all")
    style(fig, f"Optimal lookahead of {setting.draft.name} → {setting.target.name}",
          f"{setting.gpu}, tp={setting.tp}, {setting.acceptance.describe()}, γ ≤ {max(setting.gammas)}",
          height=680, legend_y=1.09, top=130)
    fig.update_layout(hovermode="x unified")  # traces share the x axis: one hover lists them all
    tag(fig, sources)
    footnote(fig, "▲ γ* at the search cap (the optimum may be larger) · ✕ off: speedup < 1 · gaps: weights + KV "
                  "cache exceed the GPU<br>" + BAND_NOTE + "<br>" + sources_note(sources))
    return fig
