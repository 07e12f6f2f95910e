"""`serve` figure: speculative decoding under load — tokens/s, median request latency and median
time per output token (TPOT) against the request rate, with and without speculation (best constant γ per rate, and the
batch-size γ schedule), 90 % bands from the step model's latency bands, and the crossover rate.

Key assumption: every number comes from perfmodel.serving (the continuous-batching simulation of
`specperf serve-sim`) for a workload of 512-token prompts and 128-token outputs (serve-sim's
defaults) at the setting's GPU, tp and mode; rates run from light load to past the capacity of the
engine without speculation (perfmodel.serving.run.default_rates).
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from specperf.perfmodel.serving.proposer import Speculation
from specperf.perfmodel.serving.report import sweep
from specperf.perfmodel.serving.run import default_rates, tables_for
from specperf.perfmodel.serving.sim import EngineConfig
from specperf.perfmodel.serving.workload import LengthDist, Workload
from specperf.perfmodel.specdec.registry import make_method

from .bands import filled
from .common import COLORS, MS, Setting, footnote, sources_note, style, tag
from .kinds import KindInputs

INPUTS = KindInputs(needs=("target", "draft", "alpha"), gamma_max=4)  # what this kind reads (cli/plot_cmds.py)
PROMPT, OUTPUT, REQUESTS = 512, 128, 150  # serve-sim's default lengths; requests per simulated rate
SPEC = "#2ca02c"  # speculation's colour (no speculation: COLORS["target"])


def data(setting: Setting) -> dict:
    """serve-sim's sweep document for the setting (draft model, constant γ in setting.gammas)."""
    setting.need("target", "draft", "latency", "acceptance", kind="serve")
    mode = setting.single_mode("serve")
    prompt, output = LengthDist(PROMPT, PROMPT), LengthDist(OUTPUT, OUTPUT)
    engine = EngineConfig()
    sp = Speculation(make_method("draft", draft=setting.draft), setting.acceptance, setting.latency, setting.target, mode)
    off, spec = tables_for(setting.target, sp, setting.latency, prompt, output, engine, max(setting.gammas),
                           setting.tp, mode)
    rates = default_rates(off, prompt, output, engine)
    wl = Workload(prompt, output, REQUESTS, rate_per_s=1.0)
    doc = sweep(off, spec, wl, rates, list(setting.gammas), engine)
    doc["sources"] = spec.sources
    return doc


def figure(setting: Setting) -> go.Figure:
    doc = data(setting)
    rows = doc["rows"]
    x = [r["load"] for r in rows]
    best = [r["gamma"][r["best_gamma"]] for r in rows]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07,
                        subplot_titles=("tokens/s", "median request latency", "median time per output token"))
    series = (("no speculation", COLORS["target"], "rgba(214,39,40,0.18)", [r["off"] for r in rows], "off"),
              ("speculation, best γ", SPEC, "rgba(44,160,44,0.18)", best, "best"))
    for col, key, scale in ((1, "throughput_tok_s", 1.0), (2, "latency_p50_s", 1.0), (3, "tpot_p50_s", MS)):
        for name, _, fill, _, which in series:  # bands first, lines over them
            lo = [r["interval"][which][key][0] * scale for r in rows]
            hi = [r["interval"][which][key][1] * scale for r in rows]
            for tr in filled(x, lo, hi, f"{name} 90 % band", fill, legendgroup=name):
                tr.showlegend = False
                fig.add_trace(tr, row=1, col=col)
        for name, color, _, vals, which in series:
            hover = [f"{r['load']:.3g} req/s<br>{name}" + (f" (γ={r['best_gamma']})" if which == "best" else "")
                     + f"<br>{key}: {m[key] * scale:.3g}<br>mean decode batch {m['mean_decode_batch']:.1f}"
                     + ("<br>saturated" if m["saturated"] else "") for r, m in zip(rows, vals)]
            fig.add_trace(go.Scatter(x=x, y=[m[key] * scale for m in vals], mode="lines+markers", name=name,
                                     line=dict(color=color), legendgroup=name, showlegend=col == 1,
                                     hovertext=hover, hoverinfo="text"), row=1, col=col)
        sched = [r["schedule"][key] * scale for r in rows]
        fig.add_trace(go.Scatter(x=x, y=sched, mode="lines", name="speculation, γ schedule by batch",
                                 line=dict(color=SPEC, dash="dot"), legendgroup="sched", showlegend=col == 1),
                      row=1, col=col)
    cx = doc["crossover"]
    if cx["load"] is not None:
        for col in (1, 2, 3):
            fig.add_vline(x=cx["load"], line=dict(color="#555", dash="dash"), row=1, col=col)
        if cx["interval"]:
            fig.add_vrect(x0=cx["interval"][0], x1=cx["interval"][1], fillcolor="#999", opacity=0.12,
                          line_width=0, row=1, col=2)
    fig.update_xaxes(type="log", title_text="request rate (req/s, Poisson)")
    fig.update_yaxes(title_text="tokens/s", row=1, col=1)
    fig.update_yaxes(title_text="latency p50 (s)", row=1, col=2)
    fig.update_yaxes(title_text="TPOT p50 (ms)", row=1, col=3)
    verdict = cx["verdict"] + (f" at {cx['load']:.3g} req/s" if cx["load"] is not None else "")
    tag(fig, doc.get("sources") or {})
    style(fig, f"{setting.draft.name} → {setting.target.name} under load",
          f"{setting.where().split(', batch')[0]}; {PROMPT}-token prompts, {OUTPUT}-token outputs; {verdict}",
          legend_y=1.08, top=110)
    segs = ", ".join(f"{s['batch_lo']}–{s['batch_hi']}: γ={s['gamma']}" for s in doc["schedule"])
    footnote(fig, f"specperf serve-sim (continuous batching, chunked prefill, vLLM V1 defaults); γ schedule by decode "
                  f"batch: {segs}<br>{sources_note(doc.get('sources') or {})}")
    return fig
