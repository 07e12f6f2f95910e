"""`speedup` figure: speedup over acceptance α × lookahead γ, as a surface you can rotate (or a map),
with the optimum ridge γ*(α) marked and the break-even level (speedup = 1) drawn.

Bands: per α the 90 % interval of `predict --alpha α` (latency error bands only; α on the axis is
exact), drawn as the ridge's band (surface) or the break-even line at both interval ends (map).
Columns (γ) whose draft step, verification or overhead is not all measured are faded.

Key assumption: i.i.d. acceptance. Latencies (draft step, verification over γ+1 tokens, overhead)
do not depend on α, so one perfmodel.specdec.predict call gives them and the α axis is pure arithmetic with
perfmodel.specdec.maths; with a cost ratio c alone it is Leviathan et al.'s form E[tokens]/(γc + 1).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.predict import check_gammas, predict
from specperf.perfmodel.specdec.maths import draft_context, iteration_s, speedup, speedup_cost_ratio, tokens_per_iteration
from specperf.perfmodel.specdec.uncertainty import propagate
from specperf.perfmodel.specs.models import SpecError

from .common import (MS, COLORS, Setting, footnote, source_kind, source_line, sources_note, speedup_colour,
                     style, tag)
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(needs=("target", "draft"), flags=("cost-ratio", "style"), gamma_max=12, cost_ratio_replaces_models=True)  # what this kind reads (cli/plot_cmds.py)

ALPHAS = np.round(np.arange(0.0, 0.99, 0.01), 2)  # 0.00 … 0.98: α = 1 is the draft = target limit
STYLES = ("surface", "map")


def grid(setting: Setting, cost_ratio: float | None = None, alphas=ALPHAS) -> dict:
    """Speedup (A, G) over alphas × gammas, with the latencies behind it and their sources."""
    g = check_gammas(list(setting.gammas))
    a = np.asarray(alphas, dtype=float)
    tpi = tokens_per_iteration(a[:, None], g[None, :])
    if cost_ratio is not None:
        if not np.isfinite(cost_ratio) or cost_ratio < 0:
            raise SpecError(f"cost-ratio={cost_ratio!r} is not allowed; c = t_draft/t_target must be ≥ 0")
        s = speedup_cost_ratio(a[:, None], g[None, :], cost_ratio)
        src = {"latency": f"none: cost ratio c={cost_ratio:g} (Leviathan et al. 2023, Thm 3.8)"}
        return {"alpha": a, "gamma": g, "speedup": s, "tokens_per_iteration": tpi, "iteration_s": None, "lo": None,
                "hi": None, "estimated": np.zeros(g.size, bool),
                "sources": src, "cost_ratio": float(cost_ratio), "hover_source": "latency: none (cost ratio)"}
    setting.need("target", "draft", "latency", kind="speedup")
    mode = setting.single_mode("speedup")
    p = predict(setting.target, setting.draft, setting.latency, AcceptanceModel(alpha=0.0, source="α axis"),
                g, [setting.batch], [setting.context], tp=setting.tp, mode=mode)
    t_d, t_v, ov = p.t_draft_s[0, 0], p.t_verify_s[0, 0], p.overhead_s[0, 0]
    t_t, ov0 = p.t_target_s[0, 0, 0], p.baseline_overhead_s[0, 0, 0]
    it = iteration_s(g, t_d, t_v, ov)
    s = speedup(tpi, it[None, :], t_t, ov0)
    src = {k: v for k, v in p.sources.items() if k != "acceptance"}
    # 90 % latency bands per α (α on the axis is exact): the same propagate as predict --alpha a
    us = [propagate(p, AcceptanceModel(alpha=float(x))) for x in a]
    lo, hi = (np.stack([getattr(u, f)[0, 0] for u in us]) for f in ("speedup_lo", "speedup_hi"))
    return {"alpha": a, "lo": lo, "hi": hi, "estimated": estimated(setting, g, mode), "gamma": g, "speedup": s, "tokens_per_iteration": tpi, "iteration_s": it,
            "t_draft_s": t_d, "t_verify_s": t_v, "overhead_s": ov, "t_target_s": t_t,
            "cost_ratio": float(t_d[0] / t_t), "sources": src, "hover_source": source_line(src)}


def estimated(setting: Setting, gammas, mode: str) -> np.ndarray:
    """(G,) True where the draft step, the verification or the overhead at γ is not all measured
    (analytical, operator-composed or mixed), from each forward's Provenance."""
    b, c, lat = setting.batch, setting.context, setting.latency
    out = []
    for g in (int(x) for x in gammas):
        srcs = {**lat.forward(setting.draft, b, 1, draft_context(c, g), 1, mode).sources,
                **lat.forward(setting.target, b, g + 1, c, setting.tp, mode).sources,
                "overhead": lat.overhead_s(setting.target, b, g, mode)[1]}
        out.append(any(source_kind(v) not in ("measured", "none") for v in srcs.values()))
    return np.array(out, bool)


