"""`breakdown` figure: one iteration's time split into draft steps (γ·t_draft), verification
(t_verify over γ+1 tokens) and overhead, stacked per γ; beside it, one decoder layer's latency for
the draft versus the target — read from a measured profile's rows when one is given.

Key assumption: as perfmodel.specdec.predict — the draft runs γ sequential one-token forwards, the target
verifies γ+1 tokens in one forward, and the per-iteration overhead is added once.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.predict import predict
from specperf.perfmodel.specdec.uncertainty import propagate
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key

from . import profile_rows
from .bands import BAND_NOTE, error_y
from .common import COLORS, MS, Setting, footnote, source_kind, source_line, sources_note, style, tag
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(needs=("target", "draft"))  # what this kind reads (cli/plot_cmds.py)

US = 1e6  # seconds → microseconds, for display only


def iteration_parts(setting: Setting):
    """Prediction at the setting's (batch, context) over its γ range (α only sets the speedup line)."""
    setting.need("target", "draft", "latency", kind="breakdown")
    acc = setting.acceptance or AcceptanceModel(alpha=0.0, source="none given: speedup not shown")
    return predict(setting.target, setting.draft, setting.latency, acc, setting.gammas, [setting.batch],
                   [setting.context], tp=setting.tp, mode=setting.single_mode("breakdown"))


def layer_bars(setting: Setting) -> list[dict]:
    """Per-layer (and LM-head) latency of draft and target at one new token, with its source."""
    mode = setting.single_mode("breakdown")
    b, c = setting.batch, setting.context
    out = []
    if setting.profile:
        table = LatencyTable.load(setting.profile)
        for role, spec, tp in (("draft", setting.draft, 1), ("target", setting.target, setting.tp)):
            m = profile_rows.lookup(table, setting.profile, component="layer", shape=layer_shape_key(spec),
                                    mode=mode, tp=tp, batch=b, new_tokens=1, context=c, figure="breakdown")
            out.append({"role": role, "part": "one decoder layer", "spec": spec, "tp": tp, "median_s": m.median_s,
                        "p10_s": m.p10_s, "p90_s": m.p90_s, "context": m.context, "source": m.source})
            h = profile_rows.lookup(table, setting.profile, component="lm_head", shape=head_shape_key(spec),
                                    mode=mode, tp=tp, batch=b, new_tokens=1, context=c, figure="breakdown",
                                    required=False)
            if h is not None:
                out.append({"role": role, "part": "embed + LM head", "spec": spec, "tp": tp,
                            "median_s": h.median_s, "p10_s": h.p10_s, "p90_s": h.p90_s, "context": h.context,
                            "source": h.source})
        return out
    setting.need("latency", kind="breakdown")
    for role, spec, tp in (("draft", setting.draft, 1), ("target", setting.target, setting.tp)):
        ft = setting.latency.forward(spec, b, 1, c, tp, mode)
        parts = [("one decoder layer", ft.layer_s, "layer"), ("embed + LM head", ft.lm_head_s, "lm_head")]
        if tp > 1:
            parts.insert(1, ("all-reduces of one layer", ft.allreduce_s, "allreduce"))
        for part, val, key in parts:
            v = float(np.asarray(val))
            out.append({"role": role, "part": part, "spec": spec, "tp": tp, "median_s": v, "p10_s": v,
                        "p90_s": v, "context": c, "source": ft.sources.get(key, "")})
    return out


