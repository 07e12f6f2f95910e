"""`specperf profile`: measure per-layer, LM-head and overhead latency on this machine's GPU (or CPU)
into a LatencyTable (CSV or parquet + JSON metadata); resumable with the same --out."""
from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from . import options as o
from .common import UsageError, handle_errors, parse_names, print_json
from .measuring import check_device, check_dtype, parse_modes, use_device  # noqa: F401  (re-exported)


def _check_out(out: str):
    from pathlib import Path

    p = Path(out)
    if p.suffix not in (".csv", ".parquet"):
        raise UsageError(f"out={out!r} is not allowed; give a .csv or .parquet file")
    if p.is_dir():
        raise UsageError(f"out={out!r} is a directory; give a .csv or .parquet file")
    if p.suffix == ".parquet":
        import importlib.util

        if not (importlib.util.find_spec("pandas") and importlib.util.find_spec("pyarrow")):
            raise UsageError(f"out={out!r}: parquet needs pandas and pyarrow; install them or give a .csv file")
    parent = p.parent if str(p.parent) else Path(".")
    import os

    if not parent.is_dir() or not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"out={out!r} is not writable (folder {str(parent)!r} missing or read-only)")
    return p


def run_profile(*, models, batch, context, gamma_max, new_tokens, mode, dtype, tp, device, out,
                copies, overhead, quiet, estimate_only, json_out, ranks=0, deadline_s=None):
    import time

    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specdec.maths import GAMMA_MAX
    from specperf.perfmodel.latency.table import LatencyTable

    if not 1 <= gamma_max <= GAMMA_MAX:
        raise UsageError(f"gamma-max={gamma_max} is not allowed; must be in 1..{GAMMA_MAX}")
    dtype, by = check_dtype(dtype)
    modes = parse_modes(mode)
    check_device(device)
    if deadline_s is not None and not deadline_s > 0:
        raise UsageError(f"deadline-s={deadline_s} is not allowed; give seconds > 0")
    if new_tokens:
        nt = o.int_list(new_tokens, "new-tokens")
    elif set(modes) == {"compiled"}:  # every point compiles: a sparser default (sweep.COMPILED_NEW_TOKENS)
        from specperf.profiler.sweep import COMPILED_NEW_TOKENS

        nt = sorted({n for n in COMPILED_NEW_TOKENS if n <= gamma_max + 1} | {gamma_max + 1})
    else:
        nt = list(range(1, gamma_max + 2))
    batches, contexts = o.batch_context(batch, context)
    grid_kw = dict(batches=tuple(batches), contexts=tuple(contexts),
                   new_tokens=tuple(nt), modes=modes, tps=tuple(o.int_list(tp, "tp")),
                   overhead_gammas=tuple(range(0, gamma_max + 1)) if overhead else ())
    specs = [resolve_model(m, by) for m in parse_names(models, "models")]
    p = _check_out(out)

    from specperf.perfmodel.specs.hardware import GPUS

    from specperf.profiler import sweep

    jobs = sweep.plan([(s, sweep.Grid(**grid_kw)) for s in specs])
    n_points = sum(len(j.new_tokens) * len(j.modes) for j in jobs)
    est = sweep.estimate_s(jobs, GPUS["h100-sxm"])
    if estimate_only:
        msg = {"points": n_points, "jobs": len(jobs), "estimate_h100_s": est}
        if json_out:
            print_json(msg)
        else:
            typer.echo(f"{n_points} points in {len(jobs)} jobs; estimated {est:.0f} s on an H100")
        return
    import torch

    from specperf.profiler import env

    tps = grid_kw["tps"]
    if "compiled" in modes and max(tps) > 1:
        raise UsageError("mode=compiled is not profiled with --tp > 1 (predictions compose compiled shards "
                         "from the operator model and take graph-mode all-reduces); use graph or eager",
                         value="compiled", allowed="graph, eager")
    if ranks not in (0, 1) and (len(tps) != 1 or ranks != tps[0]):
        raise UsageError(f"ranks={ranks} is not allowed; give 0 (auto), 1, or the single --tp value")
    if ranks != 1 and len(tps) == 1 and tps[0] > 1:  # one process per rank (profiler.tp_bench)
        n_gpu = torch.cuda.device_count() if device.startswith("cuda") and torch.cuda.is_available() else 0
        if ranks == tps[0] or n_gpu >= tps[0]:
            return _profile_tp(specs, grid_kw, p, dtype, tps[0], device, json_out)
    use_device(device)
    meta = env.metadata(device, dtype, command="specperf profile " + " ".join(sys.argv[2:]))
    from specperf.profiler.filelock import LockedError, locked

    try:
        with locked(p):
            return _sweep(p, out, meta, jobs, n_points, est, device, dtype, copies, quiet, json_out, deadline_s)
    except LockedError as e:
        raise UsageError(str(e), value=str(out), allowed="an --out no other run is writing") from None


