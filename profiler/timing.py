"""Timing of GPU (or CPU) work: warm-up, CUDA events, median/p10/p90 over enough repeats to be stable,
in eager mode or as replays of a CUDA graph; and host-inclusive timing for work that ends in a sync.

Key assumption: a sample is the mean of `inner` back-to-back calls between two CUDA events with no
host sync in between, so the host's launch latency is hidden whenever the GPU is the bottleneck and
fully counted when the host is (eager mode at small shapes) — as in a real decode loop. Samples are
collected until the median moves by less than `rel_tol` when `chunk` more samples are added.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

MIN_REPEATS = 20  # samples before the stability check (the project's timing convention)
MAX_REPEATS = 100
CHUNK = 10
REL_TOL = 0.01  # median stable to 1 % when CHUNK more samples are added
TARGET_SAMPLE_S = 2e-4  # ≥ 0.2 ms per sample: event resolution (~0.5 µs) stays < 0.3 %
MAX_INNER = 50
WARMUP = 3


@dataclass(frozen=True)
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    repeats: int
    inner: int

    @classmethod
    def from_samples(cls, samples, inner: int) -> "Timing":
        s = np.asarray(samples, dtype=float)
        return cls(float(np.median(s)), float(np.percentile(s, 10)), float(np.percentile(s, 90)),
                   int(s.size), int(inner))

    def scaled(self, factor: float) -> "Timing":
        return Timing(self.median_s * factor, self.p10_s * factor, self.p90_s * factor,
                      self.repeats, self.inner)


def row_fields(t: Timing | None, reason: str = "") -> dict:
    """The timing columns of a profile row: NaN times, 0 repeats and status=skipped without one."""
    nan = float("nan")
    return {"median_s": t.median_s if t else nan, "p10_s": t.p10_s if t else nan,
            "p90_s": t.p90_s if t else nan, "repeats": t.repeats if t else 0,
            "status": "ok" if t else "skipped", "reason": reason}


def is_cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def capture_graph(fn, device, warmup: int = WARMUP, capture_error_mode: str = "global"):
    """Warm `fn` up on a side stream, capture one call in a CUDA graph, return (graph, output).
    `capture_error_mode="thread_local"` lets other threads (NCCL's watchdog) query events meanwhile."""
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode=capture_error_mode):
        out = fn()
    torch.cuda.synchronize(device)
    return graph, out


def _stable(samples, rel_tol) -> bool:
    a = np.median(samples[:-CHUNK])
    b = np.median(samples)
    return abs(b - a) <= rel_tol * b


def _collect(sample_fn, min_repeats, max_repeats, rel_tol, chunk_fn=None):
    samples: list[float] = []
    while True:
        need = min_repeats if not samples else CHUNK
        samples.extend(chunk_fn(need) if chunk_fn else [sample_fn() for _ in range(need)])
        if len(samples) >= max_repeats or (len(samples) > CHUNK and _stable(samples, rel_tol)):
            return samples


def time_callable(call, device, *, min_repeats=MIN_REPEATS, max_repeats=MAX_REPEATS,
                  rel_tol=REL_TOL, warmup=WARMUP, inner=None, target_sample_s=TARGET_SAMPLE_S) -> Timing:
    """Per-call seconds of `call()` (already warm-up-safe: a graph replay or an eager forward)."""
    for _ in range(warmup):
        call()
    if not is_cuda(device):
        def one():
            t0 = time.perf_counter()
            for _ in range(inner_n):
                call()
            return (time.perf_counter() - t0) / inner_n

        inner_n = inner or 1
        return Timing.from_samples(_collect(one, min_repeats, max_repeats, rel_tol), inner_n)
    torch.cuda.synchronize(device)
    if inner is None:  # probe one call to size the sample
        inner = _probe_inner(call, device, target_sample_s)

    def chunk(n):
        evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        for s, e in evs:
            s.record()
            for _ in range(inner):
                call()
            e.record()
        evs[-1][1].synchronize()
        return [s.elapsed_time(e) * 1e-3 / inner for s, e in evs]

    return Timing.from_samples(_collect(None, min_repeats, max_repeats, rel_tol, chunk), inner)


def _probe_inner(call, device, target_sample_s) -> int:
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    call()
    e.record()
    e.synchronize()
    return int(min(MAX_INNER, max(1, np.ceil(target_sample_s / max(s.elapsed_time(e) * 1e-3, 1e-7)))))


def time_interleaved(calls, device, *, min_repeats=MIN_REPEATS, max_repeats=MAX_REPEATS, rel_tol=REL_TOL,
                     warmup=WARMUP, target_sample_s=TARGET_SAMPLE_S) -> list[Timing]:
    """Per-call seconds of each of `calls`, sampled round-robin (one sample of each in turn) until
    every median is stable. For host-bound (eager) work: a burst of host contention then lands on
    every call's samples alike instead of on whichever point happened to be timed during it, so
    the medians keep their order (a longer verify is never timed faster than a shorter one)."""
    calls = list(calls)
    for c in calls:
        for _ in range(warmup):
            c()
    cuda = is_cuda(device)
    if cuda:
        torch.cuda.synchronize(device)
        inner = [_probe_inner(c, device, target_sample_s) for c in calls]
    else:
        inner = [1] * len(calls)

    def round_(k):  # k rounds: one sample of every call per round
        out = [[] for _ in calls]
        for _ in range(k):
            if cuda:
                evs = []
                for c, m in zip(calls, inner):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    for _ in range(m):
                        c()
                    e.record()
                    evs.append((s, e))
                evs[-1][1].synchronize()
                for i, (s, e) in enumerate(evs):
                    out[i].append(s.elapsed_time(e) * 1e-3 / inner[i])
            else:
                for i, c in enumerate(calls):
                    t0 = time.perf_counter()
                    c()
                    out[i].append(time.perf_counter() - t0)
        return out

    samples = round_(min_repeats)
    while len(samples[0]) < max_repeats and not all(_stable(s, rel_tol) for s in samples):
        for i, more in enumerate(round_(CHUNK)):
            samples[i].extend(more)
    return [Timing.from_samples(s, m) for s, m in zip(samples, inner)]


def time_module(fn, device, mode: str, **kw) -> Timing:
    """Time `fn()` per call in `mode` ('eager', 'graph' or 'compiled'; graph and compiled need CUDA:
    captured once, replayed — for compiled, `fn` already calls torch.compile'd code, see profiler.compiled)."""
    if mode in ("graph", "compiled"):
        if not is_cuda(device):
            raise ValueError(f"{mode} mode needs a CUDA device")
        graph, _ = capture_graph(fn, device, warmup=2)
        try:
            return time_callable(graph.replay, device, **{"warmup": 1, **kw})
        finally:
            del graph
    return time_callable(fn, device, **kw)


def time_host(fn, device, *, min_repeats=MIN_REPEATS * 2, max_repeats=MAX_REPEATS * 2,
              rel_tol=REL_TOL * 2, warmup=WARMUP) -> Timing:
    """Wall-clock seconds of `fn()` which ends in a host sync, starting from an idle device."""
    for _ in range(warmup):
        fn()

    def one():
        if is_cuda(device):
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return Timing.from_samples(_collect(one, min_repeats, max_repeats, rel_tol), 1)
