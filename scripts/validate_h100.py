"""Publish specperf's accuracy on the H100: run `specperf validate` (graph mode for every target ×
draft, then an eager subset while time remains) from a plain checkout, writing the tables to OUT.

Usage on the device machine (PYTHONPATH=. from the repository root):
    python scripts/validate_h100.py OUT_DIR [--smoke] [--budget-s 330]
Each step is the exact `specperf validate` command printed before it runs (as `python -m specperf`).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

TARGETS = "llama-7b,llama-13b"
# shallow-wide (LLaMA-7B width, 2/4/8 layers) to deep-narrow (Sheared-LLaMA-1.3B, TinyLlama-1.1B):
# all share LLaMA's 32000-token vocabulary
DRAFTS = "llama-7b:n_layers=2,llama-7b:n_layers=4,llama-7b:n_layers=8,sheared-llama-1.3b,tinyllama-1.1b"
GRID = ["--gamma", "1,2,4,8", "--batch", "1,8,32", "--alpha", "0.6,0.8", "--context", "512"]


def validate(out_dir, tag, target, draft, mode, extra):
    cmd = [sys.executable, "-m", "specperf", "validate", "--target", target, "--draft", draft, *GRID,
           "--mode", mode, "--device", "cuda:0", "--out", os.path.join(out_dir, f"validation_{tag}.csv"),
           "--profile-out", os.path.join(out_dir, f"profile_{tag}.csv"), *extra]
    print("$ specperf " + " ".join(cmd[3:]), flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd)
    print(f"[{tag}] exit {rc} after {time.time() - t0:.0f} s", flush=True)
    return rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--budget-s", type=float, default=330.0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    subprocess.call(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem",
                     "--format=csv"])
    if a.smoke:
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-x", "-m", "gpu", "tests/test_specloop.py",
                              "-p", "no:cacheprovider"])
        global GRID
        GRID = ["--gamma", "1,4", "--batch", "1,8", "--alpha", "0.8", "--context", "512"]
        rc |= validate(a.out, "smoke", "llama-7b", "llama-7b:n_layers=4", "graph,eager",
                       ["--repeats", "3", "--iterations", "4"])
        sys.exit(rc)
    rc = validate(a.out, "h100_graph", TARGETS, DRAFTS, "graph", ["--repeats", "5", "--iterations", "6"])
    left = a.budget_s - (time.time() - t0)
    print(f"{left:.0f} s of the budget left for eager", flush=True)
    if left > 120:
        rc |= validate(a.out, "h100_eager", "llama-7b", "llama-7b:n_layers=2,sheared-llama-1.3b", "eager",
                       ["--repeats", "3", "--iterations", "6"])
    sys.exit(rc)


if __name__ == "__main__":
    main()
