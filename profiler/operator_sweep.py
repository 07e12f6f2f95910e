"""The operator sweep: grids of sizes per operator, measured point by point into an OperatorTable
that is saved as it grows and resumed from its file (like profiler.sweep for layers).

Grids are log-spaced (nodes 2^k and 1.5·2^k, which hit the common model widths 768, 1536, 3072,
6144, 12288 …). Points are ordered coarse-to-fine: level 0 is every other node of every axis, so a
sweep stopped at its deadline still spans the whole grid and the provider fills the holes by
interpolation; the rest follows. Eager mode is measured on a small sub-grid only: an operator's
eager time is its host launch cost where the GPU work is small, which is what the provider uses
(perfmodel.latency.operators). Key assumption: per-point timing converges in ≥ MIN_REPEATS samples
to 2 % (a looser stop than the layer sweep's 1 %, the price of ~10⁴ points in minutes).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch

from specperf.perfmodel.latency.operator_table import AXES, SIZE_COLS, OperatorTable, op_key

from . import attention, measure, operators
from .timing import row_fields, time_module

MIN_REPEATS, MAX_REPEATS, REL_TOL = 10, 40, 0.02
SAVE_EVERY_S = 15.0
MAX_GEMM_FLOPS = 2 ** 40  # larger GEMMs are compute-bound: the provider extrapolates ∝ M
MAX_POOL_BYTES = 6 * 2 ** 30


def nodes(lo: int, hi: int, half: bool = True) -> tuple:
    """2^k (and 1.5·2^k when `half`) from lo to hi inclusive."""
    out = []
    v = 1
    while v <= hi:
        for x in ((v, v + v // 2) if half and v >= 2 else (v,)):
            if lo <= x <= hi:
                out.append(x)
        v *= 2
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class OpGrid:
    tokens: tuple
    gemm_n: tuple
    gemm_k: tuple
    max_ratio: float  # |N/K| ≤ max_ratio, except N ≥ head_n (LM heads: N = vocabulary)
    head_n: int
    widths: tuple
    batch_heads: tuple
    queries_mha: tuple
    queries_gqa: tuple
    kv_lens: tuple
    head_dims: tuple
    max_cache_elems: int  # per copy of a KV cache (k and v)
    eager_tokens: tuple
    eager_gemm: tuple  # (N, K) pairs timed eagerly
    eager_widths: tuple
    eager_attention: tuple  # (batch_heads, queries, kv_len, head_dim)
    verify_tokens: tuple = ()  # attention_verify (engine kernels only): new tokens n > 1 ...
    verify_groups: tuple = ()  # ... query heads per KV head
    verify_batch_heads: tuple = ()  # ... batch × KV heads (kv_lens, head_dims as attention)
    gemm_bias: bool = True  # graph-mode bias GEMMs (the default grid leaves them out: cuBLAS fuses the
    # bias into the GEMM's epilogue, and their eager rows still give the host cost of a bias GEMM)


GRIDS = {
    "default": OpGrid(tokens=nodes(1, 2048, half=False), gemm_n=nodes(256, 262144), gemm_k=nodes(256, 32768),
                      max_ratio=16, head_n=24576, widths=nodes(64, 65536, half=False),
                      batch_heads=nodes(1, 4096, half=False), queries_mha=(1, 2, 4, 8, 16),
                      queries_gqa=(2, 4, 8, 16, 32, 64, 128), kv_lens=nodes(128, 8192, half=False),
                      head_dims=(64, 128), max_cache_elems=2 ** 29, eager_tokens=(1, 64),
                      eager_gemm=((256, 256), (4096, 4096)), eager_widths=(256, 4096),
                      eager_attention=((1, 1, 128, 128), (32, 4, 2048, 128)), gemm_bias=False,
                      verify_tokens=(2, 5, 8), verify_groups=(2, 3, 4, 5, 6, 7, 8),
                      verify_batch_heads=(1, 4, 16, 64, 256, 1024)),
    "tiny": OpGrid(tokens=(1, 4), gemm_n=(64, 128), gemm_k=(64, 128), max_ratio=16, head_n=128,
                   widths=(64, 128), batch_heads=(1, 4), queries_mha=(1, 2), queries_gqa=(2, 4),
                   kv_lens=(32, 64), head_dims=(32,), max_cache_elems=2 ** 20, eager_tokens=(1,),
                   eager_gemm=((64, 64),), eager_widths=(64,), eager_attention=((1, 1, 32, 32),),
                   verify_tokens=(2,), verify_groups=(2,), verify_batch_heads=(1, 4)),
}
SMALL_OPS = ("rmsnorm", "layernorm", "add", "silu_mul", "relu", "rope", "kv_write", "embed")


def _level(idx) -> int:
    return 0 if all(i % 2 == 0 for i in idx) else 1


def points(grid: OpGrid, modes=("graph", "eager"), ops=None):
    """[(level, op, mode, sizes)] of the whole sweep (only `ops` when given), coarse (level 0) before fine."""
    out = []
    z = dict.fromkeys(SIZE_COLS, 0)
    if "graph" in modes:
        for op in ("launch",):
            out.append((0, op, "graph", dict(z, tokens=1, n=1)))
        for op in SMALL_OPS:
            for (i, m), (j, w) in itertools.product(enumerate(grid.tokens), enumerate(grid.widths)):
                if m * w <= 2 ** 27:
                    out.append((_level((i, j)), op, "graph", dict(z, tokens=m, n=w)))
        for op, qs in (("attention", grid.queries_mha), ("attention_gqa", grid.queries_gqa)):
            for (i, bh), (j, q), (k, L), hd in itertools.product(enumerate(grid.batch_heads), enumerate(qs),
                                                                 enumerate(grid.kv_lens), grid.head_dims):
                if 2 * bh * (L + 16) * hd <= grid.max_cache_elems:
                    out.append((_level((i, j, k)), op, "graph",
                                dict(z, batch_heads=bh, queries=q, kv_len=L, head_dim=hd)))
        if attention.engine():  # grouped verification: measured, not composed (engine kernels only)
            for (i, n), (j, g), (k, bh), (m, L), hd in itertools.product(
                    enumerate(grid.verify_tokens), enumerate(grid.verify_groups), enumerate(grid.verify_batch_heads),
                    enumerate(grid.kv_lens[::2]), grid.head_dims):
                if 2 * bh * (L + 16) * hd <= grid.max_cache_elems:
                    out.append((_level((i, j, k, m)), "attention_verify", "graph",
                                dict(z, tokens=n, batch_heads=bh, queries=g, kv_len=L, head_dim=hd)))
        for op in ("gemm", "gemm_bias") if grid.gemm_bias else ("gemm",):
            for (i, m), (j, n), (k, kk) in itertools.product(enumerate(grid.tokens), enumerate(grid.gemm_n),
                                                             enumerate(grid.gemm_k)):
                ratio_ok = n >= grid.head_n or 1 / grid.max_ratio <= n / kk <= grid.max_ratio
                if ratio_ok and n * kk <= 2 ** 31 and 2 * m * n * kk <= MAX_GEMM_FLOPS:
                    lvl = _level((i, j, k)) + (1 if op == "gemm_bias" else 0)  # bias: a small delta, later
                    out.append((lvl, op, "graph", dict(z, tokens=m, n=n, k=kk)))
    if "eager" in modes:
        out.append((0, "launch", "eager", dict(z, tokens=1, n=1)))
        for m in grid.eager_tokens:
            for op in SMALL_OPS:
                for w in grid.eager_widths:
                    out.append((0, op, "eager", dict(z, tokens=m, n=w)))
            for op in ("gemm", "gemm_bias"):
                for n, kk in grid.eager_gemm:
                    out.append((0, op, "eager", dict(z, tokens=m, n=n, k=kk)))
        for bh, q, L, hd in grid.eager_attention:
            for op in ("attention", "attention_gqa"):
                out.append((0, op, "eager", dict(z, batch_heads=bh, queries=max(q, 2) if op.endswith("gqa") else q,
                                                 kv_len=L, head_dim=hd)))
            if attention.engine() and grid.verify_tokens:
                out.append((0, "attention_verify", "eager", dict(z, tokens=grid.verify_tokens[0], batch_heads=bh,
                                                                 queries=grid.verify_groups[0], kv_len=L, head_dim=hd)))
    if ops:
        out = [p for p in out if p[1] in ops]
    order = {"graph": 0, "eager": 1}
    out.sort(key=lambda p: (p[0], order[p[2]] if p[0] == 0 else 0))
    return out


def _row(gpu, dtype, op, mode, sizes, timing=None, copies=0, reason=""):
    return {"gpu": gpu, "op": op, "mode": mode, "dtype": dtype, **{c: int(sizes[c]) for c in SIZE_COLS},
            "copies": copies, **row_fields(timing, reason)}


def run(grid: OpGrid, table: OperatorTable, out, device, dtype: str, *, modes=("graph", "eager"),
        deadline_s: float | None = None, log=print, ops=None, provenance: dict | None = None) -> OperatorTable:
    """Measure every point of `grid` not yet in `table`, saving to `out`; stop starting new points at
    `deadline_s` seconds from now (what is measured is kept; rerun to resume). `provenance` (command,
    date, card …): this run's entry in the table's `runs` metadata, with its points and seconds."""
    from .blocks import torch_dtype

    t0 = time.monotonic()
    gpu = table.meta["gpu"]
    graph_ok = torch.device(device).type == "cuda"
    done = table.done_keys()
    todo = [p for p in points(grid, modes, ops) if (graph_ok or p[2] != "graph")
            and op_key(_row(gpu, dtype, p[1], p[2], p[3])) not in done]
    need = max([operators.pool_elems_needed(op, s) for _, op, _, s in todo] + [1])
    dt = torch_dtype(dtype)
    elem = torch.tensor([], dtype=dt).element_size()
    pool_elems = need + (measure.STACK_BYTES // elem if graph_ok else 0)
    pool = operators.Pool(min(pool_elems, MAX_POOL_BYTES // elem), dt, device)
    log(f"{len(todo)} operator points to measure on {table.meta.get('gpu_name', gpu)} ({dtype}); "
        f"pool {pool.n * elem / 2**30:.2f} GiB")
    if graph_ok and "copy_bytes_per_s" not in table.meta:  # the attention rows' memory floor (floor_report)
        table.meta["copy_bytes_per_s"] = attention.copy_bandwidth(device)
    last_save, per_op = time.monotonic(), {}
    try:
        for i, (lvl, op, mode, sizes) in enumerate(todo):
            if deadline_s is not None and time.monotonic() - t0 > deadline_s:
                log(f"deadline reached after {i} points: {len(todo) - i} left; rerun with the same --out to resume")
                break
            ts = time.monotonic()
            try:
                fn, calls, copies = operators.build(op, sizes, pool, dt, device)
                with torch.inference_mode():
                    t = time_module(fn, device, mode, min_repeats=MIN_REPEATS, max_repeats=MAX_REPEATS,
                                    rel_tol=REL_TOL).scaled(1.0 / calls)
                table.add(_row(gpu, dtype, op, mode, sizes, t, copies))
            except (torch.cuda.OutOfMemoryError, RuntimeError, MemoryError) as e:
                if not measure.is_oom(e) and not isinstance(e, MemoryError):
                    raise
                table.add(_row(gpu, dtype, op, mode, sizes, reason="out of memory: " + str(e).splitlines()[0][:120]))
                measure.free_memory(device)
            k = (op, mode)
            n_, s_ = per_op.get(k, (0, 0.0))
            per_op[k] = (n_ + 1, s_ + time.monotonic() - ts)
            if time.monotonic() - last_save > SAVE_EVERY_S:
                table.save(out)
                last_save = time.monotonic()
    finally:
        table.meta.setdefault("sweep_wall_s", {})
        table.meta["sweep_wall_s"][dtype] = table.meta["sweep_wall_s"].get(dtype, 0.0) + time.monotonic() - t0
        table.meta["wall_by_op"] = {f"{o}/{m}": [n, round(s, 2)] for (o, m), (n, s) in sorted(per_op.items())}
        attention.record_choices(table.meta)
        if provenance is not None:  # every resumed run listed
            table.meta["runs"] = list(table.meta.get("runs") or []) + [dict(
                provenance, dtype=dtype, new_points=sum(n for n, _ in per_op.values()),
                wall_s=round(time.monotonic() - t0, 1))]
        table.save(out)
        del pool
        measure.free_memory(device)
    return table


def grid_meta(name: str, grid: OpGrid) -> dict:
    from dataclasses import asdict

    return {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(grid).items()},
            "axes": {op: list(a) for op, a in AXES.items()}}


__all__ = ["GRIDS", "OpGrid", "points", "run", "nodes", "grid_meta"]
