"""`specperf profile --operators`: time the operators of a dense decoder layer (GEMMs, attention,
norms, RoPE, activation, residual adds, KV-cache writes, embedding, launch cost) on this machine's
GPU into an OperatorTable (CSV + JSON metadata); resumable with the same --out."""
from __future__ import annotations

import sys
import time

import typer

from .common import UsageError, print_json

LAYOUT_OPS = ("rope", "kv_write")  # operators whose kernels depend on profiler.env.LAYER_LAYOUT


def run_operator_profile(*, out: str, dtype: str, mode: str, device: str, grid: str, deadline_s,
                         json_out: bool, ops: str = "") -> dict:
    from pathlib import Path

    from .measuring import check_device, check_dtype, parse_modes, use_device

    dtype, _ = check_dtype(dtype)
    modes = parse_modes(mode)
    if "compiled" in modes:
        raise UsageError("mode=compiled is not an operator sweep: operators are timed unfused and compiled "
                         "layers are composed from them with glue fitted on compiled layer rows "
                         "(scripts/fit_operator_glue.py --compiled-layers); use graph or eager",
                         value="compiled", allowed="graph, eager")
    check_device(device)
    p = Path(out)
    if p.suffix != ".csv" or p.is_dir() or not (p.parent if str(p.parent) else Path(".")).is_dir():
        raise UsageError(f"out={out!r} is not allowed; give a .csv file in an existing folder")
    from specperf.profiler import operator_sweep as osw

    if grid not in osw.GRIDS:
        raise UsageError(f"grid={grid!r} is not allowed; use one of {', '.join(osw.GRIDS)}")
    if deadline_s is not None and not deadline_s > 0:
        raise UsageError(f"deadline-s={deadline_s} is not allowed; give seconds > 0")
    from specperf.perfmodel.latency.operator_table import OPS, OperatorTable

    only = tuple(o.strip() for o in ops.split(",") if o.strip())
    bad = [o for o in only if o not in OPS]
    if bad:
        raise UsageError(f"ops={bad[0]!r} is not allowed; use some of {', '.join(OPS)}")
    use_device(device)
    from specperf.profiler import env

    meta = env.metadata(device, dtype, command="specperf profile " + " ".join(sys.argv[2:]))
    meta["timing"] = ("CUDA events; sample = mean of back-to-back calls; median/p10/p90 over >= "
                      f"{osw.MIN_REPEATS} samples until the median moves < {osw.REL_TOL:.0%}; graph mode = "
                      "replays of one captured graph of a stack of calls; weights and KV caches are distinct "
                      "views of one random pool (>= 256 MiB per stack) so L2 holds none between calls")
    if p.exists():
        table = OperatorTable.load(p)
        if table.meta.get("gpu") not in (None, meta["gpu"]):
            raise UsageError(f"out={out!r} holds operators measured on {table.meta.get('gpu')!r}, "
                             f"not on this {meta['gpu']!r}; give another --out")
        table.meta.setdefault("dtypes", [])
        if table.meta.get("kernels", "plain") != meta["kernels"]:
            raise UsageError(f"out={out!r} holds operators timed with {table.meta.get('kernels', 'plain')!r} "
                             f"kernels, not {meta['kernels']!r}; give another --out or the same --kernels",
                             value=meta["kernels"], allowed=table.meta.get("kernels", "plain"))
        if table.meta.get("layer_layout") != meta["layer_layout"]:
            # RoPE and the KV write moved their per-forward work into the Step (profiler.blocks):
            # their rows are re-timed in this layout; every other operator is the same kernel
            old = len(table.rows)
            table.rows = [r for r in table.rows if r["op"] not in LAYOUT_OPS]
            typer.echo(f"{out}: layer layout {table.meta.get('layer_layout', 'per-layer')!r} → "
                       f"{meta['layer_layout']!r}: {old - len(table.rows)} rows of {', '.join(LAYOUT_OPS)} "
                       "are re-timed", err=True)
            table.meta["layer_layout"] = meta["layer_layout"]
    else:
        table = OperatorTable(meta={k: v for k, v in meta.items() if k not in ("dtype",)})
        table.meta["dtypes"] = []
    if dtype not in table.meta["dtypes"]:
        table.meta["dtypes"] = table.meta["dtypes"] + [dtype]
    table.meta["grid"] = osw.grid_meta(grid, osw.GRIDS[grid])
    before = len(table)
    t0 = time.perf_counter()
    log = (lambda s: None) if json_out else (lambda s: typer.echo(s, err=True))
    osw.run(osw.GRIDS[grid], table, p, device, dtype, modes=modes, deadline_s=deadline_s, log=log, ops=only or None,
            provenance={k: meta[k] for k in ("command", "date", "gpu_name", "driver", "torch")})
    ok = len(table.ok_rows())
    summary = {"out": str(p), "rows": len(table), "ok": ok, "new_rows": len(table) - before,
               "wall_s": time.perf_counter() - t0, "gpu": meta["gpu_name"], "dtype": dtype,
               "kernels": table.meta.get("kernels", "plain")}
    from specperf.perfmodel.latency.attention_floor import summary as floor_summary
    summary["attention_floor"] = fl = floor_summary(table)
    if json_out:
        print_json(summary)
    else:
        typer.echo(f"profiled {summary['new_rows']} operator points ({dtype}) in {summary['wall_s']:.1f} s on "
                   f"{meta['gpu_name']}; {ok} ok rows in {p} (+ .meta.json)")
        if fl["n"]:
            typer.echo(f"attention at kv_len >= {fl['min_kv_len']} (graph): median {fl['median_fraction']:.0%} "
                       f"of the memory floor (K/V bytes / {fl['copy_bytes_per_s'] / 1e12:.2f} TB/s copy rate), "
                       f"worst {fl['min_fraction']:.0%}; {fl['n_over_1p5x_floor']} of {fl['n_floor_over_10us']} "
                       f"rows with a floor >= 10 us above 1.5x it")
    return summary
