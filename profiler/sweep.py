"""A profiling sweep: models × batch × new tokens × context × mode (× tp), deduplicated by layer
shape and head shape, measured job by job into a LatencyTable that is saved as it grows.

Key assumption: a layer's time depends only on its shape (`layer_shape_key`) and tp, the head's on
`head_shape_key`, the overhead's on the vocabulary; so `llama-7b:n_layers=4` costs nothing once
llama-7b is measured. Overhead rows store γ+1 in `new_tokens` and 0 in `context`; head rows 0 in
`context`. An out-of-memory job is recorded as `status=skipped` rows with the reason and the sweep
goes on; a finished row is never lost (saved at least every SAVE_EVERY_S and on any exit).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.specs.models import ModelSpec, SpecError
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key

from . import attention, compiled, env, measure
from .blocks import shard_sizes
from .timing import row_fields

SAVE_EVERY_S = 10.0
# Host-side cost per measured point (capture, warm-up, Python), for the estimate only: about what
# a first H100 smoke run showed; a CPU run is dominated by compute instead.
# A compiled point also compiles its shape (torch.compile, mode default): 1.77 s per point, measured
# on an H200 (perfmodel/data/h200_compiled_sweep.csv: 144 layer and head points in 254.7 s, compiles
# 1.5 s median; the first compile of a process pays ~5-8 s more).
FIXED_POINT_S = {"eager": 0.012, "graph": 0.025, "compiled": 1.77}
SWEEP_MODES = ("graph", "eager", "compiled")
# compiled mode's default new-token counts: each point costs a compile, so the verify widths between
# are interpolated (linear in new tokens). Graph-mode H200 rows predicted that way from these five:
# median 0.7 %, p90 4.3 % over 604 points (docs/accuracy.md); one model's default compiled sweep
# then takes about 2 minutes instead of 4.3.
COMPILED_NEW_TOKENS = (1, 2, 3, 5, 9)


@dataclass(frozen=True)
class Grid:
    batches: tuple
    contexts: tuple
    new_tokens: tuple
    modes: tuple
    tps: tuple = (1,)
    overhead_gammas: tuple = ()
    max_cached_tokens: int | None = None  # skip batch × context above this (no real server holds it)


@dataclass
class Job:
    component: str  # layer | lm_head | overhead
    spec: ModelSpec
    tp: int
    batch: int
    context: int  # 0 for lm_head / overhead
    new_tokens: list = field(default_factory=list)  # γ+1 values for overhead
    modes: tuple = ()

    @property
    def shape(self) -> str:
        return layer_shape_key(self.spec) if self.component == "layer" else ""

    @property
    def head_shape(self) -> str:
        return "" if self.component == "layer" else head_shape_key(self.spec)

    def keys(self, gpu: str, dtype: str):
        for n in self.new_tokens:
            for m in self.modes:
                yield (gpu, self.shape, self.head_shape, self.component, m, dtype, self.tp,
                       self.batch, n, self.context)


def check_model_grid(spec: ModelSpec, grid: Grid) -> None:
    if not grid.batches or not grid.contexts or not grid.new_tokens or not grid.modes:
        raise SpecError("the sweep grid is empty; give at least one batch, context, new-token count and mode")
    for name, vals in (("batch", grid.batches), ("context", grid.contexts), ("new_tokens", grid.new_tokens),
                       ("tp", grid.tps)):
        bad = [v for v in vals if not isinstance(v, int) or v <= 0]
        if bad:
            raise SpecError(f"{name}={bad[0]!r} is not allowed; {name} must be a positive integer")
    for m in grid.modes:
        if m not in SWEEP_MODES:
            raise SpecError(f"mode={m!r} is not allowed; use eager, graph or compiled")
    if spec.learned_positions and max(grid.contexts) + max(grid.new_tokens) > spec.max_positions:
        raise SpecError(f"context={max(grid.contexts)} + {max(grid.new_tokens)} new tokens exceeds "
                        f"{spec.name}'s max_positions={spec.max_positions} (learned positions)")
    for tp in grid.tps:
        shard_sizes(spec, tp)


def plan(models: list[tuple[ModelSpec, Grid]]) -> list[Job]:
    """Jobs for every (model, grid), deduplicated by shape key, in the order the models are given."""
    jobs: dict = {}

    def add(component, key, spec, tp, batch, context, new_tokens, modes):
        j = jobs.setdefault((component, key, tp, batch, context), Job(component, spec, tp, batch, context, [], ()))
        j.new_tokens = sorted(set(j.new_tokens) | set(new_tokens))
        j.modes = tuple(m for m in SWEEP_MODES if m in set(j.modes) | set(modes))

    for spec, g in models:
        check_model_grid(spec, g)
        for tp in g.tps:
            for b in g.batches:
                for c in g.contexts:
                    if not (g.max_cached_tokens and b * c > g.max_cached_tokens):
                        add("layer", layer_shape_key(spec), spec, tp, b, c, g.new_tokens, g.modes)
                add("lm_head", head_shape_key(spec), spec, tp, b, 0, g.new_tokens, g.modes)
        for b in g.batches if g.overhead_gammas else ():
            add("overhead", head_shape_key(spec), spec, 1, b, 0, [x + 1 for x in g.overhead_gammas], g.modes)
    order = {"layer": 0, "lm_head": 1, "overhead": 2}  # layers first: a deadline keeps the most useful rows
    return sorted(jobs.values(), key=lambda j: order[j.component])


def estimate_s(jobs: list[Job], hw) -> float:
    """Rough wall time on `hw`: analytical time × samples plus a fixed host cost per point."""
    lat = AnalyticalLatency(hw)
    total = 0.0
    for j in jobs:
        for n in j.new_tokens:
            for m in j.modes:
                if j.component == "layer":
                    t = float(lat.layer_s(j.spec, j.batch, n, j.context, j.tp, m))
                elif j.component == "lm_head":
                    t = float(lat.lm_head_s(j.spec, j.batch, n, j.tp, m))
                else:
                    t = 5e-5
                # warm-up + ≥ 20 samples of ≥ 0.3 ms (or of one call when slower), ~30 samples
                if j.component == "layer":  # one sample = one call of the stack
                    t *= measure.stack_length(j.spec, j.tp, j.batch, j.context)
                total += FIXED_POINT_S[m] + 33 * max(t, 3e-4)
    return total


def _points(job: Job, dtype: str, device, copies):
    if job.component == "layer":
        return measure.layer_points(job.spec, job.tp, job.batch, job.context, job.new_tokens,
                                    job.modes, dtype, device, copies)
    if job.component == "lm_head":
        return measure.head_points(job.spec, job.tp, job.batch, job.new_tokens, job.modes, dtype,
                                   device, copies)
    return measure.overhead_points(job.spec, job.batch, [n - 1 for n in job.new_tokens], job.modes,
                                   dtype, device)


def _row(job: Job, gpu, dtype, n, mode, timing=None, reason=""):
    return {"gpu": gpu, "model": job.spec.name, "shape": job.shape, "head_shape": job.head_shape,
            "component": job.component, "mode": mode, "dtype": dtype, "tp": job.tp, "batch": job.batch,
            "new_tokens": n, "context": job.context, **row_fields(timing, reason)}


def _work(job: Job, n: int):
    if job.component == "layer":
        return env.layer_work(job.spec, job.batch, n, job.context, job.tp)
    if job.component == "lm_head":
        return env.head_work(job.spec, job.batch, n, job.tp)
    return 0.0, 0.0


def run(jobs: list[Job], table: LatencyTable, out, device, dtype: str, *, copies=None,
        console=None, verbose: bool = True, deadline_s: float | None = None) -> LatencyTable:
    """Measure every not-yet-done point of `jobs` into `table`, saving to `out` as it goes.

    With `deadline_s` (seconds from now) no new job starts after it; the rest stays for a resume.
    """
    stop_at = None if deadline_s is None else time.monotonic() + deadline_s
    log_start = len(compiled.COMPILE_LOG)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    gpu = table.meta["gpu"]
    hw = GPUS.get(gpu)
    done = table.done_keys()
    todo = [(j, [k for k in j.keys(gpu, dtype) if k not in done]) for j in jobs]
    todo = [(j, ks) for j, ks in todo if ks]
    total = sum(len(ks) for _, ks in todo)
    graph_ok = torch.device(device).type == "cuda"
    last_save = time.monotonic()
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*cols, console=console, transient=False) as prog:
        task = prog.add_task("profiling", total=total)
        try:
            for job, keys in todo:
                if stop_at is not None and time.monotonic() > stop_at:
                    prog.console.print("deadline reached: stopping; rerun with the same --out to resume")
                    break
                want = {(k[8], k[4]) for k in keys}
                modes = tuple(m for m in job.modes if graph_ok or m == "eager")
                for n, m in sorted(want):
                    if m not in modes:
                        table.add(_row(job, gpu, dtype, n, m, reason=f"{m} mode needs a CUDA device (CUDA graphs)"))
                        prog.advance(task)
                job_ = Job(job.component, job.spec, job.tp, job.batch, job.context,
                           sorted({n for n, m in want if m in modes}), modes)
                if not job_.new_tokens or not modes:
                    continue
                prog.update(task, description=f"{job.component} {job.spec.name} tp{job.tp} b{job.batch} c{job.context}")
                got = set()
                try:
                    for (n, m), t in _points(job_, dtype, device, copies):
                        if (n, m) not in want:
                            continue
                        got.add((n, m))
                        table.add(_row(job, gpu, dtype, n, m, t))
                        prog.advance(task)
                        if verbose:
                            fl, by = _work(job, n)
                            prog.console.print(f"{job.component:7s} {job.shape or job.head_shape} tp{job.tp} {m:8s} "
                                             f"b={job.batch} n={n} ctx={job.context}  {t.median_s * 1e3:8.4f} ms "
                                             f"(p10 {t.p10_s * 1e3:.4f}, p90 {t.p90_s * 1e3:.4f}, {t.repeats}×)  "
                                             f"{env.roofline(hw, fl, by, t.median_s)}", highlight=False, soft_wrap=True)
                        if time.monotonic() - last_save > SAVE_EVERY_S:
                            table.save(out)
                            last_save = time.monotonic()
                except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
                    if not measure.is_oom(e):
                        raise
                    reason = "out of memory: " + str(e).splitlines()[0][:160]
                    for n, m in sorted(want):
                        if (n, m) not in got and m in modes:
                            table.add(_row(job, gpu, dtype, n, m, reason=reason))
                            prog.advance(task)
                    prog.console.print(f"skipped {job.component} {job.spec.name} b={job.batch} "
                                     f"ctx={job.context}: {reason}", highlight=False, soft_wrap=True)
                finally:
                    measure.free_memory(device)
        finally:
            if len(compiled.COMPILE_LOG) > log_start:  # seconds of every compile this run did
                table.meta["compile_s"] = table.meta.get("compile_s", []) + compiled.COMPILE_LOG[log_start:]
            attention.record_choices(table.meta)
            table.save(out)
    return table