def figure(setting: Setting) -> go.Figure:
    p = iteration_parts(setting)
    g = p.gamma
    draft_ms = g * p.t_draft_s[0, 0] * MS
    verify_ms = p.t_verify_s[0, 0] * MS
    ov_ms = p.overhead_s[0, 0] * MS
    it_ms = p.iteration_s[0, 0] * MS
    src = source_line(p.sources)
    u = propagate(p, setting.acceptance or AcceptanceModel(alpha=0.0))
    it_lo, it_hi = u.iteration_s_lo[0, 0] * MS, u.iteration_s_hi[0, 0] * MS
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.16,
                        specs=[[{"secondary_y": True}, {}]],
                        subplot_titles=("one iteration, per lookahead γ",
                                        f"one layer at 1 new token (batch {setting.batch})"))
    base = np.zeros_like(it_ms)
    for name, vals, color in (("draft steps γ·t_draft", draft_ms, COLORS["draft"]),
                              ("verification t_verify(γ+1)", verify_ms, COLORS["verify"]),
                              ("overhead", ov_ms, COLORS["overhead"])):
        text = [f"γ = {gi}<br>{name} = {v:.4f} ms ({v / t:.1%} of the iteration)<br>iteration = {t:.4f} ms"
                f"<br>t_draft = {td * MS:.4f} ms/step<br>{src}"
                for gi, v, t, td in zip(g, vals, it_ms, p.t_draft_s[0, 0])]
        # stacked by explicit bases: the right panel needs barmode="group", and plotly has one barmode
        fig.add_trace(go.Bar(x=g, y=vals, base=base.copy(), name=name, marker_color=color, text=text,
                             textposition="none", offsetgroup="iteration",
                             hovertemplate="%{text}<extra></extra>"), row=1, col=1)
        base = base + vals
    # the iteration's 90 % band: error bars on an invisible marker at each stack's top
    fig.add_trace(go.Scatter(x=g, y=it_ms, mode="markers", marker=dict(size=1, color="black"),
                             error_y=dict(error_y(it_ms, it_lo, it_hi), color="black"), name="iteration, 90 % band",
                             customdata=np.stack([it_lo, it_hi], axis=-1), meta="band",
                             text=[f"γ = {gi}<br>iteration = {t:.4f} ms, 90 % interval {a:.4f}–{b:.4f} ms"
                                   for gi, t, a, b in zip(g, it_ms, it_lo, it_hi)],
                             hovertemplate="%{text}<extra></extra>"), row=1, col=1)
    if setting.acceptance is not None:
        k = int(p.optimal_index[0, 0])
        slo, shi = u.speedup_lo[0, 0], u.speedup_hi[0, 0]
        fig.add_trace(go.Scatter(x=g, y=p.speedup[0, 0], mode="lines+markers", name="speedup (right axis)",
                                 line=dict(color="black"), error_y=dict(error_y(p.speedup[0, 0], slo, shi), color="#444"),
                                 customdata=np.stack([slo, shi], axis=-1), meta="band",
                                 text=[f"γ = {gi}<br>speedup = {s:.3f}× (90 %: {a:.3f}–{b:.3f})<br>tokens/iteration = {t:.3f}<br>"
                                       f"{setting.acceptance.describe()}"
                                       for gi, s, t, a, b in zip(g, p.speedup[0, 0], p.tokens_per_iteration[0, 0], slo, shi)],
                                 hovertemplate="%{text}<extra></extra>"), row=1, col=1, secondary_y=True)
        fig.add_annotation(x=g[k], y=p.speedup[0, 0, k], text=f"γ* = {g[k]}", showarrow=True, arrowhead=2,
                           row=1, col=1, secondary_y=True)
        fig.update_yaxes(title=dict(text="speedup ×", standoff=2), rangemode="tozero", secondary_y=True,
                         row=1, col=1, showgrid=False, tickformat=".2f")
    fig.update_xaxes(title="lookahead γ", dtick=1, row=1, col=1)
    fig.update_yaxes(title="time per iteration (ms)", secondary_y=False, row=1, col=1)
    bars = layer_bars(setting)
    sources = dict(p.sources)
    for part, pattern in (("one decoder layer", ""), ("all-reduces of one layer", "/"), ("embed + LM head", ".")):
        sel = [r for r in bars if r["part"] == part]
        if not sel:
            continue
        x = [f"{r['role']}<br>{r['spec'].name}" for r in sel]
        y = [r["median_s"] * US for r in sel]
        err = dict(type="data", symmetric=False, array=[(r["p90_s"] - r["median_s"]) * US for r in sel],
                   arrayminus=[(r["median_s"] - r["p10_s"]) * US for r in sel]) if setting.profile else None
        text = [f"{r['role']} {r['spec'].name}: {part}<br>median = {r['median_s'] * US:.2f} µs"
                + (f" (p10 {r['p10_s'] * US:.2f}, p90 {r['p90_s'] * US:.2f})" if setting.profile else "")
                + f"<br>depth {r['spec'].n_layers} layers, tp={r['tp']}, context {r['context']}"
                + f"<br>source: {source_kind(r['source'])} — {r['source']}" for r in sel]
        fig.add_trace(go.Bar(x=x, y=y, name=f"right: {part}", error_y=err, text=text, textposition="none",
                             marker=dict(color=[COLORS[r["role"] if r["role"] == "draft" else "target"] for r in sel],
                                         pattern_shape=pattern), hovertemplate="%{text}<extra></extra>"),
                      row=1, col=2)
        if setting.profile:
            sources.update({f"right panel {r['role']} {part}": r["source"] for r in sel})
    fig.update_yaxes(title="latency (µs)", row=1, col=2)
    style(fig, f"Where an iteration's time goes: {setting.draft.name} → {setting.target.name}", setting.where(),
          legend_y=1.1, top=140)
    fig.update_layout(barmode="group")
    fig.update_layout(hovermode="x unified")  # traces share the x axis: one hover lists them all
    tag(fig, sources)
    footnote(fig, BAND_NOTE + "<br>" + sources_note(sources), y=-0.14)
    return fig
