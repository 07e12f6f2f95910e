"""Where specperf's graph-mode composition and an independent whole model part (GPU, one process, one
card): for a few of scripts/reference_check.py's shapes and points, five timings of the same work —

- `ref_whole`: the reference model's forward, captured and timed as reference_check.py times it;
- `ref_whole_tm`: the same graph timed by specperf's profiler.timing (separates the timing method);
- `spec_whole`: specperf's own DecoderModel (profiler/blocks.py) forward, timed as `ref_whole`
  (separates the blocks from the composition);
- `spec_rows`: n_layers × the profiler's layer row + its LM-head row (profiler.measure), what a
  profile sums;
- `ref_rows`: n_layers × the reference layer timed as the profiler times a layer (a stack of calls in
  one graph, divided by its length) + the reference's embedding, norm and head timed alone.

    PYTHONPATH=. python scripts/block_vs_reference.py --out $OUT/block_vs_reference.csv --deadline-s 120

Prints one line per point and ends with one JSON line of median ratios to `ref_whole`.
Key assumption: random weights time like trained ones; every timing is a median of repeats.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import reference_check as ref  # noqa: E402  (the independent reference; imports nothing of specperf)

from specperf.perfmodel.data_build.reference import spec_of  # noqa: E402
from specperf.profiler import attention  # noqa: E402
from specperf.profiler.blocks import DecoderModel, kv_aligned  # noqa: E402
from specperf.profiler.measure import head_points, layer_points  # noqa: E402
from specperf.profiler.timing import time_module  # noqa: E402

SHAPES = ("r4096x2", "r1024x32", "r640x12", "r8192x1", "r1536x8")
POINTS = ((1, 1, 512), (8, 1, 2048), (32, 1, 512), (8, 5, 2048), (32, 5, 512))  # (batch, new tokens, context)
FIELDS = ("gpu_name", "model", "batch", "new_tokens", "context", "ref_whole", "ref_whole_tm", "spec_whole",
          "spec_rows", "ref_rows", "spec_layer", "spec_head", "ref_layer", "ref_head")


def _spec(name):
    L, d, h, kv, ff, vocab = ref.SHAPES[name]
    return spec_of({"model": name, "n_layers": L, "d_model": d, "n_heads": h, "n_kv_heads": kv, "d_ff": ff,
                    "vocab": vocab})


def _ref_parts(name, b, n, ctx, dev="cuda"):
    """(whole by reference timing, whole by profiler timing, per-layer stack time, head time)."""
    shape = ref.SHAPES[name]
    torch.manual_seed(0)
    m = ref.RefModel(shape, b, ctx + 16, torch.float16, dev)
    toks = torch.randint(0, shape[5], (b, n), device=dev)
    with torch.inference_mode():
        whole = ref.time_forward(lambda: m(toks, ctx), "graph")[0]
        whole_tm = time_module(lambda: m(toks, ctx), dev, "graph").median_s
        L = ctx + n
        mask = None if n == 1 else ref.causal_lower_right(n, L)
        cos, sin = m.cos[ctx:L], m.sin[ctx:L]
        x = m.emb(toks)
        layers = list(m.layers) * max(1, -(-4 // len(m.layers)))  # ≥ 4 calls per replay, as the profiler

        def stack():
            y = x
            for layer in layers:
                y = ref.layer_forward(layer, y, cos, sin, ctx, mask)
            return y
        per_layer = time_module(stack, dev, "graph").median_s / len(layers)
        head = time_module(lambda: m.head(m.norm(m.emb(toks))), dev, "graph").median_s
    del m
    torch.cuda.empty_cache()
    return whole, whole_tm, per_layer, head


def _spec_parts(spec, b, n, ctx, dev="cuda"):
    (_, t_layer), = list(layer_points(spec, 1, b, ctx, [n], ["graph"], "fp16", dev))
    (_, t_head), = list(head_points(spec, 1, b, [n], ["graph"], "fp16", dev))
    torch.cuda.empty_cache()
    model = DecoderModel(spec, max_batch=b, max_context=kv_aligned(ctx + n), dtype="fp16", device=dev)
    toks = torch.randint(0, spec.vocab, (b, n), device=dev)
    pos = torch.full((b,), ctx, dtype=torch.long, device=dev)
    with torch.inference_mode():
        whole = ref.time_forward(lambda: model(toks, pos, ctx + n, uniform=True), "graph")[0]
    del model
    torch.cuda.empty_cache()
    return whole, t_layer.median_s, t_head.median_s


def kernel_tables(name, b, n, ctx, dev="cuda", top=14) -> str:
    """torch.profiler's CUDA-kernel summary of one forward of the reference and of specperf's
    DecoderModel at one point (eager launches, so the kernels each runs are named)."""
    from torch.profiler import ProfilerActivity, profile

    shape, spec = ref.SHAPES[name], _spec(name)
    torch.manual_seed(0)
    out = []
    m = ref.RefModel(shape, b, ctx + 16, torch.float16, dev)
    sm = DecoderModel(spec, max_batch=b, max_context=kv_aligned(ctx + n), dtype="fp16", device=dev)
    toks = torch.randint(0, shape[5], (b, n), device=dev)
    pos = torch.full((b,), ctx, dtype=torch.long, device=dev)
    for label, fn in (("reference", lambda: m(toks, ctx)), ("specperf", lambda: sm(toks, pos, ctx + n, uniform=True))):
        with torch.inference_mode():
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    fn()
                torch.cuda.synchronize()
        out.append(f"== {label} {name} b{b} n{n} ctx{ctx} (5 forwards)\n"
                   + prof.key_averages().table(sort_by="cuda_time_total", row_limit=top))
    del m, sm
    torch.cuda.empty_cache()
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--deadline-s", type=float, default=120.0)
    ap.add_argument("--kernels-out", help="also write torch.profiler kernel tables of a few points here")
    a = ap.parse_args(argv)
    stop_at = time.monotonic() + a.deadline_s
    if not attention.engine():
        sys.exit("block_vs_reference: SPECPERF_KERNELS must be engine (the shipped tables' kernels)")
    rows = []
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for name in a.shapes.split(","):
            spec = _spec(name)
            for b, n, ctx in POINTS:
                if time.monotonic() > stop_at:
                    break
                try:
                    rw, rtm, rl, rh = _ref_parts(name, b, n, ctx)
                    sw, sl, sh = _spec_parts(spec, b, n, ctx)
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    continue
                r = {"gpu_name": torch.cuda.get_device_name(), "model": name, "batch": b, "new_tokens": n,
                     "context": ctx, "ref_whole": rw, "ref_whole_tm": rtm, "spec_whole": sw,
                     "spec_rows": spec.n_layers * sl + sh, "ref_rows": spec.n_layers * rl + rh,
                     "spec_layer": sl, "spec_head": sh, "ref_layer": rl, "ref_head": rh}
                w.writerow(r)
                f.flush()
                rows.append(r)
                print(f"{name} b{b} n{n} ctx{ctx}: ref {rw * 1e6:.1f} us | /ref: timing {rtm / rw:.3f} "
                      f"spec whole {sw / rw:.3f} spec rows {r['spec_rows'] / rw:.3f} ref rows {r['ref_rows'] / rw:.3f} "
                      f"| layer spec/ref {sl / rl:.3f} head spec/ref {sh / rh:.3f}", flush=True)
    if a.kernels_out:
        with open(a.kernels_out, "w") as f:
            for pt in (("r640x12", 32, 5, 512), ("r4096x2", 1, 1, 512), ("r1024x32", 8, 5, 2048)):
                try:
                    f.write(kernel_tables(*pt) + "\n")
                except Exception as e:  # a profiler failure is recorded, not fatal
                    f.write(f"{pt}: {type(e).__name__}: {e}\n")
    keys = ("ref_whole_tm", "spec_whole", "spec_rows", "ref_rows")
    summary = {k: float(np.median([r[k] / r["ref_whole"] for r in rows])) for k in keys} if rows else {}
    summary.update({"layer_spec_over_ref": float(np.median([r["spec_layer"] / r["ref_layer"] for r in rows])),
                    "head_spec_over_ref": float(np.median([r["spec_head"] / r["ref_head"] for r in rows]))}
                   if rows else {})
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "points": len(rows), "median_ratio_to_ref_whole": summary}))


if __name__ == "__main__":
    main()
