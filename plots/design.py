"""`design` figure: candidate drafts as points (draft step latency versus acceptance α) over
iso-throughput contours for the target, the optimiser's winner highlighted. It shows the study's
trade: a draft pays for a higher α only if its latency does not cross the contours faster.

Key assumption: candidates, their α (stated with @α or --alpha, else the optimiser's α model —
labelled "assumed") and the winner come from perfmodel.optimize.search; the contours use the same costs
(verification, overhead, baseline step) at the γ-averaged draft context, maximised over γ.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from perfmodel.specs.catalog import MODELS
from perfmodel.specdec.maths import iteration_s, throughput_tok_s, tokens_per_iteration
from perfmodel.specs.models import ModelSpec, SpecError

from .common import COLORS, MS, Setting, footnote, source_line, sources_note, style, tag
from .layout import label_positions
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(needs=("target",), flags=("drafts", "layers", "d-model", "alpha"), gamma_max=12)  # what this kind reads (cli/plot_cmds.py)


def default_drafts(target: ModelSpec) -> list[ModelSpec]:
    """Catalog models sharing the target's vocabulary with at most a fifth of its parameters."""
    out = [m for m in MODELS.values() if m.vocab == target.vocab and m.family == target.family
           and m.params <= target.params / 5 and m.name != target.name]
    seen, keep = set(), []
    for m in out:  # llama-7b, llama-2-7b, vicuna-7b share a shape: keep the first
        k = (m.n_layers, m.d_model, m.d_ff, m.n_kv_heads)
        if k not in seen:
            seen.add(k)
            keep.append(m)
    return keep


def run(setting: Setting, drafts=None, stated=(), layers=None, d_models=None, alpha=None):
    """The optimiser over the candidates at the setting's (batch, context); returns (res, cands)."""
    from perfmodel.specdec.alpha_model import default_model
    from perfmodel.optimize.search import make_candidates
    from perfmodel.optimize.report import optimize
    from perfmodel.optimize.space import assign_acceptance, design_space

    setting.need("target", "latency", kind="design")
    mode = setting.single_mode("design")
    target = setting.target
    drafts = list(drafts) if drafts else default_drafts(target)
    design = None
    if layers or d_models:
        if not (layers and d_models):
            raise SpecError("a design space needs both --layers and --d-model")
        design, _ = design_space(target, layers, d_models, dtype_bytes=target.dtype_bytes)
    cands = make_candidates(drafts, [d.name for d in drafts], ["catalog"] * len(drafts), design)
    acc = assign_acceptance(cands, target, default_model(), stated=list(stated), alpha=alpha)
    res = optimize(target, cands, acc, setting.latency, [setting.batch], [setting.context],
                   list(setting.gammas), setting.tp, (mode,))
    return res, mode


def points(res, mode: str) -> dict:
    """Per candidate: t_draft at γ*, α and its interval, kind, γ*, speedup, tokens/s."""
    m = res.modes[mode]
    c = res.cands
    gi = m.gamma_index[:, 0, 0].astype(int)
    si = c.shape_index
    t_draft = c.n_layers * m.costs.layer_s[si, 0, 0, gi] + m.costs.head_s[si, 0, 0, gi]
    s = m.speedup[:, 0, 0]
    base = float(m.costs.base_s[0, 0])
    return {"t_draft_s": t_draft, "alpha": res.acc.alpha, "lo": res.acc.lo, "hi": res.acc.hi,
            "kind": [res.acc.kind(i) for i in range(len(c))], "gamma": res.gammas[gi], "speedup": s,
            "throughput_tok_s": s * float(res.batch[0]) / base, "names": [c.name(i) for i in range(len(c))],
            "design": np.array([o == "design" for o in c.origin]),
            "winner": int(np.argmax(np.where(np.isfinite(s), s, -np.inf)))}


