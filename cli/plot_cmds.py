"""`specperf plot KIND`: write an interactive figure as standalone HTML (plotly.js embedded, works
offline) and optionally a PNG through kaleido. Kinds: speedup, gamma, breakdown, depth-width,
design, breakeven, acceptance.

Module top imports only stdlib, typer and cli.common (fast start); plotly loads inside the command.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import UsageError, handle_errors, parse_ints, parse_names, print_json

KINDS = ("speedup", "gamma", "breakdown", "depth-width", "design", "breakeven", "acceptance")
NEEDS_PAIR = ("speedup", "gamma", "breakdown", "breakeven")  # target and draft (speedup: or --cost-ratio)
NEEDS_ALPHA = ("gamma", "breakeven", "acceptance")
DEPTH_WIDTH_BASE = "llama-7b"  # base family/vocabulary for depth-width when --draft is not given
# with no model arguments every kind draws the study's case (README "Worked example"): llama-65b at
# tp 4 on h100-sxm, draft sheared-llama-1.3b, α = 0.70 (the study's stated acceptance)
STUDY = {"target": "llama-65b", "draft": "sheared-llama-1.3b", "tp": 4, "alpha": 0.7}


def _drafts_with_alpha(text: str, dtype_bytes: int):
    """'a,b@0.7,c:n_layers=4@0.62' → ([specs], [(spec, α, None, source)])."""
    from perfmodel.specdec.acceptance import check_alpha
    from perfmodel.specs.catalog import resolve_model

    specs, stated = [], []
    for item in parse_names(text, "drafts"):
        name, sep, a = item.rpartition("@")
        if not sep:
            name, a = item, None
        spec = resolve_model(name, dtype_bytes)
        specs.append(spec)
        if a is not None:
            try:
                val = check_alpha(float(a), f"alpha for {name}")
            except ValueError as e:
                if "not allowed" in str(e):
                    raise
                raise UsageError(f"drafts entry {item!r}: α {a!r} is not a number; write NAME@0.7") from None
            stated.append((spec, val, None, "--drafts NAME@α"))
    return specs, stated


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def plot(
        kind: Annotated[str, typer.Argument(help=f"Figure: {', '.join(KINDS)}.")],
        out: Annotated[str, typer.Option(help="Standalone HTML file to write (plotly.js embedded; works offline).")],
        png: Annotated[Optional[str], typer.Option(help="Also write a static PNG (kaleido; needs Chrome/Chromium).")] = None,
        target: Annotated[Optional[str], typer.Option(help="Target model: catalog name, config.json, NAME:field=value.")] = None,
        draft: Annotated[Optional[str], typer.Option(help=f"Draft model (depth-width: the base shape family and vocabulary, default {DEPTH_WIDTH_BASE}).")] = None,
        drafts: Annotated[Optional[str], typer.Option(help="design: candidate drafts a,b@0.7,… (NAME@α states α; default: same-vocabulary catalog drafts).")] = None,
        gpu: Annotated[str, typer.Option(help="GPU from `specperf gpus`.")] = "h100-sxm",
        alpha: Annotated[Optional[float], typer.Option(help="i.i.d. acceptance α in [0, 1) (design: for every draft without @α).")] = None,
        acceptance: Annotated[Optional[str], typer.Option(help="Acceptance JSON (from `specperf calibrate acceptance`).")] = None,
        cost_ratio: Annotated[Optional[float], typer.Option(help="speedup: Leviathan's c = t_draft/t_target instead of models.")] = None,
        gamma_max: Annotated[Optional[int], typer.Option(help="Largest lookahead γ (default 12 for speedup/design, 8 otherwise).")] = None,
        batch: Annotated[int, typer.Option(help="Sequences decoded together.")] = 1,
        context: Annotated[int, typer.Option(help="Tokens already in the KV cache.")] = 512,
        batches: Annotated[Optional[str], typer.Option(help="gamma/breakeven: batch axis, e.g. 1,4,16 or 1..64.")] = None,
        contexts: Annotated[Optional[str], typer.Option(help="gamma/breakeven: context axis, e.g. 512,2048,8192.")] = None,
        layers: Annotated[Optional[str], typer.Option(help="depth-width: depth axis (default 1..32); design: design-space depths.")] = None,
        d_model: Annotated[Optional[str], typer.Option("--d-model", help="depth-width: width axis; design: design-space widths.")] = None,
        tp: Annotated[Optional[int], typer.Option(help="Tensor-parallel degree of the target (default 4 for the study's case, else 1).")] = None,
        dtype: Annotated[str, typer.Option(help="fp16 or bf16.")] = "fp16",
        mode: Annotated[str, typer.Option(help="graph or eager; both (gamma, depth-width).")] = "graph",
        profile: Annotated[Optional[str], typer.Option(help="Measured LatencyTable (default: the shipped one for --gpu).")] = None,
        analytical: Annotated[bool, typer.Option("--analytical", help="Ignore measured profiles.")] = False,
        style: Annotated[str, typer.Option(help="speedup: surface (3-D, rotatable) or map (2-D).")] = "surface",
        json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document naming the files.")] = False,
    ):
        """Write an interactive figure: speedup, gamma, breakdown, depth-width, design, breakeven or acceptance."""
        if kind not in KINDS:
            raise UsageError(f"unknown plot kind {kind!r}; use one of {', '.join(KINDS)}")
        if mode not in ("graph", "eager", "both"):
            raise UsageError(f"mode={mode!r} is not allowed; use graph, eager or both")
        from .common import dtype_bytes
        from .predict_cmd import acceptance_model

        study = target is None and cost_ratio is None and kind != "depth-width"
        if study:  # no models named: the study's case
            target = STUDY["target"]
            draft = draft or (STUDY["draft"] if kind != "design" else None)
            if alpha is None and acceptance is None and kind in NEEDS_ALPHA:
                alpha = STUDY["alpha"]
        tp = tp if tp is not None else (STUDY["tp"] if study else 1)

        by = dtype_bytes(dtype)
        for name, v in (("batch", batch), ("context", context), ("tp", tp)):
            if v <= 0:
                raise UsageError(f"{name}={v} is not allowed; {name} must be a positive integer")
        from plots.common import check_out

        check_out(out, ".html", "--out")  # fail before any work
        if png is not None:
            check_out(png, ".png", "--png")
        from perfmodel.specs.catalog import resolve_model
        from perfmodel.specs.hardware import resolve_gpu
        from perfmodel.latency.providers import build_provider
        from perfmodel.specdec.maths import GAMMA_MAX

        import plots
        from plots.common import Setting

        gmax = gamma_max if gamma_max is not None else (12 if kind in ("speedup", "design") else 8)
        if not 1 <= gmax <= GAMMA_MAX:
            raise UsageError(f"gamma-max={gmax} is not allowed; must be in 1..{GAMMA_MAX}")
        if kind in NEEDS_PAIR and not (kind == "speedup" and cost_ratio is not None):
            if target is None or draft is None:
                raise UsageError(f"the {kind} figure needs --target and --draft"
                                 + (" (or --cost-ratio)" if kind == "speedup" else ""))
        if kind == "design" and target is None:
            raise UsageError("the design figure needs --target")
        if cost_ratio is not None and kind != "speedup":
            raise UsageError("--cost-ratio applies to the speedup figure only")
        only = {"--drafts": (drafts, ("design",)), "--batches": (batches, ("gamma", "breakeven")),
                "--contexts": (contexts, ("gamma", "breakeven")), "--layers": (layers, ("depth-width", "design")),
                "--d-model": (d_model, ("depth-width", "design"))}
        for flag, (val, kinds) in only.items():
            if val is not None and kind not in kinds:
                raise UsageError(f"{flag} applies to the {' and '.join(kinds)} figure{'s' if len(kinds) > 1 else ''} only")
        if profile is not None and analytical:
            raise UsageError("give --profile or --analytical, not both")
        if cost_ratio is not None and profile is not None:
            raise UsageError("--cost-ratio uses no latency model; drop --profile")
        acc = acceptance_model(alpha, acceptance) if alpha is not None or acceptance is not None else None
        if kind in NEEDS_ALPHA and acc is None:
            raise UsageError(f"the {kind} figure needs --alpha (α in [0, 1)) or --acceptance FILE")
        hw = resolve_gpu(gpu)
        lat = build_provider(hw, profile=profile, analytical=analytical).target
        tgt = resolve_model(target, by) if target else None
        drf = resolve_model(draft or DEPTH_WIDTH_BASE, by) if (draft or kind == "depth-width") else None
        setting = Setting(target=tgt, draft=drf, latency=lat, gpu=hw.name, tp=tp, mode=mode, batch=batch,
                          context=context, acceptance=acc, gammas=tuple(range(1, gmax + 1)), profile=profile)
        kw: dict = {}
        if kind == "speedup":
            kw = {"cost_ratio": cost_ratio, "style_": style}
        elif kind in ("gamma", "breakeven"):
            if batches:
                kw["batches"] = parse_ints(batches, "batches")
            if contexts:
                kw["contexts"] = parse_ints(contexts, "contexts")
        elif kind == "depth-width":
            if layers:
                kw["layers"] = parse_ints(layers, "layers")
            if d_model:
                kw["d_models"] = parse_ints(d_model, "d-model")
        elif kind == "design":
            if drafts:
                kw["drafts"], kw["stated"] = _drafts_with_alpha(drafts, by)
            kw["layers"] = parse_ints(layers, "layers") if layers else None
            kw["d_models"] = parse_ints(d_model, "d-model") if d_model else None
            kw["alpha"] = acc.alpha if acc is not None else None
        if style != "surface" and kind != "speedup":
            raise UsageError("--style applies to the speedup figure only")
        fig = plots.figure(kind, setting, **kw)
        if profile is not None and kind != "acceptance":
            from plots.common import latency_sources, source_kind

            srcs = {k: v for k, v in latency_sources(fig).items() if source_kind(v) != "none"}
            if srcs and not any(source_kind(v) in ("measured", "mixed") for v in srcs.values()):
                raise UsageError(f"profile {profile!r} supplies none of the latencies the {kind} figure draws "
                                 f"({', '.join(sorted(srcs)[:4])}{' …' if len(srcs) > 4 else ''} would all be "
                                 "analytical): profile these shapes (component=layer/lm_head rows) or drop --profile")
        html = plots.write_html(fig, out)
        png_path = plots.write_png(fig, png) if png else None
        doc = {"kind": kind, "html": str(html), "png": str(png_path) if png_path else None,
               "traces": len(fig.data), "latency": getattr(lat, "name", type(lat).__name__)}
        if json_out:
            print_json(doc)
            return
        typer.echo(f"wrote {html} ({kind}, {len(fig.data)} traces; latency: {doc['latency']})")
        if png_path:
            typer.echo(f"wrote {png_path}")
