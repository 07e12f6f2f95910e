"""The sweep behind the shipped H100 profile (perfmodel/data/h100-sxm.csv): the study's targets and
drafts, wide-shallow shapes and the tensor-parallel shards of the large targets, in both modes.

Usage (on the GPU; resumable with the same --out):
    PYTHONPATH=. python scripts/profile_h100.py --out perfmodel/data/h100-sxm.csv [--deadline-s 300]
    PYTHONPATH=. python scripts/profile_h100.py --estimate      # CPU-only: points and H100 time estimate
Key assumption: layers depend on shape only, so each shape is measured once (the llama-7b layer
also serves every `llama-7b:n_layers=k` wide-shallow draft).
"""
from __future__ import annotations

import argparse
import sys
import time

from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS

B_ALL = (1, 2, 4, 8, 16, 32, 64)
B_TP = (1, 4, 16, 64)
CTX = (128, 512, 2048, 8192)
CTX_OPT = (128, 512, 1920)  # OPT: learned positions stop at 2048 (context + γ + 1 must fit)
N_ALL = tuple(range(1, 10))  # verify of γ = 1..8, plus the 1-token step
N_DRAFT = (1, 2, 3, 5, 9)  # drafts run 1-token steps; the rest only bounds interpolation
N_TP = (1, 2, 3, 5, 9)  # tp shards: interpolated in between (linear in new tokens)
GAMMAS = tuple(range(0, 9))
# batch × context ≤ 128 Ki cached tokens: b=32/64 at 8192 would need 0.7-1.4 TB of KV cache for a
# 65B model (2.6 MB/token), more than an 8-GPU server holds; those points come from the fitted model
MAX_TOKENS = 131072
FIRST = ["llama-7b", "llama-13b", "llama-33b"]  # composition check needs these first
DRAFTS = ["sheared-llama-1.3b", "tinyllama-1.1b", "llama-7b:d_model=3072,n_heads=24,d_ff=8256",
          "sheared-llama-2.7b", "opt-125m", "opt-350m", "opt-1.3b", "opt-2.7b"]
BIG = ["llama-65b", "llama-2-70b", "opt-66b"]


def plan(sections=("targets", "drafts", "tp")):
    from specperf.profiler.sweep import Grid, plan as make_plan

    models = []

    def add(name, batches, new_tokens, tps=(1,), overhead=False):
        spec = resolve_model(name)
        ctx = CTX_OPT if spec.learned_positions else CTX
        models.append((spec, Grid(batches, ctx, new_tokens, ("graph", "eager"), tps,
                                  GAMMAS if overhead else (), MAX_TOKENS)))

    if "targets" in sections:
        for i, m in enumerate(FIRST):
            add(m, B_ALL, N_ALL, overhead=(i == 0))  # overhead depends on the vocabulary only
    if "drafts" in sections:
        for m in DRAFTS:
            add(m, B_ALL, N_DRAFT, overhead=(m == "opt-125m"))
    if "targets" in sections:
        for m in BIG:
            add(m, B_ALL, N_ALL)
    if "tp" in sections:
        for m in BIG:
            add(m, B_TP, N_TP, tps=(2, 4, 8))
    return make_plan(models)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="perfmodel/data/h100-sxm.csv")
    ap.add_argument("--sections", default="targets,drafts,tp")
    ap.add_argument("--deadline-s", type=float, default=None, help="start no job after this many seconds")
    ap.add_argument("--estimate", action="store_true", help="print points and an H100 time estimate only")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--drop-mode", default=None, choices=("graph", "eager"),
                    help="re-measure: drop this mode's layer rows from --out first (after a timing change), "
                         "then resume as usual")
    a = ap.parse_args(argv)
    jobs = plan(tuple(a.sections.split(",")))
    from specperf.profiler.sweep import estimate_s

    n = sum(len(j.new_tokens) * len(j.modes) for j in jobs)
    by = {}
    for j in jobs:
        by[j.component] = by.get(j.component, 0) + len(j.new_tokens) * len(j.modes)
    print(f"{n} points in {len(jobs)} jobs ({by}); estimated {estimate_s(jobs, GPUS['h100-sxm']):.0f} s on an H100",
          flush=True)
    if a.estimate:
        return 0
    from pathlib import Path

    import torch
    from rich.console import Console

    from specperf.perfmodel.latency.table import LatencyTable
    from specperf.profiler import env, sweep

    meta = env.metadata(a.device, "fp16", command="PYTHONPATH=. python scripts/profile_h100.py " + " ".join(sys.argv[1:]))
    out = Path(a.out)
    table = LatencyTable.load(out) if out.exists() else LatencyTable(meta=meta)
    table.meta.update({k: v for k, v in meta.items() if k not in table.meta})
    if a.drop_mode:
        before = len(table.rows)
        table.rows[:] = [r for r in table.rows if not (r["component"] == "layer" and r["mode"] == a.drop_mode)]
        print(f"dropped {before - len(table.rows)} {a.drop_mode}-mode layer rows to re-measure", flush=True)
    t0 = time.perf_counter()
    sweep.run(jobs, table, out, a.device, "fp16", console=Console(), verbose=not a.quiet,
              deadline_s=a.deadline_s)
    print(f"sweep wall time {time.perf_counter() - t0:.1f} s on {meta['gpu_name']}; {len(table)} rows "
          f"({len(table.ok_rows())} ok) in {out}; torch {torch.__version__}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