def contour_grid(res, mode: str, t_draft_s: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Best tokens/s over γ on a (α, t_draft) grid with the target's costs at the setting's cell."""
    m = res.modes[mode].costs
    g = res.gammas.astype(float)
    tpi = tokens_per_iteration(alphas[:, None, None], g[None, None, :])  # (A,1,G)
    it = iteration_s(g, t_draft_s[None, :, None], m.verify_s[0, 0][None, None, :], m.overhead_s[0, 0][None, None, :])
    return throughput_tok_s(float(res.batch[0]), tpi, it).max(axis=-1)


def figure(setting: Setting, drafts=None, stated=(), layers=None, d_models=None, alpha=None) -> go.Figure:
    res, mode = run(setting, drafts, stated, layers, d_models, alpha)
    d = points(res, mode)
    base_tok_s = float(res.batch[0]) / float(res.modes[mode].costs.base_s[0, 0])
    t_hi = float(np.nanmax(d["t_draft_s"])) * 1.15
    tx = np.linspace(0.0, t_hi, 120)
    ay = np.linspace(0.3, 0.98, 69)
    z = contour_grid(res, mode, tx, ay)
    src = source_line(res.modes[mode].costs.sources)
    fig = go.Figure()
    fig.add_trace(go.Contour(x=tx * MS, y=ay, z=z, colorscale="Blues", opacity=0.55, ncontours=14,
                             contours=dict(showlabels=True, labelfont=dict(size=10, color="#123")),
                             colorbar=dict(title="tokens/s<br>(best γ)"), name="iso-throughput",
                             hovertemplate="t_draft = %{x:.3f} ms, α = %{y:.2f}<br>best tokens/s = %{z:,.1f}"
                                           f"<br>baseline {base_tok_s:,.1f} tokens/s<extra></extra>"))
    fig.add_trace(go.Contour(x=tx * MS, y=ay, z=z, showscale=False, hoverinfo="skip",
                             contours=dict(coloring="lines", start=base_tok_s, end=base_tok_s, size=1.0),
                             colorscale=[[0, "#d62728"], [1, "#d62728"]], line=dict(width=2, dash="dash"),
                             name="break-even with autoregressive decoding", showlegend=True))

    def hover(i):
        ci = f" [{d['lo'][i]:.3f}, {d['hi'][i]:.3f}]" if d["hi"][i] > d["lo"][i] else ""
        return (f"<b>{d['names'][i]}</b><br>t_draft = {d['t_draft_s'][i] * MS:.4f} ms/step<br>α = {d['alpha'][i]:.3f}"
                f"{ci} ({d['kind'][i]})<br>γ* = {d['gamma'][i]}, speedup = {d['speedup'][i]:.3f}×"
                f"<br>tokens/s = {d['throughput_tok_s'][i]:,.1f}<br>{src}")

    groups = (("design space", d["design"], dict(size=5, color="#888", opacity=0.6), "markers"),
              ("drafts", ~d["design"], dict(size=10, color=COLORS["draft"], line=dict(color="white", width=1)),
               "markers+text"))
    for name, sel, marker, mode_ in groups:
        idx = np.flatnonzero(sel)
        if not idx.size:
            continue
        fig.add_trace(go.Scatter(
            x=d["t_draft_s"][idx] * MS, y=d["alpha"][idx], mode=mode_, marker=marker, name=name,
            text=[d["names"][i] for i in idx] if mode_ == "markers+text" else None,
            textposition=label_positions(d["t_draft_s"][idx] * MS, d["alpha"][idx], [d["names"][i] for i in idx],
                                         (0, t_hi * MS), (ay[0], ay[-1])) if mode_ == "markers+text" else None,
            error_y=dict(type="data", symmetric=False, array=(d["hi"] - d["alpha"])[idx],
                         arrayminus=(d["alpha"] - d["lo"])[idx], thickness=1, color="#666")
            if name == "drafts" else None,
            hovertext=[hover(i) for i in idx], hovertemplate="%{hovertext}<extra></extra>"))
    w = d["winner"]
    fig.add_trace(go.Scatter(x=[d["t_draft_s"][w] * MS], y=[d["alpha"][w]], mode="markers",
                             marker=dict(symbol="star", size=20, color=COLORS["winner"],
                                         line=dict(color="black", width=1)),
                             name=f"winner: {d['names'][w]} (γ*={d['gamma'][w]}, {d['speedup'][w]:.2f}×)",
                             hovertext=[hover(w)], hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_xaxes(title="draft step latency t_draft (ms)", range=[0, t_hi * MS])
    fig.update_yaxes(title="acceptance α", range=[ay[0], ay[-1]])
    style(fig, f"Draft design for {setting.target.name}", f"{setting.where()}, γ ≤ {max(setting.gammas)}",
          legend_y=1.02)
    kinds = sorted(set(d["kind"]))
    tag(fig, res.modes[mode].costs.sources)
    footnote(fig, f"α: {', '.join(kinds)} — sources: " + "; ".join(res.acc.sources)[:300]
             + "<br>" + sources_note(res.modes[mode].costs.sources))
    return fig
