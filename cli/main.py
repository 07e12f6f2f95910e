"""specperf command line: thin typer commands that parse, call one library function and render.

Heavy imports (scipy, torch, plotly, pandas) stay inside the commands that need them, so
`specperf predict` starts fast. Each optional command module exposes `register(app)`.
"""
from __future__ import annotations

import importlib
from typing import Annotated, Optional

import typer

from . import options as o
from .common import dtype_bytes, handle_errors, print_json
from .group import OneLineErrorGroup

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=OneLineErrorGroup,
                  help="Which draft model and lookahead make speculative decoding fastest on your GPU.")


def _version(value: bool) -> None:
    if value:
        from specperf.perfmodel import __version__

        typer.echo(f"specperf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False,
          follow_symlinks: Annotated[bool, typer.Option(
              "--follow-symlinks", help="Let an output path that is a symbolic link replace the file it "
                                        "points to (refused by default).")] = False) -> None:
    """Which draft model and lookahead make speculative decoding fastest on your GPU."""
    if follow_symlinks:  # read by perfmodel.specs.safeio, the writer every command uses
        import os

        from specperf.perfmodel.specs.safeio import FOLLOW_ENV

        os.environ[FOLLOW_ENV] = "1"


@app.command()
@handle_errors
def models(wide: o.Wide = False, fmt: o.Format = "table", json_out: o.Json = False):
    """List the model catalog (shapes checked against each model's config.json)."""
    from specperf.perfmodel.specs.catalog import MODELS

    fmt = o.out_format(fmt, json_out)
    if fmt == "csv":
        from .tables import scalars, write_csv

        write_csv([scalars(m.to_dict()) for m in MODELS.values()])
        return
    if fmt == "json":
        print_json([m.to_dict() for m in MODELS.values()])
        return
    from .tables import Col, console, render

    cols = [Col("name", "left", key=True, repeat=True, text=True), Col("family", "left", key=True),
            Col("params", key=True)] + [Col(c) for c in ("layers", "d_model", "heads", "kv", "d_ff", "vocab")]
    rows = [[m.name, m.family, f"{m.params / 1e9:.2f} B", str(m.n_layers), str(m.d_model), str(m.n_heads),
             str(m.n_kv_heads), str(m.d_ff), str(m.vocab)] for m in MODELS.values()]
    render(console(wide), "specperf model catalog", cols, rows, wide)


@app.command()
@handle_errors
def gpus(wide: o.Wide = False, fmt: o.Format = "table", json_out: o.Json = False):
    """List the GPU catalog (datasheet rates, each with its source)."""
    from specperf.perfmodel.specs.hardware import GPUS

    fmt = o.out_format(fmt, json_out)
    if fmt == "csv":
        from .tables import scalars, write_csv

        write_csv([dict(scalars(g.to_dict()), source=g.sources.get("datasheet", "")) for g in GPUS.values()])
        return
    if fmt == "json":
        print_json([g.to_dict() for g in GPUS.values()])
        return
    from rich.markup import escape

    from .tables import Col, console, groups, render

    cols = [Col("name", "left", key=True, text=True), Col("TFLOP/s", key=True), Col("HBM TB/s", key=True),
            Col("memory GB", key=True), Col("interconnect GB/s", key=True), Col("source", "left", text=True)]
    rows = [[g.name, f"{g.peak_flops_per_s / 1e12:.1f}", f"{g.hbm_bytes_per_s / 1e12:.2f}", f"{g.memory_bytes / 1e9:.0f}",
             f"{g.interconnect_bytes_per_s / 1e9:.0f}", g.sources.get("datasheet", "")] for g in GPUS.values()]
    con, title = console(wide), "specperf GPU catalog (dense fp16/bf16, no sparsity)"
    if len(groups(cols, rows, con.width, wide)) == 1:
        render(con, title, cols, rows, wide)
        return
    render(con, title, cols[:-1], [r[:-1] for r in rows])  # the sources below, as wrapped text
    for r in rows:
        con.print(f"  {escape(r[0])}: {escape(r[-1])}", highlight=False)


@app.command()
@handle_errors
def predict(
    target: o.Target = None,
    draft: o.Draft = None,
    gpu: o.Gpu = "h100-sxm",
    alpha: o.Alpha = None,
    acceptance: o.Acceptance = None,
    gamma: o.Gamma = "auto",
    gamma_max: o.GammaMax = 8,
    batch: o.Batch = "1",
    context: o.Context = "512",
    tp: o.Tp = 1,
    dtype: o.Dtype = "fp16",
    mode: o.Mode = "graph",
    profile: o.Profile = None,
    analytical: o.Analytical = False,
    cost_ratio: Annotated[Optional[float], typer.Option(help="Leviathan's c = t_draft/t_target: no models needed.")] = None,
    calibration: o.Calibration = None,
    allow_gpu_mismatch: o.AllowGpuMismatch = False,
    draft_catchup: o.DraftCatchup = False,
    method: o.Method = "draft",
    tree: o.Tree = None,
    tree_depth: o.TreeDepth = None,
    wide: o.Wide = False,
    fmt: o.Format = "table",
    json_out: o.Json = False,
):
    """Predict tokens/s and speedup of speculative decoding over γ, and the optimal γ (0: do not speculate)."""
    from . import predict_cmd

    predict_cmd.run(target=target, draft=draft, gpu=gpu, alpha=alpha, acceptance=acceptance,
                    gamma=gamma, gamma_max=gamma_max, batch=batch, context=context, tp=tp,
                    dtype_bytes=dtype_bytes(dtype), mode=mode, profile=profile, analytical=analytical,
                    cost_ratio=cost_ratio, json_out=json_out, calibration=calibration,
                    allow_gpu_mismatch=allow_gpu_mismatch, draft_catchup=draft_catchup, method=method, tree=tree,
                    tree_depth=tree_depth, wide=wide, fmt=o.out_format(fmt, json_out))


# Optional command modules (each defines register(app)); imported lazily-cheap: typer only.
for _name in ("profile", "calibrate", "agreement", "optimize", "plot", "explore", "validate", "data"):
    try:
        _mod = importlib.import_module(f"specperf.cli.{_name}_cmds")
    except ModuleNotFoundError as _e:
        if _e.name != f"specperf.cli.{_name}_cmds":
            raise
        continue
    _mod.register(app)
importlib.import_module("specperf.cli.serve_cmd").register(app)  # specperf serve-sim


def main() -> None:
    app()


if __name__ == "__main__":
    main()
