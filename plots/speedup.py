"""`speedup` figure: speedup over acceptance α × lookahead γ, as a surface you can rotate (or a map),
with the optimum ridge γ*(α) marked and the break-even level (speedup = 1) drawn.

Key assumption: i.i.d. acceptance. Latencies (draft step, verification over γ+1 tokens, overhead)
do not depend on α, so one perfmodel.specdec.predict call gives them and the α axis is pure arithmetic with
perfmodel.specdec.maths; with a cost ratio c alone it is Leviathan et al.'s form E[tokens]/(γc + 1).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from perfmodel.specdec.acceptance import AcceptanceModel
from perfmodel.specdec.predict import check_gammas, predict
from perfmodel.specdec.maths import iteration_s, speedup, speedup_cost_ratio, tokens_per_iteration
from perfmodel.specs.models import SpecError

from .common import MS, COLORS, Setting, footnote, source_line, sources_note, speedup_colour, style, tag
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
        return {"alpha": a, "gamma": g, "speedup": s, "tokens_per_iteration": tpi, "iteration_s": None,
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
    return {"alpha": a, "gamma": g, "speedup": s, "tokens_per_iteration": tpi, "iteration_s": it,
            "t_draft_s": t_d, "t_verify_s": t_v, "overhead_s": ov, "t_target_s": t_t,
            "cost_ratio": float(t_d[0] / t_t), "sources": src, "hover_source": source_line(src)}


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
                t += f"<br>iteration = {d['iteration_s'][j] * MS:.4f} ms"
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
    footnote(fig, sources_note(d["sources"]) + f"<br>c = t_draft/t_target = {d['cost_ratio']:.4f}",
             y=-0.06 if style_ == "surface" else -0.16)
    return fig