def _sweep(p, out, meta, jobs, n_points, est, device, dtype, copies, quiet, json_out, deadline_s=None):
    """Measure `jobs` into the table at `p` (resumed when it exists), under the caller's lock."""
    import time

    from specperf.perfmodel.latency.table import SCHEMA_VERSION, LatencyTable
    from specperf.perfmodel.specs.hardware import GPUS
    from specperf.profiler import sweep

    if p.exists():
        ver = LatencyTable.read_meta(p).get("schema_version", SCHEMA_VERSION)
        if not isinstance(ver, int) or ver > SCHEMA_VERSION:
            raise UsageError(f"out={out!r} holds a table of schema_version={ver!r}, newer than this specperf's "
                             f"{SCHEMA_VERSION}; upgrade specperf or give another --out", value=ver,
                             allowed=f"schema_version ≤ {SCHEMA_VERSION}")
        table = LatencyTable.load(p)
        if table.meta.get("gpu") not in (None, meta["gpu"]):
            raise UsageError(f"out={out!r} holds a profile measured on {table.meta.get('gpu')!r}, "
                             f"not on this {meta['gpu']!r}; give another --out")
        if table.meta.get("kernels", "plain") != meta["kernels"]:
            raise UsageError(f"out={out!r} holds a profile timed with {table.meta.get('kernels', 'plain')!r} "
                             f"kernels, not {meta['kernels']!r}; give another --out or the same --kernels",
                             value=meta["kernels"], allowed=table.meta.get("kernels", "plain"))
        if table.meta.get("layer_layout", "per-layer") != meta["layer_layout"]:
            raise UsageError(f"out={out!r} holds layers timed in the {table.meta.get('layer_layout', 'per-layer')!r} "
                             f"layout, not this specperf's {meta['layer_layout']!r}; give another --out",
                             value=table.meta.get("layer_layout", "per-layer"), allowed=meta["layer_layout"])
        table.meta.update({k: v for k, v in meta.items() if k not in table.meta})
        resumed = len(table)
    else:
        table, resumed = LatencyTable(meta=meta), 0
    from rich.console import Console

    con = Console(stderr=True)
    con.print(f"{n_points} points in {len(jobs)} jobs on {meta['gpu_name']} "
              f"({resumed} rows already in {out}); H100 estimate {est:.0f} s")
    t0 = time.perf_counter()
    try:
        sweep.run(jobs, table, p, device, dtype, copies=copies, console=con, verbose=not quiet,
                  deadline_s=deadline_s)
    except KeyboardInterrupt:
        con.print(f"interrupted: {len(table)} rows kept in {out}; run the same command to resume")
        raise typer.Exit(130)
    wall = time.perf_counter() - t0
    ok = len(table.ok_rows())
    if ok and meta["gpu"] in GPUS:  # store the analytical constants fitted to this profile
        from specperf.perfmodel.latency.fit import refit_file

        refit_file(p, GPUS[meta["gpu"]])
    from specperf.perfmodel.latency.integrity import consistency_report, order_violations

    saved = LatencyTable.load(p)  # as refit_file left it
    order = order_violations(saved.rows)
    consistency = consistency_report(saved.rows)
    if order or any(e["flagged_groups"] for e in consistency.values()):  # kept with the table
        saved.meta["order_check"], saved.meta["consistency_check"] = order, consistency
        saved.save(p)
    summary = {"out": str(p), "rows": len(table), "ok": ok, "skipped": len(table) - ok,
               "new_rows": len(table) - resumed, "wall_s": wall, "gpu": meta["gpu_name"], "order_check": order,
               "consistency_check": consistency}
    if json_out:
        print_json(summary)
    else:
        con.print(f"profiled {summary['new_rows']} points in {wall:.1f} s on {meta['gpu_name']}; "
                  f"{ok} ok, {summary['skipped']} skipped; wrote {p} (+ .meta.json)")
        for mode, e in order.items():
            if e["groups"]:
                con.print(f"warning: in {e['groups']} of {e['of']} {mode}-mode layer groups a longer verify timed "
                          f"faster than a shorter one (by up to {e['worst']:.0%}; e.g. {e['examples'][0]}): host "
                          "contention while timing? profile on an idle host, or delete those rows and resume")
        for mode, e in consistency.items():
            if e["flagged_groups"]:
                con.print(f"warning: physical-consistency check: {e['flagged_groups']} of {e['groups']} {mode}-mode "
                          f"groups hold {e['pairs']} row pair(s) whose time falls > 10 % as batch, new tokens or "
                          f"context grow, or a tp shard slower than the smaller tp's (e.g. {e['examples'][0]}); "
                          "predictions from them say so")


