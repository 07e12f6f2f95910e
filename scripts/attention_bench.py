"""Attention in isolation: the plain kernels (query heads folded, repeated boolean mask) against every
engine candidate of profiler.attention and the memory floor (K/V bytes over the measured copy rate),
one new token and γ+1 = 5, CUDA events, on this GPU.

    PYTHONPATH=. python scripts/attention_bench.py --out $OUT/attention_bench_h100.json

Prints one line per shape (µs: floor, plain, engine's choice, best candidate) and ends with one JSON
line (the medians of plain/floor and engine/floor at context ≥ 2048).
Key assumption: the operator sweep's attention (profiler.operators.attention) is what a layer runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.profiler import attention  # noqa: E402
from specperf.profiler.blocks import causal_mask  # noqa: E402
from torch.nn.attention.bias import causal_lower_right  # noqa: E402

SHAPES = [(b, h, kv, n, L) for (h, kv) in ((10, 2), (32, 8), (32, 32), (64, 8), (28, 4), (16, 2), (10, 10))
          for b in (1, 8, 32) for n in (1, 5) for L in (512, 2048, 8192) if b * L <= 131072]


def plain(q, k, v, n):
    b, H, _, hd = q.shape
    KV, L = k.shape[1], k.shape[2]
    grp = H // KV
    pos = torch.full((b,), L - n, device=q.device, dtype=torch.long)
    mask = causal_mask(pos, n, L)
    qh = q.transpose(1, 2).reshape(b, n, KV, grp, hd).permute(0, 2, 3, 1, 4).reshape(b, KV, grp * n, hd)
    return torch.nn.functional.scaled_dot_product_attention(qh, k, v, attn_mask=mask.repeat(1, 1, grp, 1))


def default(q, k, v, n):
    """What a plain PyTorch user writes (and scripts/reference_check.py runs): q a transposed view of
    [b, n, H, hd], PyTorch's own backend dispatch, native GQA, no mask in decode, lower-right causal."""
    L = k.shape[2]
    mask = None if n == 1 else causal_lower_right(n, L)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


def graph_us(fn, reps=50):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(8):
            fn()
    ts = []
    for _ in range(reps):
        a, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        e.record()
        e.synchronize()
        ts.append(a.elapsed_time(e) * 1e3 / 8)
    return float(np.median(ts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="fp16")
    a = ap.parse_args(argv)
    dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    rate = attention.copy_bandwidth("cuda")
    rows = []
    for b, H, KV, n, L in SHAPES:
        hd = 128
        q = torch.randn(b, H, n, hd, device="cuda", dtype=dt)
        k, v = (torch.randn(b, KV, L, hd, device="cuda", dtype=dt) for _ in range(2))
        choice = attention.choose(q, k, v)
        floor = attention.kv_bytes(b, KV, L, hd, 2) / rate * 1e6
        t_plain = graph_us(lambda: plain(q, k, v, n))
        t_eng = graph_us(lambda: attention.engine_sdpa(q, k, v))
        qt = torch.randn(b, n, H, hd, device="cuda", dtype=dt).transpose(1, 2)
        t_def = graph_us(lambda: default(qt, k, v, n))
        cands = attention.CHOICES[-1]["candidates_s"]
        rows.append({"batch": b, "heads": H, "kv_heads": KV, "new_tokens": n, "kv_len": L, "floor_us": floor,
                     "plain_us": t_plain, "engine_us": t_eng, "default_us": t_def, "engine_backend": choice,
                     "candidates_us": {c: s * 1e6 for c, s in cands.items()}})
        print(f"b{b:<3d} H{H:<3d} KV{KV:<3d} n{n} L{L:<5d} floor {floor:8.2f}  plain {t_plain:8.2f}  "
              f"engine {t_eng:8.2f} ({choice})  default {t_def:8.2f}", flush=True)
    Path(a.out).write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                                       "copy_bytes_per_s": rate, "dtype": a.dtype, "rows": rows}, indent=1))
    long = [r for r in rows if r["kv_len"] >= 2048]
    print(json.dumps({"copy_TBps": rate / 1e12, "n_long": len(long),
                      "median_plain_over_floor": float(np.median([r["plain_us"] / r["floor_us"] for r in long])),
                      "median_engine_over_floor": float(np.median([r["engine_us"] / r["floor_us"] for r in long])),
                      "max_engine_over_floor": float(max(r["engine_us"] / r["floor_us"] for r in long)),
                      "median_plain_over_engine": float(np.median([r["plain_us"] / r["engine_us"] for r in long])),
                      "median_default_over_engine": float(np.median([r["default_us"] / r["engine_us"] for r in rows]))}))


if __name__ == "__main__":
    main()
