"""All-reduce latency across the ranks of a process group: a curve over message sizes (a few KB to
hundreds of MB) and the per-layer pair for given (batch, new_tokens, d_model), eager or replayed
from a CUDA graph.

Key assumption: every rank runs the same sequence of collectives with the same repeat counts (fixed,
never adaptive — an adaptive count per rank would deadlock), and rank 0's CUDA-event times stand for
all ranks (an all-reduce ends on every rank together). A sample is the mean of `inner` back-to-back
all-reduces between two events; median/p10/p90 over `repeats` samples. Reduction data are random
(summing grows them; NCCL's speed does not depend on the values).
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist

from .timing import Timing, capture_graph, is_cuda

KiB, MiB = 2**10, 2**20
WARMUP = 3


def message_sizes(lo_bytes: int = 4 * KiB, hi_bytes: int = 256 * MiB, per_octave: int = 2) -> list[int]:
    """Geometric sizes lo..hi, `per_octave` per doubling, rounded to 256 bytes (NCCL-friendly)."""
    n = int(round(np.log2(hi_bytes / lo_bytes) * per_octave)) + 1
    sizes = np.geomspace(lo_bytes, hi_bytes, n)
    return sorted({int(max(256, round(s / 256) * 256)) for s in sizes})


def capture(fn, device, warmup: int = WARMUP):
    """CUDA graph of one fn() call; thread-local capture mode so the NCCL watchdog thread's event
    queries do not invalidate the capture."""
    return capture_graph(fn, device, warmup, capture_error_mode="thread_local")[0]


def time_lockstep(fn, device, mode: str, repeats: int, inner: int, barrier=None) -> Timing:
    """Seconds per fn() call over `repeats` samples of `inner` calls; identical work on every rank."""
    cuda = is_cuda(device)
    if mode == "graph":
        if not cuda:
            raise ValueError("graph mode needs a CUDA device")
        g = capture(fn, device)
        call = g.replay
    else:
        call = fn
    for _ in range(WARMUP):
        call()
    if barrier:
        barrier()
    if not cuda:
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                call()
            out.append((time.perf_counter() - t0) / inner)
        return Timing.from_samples(out, inner)
    torch.cuda.synchronize(device)
    evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for a, b in evs:
        a.record()
        for _ in range(inner):
            call()
        b.record()
    torch.cuda.synchronize(device)
    return Timing.from_samples([a.elapsed_time(b) * 1e-3 / inner for a, b in evs], inner)


def inner_for(size_bytes: int) -> int:
    """Back-to-back calls per sample: many for µs-scale messages, few for ms-scale ones."""
    return 20 if size_bytes <= MiB else 10 if size_bytes <= 16 * MiB else 3


def curve(sizes_bytes, *, device, dtype, modes=("eager", "graph"), repeats: int = 30, group=None,
          barrier=None, log=None) -> list[dict]:
    """All-reduce of each size (in place, one buffer) per mode; rows of the curve CSV minus gpu/tp."""
    esize = torch.empty((), dtype=dtype).element_size()
    buf = torch.randn(max(sizes_bytes) // esize, device=device, dtype=torch.float32).to(dtype) * 1e-3
    rows = []
    for mode in modes:
        for size in sizes_bytes:
            view = buf[: size // esize]

            def fn(view=view):
                dist.all_reduce(view, group=group)
            row = {"mode": mode, "size_bytes": int(view.numel() * esize), "status": "ok", "reason": ""}
            try:
                inner = inner_for(size) if is_cuda(device) else 1
                t = time_lockstep(fn, device, mode, repeats, inner, barrier)
                row.update(median_s=t.median_s, p10_s=t.p10_s, p90_s=t.p90_s, repeats=t.repeats)
            except RuntimeError as e:  # e.g. a capture NCCL refuses: keep the row, say why
                row.update(median_s="", p10_s="", p90_s="", repeats=0, status="failed",
                           reason=str(e).splitlines()[0][:200])
            rows.append(row)
            if log:
                log(f"allreduce {mode:5s} {row['size_bytes']:>10d} B  "
                    + (f"{row['median_s'] * 1e6:9.2f} µs (p10 {row['p10_s'] * 1e6:.2f}, p90 {row['p90_s'] * 1e6:.2f})"
                       if row["status"] == "ok" else row["reason"]))
    del buf
    return rows


def layer_pair(batch: int, new_tokens: int, d_model: int, *, device, dtype, mode: str, repeats: int,
               group=None, barrier=None) -> Timing:
    """Seconds of one layer's two all-reduces of [batch, new_tokens, d_model] (back to back)."""
    a = torch.randn(batch, new_tokens, d_model, device=device, dtype=torch.float32).to(dtype) * 1e-3
    b = a.clone()

    def fn():
        dist.all_reduce(a, group=group)
        dist.all_reduce(b, group=group)
    nbytes = a.numel() * a.element_size()
    inner = max(1, inner_for(nbytes) // 2) if is_cuda(device) else 1
    return time_lockstep(fn, device, mode, repeats, inner, barrier)
