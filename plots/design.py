"""`design` figure: candidate drafts as points (draft step latency versus acceptance α) over
iso-throughput contours for the target, the optimiser's winner highlighted. It shows the study's
trade: a draft pays for a higher α only if its latency does not cross the contours faster.

Key assumption: candidates, their α (stated with @α or --alpha, else the optimiser's α model —
labelled "assumed") and the winner come from perfmodel.optimize.search; the contours use the same costs
(verification, overhead, baseline step) at the γ-averaged draft context, maximised over γ.
Win probabilities are perfmodel.optimize.confidence's (the Monte Carlo of `optimize`): P(a draft's best
speedup beats the reference's), the reference being `reference` or, by default, the winner. Drafts
whose step latency at γ* is not all measured are hollow and marked ~; contours drawn from target
latency that is not all measured are faded.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from specperf.perfmodel.specs.catalog import MODELS
from specperf.perfmodel.specdec.maths import draft_context, iteration_s, throughput_tok_s, tokens_per_iteration
from specperf.perfmodel.specs.models import ModelSpec, SpecError

from .common import COLORS, MS, Setting, footnote, source_kind, source_line, sources_note, style, tag
from .layout import label_positions
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(needs=("target",), flags=("drafts", "layers", "d-model", "alpha", "reference"), gamma_max=12)  # what this kind reads (cli/plot_cmds.py)


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
    from specperf.perfmodel.specdec.alpha_model import default_model
    from specperf.perfmodel.optimize.search import make_candidates
    from specperf.perfmodel.optimize.report import optimize
    from specperf.perfmodel.optimize.space import assign_acceptance, design_space

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


def win_probabilities(res, mode: str, idx, reference: int) -> dict:
    """{candidate: P(its best speedup beats the reference's)} (the reference: P(best of those shown))."""
    from specperf.perfmodel.optimize.confidence import confidence

    conf, _ = confidence(res, mode, 0, 0, list(idx), reference)
    return {int(i): (c["p_best_shown"] if i == reference else c["p_beats_reference"]) for i, c in zip(idx, conf)}


def not_measured(setting: Setting, res, d: dict, mode: str, idx) -> dict:
    """{candidate: True} where the draft step at its γ* is not all measured (from its Provenance)."""
    b, c = int(res.batch[0]), int(res.context[0])
    out = {}
    for i in idx:
        spec = res.cands.specs[i]
        srcs = setting.latency.forward(spec, b, 1, draft_context(c, int(d["gamma"][i])), 1, mode).sources
        out[int(i)] = any(source_kind(v) not in ("measured", "none") for v in srcs.values())
    return out


def target_not_measured(costs) -> bool:
    return any(source_kind(v) not in ("measured", "none") for k, v in costs.sources.items()
               if k.startswith("target") or k == "overhead")


def figure(setting: Setting, drafts=None, stated=(), layers=None, d_models=None, alpha=None,
           reference: str | None = None) -> go.Figure:
    from specperf.perfmodel.optimize.report import find_candidate
    from specperf.perfmodel.specs.catalog import resolve_model

    res, mode = run(setting, drafts, stated, layers, d_models, alpha)
    d = points(res, mode)
    w = d["winner"]
    ref = find_candidate(res, reference, lambda s_: resolve_model(s_, setting.target.dtype_bytes))
    ref = w if ref is None else ref
    shown = [int(i) for i in np.flatnonzero(~d["design"])]
    win = win_probabilities(res, mode, shown + ([w] if w not in shown else []), ref)
    est = not_measured(setting, res, d, mode, shown)
    faded = target_not_measured(res.modes[mode].costs)
    base_tok_s = float(res.batch[0]) / float(res.modes[mode].costs.base_s[0, 0])
    t_hi = float(np.nanmax(d["t_draft_s"])) * 1.15
    tx = np.linspace(0.0, t_hi, 120)
    ay = np.linspace(0.3, 0.98, 69)
    z = contour_grid(res, mode, tx, ay)
    src = source_line(res.modes[mode].costs.sources)
    fig = go.Figure()
    fig.add_trace(go.Contour(x=tx * MS, y=ay, z=z, colorscale="Blues", opacity=0.25 if faded else 0.55, ncontours=14,
                             contours=dict(showlabels=True, labelfont=dict(size=10, color="#123")),
                             colorbar=dict(title="tokens/s<br>(best γ)"), name="iso-throughput",
                             hovertemplate="t_draft = %{x:.3f} ms, α = %{y:.2f}<br>best tokens/s = %{z:,.1f}"
                                           f"<br>baseline {base_tok_s:,.1f} tokens/s<extra></extra>"))
    fig.add_trace(go.Contour(x=tx * MS, y=ay, z=z, showscale=False, hoverinfo="skip",
                             contours=dict(coloring="lines", start=base_tok_s, end=base_tok_s, size=1.0),
                             colorscale=[[0, "#d62728"], [1, "#d62728"]], line=dict(width=2, dash="dash"),
                             name="break-even with autoregressive decoding", showlegend=True))

    ref_name = d["names"][ref]

    def p_text(i):
        if i not in win or win[i] is None:
            return ""
        return (f"P(best of the drafts shown) = {win[i]:.0%}" if i == ref else f"P(beats {ref_name}) = {win[i]:.0%}")

    def hover(i):
        ci = f" [{d['lo'][i]:.3f}, {d['hi'][i]:.3f}]" if d["hi"][i] > d["lo"][i] else ""
        pt = p_text(i)
        return (f"<b>{d['names'][i]}</b><br>t_draft = {d['t_draft_s'][i] * MS:.4f} ms/step<br>α = {d['alpha'][i]:.3f}"
                f"{ci} ({d['kind'][i]})<br>γ* = {d['gamma'][i]}, speedup = {d['speedup'][i]:.3f}×"
                f"<br>tokens/s = {d['throughput_tok_s'][i]:,.1f}" + (f"<br>{pt}" if pt else "")
                + ("<br><i>draft latency at γ* not all measured (~)</i>" if est.get(int(i)) else "") + f"<br>{src}")

    def label(i):
        p_ = win.get(int(i))
        return ("~" if est.get(int(i)) else "") + d["names"][i] + ("" if p_ is None or i == ref else f" {p_:.0%}")

    xs, ys = d["t_draft_s"] * MS, d["alpha"]
    bars = [(xs[i], d["lo"][i], d["hi"][i], 3.0) for i in shown if d["hi"][i] > d["lo"][i]]
    star = [(xs[w], ys[w], 12.0)]
    # one placement for every label: the winner's is drawn by the star (so plotly offsets it by the star's size)
    lab_idx = shown + ([w] if w not in shown else [])
    pos = dict(zip(lab_idx, label_positions(xs[lab_idx], ys[lab_idx], [label(i) for i in lab_idx], (0, t_hi * MS),
                                            (ay[0], ay[-1]), marker_px=[12.0 if i == w else 7.0 for i in lab_idx],
                                            markers=bars + star)))

    groups = (("design space", d["design"], dict(size=5, color="#888", opacity=0.6), "markers"),
              ("drafts", ~d["design"], dict(size=10, color=COLORS["draft"], line=dict(color="white", width=1)),
               "markers+text"))
    for name, sel, marker, mode_ in groups:
        idx = np.flatnonzero(sel)
        if not idx.size:
            continue
        if name == "drafts":
            marker = dict(marker, symbol=["circle-open" if est.get(int(i)) else "circle" for i in idx],
                          line=dict(color=[COLORS["draft"] if est.get(int(i)) else "white" for i in idx], width=2))
        labels = ["" if i == w else label(i) for i in idx]
        fig.add_trace(go.Scatter(
            x=xs[idx], y=ys[idx], mode=mode_, marker=marker, name=name,
            text=labels if mode_ == "markers+text" else None, meta="drafts" if name == "drafts" else None,
            customdata=[win.get(int(i)) for i in idx] if name == "drafts" else None,
            textposition=[pos[int(i)] for i in idx] if mode_ == "markers+text" else None,
            error_y=dict(type="data", symmetric=False, array=(d["hi"] - d["alpha"])[idx],
                         arrayminus=(d["alpha"] - d["lo"])[idx], thickness=1, color="#666")
            if name == "drafts" else None,
            hovertext=[hover(i) for i in idx], hovertemplate="%{hovertext}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[d["t_draft_s"][w] * MS], y=[d["alpha"][w]], mode="markers+text", text=[label(w)],
                             textposition=pos[w], meta="winner",
                             marker=dict(symbol="star", size=20, color=COLORS["winner"],
                                         line=dict(color="black", width=1)),
                             name=f"winner: {d['names'][w]} (γ*={d['gamma'][w]}, {d['speedup'][w]:.2f}×"
                                  + (f", {p_text(w)})" if p_text(w) else ")"),
                             hovertext=[hover(w)], hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_xaxes(title="draft step latency t_draft (ms)", range=[0, t_hi * MS])
    fig.update_yaxes(title="acceptance α", range=[ay[0], ay[-1]])
    style(fig, f"Draft design for {setting.target.name}", f"{setting.where()}, γ ≤ {max(setting.gammas)}",
          legend_y=1.02)
    kinds = sorted(set(d["kind"]))
    tag(fig, res.modes[mode].costs.sources)
    footnote(fig, f"labels: P(beats {ref_name}), the probability that a draft's best speedup beats "
             f"{'the winner' if ref == w else 'the reference'}'s (Monte Carlo over latency bands and α intervals) · "
             "~, hollow: draft latency at γ* not all measured"
             + (" · faded contours: target latency not all measured" if faded else "")
             + f"<br>α: {', '.join(kinds)} — sources: " + "; ".join(res.acc.sources)[:300]
             + "<br>" + sources_note(res.modes[mode].costs.sources))
    return fig
