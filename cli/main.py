"""specperf command line: thin typer commands that parse, call one library function and render.

Heavy imports (scipy, torch, plotly, pandas) stay inside the commands that need them, so
`specperf predict` starts fast. Each optional command module exposes `register(app)`.
"""
from __future__ import annotations

import importlib
from typing import Annotated, Optional

import typer

from .common import dtype_bytes, handle_errors, print_json

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Which draft model and lookahead make speculative decoding fastest on your GPU.")


@app.command()
@handle_errors
def models(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the model catalog (shapes checked against each model's config.json)."""
    from perfmodel.specs.catalog import MODELS

    if json_out:
        print_json([m.to_dict() for m in MODELS.values()])
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="specperf model catalog")
    for col in ("name", "family", "layers", "d_model", "heads", "kv", "d_ff", "vocab", "params"):
        t.add_column(col, justify="left" if col in ("name", "family") else "right")
    for m in MODELS.values():
        t.add_row(m.name, m.family, str(m.n_layers), str(m.d_model), str(m.n_heads), str(m.n_kv_heads),
                  str(m.d_ff), str(m.vocab), f"{m.params / 1e9:.2f} B")
    Console().print(t)


@app.command()
@handle_errors
def gpus(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the GPU catalog (datasheet rates, each with its source)."""
    from perfmodel.specs.hardware import GPUS

    if json_out:
        print_json([g.to_dict() for g in GPUS.values()])
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="specperf GPU catalog (dense fp16/bf16, no sparsity)")
    for col in ("name", "TFLOP/s", "HBM TB/s", "memory GB", "interconnect GB/s", "source"):
        t.add_column(col)
    for g in GPUS.values():
        t.add_row(g.name, f"{g.peak_flops_per_s / 1e12:.1f}", f"{g.hbm_bytes_per_s / 1e12:.2f}",
                  f"{g.memory_bytes / 1e9:.0f}", f"{g.interconnect_bytes_per_s / 1e9:.0f}",
                  g.sources.get("datasheet", ""))
    Console().print(t)


@app.command()
@handle_errors
def predict(
    target: Annotated[Optional[str], typer.Option(help="Target model: catalog name, config.json, NAME:field=value.")] = None,
    draft: Annotated[Optional[str], typer.Option(help="Draft model (same forms as --target).")] = None,
    gpu: Annotated[str, typer.Option(help="GPU from `specperf gpus`.")] = "h100-sxm",
    alpha: Annotated[Optional[float], typer.Option(help="i.i.d. acceptance probability α in [0, 1).")] = None,
    acceptance: Annotated[Optional[str], typer.Option(help="Acceptance JSON (from `specperf calibrate acceptance`).")] = None,
    gamma: Annotated[str, typer.Option(help="Lookahead γ: N, a list 1,2,4, or 'auto' (1..gamma-max).")] = "auto",
    gamma_max: Annotated[int, typer.Option(help="Largest γ searched by 'auto'.")] = 8,
    batch: Annotated[int, typer.Option(help="Sequences decoded together.")] = 1,
    context: Annotated[int, typer.Option(help="Tokens already in the KV cache.")] = 512,
    tp: Annotated[int, typer.Option(help="Tensor-parallel degree of the target.")] = 1,
    dtype: Annotated[str, typer.Option(help="fp16 or bf16.")] = "fp16",
    mode: Annotated[str, typer.Option(help="graph (CUDA graphs) or eager.")] = "graph",
    profile: Annotated[Optional[str], typer.Option(help="Measured LatencyTable (default: the shipped one for --gpu).")] = None,
    analytical: Annotated[bool, typer.Option("--analytical", help="Ignore measured profiles.")] = False,
    cost_ratio: Annotated[Optional[float], typer.Option(help="Leviathan's c = t_draft/t_target: no models needed.")] = None,
    calibration: Annotated[Optional[str], typer.Option(help="Latency correction JSON (from `specperf calibrate latency`).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
):
    """Predict tokens/s and speedup of speculative decoding over γ, and the optimal γ."""
    from . import predict_cmd

    predict_cmd.run(target=target, draft=draft, gpu=gpu, alpha=alpha, acceptance=acceptance,
                    gamma=gamma, gamma_max=gamma_max, batch=batch, context=context, tp=tp,
                    dtype_bytes=dtype_bytes(dtype), mode=mode, profile=profile, analytical=analytical,
                    cost_ratio=cost_ratio, json_out=json_out, calibration=calibration)


# Optional command modules (each defines register(app)); imported lazily-cheap: typer only.
for _name in ("profile", "calibrate", "optimize", "plot", "explore", "validate"):
    try:
        _mod = importlib.import_module(f"cli.{_name}_cmds")
    except ModuleNotFoundError as _e:
        if _e.name != f"cli.{_name}_cmds":
            raise
        continue
    _mod.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
