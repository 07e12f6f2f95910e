"""Measure a TP profile on this machine's GPUs (one process per GPU, NCCL) — the logic of scripts/tp_profile.py, which
produced perfmodel/data/*tp2* and allreduce_* files:

  PYTHONPATH=. python scripts/tp_profile.py --tp 2 --out-dir DIR \
      --models llama-13b,llama-65b,llama-2-70b,opt-66b --validate llama-13b --budget-s 300

Writes DIR/{gpu}_tp{N}.csv (layer without all-reduces, allreduce, lm_head rows),
DIR/{gpu}_tp{N}_with_allreduce.csv (layer with its all-reduces), DIR/allreduce_{gpu}_tp{N}.csv (the
curve), DIR/{gpu}_tp{N}_validation.csv (whole model vs composition), each CSV with a .meta.json.
`--device cpu` runs the same on gloo CPU processes (tiny models; tests).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from specperf.profiler.tp import nvls_off


def _ints(text: str, what: str) -> tuple:
    """'1,2,4' or '1..9' → ints (positive)."""
    out = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        lo, sep, hi = part.partition("..")
        try:
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
        except ValueError:
            raise SystemExit(f"error: {what}={text!r} is not allowed; give integers like 1,4,16 or 1..8") from None
    if not out or min(out) < 1:
        raise SystemExit(f"error: {what}={text!r} is not allowed; give positive integers")
    return tuple(out)


def main(argv=None):
    """Parse the script's arguments and run profiler.tp_bench.profile_tp (see the module docstring)."""
    nvls_off()  # before torch/NCCL start anywhere in this process tree
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--models", default="llama-13b,llama-65b,llama-2-70b,opt-66b")
    ap.add_argument("--batch", default="1,2,4,8,16,32,64")
    ap.add_argument("--new-tokens", default="1..9")
    ap.add_argument("--context", default="512,1024,2048,4096")
    ap.add_argument("--mode", default="eager,graph")
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--validate", default="llama-13b", help="whole TP model checked against composition ('' = none)")
    ap.add_argument("--validate-batch", default="1,4,16,64")
    ap.add_argument("--validate-new-tokens", default="1,4,9")
    ap.add_argument("--validate-context", default="512,2048")
    ap.add_argument("--curve-lo-kib", type=int, default=4)
    ap.add_argument("--curve-hi-mib", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=300.0, help="no new job starts after this many seconds")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--gpu-tag", default="", help="file prefix (default: the catalog name of the GPU)")
    a = ap.parse_args(argv)

    from specperf.perfmodel.specs.catalog import resolve_model, split_models
    from specperf.profiler import allreduce, env
    from specperf.profiler.tp_bench import TPJob, profile_tp

    ints = _ints
    by = 4 if a.dtype == "fp32" else 2
    specs = tuple(resolve_model(m, by) for m in split_models(a.models))
    gpu = a.gpu_tag
    if not gpu:
        import torch

        gpu = env.catalog_gpu(env.device_name("cuda:0" if a.device == "cuda" and torch.cuda.is_available() else "cpu"))
    d = Path(a.out_dir)
    d.mkdir(parents=True, exist_ok=True)
    stem = d / f"{gpu}_tp{a.tp}"
    vnames = {s.name for s in specs}
    if a.validate and a.validate not in vnames:
        ap.error(f"--validate {a.validate!r} must be one of --models")
    job = TPJob(specs=specs, batches=ints(a.batch, "batch"), new_tokens=ints(a.new_tokens, "new-tokens"),
                contexts=ints(a.context, "context"),
                modes=tuple(a.mode.split(",")), dtype=a.dtype, out=f"{stem}.csv",
                with_ar_out=f"{stem}_with_allreduce.csv", curve_out=str(d / f"allreduce_{gpu}_tp{a.tp}.csv"),
                curve_sizes=tuple(allreduce.message_sizes(a.curve_lo_kib * 2**10, a.curve_hi_mib * 2**20)),
                validate=a.validate, validate_grid=(ints(a.validate_batch, "validate-batch"),
                                                    ints(a.validate_new_tokens, "validate-new-tokens"),
                                                    ints(a.validate_context, "validate-context")),
                validation_out=f"{stem}_validation.csv", repeats=a.repeats,
                deadline=time.time() + a.budget_s,
                command="PYTHONPATH=. python scripts/tp_profile.py " + " ".join(sys.argv[1:] if argv is None else argv))
    t0 = time.time()
    print(f"NVLS env: " + ", ".join(f"{k}={os.environ.get(k)}" for k in ("NCCL_NVLS_ENABLE",
          "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")), flush=True)
    profile_tp(job, a.tp, device=a.device)
    print(f"done in {time.time() - t0:.1f} s; files in {d}", flush=True)

