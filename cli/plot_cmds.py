"""`specperf plot KIND`: write an interactive figure as standalone HTML (plotly.js embedded, works
offline) and optionally a PNG through kaleido. Kinds: speedup, gamma, breakdown, depth-width,
design, breakeven, acceptance.

Module top imports only stdlib, typer and cli.common (fast start); plotly loads inside the command.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as o
from .common import UsageError, handle_errors, parse_names, print_json

KINDS = ("speedup", "gamma", "breakdown", "depth-width", "design", "breakeven", "acceptance", "serve")
# what each kind needs and accepts is declared by the kind (plots/<kind>.py INPUTS, plots/kinds.py)
DEPTH_WIDTH_BASE = "llama-7b"  # base family/vocabulary for depth-width when --draft is not given
# with no model arguments every kind draws the study's case (README "Worked example"): llama-65b at
# tp 4 on h100-sxm, draft sheared-llama-1.3b, α = 0.70 (the study's stated acceptance)
STUDY = {"target": "llama-65b", "draft": "sheared-llama-1.3b", "tp": 4, "alpha": 0.7}


def _drafts_with_alpha(text: str, dtype_bytes: int):
    """'a,b@0.7,c:n_layers=4@0.62' → ([specs], [(spec, α, None, source)])."""
    from specperf.perfmodel.specdec.acceptance import check_alpha
    from specperf.perfmodel.specs.catalog import resolve_model

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


def _memory(tgt, drf, tp, batch, context, gamma, have) -> dict:
    """fits_memory and bytes needed at the figure's largest batch, context and γ (as predict/optimize)."""
    if tgt is None:
        return {"fits_memory": None, "memory_needed_bytes": None}
    from specperf.perfmodel.specs.memory import memory_needed_bytes, memory_note

    need = memory_needed_bytes(tgt, drf, tp, batch, context, gamma)
    out = {"fits_memory": need <= have, "memory_needed_bytes": need, "memory_bytes": have}
    if need > have:
        out["memory_note"] = memory_note(need, have, f"{tgt.name} (tp={tp}) at batch {batch}, context {context}")
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def plot(
        kind: Annotated[str, typer.Argument(help=f"Figure: {', '.join(KINDS)}.")],
        out: Annotated[str, typer.Option(help="Standalone HTML file to write (plotly.js embedded; works offline).")],
        png: Annotated[Optional[str], typer.Option(help="Also write a static PNG (kaleido; needs Chrome/Chromium).")] = None,
        target: o.Target = None,
        draft: Annotated[Optional[str], typer.Option(help=f"Draft model (depth-width: the base shape family and vocabulary, default {DEPTH_WIDTH_BASE}).")] = None,
        drafts: Annotated[Optional[str], typer.Option(help="design: candidate drafts a,b@0.7,… (NAME@α states α; default: same-vocabulary catalog drafts).")] = None,
        gpu: o.Gpu = "h100-sxm",
        alpha: Annotated[Optional[float], typer.Option(help="i.i.d. acceptance α in [0, 1) (design: for every draft without @α).")] = None,
        acceptance: o.Acceptance = None,
        cost_ratio: Annotated[Optional[float], typer.Option(help="speedup: Leviathan's c = t_draft/t_target instead of models.")] = None,
        gamma_max: Annotated[Optional[int], typer.Option(help="Largest lookahead γ (default 12 for speedup/design, 8 otherwise).")] = None,
        batch: Annotated[str, typer.Option(help="Batch size (gamma/breakeven: the batch axis, a list 1,4,16 or range 1..64).")] = "1",
        context: Annotated[str, typer.Option(help="Context length (gamma/breakeven: the context axis, a list or range).")] = "512",
        layers: Annotated[Optional[str], typer.Option(help="depth-width: depth axis (default 1..32); design: design-space depths.")] = None,
        d_model: Annotated[Optional[str], typer.Option("--d-model", help="depth-width: width axis; design: design-space widths.")] = None,
        tp: Annotated[Optional[int], typer.Option(help="Tensor-parallel degree of the target (default 4 for the study's case, else 1).")] = None,
        dtype: o.Dtype = "fp16",
        mode: o.Mode = "graph",
        profile: o.Profile = None,
        analytical: o.Analytical = False,
        calibration: o.Calibration = None,
        allow_gpu_mismatch: o.AllowGpuMismatch = False,
        style: Annotated[str, typer.Option(help="speedup: surface (3-D, rotatable) or map (2-D).")] = "surface",
        reference: Annotated[Optional[str], typer.Option(help="design: the draft whose win probability the others are given against (default: the winner).")] = None,
        json_out: o.Json = False,
    ):
        """Write an interactive figure: speedup, gamma, breakdown, depth-width, design, breakeven or acceptance."""
        if kind not in KINDS:
            raise UsageError(f"unknown plot kind {kind!r}; use one of {', '.join(KINDS)}")
        from specperf.plots.kinds import FLAG_KWARGS, inputs, kinds_accepting

        modules = {k: k.replace("-", "_") for k in KINDS}
        inp = inputs(modules[kind])
        modes = o.modes(mode)
        # one mode, or the list the multi-mode figures draw side by side ('both' kept as the user said it)
        mode = "both" if modes == ("graph", "eager") else ",".join(modes)
        batches, contexts = o.batch_context(batch, context)
        given = {"cost-ratio": cost_ratio is not None, "style": style != "surface", "drafts": drafts is not None,
                 "layers": layers is not None, "d-model": d_model is not None,
                 "batch-list": len(batches) > 1, "context-list": len(contexts) > 1, "reference": reference is not None}
        for flag, on in given.items():
            if on and flag not in inp.flags:
                ks = kinds_accepting(flag, modules)
                if flag in ("batch-list", "context-list"):
                    raise UsageError(f"the {kind} figure takes one --batch and one --context (lists: {', '.join(ks)})",
                                     value=f"{batch} / {context}", allowed="one integer each")
                raise UsageError(f"--{flag} applies to the {' and '.join(ks)} figure{'s' if len(ks) > 1 else ''} only",
                                 value=flag, allowed=", ".join(ks))
        from .common import dtype_bytes
        from .predict_cmd import acceptance_model

        study = target is None and cost_ratio is None and "target" in inp.needs
        if study:  # no models named: the study's case
            target = STUDY["target"]
            draft = draft or (STUDY["draft"] if "draft" in inp.needs else None)
        if alpha is None and acceptance is None and "alpha" in inp.needs and (study or target is None):
            alpha = STUDY["alpha"]
        tp = tp if tp is not None else (STUDY["tp"] if study else 1)

        by = dtype_bytes(dtype)
        o.positive(tp, "tp")
        from specperf.plots.common import check_out

        check_out(out, ".html", "--out")  # fail before any work
        if png is not None:
            check_out(png, ".png", "--png")
        from specperf.perfmodel.specs.catalog import resolve_model
        from specperf.perfmodel.specs.hardware import resolve_gpu
        from specperf.perfmodel.latency.providers import build_provider
        from specperf.perfmodel.specdec.maths import GAMMA_MAX

        from specperf import plots
        from specperf.plots.common import Setting

        gmax = gamma_max if gamma_max is not None else inp.gamma_max
        if not 1 <= gmax <= GAMMA_MAX:
            raise UsageError(f"gamma-max={gmax} is not allowed; must be in 1..{GAMMA_MAX}")
        models_optional = inp.cost_ratio_replaces_models and cost_ratio is not None
        needed = [f"--{n}" for n, v in (("target", target), ("draft", draft)) if n in inp.needs]
        if any(v is None for n, v in (("target", target), ("draft", draft)) if n in inp.needs) and not models_optional:
            raise UsageError(f"the {kind} figure needs {' and '.join(needed)}"
                             + (" (or --cost-ratio)" if inp.cost_ratio_replaces_models else ""))
        if profile is not None and analytical:
            raise UsageError("give --profile or --analytical, not both")
        if cost_ratio is not None and profile is not None:
            raise UsageError("--cost-ratio uses no latency model; drop --profile")
        acc = acceptance_model(alpha, acceptance) if alpha is not None or acceptance is not None else None
        if "alpha" in inp.needs and acc is None:
            raise UsageError(f"the {kind} figure needs --alpha (α in [0, 1)) or --acceptance FILE")
        hw = resolve_gpu(gpu)
        lat = build_provider(hw, profile=profile, analytical=analytical, calibration=calibration,
                             modes=list(modes), allow_gpu_mismatch=allow_gpu_mismatch).target
        tgt = resolve_model(target, by) if target else None
        drf = resolve_model(draft or DEPTH_WIDTH_BASE, by) if (draft or kind == "depth-width") else None
        setting = Setting(target=tgt, draft=drf, latency=lat, gpu=hw.name, tp=tp, mode=mode, batch=batches[0],
                          context=contexts[0], acceptance=acc, gammas=tuple(range(1, gmax + 1)), profile=profile)
        values = {"cost-ratio": cost_ratio, "style": style, "batch-list": batches if len(batches) > 1 else None,
                  "context-list": contexts if len(contexts) > 1 else None,
                  "layers": o.int_list(layers, "layers") if layers else None,
                  "d-model": o.int_list(d_model, "d-model") if d_model else None,
                  "alpha": acc.alpha if acc is not None else None, "reference": reference}
        kw: dict = {FLAG_KWARGS[f]: values[f] for f in inp.flags if f != "drafts"}
        kw = {k: v for k, v in kw.items() if v is not None or k in ("cost_ratio", "alpha", "layers", "d_models")}
        if kind == "depth-width":  # its figure has defaults for the axes: pass only what was given
            kw = {k: v for k, v in kw.items() if v is not None}
        if "drafts" in inp.flags and drafts:
            kw["drafts"], kw["stated"] = _drafts_with_alpha(drafts, by)
        fig = plots.figure(kind, setting, **kw)
        if profile is not None and kind != "acceptance":
            from specperf.plots.common import latency_sources, source_kind

            srcs = {k: v for k, v in latency_sources(fig).items() if source_kind(v) != "none"}
            if srcs and not any(source_kind(v) in ("measured", "mixed") for v in srcs.values()):
                raise UsageError(f"profile {profile!r} supplies none of the latencies the {kind} figure draws "
                                 f"({', '.join(sorted(srcs)[:4])}{' …' if len(srcs) > 4 else ''} would all be "
                                 "analytical): profile these shapes (component=layer/lm_head rows) or drop --profile")
        png_path = plots.write_png(fig, png) if png else None  # first: a failed PNG leaves no HTML behind
        html = plots.write_html(fig, out)
        doc = {"kind": kind, "html": str(html), "png": str(png_path) if png_path else None,
               "traces": len(fig.data), "latency": getattr(lat, "name", type(lat).__name__)}
        doc.update(_memory(tgt, drf, tp, max(batches), max(contexts), gmax, hw.memory_bytes))
        if json_out:
            print_json(doc)
            return
        typer.echo(f"wrote {html} ({kind}, {len(fig.data)} traces; latency: {doc['latency']})")
        if doc.get("memory_note"):
            typer.echo(f"note: {doc['memory_note']}")
        if png_path:
            typer.echo(f"wrote {png_path}")
