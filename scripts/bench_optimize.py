"""Benchmark the optimiser's vectorised search: ≥ 10^5 design-space drafts × 16 γ × 8 batch sizes
(one context), analytical H100 latency, llama-65b target at tp=4, default α model.

Prints the time of each stage and the rate (design points × γ × batch evaluated per second), then
one JSON line. Usage: python scripts/bench_optimize.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.specdec.alpha_model import default_model  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.specs.hardware import resolve_gpu  # noqa: E402
from specperf.perfmodel.optimize.search import make_candidates, mode_costs, search  # noqa: E402
from specperf.perfmodel.optimize.space import assign_acceptance, design_space  # noqa: E402
from specperf.perfmodel.latency.providers import latency_provider  # noqa: E402

LAYERS = list(range(1, 129))  # 128 depths
D_MODELS = list(range(256, 8192 + 1, 256))  # 32 widths
FFN_RATIOS = [1.0, 1.5, 2.0, 2.25, 2.5, 2.6875, 3.0, 3.25, 3.5, 3.75, 4.0, 4.5, 5.0]  # 13 ratios
HEAD_DIMS = [64, 128]
BATCH = [1, 2, 4, 8, 16, 32, 64, 128]  # 8 batch sizes
GAMMAS = list(range(1, 17))  # 16 lookaheads
CONTEXT = [1024]


def once(target, provider):
    t0 = time.perf_counter()
    design, _ = design_space(target, LAYERS, D_MODELS, FFN_RATIOS, HEAD_DIMS)
    cands = make_candidates([], [], [], design)
    acc = assign_acceptance(cands, target, default_model())
    tpi = acc.tpi(GAMMAS)
    t1 = time.perf_counter()
    costs = mode_costs(provider, target, cands.shape_specs, BATCH, CONTEXT, GAMMAS, 4, "graph")
    t2 = time.perf_counter()
    gi, s = search(tpi, cands.shape_index, cands.n_layers, costs, GAMMAS)
    t3 = time.perf_counter()
    return cands, gi, s, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    target = resolve_model("llama-65b")
    provider = latency_provider(resolve_gpu("h100-sxm"), use_shipped=False)
    once(target, provider)  # warm-up (imports, allocator)
    runs = [once(target, provider) for _ in range(args.repeats)]
    cands, gi, s, _ = runs[-1]
    times = np.array([r[3] for r in runs])  # (repeats, 4)
    med = np.median(times, axis=0)
    P = len(cands)
    evals = P * len(GAMMAS) * len(BATCH) * len(CONTEXT)
    best = np.unravel_index(int(np.argmax(s[:, 0, 0])), s[:, 0, 0].shape)[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}; 1-min load average {load:.1f} "
          "(timings grow when other work shares the CPUs)")
    print(f"design points: {P} ({len(cands.shape_specs)} distinct layer shapes × {len(LAYERS)} depths), "
          f"γ 1..{GAMMAS[-1]}, {len(BATCH)} batch sizes, {len(CONTEXT)} context: {evals:,} (point, γ, batch) evaluations")
    print(f"median of {args.repeats} runs: build candidates + α {med[0]:.3f} s; per-shape latency {med[1]:.3f} s; "
          f"γ* search {med[2]:.3f} s; total {med[3]:.3f} s")
    print(f"rate: {evals / med[3]:,.0f} evaluations/s end to end ({evals / med[2]:,.0f}/s in the search)")
    print(f"best at batch 1: {cands.name(best)} γ*={GAMMAS[int(gi[best, 0, 0])]} speedup {s[best, 0, 0]:.2f}× "
          "(analytical h100-sxm, default α model — illustration only)")
    print(json.dumps({"bench": "optimize_search", "design_points": P, "gammas": len(GAMMAS), "batch_sizes": len(BATCH),
                      "contexts": len(CONTEXT), "evaluations": evals, "build_s": round(float(med[0]), 4),
                      "latency_s": round(float(med[1]), 4), "search_s": round(float(med[2]), 4),
                      "total_s": round(float(med[3]), 4), "evals_per_s": round(evals / float(med[3])),
                      "under_2s": bool(med[3] < 2.0), "cpus": os.cpu_count(), "loadavg_1min": round(load, 2),
                      "repeats": args.repeats}))


if __name__ == "__main__":
    main()
