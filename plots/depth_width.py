"""`depth-width` figure — the study's central one: a draft's step latency (one forward, one new token
per sequence) over depth (layers) × width (d_model), with iso-parameter lines, per execution mode.
At small batch the colour changes along the depth axis and barely across widths: latency follows depth.

Key assumption: step latency = n_layers × one layer + embedding/LM head (layers are identical).
Widths come from perfmodel.optimize.space.design_space (LLaMA-style shapes: head_dim 128, d_ff =
2.6875·d rounded to 256) with the base draft's vocabulary; with a profile, from the layer shapes the
profile measured (one layer and LM head read from its rows; a head it lacks is analytical, and says so).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from specperf.perfmodel.specs.catalog import MODELS
from specperf.perfmodel.specs.models import SpecError
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, spec_from_shape_key

from . import profile_rows
from .common import MS, Setting, footnote, source_kind, style, tag
from .kinds import KindInputs  # noqa: E402

INPUTS = KindInputs(flags=("layers", "d-model"))  # what this kind reads (cli/plot_cmds.py)

LAYERS = tuple(range(1, 33))
D_MODELS = (1024, 1536, 2048, 2560, 3072, 4096, 5120)
PARAM_LEVELS_B = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # iso-parameter lines, billions (non-embedding)


def _analytical_shapes(base, d_models):
    from specperf.perfmodel.optimize.space import design_space

    cands, skipped = design_space(base, [1], d_models, dtype_bytes=base.dtype_bytes)
    return [s.replace(vocab=base.vocab, max_positions=base.max_positions) for s in cands.shape_specs], skipped


def _profile_shapes(setting: Setting, table, mode: str, base, d_models=None):
    """The profile's layer shapes of the base draft's family (one per width: the d_ff/d_model ratio
    closest to the base draft's), optionally only the widths in `d_models`."""
    keys = profile_rows.layer_shapes(table, setting.profile, mode=mode, tp=1, batch=setting.batch,
                                     new_tokens=1, figure="depth-width")
    specs = [spec_from_shape_key(k, base.dtype_bytes).replace(vocab=base.vocab, name=k) for k in keys]
    family = [s for s in specs if s.family == base.family]
    if not family:
        raise SpecError(f"profile {setting.profile!r} has no {base.family} layer rows (it has "
                        f"{', '.join(sorted({s.family for s in specs}))}); the depth-width figure draws the "
                        f"family of --draft {base.name}")
    by_d: dict = {}
    ratio = base.d_ff / base.d_model
    for s in family:
        cur = by_d.get(s.d_model)
        if cur is None or abs(s.d_ff / s.d_model - ratio) < abs(cur.d_ff / cur.d_model - ratio):
            by_d[s.d_model] = s
    widths = sorted(by_d)
    if d_models is not None:
        missing = [d for d in d_models if d not in by_d]
        if missing:
            raise SpecError(f"profile {setting.profile!r} has no {base.family} layer rows at d_model "
                            f"{', '.join(map(str, missing))} (mode={mode}, batch={setting.batch}, new_tokens=1, "
                            f"tp=1); it has d_model {', '.join(map(str, widths))}")
        widths = sorted(set(d_models))
    skipped = len(specs) - len(widths)
    note = [f"{skipped} other profiled layer shapes not drawn (other family, width or FFN ratio)"] if skipped else []
    return [by_d[d] for d in widths], note


def grid(setting: Setting, mode: str, layers=LAYERS, d_models=None, table=None) -> dict:
    """latency_s (L, W), per-layer and head seconds (W,), their sources, params (L, W). d_models: the
    widths drawn (default: D_MODELS analytically, every profiled width of the draft's family)."""
    setting.need("draft", kind="depth-width")
    base = setting.draft
    b, c = setting.batch, setting.context
    if setting.profile:
        shapes, skipped = _profile_shapes(setting, table, mode, base, d_models)
    else:
        setting.need("latency", kind="depth-width")
        shapes, skipped = _analytical_shapes(base, D_MODELS if d_models is None else d_models)
    layer_s, head_s, l_src, h_src, ctx = [], [], [], [], []
    for s in shapes:
        one = s.replace(n_layers=1)
        if setting.profile:
            m = profile_rows.lookup(table, setting.profile, component="layer", shape=s.name, mode=mode, tp=1,
                                    batch=b, new_tokens=1, context=c, figure="depth-width")
            layer_s.append(m.median_s)
            l_src.append(m.source)
            ctx.append(m.context)
            h = profile_rows.lookup(table, setting.profile, component="lm_head", shape=head_shape_key(one),
                                    mode=mode, tp=1, batch=b, new_tokens=1, context=c, figure="depth-width",
                                    required=False)
            if h is not None:
                head_s.append(h.median_s)
                h_src.append(h.source)
                continue
            if setting.latency is None:
                raise SpecError(f"profile {setting.profile!r} lacks component=lm_head rows for "
                                f"head_shape={head_shape_key(one)} and no latency model was given")
            ft = setting.latency.forward(one, b, 1, c, 1, mode)
            head_s.append(float(np.asarray(ft.lm_head_s)))
            h_src.append(ft.sources["lm_head"])
        else:
            ft = setting.latency.forward(one, b, 1, c, 1, mode)
            layer_s.append(float(np.asarray(ft.layer_s)))
            head_s.append(float(np.asarray(ft.lm_head_s)))
            l_src.append(ft.sources["layer"])
            h_src.append(ft.sources["lm_head"])
            ctx.append(c)
    L = np.asarray(layers, dtype=int)
    layer_s, head_s = np.asarray(layer_s), np.asarray(head_s)
    params = L[:, None] * np.array([s.layer_params for s in shapes], dtype=float)[None, :]
    return {"layers": L, "d_model": np.array([s.d_model for s in shapes]), "shapes": shapes,
            "layer_s": layer_s, "head_s": head_s, "latency_s": L[:, None] * layer_s[None, :] + head_s[None, :],
            "layer_source": l_src, "head_source": h_src, "context": ctx, "params": params,
            "skipped": skipped, "mode": mode}


def _hover(d: dict, batch: int) -> np.ndarray:
    out = np.empty(d["latency_s"].shape, dtype=object)
    for i, L in enumerate(d["layers"]):
        for j, s in enumerate(d["shapes"]):
            out[i, j] = (f"{L} layers × d_model {s.d_model} (heads {s.n_heads}, d_ff {s.d_ff})"
                         f"<br>draft step = {d['latency_s'][i, j] * MS:.4f} ms ({d['mode']}, batch {batch},"
                         f" context {d['context'][j]})<br>= {L} × {d['layer_s'][j] * MS:.4f} ms/layer"
                         f" + {d['head_s'][j] * MS:.4f} ms head<br>non-embedding params = "
                         f"{d['params'][i, j] / 1e9:.3f} B<br>layer: {source_kind(d['layer_source'][j])}"
                         f" · head: {source_kind(d['head_source'][j])}")
    return out


def _iso_params(d: dict):
    """(d_model points, layers, level) per PARAM_LEVELS_B line: L = P / params_per_layer(d)."""
    per_layer = np.array([s.layer_params for s in d["shapes"]], dtype=float)
    if len(per_layer) < 2:
        return []
    dd = np.linspace(d["d_model"].min(), d["d_model"].max(), 200)
    p = np.exp(np.interp(np.log(dd), np.log(d["d_model"]), np.log(per_layer)))
    out = []
    for lvl in PARAM_LEVELS_B:
        L = lvl * 1e9 / p
        ok = (L >= d["layers"].min()) & (L <= d["layers"].max())
        if ok.sum() >= 2:
            out.append((dd[ok], L[ok], lvl))
    return out


def _markers(setting: Setting, d: dict) -> list:
    """The base draft and same-family catalog drafts whose width and depth fall inside the grid."""
    base = setting.draft
    out = [base]
    for m in MODELS.values():
        if (m.family == base.family and m.name != base.name and m.d_model in set(d["d_model"].tolist())
                and d["layers"].min() <= m.n_layers <= d["layers"].max() and m.params < 8e9):
            out.append(m)
    seen, keep = set(), []
    for m in out:  # one label per (depth, width): llama-7b, llama-2-7b and vicuna-7b coincide
        if (m.n_layers, m.d_model) not in seen and d["layers"].min() <= m.n_layers <= d["layers"].max() \
                and d["d_model"].min() <= m.d_model <= d["d_model"].max():
            seen.add((m.n_layers, m.d_model))
            keep.append(m)
    return keep


_MODE_NOTES = {"graph": " (CUDA graphs)", "eager": " (kernel launches from the host)",
               "compiled": " (torch.compile + CUDA graphs)"}


def figure(setting: Setting, layers=LAYERS, d_models=None) -> go.Figure:
    table = LatencyTable.load(setting.profile) if setting.profile else None
    grids = [grid(setting, m, layers, d_models, table) for m in setting.modes]
    n = len(grids)
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, horizontal_spacing=0.1,
                        subplot_titles=[f"{g['mode']} mode" + _MODE_NOTES.get(g["mode"], "") for g in grids])
    for col, d in enumerate(grids, start=1):
        x = d["d_model"]
        fig.add_trace(go.Heatmap(x=x, y=d["layers"], z=d["latency_s"] * MS, text=_hover(d, setting.batch),
                                 hovertemplate="%{text}<extra></extra>",
                                 coloraxis="coloraxis" if col == 1 else f"coloraxis{col}",
                                 name=f"draft step latency ({d['mode']})"), row=1, col=col)
        for k, (dd, LL, lvl) in enumerate(_iso_params(d)):
            fig.add_trace(go.Scatter(x=dd, y=LL, mode="lines+text", line=dict(color="rgba(255,255,255,0.8)",
                                     width=1.2, dash="dot"), text=[""] * (len(dd) - 1) + [f"{lvl:g} B"],
                                     textposition="middle left", textfont=dict(color="white", size=10),
                                     hovertemplate=f"≈ {lvl:g} B non-embedding parameters<extra></extra>",
                                     name="iso-parameter lines (billions, non-embedding)", legendgroup="iso",
                                     showlegend=col == 1 and k == 0), row=1, col=col)
        ms = _markers(setting, d)
        if ms:
            lat = [float(setting.latency.forward(m, setting.batch, 1, setting.context, 1, d["mode"]).total_s) * MS
                   if setting.latency is not None else float("nan") for m in ms]
            fig.add_trace(go.Scatter(
                x=[m.d_model for m in ms], y=[m.n_layers for m in ms], mode="markers+text",
                text=[m.name for m in ms], textposition="middle right", textfont=dict(color="white", size=11),
                marker=dict(symbol="diamond", size=10, color="white", line=dict(color="black", width=1)),
                customdata=[[m.name, m.n_layers, m.d_model, m.d_ff, v, m.params / 1e9] for m, v in zip(ms, lat)],
                hovertemplate="%{customdata[0]}: %{customdata[1]} layers × d_model %{customdata[2]}"
                              " (d_ff %{customdata[3]})<br>its own draft step = %{customdata[4]:.4f} ms"
                              "<br>params = %{customdata[5]:.2f} B<extra></extra>",
                name="catalog drafts", showlegend=col == 1), row=1, col=col)
        faded = [j for j in range(len(x)) if source_kind(d["layer_source"][j]) not in ("measured",)]
        edges = np.concatenate([[x[0] - (x[1] - x[0]) / 2 if len(x) > 1 else x[0] - 1],
                                (x[:-1] + x[1:]) / 2, [x[-1] + (x[-1] - x[-2]) / 2 if len(x) > 1 else x[0] + 1]])
        ax = "" if col == 1 else str(col)
        for j in faded:  # analytical (or mixed) columns: faded, and their tick says so
            fig.add_shape(type="rect", xref=f"x{ax}", yref=f"y{ax}", x0=edges[j], x1=edges[j + 1],
                          y0=d["layers"].min() - 0.5, y1=d["layers"].max() + 0.5, line=dict(width=0),
                          fillcolor="rgba(255,255,255,0.45)", layer="above")
        fig.update_xaxes(title="width d_model" + (" (faded: analytical)" if faded else ""), tickvals=x,
                         ticktext=[f"{v}" + ("*" if j in faded else "") for j, v in enumerate(x)], row=1, col=col)
    fig.update_yaxes(title="depth (layers)", row=1, col=1)
    lo, hi = int(min(g["layers"].min() for g in grids)), int(max(g["layers"].max() for g in grids))
    fig.update_yaxes(range=[lo - 0.5, hi + 0.5])
    # one colour scale per mode: eager steps are several times slower, and a shared scale would flatten
    # the graph-mode panel; each bar sits at the right edge of its panel
    for col, d in enumerate(grids, start=1):
        dom = fig.layout[f"xaxis{'' if col == 1 else col}"].domain
        fig.update_layout({"coloraxis" if col == 1 else f"coloraxis{col}": dict(
            colorscale="Viridis", cmin=0, cmax=float(d["latency_s"].max()) * MS,
            colorbar=dict(title=dict(text=f"{d['mode']}<br>ms", side="top"), x=dom[1] + 0.005, xanchor="left",
                          len=0.8, thickness=12))})
    src = getattr(setting.latency, "name", "") or ""
    if setting.profile:
        card = table.meta.get("gpu_name") or table.meta.get("gpu") or ""
        src = f"profile {setting.profile}" + (f", measured on {card}" if card else "") + \
            (f" ({table.meta['date'][:10]})" if table.meta.get("date") else "")
    style(fig, "Draft step latency over depth × width",
          f"{setting.gpu + ', ' if setting.gpu else ''}batch {setting.batch}, context {setting.context}, "
          f"{setting.draft.family} shapes, vocab {setting.draft.vocab}", legend_y=1.07, top=110)
    notes = [f"latency: {src}" if src else "", "lines: non-embedding parameters (billions); "
             "one step = n_layers × one layer + embedding/LM head"]
    skipped = sorted({s for g in grids for s in g["skipped"]})
    if skipped:
        notes.append("; ".join(skipped[:2]) + (" …" if len(skipped) > 2 else ""))
    tag(fig, {f"{g['mode']} {part} d_model={s.d_model}": src for g in grids
              for part, key in (("layer", "layer_source"), ("head", "head_source"))
              for s, src in zip(g["shapes"], g[key])})
    footnote(fig, "<br>".join(n for n in notes if n), y=-0.14)
    return fig
