"""Time and peak memory of reading a 50 MB acceptance trace (issue 16's target: ≤ 10 s, ≤ 500 MB).

  PYTHONPATH=. python scripts/bench_traces.py [--mb 50] [--format iterations|jsonl]

Writes a synthetic per-iteration trace of about --mb megabytes (γ = 4, positions pos_0..pos_3,
batch, context; or JSON lines) to a temporary folder, reads it with calibration.traces.read_trace in
a fresh process, and prints wall time and the process's peak resident memory (ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from specperf.calibration.traces import read_trace
d = read_trace(sys.argv[1], sys.argv[2])
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "source": str(d.source)[:60]}))
"""


def write_trace(path: Path, mb: float, fmt: str, seed: int = 0) -> int:
    rng = random.Random(seed)
    n, size = 0, 0
    with path.open("w") as f:
        if fmt == "iterations":
            f.write("gamma,accepted,batch,context,pos_0,pos_1,pos_2,pos_3\n")
        while size < mb * 1e6:
            mask = [1 if rng.random() < 0.8 else 0 for _ in range(4)]
            acc = next((k for k, m in enumerate(mask) if not m), 4)
            if fmt == "iterations":
                line = f"4,{acc},1,{512 + n % 4096},{mask[0]},{mask[1]},{mask[2]},{mask[3]}\n"
            else:
                line = json.dumps({"gamma": 4, "accepted": acc, "batch": 1, "context": 512 + n % 4096,
                                   "accept_mask": mask}) + "\n"
            f.write(line)
            size += len(line)
            n += 1
    return n


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--format", default="iterations", choices=("iterations", "jsonl"))
    a = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / ("trace.csv" if a.format == "iterations" else "trace.jsonl")
        n = write_trace(p, a.mb, a.format)
        env = dict(os.environ, PYTHONPATH=str(root))
        r = subprocess.run([sys.executable, "-c", CHILD, str(p), "iterations"], env=env, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise SystemExit(r.stderr.strip().splitlines()[-1])
        doc = {"file_mb": p.stat().st_size / 1e6, "iterations": n, **json.loads(r.stdout)}
    ok = doc["wall_s"] <= 10 and doc["peak_rss_mb"] <= 500
    print(f"{doc['file_mb']:.1f} MB {a.format} trace ({n} iterations): read in {doc['wall_s']:.2f} s, peak "
          f"resident memory {doc['peak_rss_mb']:.0f} MB — target ≤ 10 s and ≤ 500 MB: {'met' if ok else 'NOT met'}")
    return doc


if __name__ == "__main__":
    main()
