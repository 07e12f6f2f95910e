"""Composition accuracy: whole-model forward time (profiler.blocks.DecoderModel, all layers) versus
n_layers × layer + lm_head from a measured profile, per (mode, batch, new tokens, context); and the
study's central fact from the profile (a 4-layer 4096-wide draft step vs sheared-llama-1.3b's).

Usage (on the GPU, after the sweep):
    PYTHONPATH=. python scripts/composition_check.py --profile perfmodel/data/h100-sxm.csv \
        --out evidence/composition_h100.csv
    PYTHONPATH=. python scripts/composition_check.py --fact-only      # central fact, no GPU needed
Key assumption: a whole model's forward is its layers' forwards back to back plus the head; the
profile's layer rows were timed as stacks of distinct layers so L2 flattery does not bias them.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.latency.providers import latency_provider

FIELDS = ("gpu", "model", "mode", "batch", "new_tokens", "context", "measured_s", "p10_s", "p90_s",
          "composed_s", "rel_err", "layer_source", "lm_head_source", "compile")
# compiled mode's whole model: "piecewise" = its layers through the one shared compiled layer function
# (vLLM's piecewise compilation; what the loop runs), "whole" = the entire forward as one compiled graph
COMPILE_VARIANTS = ("piecewise", "whole")


def central_fact(provider, context=512, modes=("graph", "eager")):
    """Batch-1 one-token step: 4-layer 4096-wide draft vs 24-layer 2048-wide sheared-llama-1.3b."""
    shallow = resolve_model("llama-7b:n_layers=4")
    deep = resolve_model("sheared-llama-1.3b")
    out = []
    for mode in modes:
        a = provider.forward(shallow, 1, 1, context, 1, mode)
        b = provider.forward(deep, 1, 1, context, 1, mode)
        out.append({"mode": mode, "shallow_s": float(a.total_s), "deep_s": float(b.total_s),
                    "ratio": float(b.total_s / a.total_s), "shallow_params": shallow.params,
                    "deep_params": deep.params, "sources": (a.sources["layer"], b.sources["layer"])})
    return out


def print_fact(provider, label, modes=("graph", "eager")):
    for r in central_fact(provider, modes=modes):
        print(f"central fact ({label}, {r['mode']}, batch 1, context 512): 24-layer 2048-wide "
              f"sheared-llama-1.3b step {r['deep_s'] * 1e3:.3f} ms vs 4-layer 4096-wide "
              f"{r['shallow_s'] * 1e3:.3f} ms -> {r['ratio']:.2f}x slower "
              f"({r['deep_params'] / 1e9:.2f} B vs {r['shallow_params'] / 1e9:.2f} B params; "
              f"layer source: {r['sources'][1]})", flush=True)


def _variants(mode, whole):
    if mode != "compiled":
        return [""]
    return list(COMPILE_VARIANTS) if whole else ["piecewise"]


def measure_model(name, provider, batches, new_tokens, contexts, modes, device, gpu, margin_bytes=3 * 2**30,
                  whole=False):
    import torch

    from specperf.profiler import compiled
    from specperf.profiler.blocks import DecoderModel, KV_ALIGN, cache_bytes, kv_aligned
    from specperf.profiler.timing import time_module

    spec = resolve_model(name)
    model = DecoderModel(spec, max_batch=1, max_context=KV_ALIGN, dtype="fp16", device=device)
    rows = []
    for b in batches:
        for c in contexts:
            max_ctx = kv_aligned(c + max(new_tokens))
            model.reset_cache(1, KV_ALIGN)
            torch.cuda.empty_cache()
            free, _ = torch.cuda.mem_get_info()
            need = spec.n_layers * cache_bytes(spec, b, max_ctx) + margin_bytes
            if need > free:
                print(f"skip {name} b={b} ctx={c}: KV cache needs {need / 2**30:.1f} GiB, "
                      f"{free / 2**30:.1f} GiB free", flush=True)
                continue
            model.reset_cache(b, max_ctx)
            pos = torch.full((b,), c, dtype=torch.long, device=device)
            for n in new_tokens:
                toks = torch.randint(0, spec.vocab, (b, n), device=device)
                ct = {m: provider.forward(spec, b, n, c, 1, m) for m in modes}
                with torch.inference_mode():
                    for m in modes:
                        for v in _variants(m, whole):
                            fwd = compiled.model_fn(model, whole=v == "whole") if v else model
                            if v:
                                compiled.warm(lambda: fwd(toks, pos, c + n), device, f"{name} {v} b{b} n{n} ctx{c}")
                            t = time_module(lambda: fwd(toks, pos, c + n), device, m)
                            comp = float(ct[m].total_s)
                            rows.append({"gpu": gpu, "model": name, "mode": m, "batch": b, "new_tokens": n,
                                         "context": c, "measured_s": t.median_s, "p10_s": t.p10_s,
                                         "p90_s": t.p90_s, "composed_s": comp,
                                         "rel_err": comp / t.median_s - 1,
                                         "layer_source": ct[m].sources["layer"],
                                         "lm_head_source": ct[m].sources["lm_head"], "compile": v})
                            r = rows[-1]
                            print(f"{name:10s} {m:5s} {v:9s} b={b:2d} n={n} ctx={c:5d}  model {t.median_s * 1e3:8.3f} ms"
                                  f"  composed {comp * 1e3:8.3f} ms  err {r['rel_err']:+6.1%}", flush=True)
    del model
    torch.cuda.empty_cache()
    return rows


def summary(rows):
    from specperf.profiler.validate import abs_error_summary

    keys = sorted({(r["mode"], r.get("compile", "")) for r in rows})
    return {(m + (f" ({v})" if v else "")): abs_error_summary([r["rel_err"] for r in rows
                                                              if r["mode"] == m and r.get("compile", "") == v])
            for m, v in keys}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="perfmodel/data/h100-sxm.csv")
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--models", default="llama-7b,llama-13b,llama-33b")
    ap.add_argument("--batch", default="1,4,16")
    ap.add_argument("--new-tokens", default="1,5,9")
    ap.add_argument("--context", default="512,2048")
    ap.add_argument("--modes", default="graph,eager")
    ap.add_argument("--out", default="evidence/composition_h100.csv")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--fact-only", action="store_true")
    ap.add_argument("--whole-compiled", action="store_true",
                    help="compiled mode: also time the whole forward compiled as one graph (slow to compile)")
    ap.add_argument("--compile-log", default=None, help="write every compile's seconds here (JSON)")
    a = ap.parse_args(argv)
    provider = latency_provider(resolve_gpu(a.gpu), profile=a.profile)
    print_fact(provider, f"{a.gpu}, {Path(a.profile).name}", tuple(a.modes.split(",")))
    if a.fact_only:
        return 0
    import torch

    from specperf.cli.common import parse_ints
    from specperf.profiler.env import device_name

    card = device_name(a.device) if torch.device(a.device).type == "cuda" else "cpu"
    rows = []
    for name in a.models.split(","):
        rows += measure_model(name, provider, parse_ints(a.batch, "batch"), parse_ints(a.new_tokens, "new-tokens"),
                              parse_ints(a.context, "context"), a.modes.split(","), a.device, card,
                              whole=a.whole_compiled)
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    if a.compile_log:
        import json

        from specperf.profiler import compiled
        Path(a.compile_log).write_text(json.dumps(compiled.COMPILE_LOG, indent=1))
    for m, s in summary(rows).items():
        print(f"composition {m:5s} on {card}: n={s['n']}  median |err| {s['median_abs']:.2%}  "
              f"p90 |err| {s['p90_abs']:.2%}  max {s['max_abs']:.2%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
