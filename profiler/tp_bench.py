"""`profile_tp`: measure tensor-parallel layers, heads and all-reduces with one process per rank,
and a whole TP model against the composition of those measurements.

Writes (rank 0): a LatencyTable of TP rows — component=layer (a rank's sharded layer WITHOUT its
all-reduces, all ranks computing concurrently), component=allreduce (the layer's two all-reduces of
batch·new_tokens·d_model, context 0), component=lm_head (embedding + norm + vocabulary-parallel
head + logits all-gather, context 0); a second LatencyTable with the sharded layer WITH its
all-reduces; the all-reduce curve over message sizes; and a validation CSV (whole TP model measured
vs n_layers·(layer + allreduce) + lm_head). Key assumption: fixed repeat counts on every rank (see
profiler.allreduce) and rank 0's times; layers timed as stacks of distinct copies with ≥ 256 MiB
of weights, as profiler.measure does, so L2 never holds a layer's weights between its calls.
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.specs.safeio import atomic_open
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key
from specperf.perfmodel.latency.tp import eager_allreduce_in_situ, save_curve

from . import allreduce, env, tp
from . import attention
from .blocks import causal_mask, kv_aligned, stack_bytes, torch_dtype
from .measure import MAX_COPIES, copies_to_fill, free_memory
from .timing import Timing, row_fields

TARGET_SAMPLE_S = 3e-4  # ≥ 0.3 ms per sample (as profiler.timing): event resolution stays < 0.2 %
MEMORY_FRACTION = 0.85  # a whole TP model may use this much of a GPU's memory
VALIDATION_COLUMNS = ("gpu", "model", "tp", "mode", "batch", "new_tokens", "context", "measured_s",
                      "p10_s", "p90_s", "composed_s", "rel_err", "composed_in_layer_s", "rel_err_in_layer",
                      "status", "reason")


@dataclass(frozen=True)
class TPJob:
    specs: tuple
    batches: tuple
    new_tokens: tuple
    contexts: tuple
    modes: tuple
    dtype: str
    out: str
    with_ar_out: str
    curve_out: str = ""  # may hold {gpu}; "" = no curve
    curve_sizes: tuple = ()
    validate: str = ""  # model name (one of specs) for the whole-model check; "" = none
    validate_grid: tuple = ((1,), (1,), (512,))  # batches, new_tokens, contexts
    validation_out: str = ""
    repeats: int = 20
    deadline: float = math.inf  # time.time() after which no new job starts
    command: str = ""
    extra_meta: dict = field(default_factory=dict)


class _Ctx:
    """Per-rank state: device, control group (gloo, independent of NCCL), logging, agreement."""

    def __init__(self, rank, world, job: TPJob):
        self.rank, self.world, self.job = rank, world, job
        self.backend = dist.get_backend()
        self.device = torch.device("cuda", rank) if self.backend == "nccl" else torch.device("cpu")
        self.ctrl = dist.new_group(backend="gloo")
        self.dtype = torch_dtype(job.dtype)
        self.meta = env.metadata(self.device, job.dtype, job.command)
        self.gpu = self.meta["gpu"]
        self.hw = GPUS.get(self.gpu, GPUS["h100-sxm"])
        self.graph_collectives = True

    def log(self, msg):
        if self.rank == 0:
            print(msg, flush=True)

    def barrier(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dist.barrier(group=self.ctrl)

    def agree_min(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MIN, group=self.ctrl)
        return float(t.item())

    def go_on(self) -> bool:
        """Rank 0 decides (deadline); every rank follows, so collectives stay matched."""
        t = torch.tensor([1.0 if time.time() < self.job.deadline else 0.0])
        dist.broadcast(t, src=0, group=self.ctrl)
        return bool(t.item())

    def timing(self, fn, mode, inner, repeats=None, collectives=True) -> Timing | None:
        """Timing, or None when this point ran out of memory or its capture failed (both ranks
        fail alike: same shapes, same GPU model)."""
        if mode == "graph" and collectives and self.world > 1 and not self.graph_collectives:
            return None
        try:
            inner = inner if self.device.type == "cuda" else 1  # CPU (tests): seconds-scale calls anyway
            return allreduce.time_lockstep(fn, self.device, mode, repeats or self.job.repeats, inner, self.barrier)
        except torch.cuda.OutOfMemoryError:
            free_memory(self.device)
            return None

    def probe_graph_collectives(self) -> None:
        """Can this NCCL capture an all-reduce in a CUDA graph? Agreed across ranks."""
        ok = 1.0
        if self.device.type == "cuda" and self.world > 1:
            x = torch.ones(1024, device=self.device, dtype=self.dtype)
            try:
                allreduce.capture(lambda: dist.all_reduce(x), self.device).replay()
                torch.cuda.synchronize(self.device)
            except RuntimeError as e:
                ok = 0.0
                print(f"rank {self.rank}: CUDA-graph capture of an NCCL all-reduce failed: {e}", flush=True)
        self.graph_collectives = self.agree_min(ok) > 0


def _row(c: _Ctx, spec, component, mode, batch, n, context, t: Timing | None, reason=""):
    return {"gpu": c.gpu, "model": spec.name,
            "shape": layer_shape_key(spec) if component in ("layer", "allreduce") else "",
            "head_shape": head_shape_key(spec) if component == "lm_head" else "",
            "component": component, "mode": mode, "dtype": c.job.dtype, "tp": c.world, "batch": batch,
            "new_tokens": n, "context": context, **row_fields(t, reason)}


def _modes(c: _Ctx):
    return tuple(m for m in c.job.modes if m == "eager" or c.device.type == "cuda")


def _inner(est_s: float) -> int:
    return int(min(MAX_COPIES, max(1, math.ceil(TARGET_SAMPLE_S / max(est_s, 1e-7)))))


def profile_layers(c: _Ctx, spec, prof: LatencyTable, with_ar: LatencyTable) -> None:
    j = c.job
    max_b, max_ctx = max(j.batches), kv_aligned(max(j.contexts) + max(j.new_tokens))
    k = 1
    if c.device.type == "cuda":
        k = copies_to_fill(stack_bytes(spec, c.world))
        free, _ = torch.cuda.mem_get_info(c.device)
        per = stack_bytes(spec, c.world) + 2 * spec.dtype_bytes * max_b * max_ctx * spec.kv_dim
        k = int(c.agree_min(max(1, min(k, int(0.5 * free // per)))))
    stack = [tp.TPDecoderLayer(spec, max_b, max_ctx, c.dtype, c.device, c.world, c.rank, seed=i)
             for i in range(k)]
    lat = AnalyticalLatency(c.hw)
    gen = torch.Generator(device=c.device).manual_seed(7)
    try:
        for ctx in sorted(j.contexts):
            if not c.go_on():
                c.log(f"deadline: stopped {spec.name} before context {ctx}")
                return
            for n in j.new_tokens:
                L = min(max_ctx, (ctx + n) if attention.engine() else kv_aligned(ctx + n))
                for b in j.batches:
                    x = torch.randn(b, n, spec.d_model, generator=gen, device=c.device, dtype=c.dtype)
                    pos = torch.full((b,), ctx, dtype=torch.long, device=c.device)
                    mask = None if attention.engine() else causal_mask(pos, n, L)
                    step = stack[0].step(pos, n)  # once per forward (profiler.blocks.Step)

                    def fn(x=x, pos=pos, mask=mask, L=L, step=step):
                        y = x
                        for layer in stack:
                            y = layer(y, pos, L, mask, step)
                        return y
                    for mode in _modes(c):
                        est = k * float(lat.layer_s(spec, b, n, ctx, c.world, mode))
                        for ar, table in ((False, prof), (True, with_ar)):
                            if ar and c.world == 1:
                                continue
                            for layer in stack:
                                layer.allreduce = ar
                            t = c.timing(fn, mode, _inner(est), collectives=ar)
                            t = t and t.scaled(1.0 / k)
                            table.add(_row(c, spec, "layer", mode, b, n, ctx, t, "" if t else _why(c, mode, ar)))
                        c.log(f"layer {spec.name} tp{c.world} {mode:5s} b={b:3d} n={n} ctx={ctx:5d} "
                              f"compute {prof.rows[-1]['median_s'] * 1e3:8.4f} ms"
                              + (f"  with all-reduces {with_ar.rows[-1]['median_s'] * 1e3:8.4f} ms"
                                 if c.world > 1 else ""))
            if c.rank == 0:
                prof.save(j.out)
                with_ar.save(j.with_ar_out)
    finally:
        del stack
        free_memory(c.device)


def profile_heads_and_pairs(c: _Ctx, spec, prof: LatencyTable) -> None:
    j = c.job
    k = 1 if c.device.type != "cuda" else copies_to_fill(spec.lm_head_weight_bytes // c.world)
    heads = [tp.TPHead(spec, min(spec.max_positions, 64), c.dtype, c.device, c.world, c.rank, seed=i)
             for i in range(k)]
    lat = AnalyticalLatency(c.hw)
    try:
        for n in j.new_tokens:
            for b in j.batches:
                toks = torch.randint(0, spec.vocab, (b, n), device=c.device)
                pos0 = torch.zeros((b,), dtype=torch.long, device=c.device)

                def fn(toks=toks, pos0=pos0):
                    return [h(toks, pos0) for h in heads]
                for mode in _modes(c):
                    t = c.timing(fn, mode, _inner(k * float(lat.lm_head_s(spec, b, n, c.world, mode))))
                    t = t and t.scaled(1.0 / k)
                    prof.add(_row(c, spec, "lm_head", mode, b, n, 0, t, "" if t else _why(c, mode, True)))
                    if c.world > 1:
                        t = None
                        if mode == "eager" or c.graph_collectives:
                            t = allreduce.layer_pair(b, n, spec.d_model, device=c.device, dtype=c.dtype,
                                                     mode=mode, repeats=j.repeats, barrier=c.barrier)
                        prof.add(_row(c, spec, "allreduce", mode, b, n, 0, t, "" if t else _why(c, mode, True)))
                    c.log(f"head  {spec.name} tp{c.world} {mode:5s} b={b:3d} n={n} "
                          f"{prof.rows[-2 if c.world > 1 else -1]['median_s'] * 1e3:8.4f} ms"
                          + (f"  layer all-reduces {prof.rows[-1]['median_s'] * 1e6:8.2f} µs" if c.world > 1 else ""))
        if c.rank == 0:
            prof.save(j.out)
    finally:
        del heads
        free_memory(c.device)


def _why(c: _Ctx, mode: str, collectives: bool) -> str:
    if mode == "graph" and collectives and c.world > 1 and not c.graph_collectives:
        return "CUDA-graph capture of NCCL collectives failed on this machine"
    return "out of memory"


def _lookup(table: LatencyTable, spec, component, mode, b, n, ctx):
    key = "shape" if component in ("layer", "allreduce") else "head_shape"
    want = layer_shape_key(spec) if key == "shape" else head_shape_key(spec)
    rows = [r for r in table.ok_rows() if r[key] == want and r["component"] == component and r["mode"] == mode
            and r["batch"] == b and r["new_tokens"] == n and r["context"] == ctx]
    return rows[-1]["median_s"] if rows else float("nan")


def validate_model(c: _Ctx, spec, prof: LatencyTable, with_ar: LatencyTable) -> list[dict]:
    """Whole TP model forward vs composition of the sharded profile, per grid point and mode."""
    vb, vn, vc = c.job.validate_grid
    max_ctx = kv_aligned(max(vc) + max(vn))
    total = torch.cuda.get_device_properties(c.device).total_memory if c.device.type == "cuda" else 8 * 2**30
    fits = [b for b in sorted(vb) if tp.tp_model_bytes(spec, c.world, b, max_ctx) < MEMORY_FRACTION * total]
    B = int(c.agree_min(max(fits) if fits else 0))
    out = []
    if B == 0:
        return out
    model = tp.TPModel(spec, max_batch=B, max_context=max_ctx, dtype=c.dtype, device=c.device, tp=c.world,
                       rank=c.rank)
    L_ = spec.n_layers
    try:
        for b in sorted(vb):
            for ctx in vc:
                for n in vn:
                    toks = torch.randint(0, spec.vocab, (b, n), device=c.device)
                    pos = torch.full((b,), ctx, dtype=torch.long, device=c.device)
                    for mode in _modes(c):
                        r = {"gpu": c.gpu, "model": spec.name, "tp": c.world, "mode": mode, "batch": b,
                             "new_tokens": n, "context": ctx}
                        if b > B:
                            r.update(status="skipped", reason=f"batch {b} does not fit ({MEMORY_FRACTION:.0%} of memory)")
                            out.append(r)
                            continue
                        if not c.go_on():
                            return out

                        def fn(toks=toks, pos=pos, L=ctx + n):
                            return model(toks, pos, L)
                        t = c.timing(fn, mode, 1, repeats=max(10, c.job.repeats // 2))
                        if t is None:
                            r.update(status="skipped", reason=_why(c, mode, True))
                            out.append(r)
                            continue
                        lay, ar = (_lookup(prof, spec, comp, mode, b, n, cc)
                                   for comp, cc in (("layer", ctx), ("allreduce", 0)))
                        head = _lookup(prof, spec, "lm_head", mode, b, n, 0)
                        lay_ar = _lookup(with_ar, spec, "layer", mode, b, n, ctx)
                        comp = L_ * (lay + (ar if c.world > 1 else 0.0)) + head
                        comp2 = L_ * lay_ar + head if c.world > 1 else comp
                        r.update(measured_s=t.median_s, p10_s=t.p10_s, p90_s=t.p90_s, composed_s=comp,
                                 rel_err=(comp - t.median_s) / t.median_s, composed_in_layer_s=comp2,
                                 rel_err_in_layer=(comp2 - t.median_s) / t.median_s, status="ok", reason="")
                        out.append(r)
                        c.log(f"model {spec.name} tp{c.world} {mode:5s} b={b:3d} n={n} ctx={ctx:5d} "
                              f"measured {t.median_s * 1e3:8.3f} ms  composed {comp * 1e3:8.3f} ms "
                              f"({r['rel_err']:+.1%})  with in-layer all-reduces {comp2 * 1e3:8.3f} ms "
                              f"({r['rel_err_in_layer']:+.1%})")
        return out
    finally:
        del model
        free_memory(c.device)


def save_validation(rows: list[dict], path: str) -> None:
    with atomic_open(path, "--out", newline="") as f:  # atomic, symlink-safe (perfmodel.specs.safeio)
        w = csv.DictWriter(f, fieldnames=list(VALIDATION_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in VALIDATION_COLUMNS})


def worker(rank: int, world: int, job: TPJob) -> None:
    c = _Ctx(rank, world, job)
    meta = dict(c.meta, tp=world, ranks=world, backend=c.backend, **job.extra_meta)
    if c.device.type == "cuda":
        meta["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        meta["nvls_env"] = {k: os.environ.get(k, "") for k in tp.NVLS_OFF_ENV}
    meta["timing"] = ("CUDA events on rank 0; sample = mean of back-to-back calls (inner sized for >= 0.3 ms); "
                      f"median/p10/p90 over a fixed {job.repeats} samples on every rank (lockstep); graph mode = "
                      "replays of one captured graph; layers timed as a stack of distinct copies (>= 256 MiB "
                      "of weights) so L2 holds no layer's weights between its calls")
    meta["layer_rows"] = "tp rows: one rank's sharded layer WITHOUT all-reduces, all ranks computing at once"
    meta_ar = dict(meta, layer_rows="tp rows: one rank's sharded layer WITH its two all-reduces")
    prof, with_ar = LatencyTable(meta=meta), LatencyTable(meta=meta_ar)
    with torch.inference_mode():
        c.probe_graph_collectives()
        if job.curve_out and world > 1 and c.go_on():
            modes = tuple(m for m in _modes(c) if m == "eager" or c.graph_collectives)
            rows = allreduce.curve(list(job.curve_sizes), device=c.device, dtype=c.dtype, modes=modes,
                                   repeats=max(job.repeats, 30) if c.device.type == "cuda" else job.repeats,
                                   barrier=c.barrier, log=c.log)
            if rank == 0:
                for r in rows:
                    r.update(gpu=c.gpu, tp=world, dtype=job.dtype)
                save_curve(rows, job.curve_out.format(gpu=c.gpu), dict(meta, what="NCCL all-reduce, in place, "
                           "sum; sample = mean of back-to-back calls between CUDA events"))
        val = []
        for spec in job.specs:
            if not c.go_on():
                c.log(f"deadline: {spec.name} not profiled")
                continue
            profile_heads_and_pairs(c, spec, prof)
            profile_layers(c, spec, prof, with_ar)
            if job.validate == spec.name and c.go_on():
                val += validate_model(c, spec, prof, with_ar)
                if rank == 0 and job.validation_out:
                    save_validation(val, job.validation_out)
    if rank == 0:
        if world > 1:
            with_ar.save(job.with_ar_out)
            eager_allreduce_in_situ(prof, with_ar)
        prof.save(job.out)


def profile_tp(job: TPJob, world: int, device: str = "cuda") -> None:
    """Run `job` over `world` ranks (NCCL on `world` GPUs, or gloo on CPU processes)."""
    tp.launch(worker, world, (job,), backend=tp.pick_backend(world, device))


def profile_cli(specs, *, batches, contexts, new_tokens, modes, dtype: str, tp: int, out, device: str,
                repeats: int = 20, curve: bool = True) -> dict:
    """`specperf profile --tp N` on N GPUs (or N gloo CPU processes): writes `out` (TP rows),
    `<out>_with_allreduce.<ext>` and `allreduce_<gpu>_tp<N>.csv` beside it; returns a summary."""
    from pathlib import Path

    p = Path(out)
    job = TPJob(specs=tuple(specs), batches=tuple(batches), new_tokens=tuple(new_tokens),
                contexts=tuple(contexts), modes=tuple(modes), dtype=dtype, out=str(p),
                with_ar_out=str(p.with_name(p.stem + "_with_allreduce" + p.suffix)),
                curve_out=str(p.with_name(f"allreduce_{{gpu}}_tp{tp}.csv")) if curve else "",
                curve_sizes=tuple(allreduce.message_sizes(
                    hi_bytes=allreduce.MiB if device == "cpu" else 256 * allreduce.MiB)),
                repeats=repeats,
                command="specperf profile " + " ".join(os.sys.argv[2:]))
    t0 = time.time()
    profile_tp(job, tp, device="cuda" if device.startswith("cuda") else "cpu")
    table = LatencyTable.load(p)
    return {"out": str(p), "with_allreduce": job.with_ar_out, "curve": job.curve_out.format(gpu=table.meta.get("gpu")),
            "rows": len(table), "ok": len(table.ok_rows()), "tp": tp, "ranks": tp,
            "wall_s": time.time() - t0, "gpu": table.meta.get("gpu_name", "")}