def ridge(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """γ*(α) and the speedup there (ties: smallest γ)."""
    k = np.argmax(d["speedup"], axis=1)
    return d["gamma"][k], d["speedup"][np.arange(len(k)), k]


def _hover(d: dict) -> np.ndarray:
    A, G = d["speedup"].shape
    out = np.empty((A, G), dtype=object)
    for i in range(A):
        for j in range(G):
            t = (f"α = {d['alpha'][i]:.2f}   γ = {d['gamma'][j]}<br>speedup = {d['speedup'][i, j]:.3f}×"
                 f"<br>tokens/iteration = {d['tokens_per_iteration'][i, j]:.3f}")
            if d["iteration_s"] is not None:
                t += f" (90 %: {d['lo'][i, j]:.3f}–{d['hi'][i, j]:.3f})<br>iteration = {d['iteration_s'][j] * MS:.4f} ms"
            out[i, j] = t + f"<br>c = {d['cost_ratio']:.4f}<br>{d['hover_source']}"
    return out


def figure(setting: Setting, cost_ratio: float | None = None, style_: str = "surface", alphas=ALPHAS) -> go.Figure:
    if style_ not in STYLES:
        raise SpecError(f"style={style_!r} is not allowed; use {' or '.join(STYLES)}")
    d = grid(setting, cost_ratio, alphas)
    g_star, s_star = ridge(d)
    text = _hover(d)
    cap = int(d["gamma"][-1])
    ridge_text = [f"ridge: α = {a:.2f}, " + (f"off (best γ = {g} gives {s:.3f}× < 1)" if s < 1 else
                  f"γ* = {g}{' (search cap)' if g == cap else ''}, speedup = {s:.3f}×")
                  for a, g, s in zip(d["alpha"], g_star, s_star)]
    col = speedup_colour(d["speedup"])
    lz = np.log2(d["speedup"])
    fig = go.Figure()
    if style_ == "surface":
        fig.add_trace(go.Surface(
            x=d["gamma"], y=d["alpha"], z=d["speedup"], surfacecolor=lz, text=text,
            hovertemplate="%{text}<extra></extra>", name="speedup", **col,
            contours=dict(z=dict(show=True, start=1.0, end=1.0, size=1.0, color="white", width=4))))
        fig.add_trace(go.Scatter3d(x=g_star, y=d["alpha"], z=s_star * 1.01, mode="lines+markers",
                                   line=dict(color=COLORS["ridge"], width=6), marker=dict(size=2.5),
                                   name="optimum ridge γ*(α)", text=ridge_text,
                                   hovertemplate="%{text}<extra></extra>"))
        if d["lo"] is not None:
            k = np.searchsorted(d["gamma"], g_star)
            rows = np.arange(len(k))
            for e, nm in (("lo", "ridge 90 % band (lower)"), ("hi", "ridge 90 % band (upper)")):
                fig.add_trace(go.Scatter3d(x=g_star, y=d["alpha"], z=d[e][rows, k] * 1.01, mode="lines",
                                           line=dict(color=COLORS["ridge"], width=3, dash="dash"), name=nm,
                                           legendgroup="band", meta="band", customdata=d[e][rows, k],
                                           hovertemplate="α %{y:.2f}: %{customdata:.3f}×<extra>" + nm + "</extra>"))
        est = d["estimated"]
        if est.any() and not est.all():  # a grey veil just above the columns whose latency is not all measured
            fig.add_trace(go.Surface(x=d["gamma"], y=d["alpha"], z=np.where(est[None, :], d["speedup"] * 1.004, np.nan),
                                     colorscale=[[0, "#bbbbbb"], [1, "#bbbbbb"]], showscale=False, opacity=0.6,
                                     hoverinfo="skip", name="latency not all measured", showlegend=True, meta="estimated"))
        fig.update_layout(scene=dict(xaxis=dict(title="lookahead γ", dtick=1), yaxis_title="acceptance α",
                                     zaxis_title="speedup ×", camera=dict(eye=dict(x=1.6, y=-1.6, z=0.9))),
                          showlegend=True, legend=dict(x=0.01, y=0.98))
    else:
        fig.add_trace(go.Heatmap(x=d["gamma"], y=d["alpha"], z=lz, text=text, hovertemplate="%{text}<extra></extra>",
                                 colorscale=col["colorscale"], zmid=0.0, zmin=col["cmin"], zmax=col["cmax"],
                                 colorbar=col["colorbar"], name="speedup"))
        fig.add_trace(go.Contour(x=d["gamma"], y=d["alpha"], z=d["speedup"], showscale=False,
                                 contours=dict(coloring="lines", start=1.0, end=1.0, size=1.0, showlabels=True),
                                 line=dict(width=2, dash="dash"), colorscale=[[0, "black"], [1, "black"]], hoverinfo="skip",
                                 name="speedup = 1 (break-even)", showlegend=True))
        est = d["estimated"]
        if est.any() and not est.all():  # faded: columns whose latency is not all measured
            fig.add_trace(go.Heatmap(x=d["gamma"], y=d["alpha"], z=np.where(est[None, :], 1.0, np.nan) + 0 * d["speedup"],
                                     colorscale=[[0, "rgba(255,255,255,0.6)"], [1, "rgba(255,255,255,0.6)"]],
                                     showscale=False, hoverinfo="skip", name="latency not all measured", meta="estimated"))
        if d["lo"] is not None:
            for e, dash, nm in (("lo", "dot", "speedup = 1 at the 90 % lower bound"),
                                ("hi", "dashdot", "speedup = 1 at the 90 % upper bound")):
                fig.add_trace(go.Contour(x=d["gamma"], y=d["alpha"], z=d[e], showscale=False, hoverinfo="skip",
                                         contours=dict(coloring="lines", start=1.0, end=1.0, size=1.0),
                                         line=dict(width=1.5, dash=dash), colorscale=[[0, "#444"], [1, "#444"]],
                                         name=nm, showlegend=True, meta="band"))
        fig.add_trace(go.Scatter(x=g_star, y=d["alpha"], mode="lines+markers", line=dict(color=COLORS["ridge"], width=2),
                                 marker=dict(size=4, color=np.where(s_star < 1, "#999", COLORS["ridge"])), name="optimum ridge γ*(α)", text=ridge_text,
                                 hovertemplate="%{text}<extra></extra>"))
        fig.update_xaxes(title="lookahead γ", dtick=1)
        fig.update_yaxes(title="acceptance α")
    if cost_ratio is not None:
        style(fig, f"Speedup over α × γ at cost ratio c = {cost_ratio:g} (Leviathan et al. 2023)",
              legend_y=None if style_ == "surface" else 1.02)
    else:
        style(fig, f"Speedup of {setting.draft.name} → {setting.target.name} over α × γ", setting.where(),
              legend_y=None if style_ == "surface" else 1.02)
    tag(fig, d["sources"])
    extra = ""
    if d["lo"] is not None:
        extra = ("<br>90 % band: latency error bands only (α on the axis is exact)"
                 + (" · no γ column is all measured (analytical or mixed latency at every γ)" if d["estimated"].all() else
                   f" · {'grey' if style_ == 'surface' else 'faded'} γ columns: latency not all measured "
                   f"(γ = {', '.join(str(x) for x in d['gamma'][d['estimated']])})" if d["estimated"].any() else ""))
    footnote(fig, sources_note(d["sources"]) + f"<br>c = t_draft/t_target = {d['cost_ratio']:.4f}" + extra,
             y=-0.06 if style_ == "surface" else -0.16)
    return fig