def _profile_tp(specs, grid_kw, p, dtype, tp, device, json_out):
    """--tp N over N processes: layers with/without all-reduces, all-reduce rows and curve."""
    from specperf.profiler.tp_bench import profile_cli

    s = profile_cli(specs, batches=grid_kw["batches"], contexts=grid_kw["contexts"],
                    new_tokens=grid_kw["new_tokens"], modes=grid_kw["modes"], dtype=dtype, tp=tp, out=p,
                    device=device)
    if json_out:
        print_json(s)
    else:
        typer.echo(f"profiled TP={tp} over {tp} processes in {s['wall_s']:.1f} s on {s['gpu']}: {s['ok']} ok rows "
                   f"in {s['out']}; layers with all-reduces in {s['with_allreduce']}; curve {s['curve']}")


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def profile(
        out: Annotated[str, typer.Option(help="Output LatencyTable (.csv or .parquet); an existing one is resumed.")],
        models: Annotated[str, typer.Option(help="Models: catalog names or config.json, comma-separated; NAME:field=value overrides.")] = "",
        batch: o.Batch = "1,4,16,64",
        context: o.Context = "512,2048",
        gamma_max: o.GammaMax = 8,
        new_tokens: Annotated[Optional[str], typer.Option(help="New tokens per sequence (default 1..γ_max+1; "
                                                                 "--mode compiled alone: 1,2,3,5,9,γ_max+1).")] = None,
        mode: o.Mode = "both",
        dtype: o.Dtype = "fp16",
        tp: Annotated[str, typer.Option(help="Tensor-parallel degrees: one rank's sharded layer on this GPU.")] = "1",
        device: Annotated[str, typer.Option(help="cuda, cuda:N or cpu.")] = "cuda",
        copies: Annotated[Optional[int], typer.Option(help="Distinct layer copies per timed stack (default: fill 256 MiB).")] = None,
        overhead: Annotated[bool, typer.Option(help="Also measure the per-iteration overhead (γ = 0..γ_max).")] = True,
        quiet: Annotated[bool, typer.Option("--quiet", help="No per-point lines.")] = False,
        estimate: Annotated[bool, typer.Option("--estimate", help="Only print the point count and an H100 time estimate.")] = False,
        json_out: o.Json = False,
        ranks: Annotated[int, typer.Option(help="Processes for one --tp N > 1: 0 = auto (N when this host has N GPUs, "
                                                 "NCCL), N = one per rank (gloo with --device cpu), 1 = one rank's shard here.")] = 0,
        operators: Annotated[bool, typer.Option("--operators", help="Time the operators of a decoder layer (GEMM, attention, "
                                                 "norms, RoPE, ...) into an operator table instead of layers.")] = False,
        grid: Annotated[str, typer.Option(help="--operators grid: default or tiny.")] = "default",
        deadline_s: Annotated[Optional[float], typer.Option(help="Start no job (--operators: no point) after this many seconds; "
                                                             "rerun with the same --out to resume.")] = None,
        ops: Annotated[str, typer.Option(help="--operators: only these operators (comma-separated; default all).")] = "",
        kernels: Annotated[str, typer.Option(help="Attention kernels: engine (native grouped-query, no mask in decode, "
                                                  "the fastest measured SDPA backend; compiled: attention and KV write "
                                                  "opaque, as vLLM), packed (engine + grouped verification packed per KV head) or plain "
                                                  "(the earlier folded, masked kernels).")] = "engine",
    ):
        """Measure layer, LM-head and overhead latency into a LatencyTable (resumable); --operators: operator tables."""
        if kernels not in ("engine", "packed", "plain"):
            raise UsageError(f"--kernels {kernels!r} is not allowed; use engine, packed or plain", value=kernels,
                             allowed="engine, packed, plain")
        os.environ["SPECPERF_KERNELS"] = kernels  # read by profiler.attention (and by TP rank processes)
        if "specperf.profiler.attention" in sys.modules:
            sys.modules["specperf.profiler.attention"].set_kernels(kernels)
        if operators:
            from .operator_cmd import run_operator_profile

            run_operator_profile(out=out, dtype=dtype, mode=mode, device=device, grid=grid, deadline_s=deadline_s,
                                 json_out=json_out, ops=ops)
            return
        if not models:
            raise UsageError("--models is required (or give --operators)")
        run_profile(models=models, batch=batch, context=context, gamma_max=gamma_max, new_tokens=new_tokens,
                    mode=mode, dtype=dtype, tp=tp, device=device, out=out, copies=copies, overhead=overhead,
                    quiet=quiet, estimate_only=estimate, json_out=json_out, ranks=ranks, deadline_s=deadline_s)
