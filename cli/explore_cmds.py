"""`specperf explore`: write the explorer page — one self-contained HTML file (plotly.js and latency
tables embedded; works offline) with dropdowns for target, draft, GPU, mode and tp and sliders for
α, batch and context. Defaults: the study's case (llama-65b, tp 4, h100-sxm, the study's drafts).

Module top imports only stdlib, typer and cli.common (fast start); numpy/plotly load in the command.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as o
from .common import UsageError, handle_errors, parse_names, print_json

# The page's latency tables hold (drafts + targets × tps) × gpus × modes tables of batch × context
# cells, each cell timed through the providers one by one. Measured on the 2-core CI machine (issue
# 25): the default page (60 tables × 56 cells = 3,360) took 35 s; 2 tables × 1,024 cells took 20 s
# (about 10 ms a table cell), so 4,096 table cells keep a run under 60 s.
MAX_TABLE_CELLS = 4096
# --load: one serve-sim sweep (6 rates × 2 engines × 100 requests) per draft × α (first mode), about 3 s each
# on the 2-core CI machine, so 24 sweeps keep the view near a minute and a half
MAX_LOAD_SWEEPS = 24


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def explore(
        out: Annotated[str, typer.Option(help="HTML file to write (self-contained; open it in any browser).")] = "explorer.html",
        targets: Annotated[Optional[str], typer.Option(help="Target models, comma-separated (default: llama-65b).")] = None,
        drafts: Annotated[Optional[str], typer.Option(help="Draft models, comma-separated (default: the study's drafts).")] = None,
        gpus: Annotated[str, typer.Option(help="GPUs from `specperf gpus`, comma-separated.")] = "h100-sxm,h200",
        tps: Annotated[str, typer.Option(help="Tensor-parallel degrees of the target, e.g. 1,2,4,8.")] = "1,2,4,8",
        modes: Annotated[str, typer.Option(help="graph, eager, compiled or a comma list of them.")] = "graph,eager,compiled",
        batches: Annotated[Optional[str], typer.Option(help="Batch slider values, e.g. 1,2,4,8 or 1..64.")] = None,
        contexts: Annotated[Optional[str], typer.Option(help="Context slider values, e.g. 512,2048,8192.")] = None,
        gamma_max: Annotated[int, typer.Option(help="Largest lookahead γ searched in the page.")] = 12,
        dtype: Annotated[str, typer.Option(help="fp16 or bf16.")] = "fp16",
        analytical: Annotated[bool, typer.Option("--analytical", help="Ignore measured profiles.")] = False,
        load: Annotated[bool, typer.Option("--load", help="Add the under-load view: serve-sim sweeps vs request rate for the first target at the default GPU, tp and first mode, every draft (precomputed; about 3 s a draft per α).")] = False,
        load_alphas: Annotated[str, typer.Option(help="α values the under-load view precomputes (the page shows the nearest).")] = "0.6,0.7,0.8",
        json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document naming the file.")] = False,
    ):
        """Write the explorer page: every figure recomputed in the browser as you move α, batch and context."""
        from specperf.perfmodel.specdec.maths import GAMMA_MAX
        from specperf.plots import explore_data as ed
        from specperf.plots.common import check_out
        from specperf.plots.explorer import write_explorer

        from .common import dtype_bytes

        check_out(out, ".html", "--out")
        mode_list = parse_names(modes, "modes")
        from specperf.perfmodel.specs.modes import MODES

        for m in mode_list:
            if m not in MODES:
                raise UsageError(f"mode={m!r} is not allowed; use graph, eager, compiled or a comma list of them")
        if not 1 <= gamma_max <= GAMMA_MAX:
            raise UsageError(f"gamma-max={gamma_max} is not allowed; must be in 1..{GAMMA_MAX}")
        # the same physical bounds and value counts as predict's --batch/--context/--tp (cli/options.py)
        kw = {"batches": o.int_list(batches, "batches", hi=o.BOUNDS["batch"]) if batches else list(ed.BATCHES),
              "contexts": o.int_list(contexts, "contexts", hi=o.BOUNDS["context"]) if contexts else list(ed.CONTEXTS)}
        tgt_list = parse_names(targets, "targets") if targets else list(ed.TARGETS)
        drf_list = parse_names(drafts, "drafts") if drafts else list(ed.STUDY_DRAFTS)
        gpu_list, tp_list = parse_names(gpus, "gpus"), o.int_list(tps, "tps", hi=o.BOUNDS["tp"])
        tables = (len(drf_list) + len(tgt_list) * len(tp_list)) * len(gpu_list) * len(mode_list)
        o.check_work({"contexts": kw["contexts"], "batches": kw["batches"]}, tables, MAX_TABLE_CELLS,
                     "latency-table cells", "latency tables: (drafts + targets × tps) × gpus × modes")
        alphas = None
        if load:
            try:
                alphas = sorted({float(x) for x in load_alphas.split(",") if x.strip()})
            except ValueError:
                alphas = []
            if not alphas or not all(0 < a < 1 for a in alphas):
                raise UsageError(f"load-alphas={load_alphas!r} is not allowed; α values in (0, 1), e.g. 0.6,0.7,0.8",
                                 value=load_alphas, allowed="α values in (0, 1)")
            sweeps = len(drf_list) * len(alphas)
            if sweeps > MAX_LOAD_SWEEPS:
                raise UsageError(f"--load would run {sweeps} sweeps (drafts × load-alphas); at most "
                                 f"{MAX_LOAD_SWEEPS}: give fewer --drafts or --load-alphas",
                                 value=sweeps, allowed=f"at most {MAX_LOAD_SWEEPS} sweeps")
        data = ed.explorer_data(targets=tgt_list, drafts=drf_list, gpus=gpu_list, modes=mode_list, tps=tp_list,
                                gammas=tuple(range(1, gamma_max + 1)), dtype_bytes=dtype_bytes(dtype),
                                analytical=analytical, load=load, load_alphas=alphas, **kw)
        path = write_explorer(data, out)
        size = path.stat().st_size
        doc = {"html": str(path), "bytes": size, "targets": data["targets"], "drafts": data["drafts"],
               "gpus": data["gpus"], "modes": data["modes"], "tps": data["tps"]}
        if json_out:
            print_json(doc)
            return
        typer.echo(f"wrote {path} ({size / 1e6:.1f} MB; {len(data['drafts'])} drafts × {len(data['gpus'])} GPUs × "
                   f"{len(data['modes'])} modes × tp {','.join(map(str, data['tps']))}); open it in a browser")
