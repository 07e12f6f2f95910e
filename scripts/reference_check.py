"""Independent references for specperf's latency predictions: whole LLaMA-style models written apart
from profiler/blocks.py (it imports nothing from specperf), timed on the GPU, written to a CSV that
scripts/reference_report.py compares with `specperf predict`'s providers on the CPU.

    PYTHONPATH=. python scripts/reference_check.py --out $OUT/reference_h100.csv --deadline-s 200

References (the `impl` column):
- `plain`: a plain-PyTorch decoder written here — fused QKV and gate/up projections (as vLLM's
  layers), RMSNorm, rotary embeddings, a static KV cache [b, KV heads, max_context, head_dim] written
  in place by index (as gpt-fast), `F.scaled_dot_product_attention` with PyTorch's own backend
  dispatch and its native `enable_gqa` (no mask in one-token decode; PyTorch's documented
  `causal_lower_right` bias for several new tokens). Modes: `eager`,
  `graph` (one forward captured in a CUDA graph) and `compiled` (one decoder layer through
  torch.compile(mode="default", dynamic=False), its function shared by the layers, the whole forward
  captured in a CUDA graph — gpt-fast's recipe with the layer as the compiled unit) and `piecewise`
  (the same, with the KV write and attention one opaque custom op the compiler cannot fuse across,
  the caches looked up rather than passed — vLLM's piecewise compilation, written here).
- `hf`: Hugging Face transformers' LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM built from a
  config with random weights, attn_implementation="sdpa", eager, decoding against a prefilled
  DynamicCache that is cropped back after each timed forward (the crop is timed with it; it is a view);
  `--impls hf_compiled`: the same models compiled as Hugging Face documents it (StaticCache,
  torch.compile(model.forward, mode="reduce-overhead", fullgraph=True), mode `compiled`).
Timing: CUDA events around each forward, warm-up first, median of repeats (graph: replays).
Key assumption: random weights time like trained ones (dense kernels do not look at values).
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

# name: (n_layers, d_model, n_heads, n_kv_heads, d_ff, vocab) — shapes in no shipped profile;
# query heads per KV head 1..8, head_dim 64/128
SHAPES = {
    "r640x12": (12, 640, 10, 2, 2048, 49152), "r768x24": (24, 768, 12, 4, 2048, 32768),
    "r1024x32": (32, 1024, 16, 2, 2816, 32000), "r1280x16": (16, 1280, 10, 10, 3584, 32000),
    "r1536x8": (8, 1536, 24, 8, 5632, 32000), "r1792x8": (8, 1792, 14, 2, 4864, 65536),
    "r3072x4": (4, 3072, 24, 8, 12288, 32000), "r3584x3": (3, 3584, 28, 4, 9728, 152064),
    "r4096x2": (2, 4096, 32, 8, 14336, 128256), "r8192x1": (1, 8192, 64, 8, 28672, 128256),
}
COMPILED_SHAPES = ("r768x24", "r1024x32", "r1536x8", "r3584x3", "r640x12", "r3072x4", "r1280x16")
HF_SHAPES = {"llama": "r1024x32", "qwen2": "r1536x8", "mistral": "r3072x4"}
FIELDS = ("gpu_name", "impl", "model", "family", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff",
          "vocab", "mode", "batch", "new_tokens", "context", "median_s", "p10_s", "p90_s", "repeats", "dtype",
          "torch", "note")
ROPE_BASE = 10000.0  # LLaMA-2 rope_theta (config.json)
EPS = 1e-5  # LLaMA-2 rms_norm_eps (config.json)


class RefLayer(torch.nn.Module):
    def __init__(self, d, h, kv, ff, b, max_ctx, dtype, dev):
        super().__init__()
        hd = d // h
        mk = lambda o, i: torch.nn.Linear(i, o, bias=False, device=dev, dtype=dtype)  # noqa: E731
        self.qkv, self.o = mk((h + 2 * kv) * hd, d), mk(d, h * hd)  # fused as vLLM's QKVParallelLinear
        self.gate_up, self.down = mk(2 * ff, d), mk(d, ff)  # fused as vLLM's MergedColumnParallelLinear
        self.n1 = torch.nn.RMSNorm(d, eps=EPS, device=dev, dtype=dtype)
        self.n2 = torch.nn.RMSNorm(d, eps=EPS, device=dev, dtype=dtype)
        self.h, self.kv, self.hd = h, kv, hd
        self.register_buffer("ck", torch.randn(b, kv, max_ctx, hd, device=dev, dtype=dtype))
        self.register_buffer("cv", torch.randn(b, kv, max_ctx, hd, device=dev, dtype=dtype))


def rope(x, cos, sin):  # x [b, heads, n, hd]; cos/sin [n, hd]
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def project(layer, x, cos, sin):
    """Input norm, fused QKV, heads split and rotated: q [b, h, n, hd], k and v [b, kv, n, hd]."""
    b, n, _ = x.shape
    q, k, v = layer.qkv(layer.n1(x)).split([layer.h * layer.hd, layer.kv * layer.hd, layer.kv * layer.hd], dim=-1)
    q = q.reshape(b, n, layer.h, layer.hd).transpose(1, 2)
    k = k.reshape(b, n, layer.kv, layer.hd).transpose(1, 2)
    v = v.reshape(b, n, layer.kv, layer.hd).transpose(1, 2)
    return rope(q, cos, sin), rope(k, cos, sin), v


def finish(layer, x, a):
    """o-proj + residual, then the gated MLP + residual, from the attention output a [b, h, n, hd]."""
    b, n, _ = x.shape
    x = x + layer.o(a.transpose(1, 2).reshape(b, n, layer.h * layer.hd))
    gate, up = layer.gate_up(layer.n2(x)).chunk(2, dim=-1)
    return x + layer.down(F.silu(gate) * up)


def layer_forward(layer, x, cos, sin, start: int, mask):
    q, k, v = project(layer, x, cos, sin)
    n = x.shape[1]
    idx = torch.arange(start, start + n, device=x.device)
    layer.ck[:, :, idx] = k  # index_put_, as gpt-fast writes its static cache
    layer.cv[:, :, idx] = v
    L = start + n
    a = F.scaled_dot_product_attention(q, layer.ck[:, :, :L], layer.cv[:, :, :L], attn_mask=mask,
                                       enable_gqa=layer.h != layer.kv)
    return finish(layer, x, a)


class RefModel(torch.nn.Module):
    def __init__(self, shape, b, max_ctx, dtype, dev):
        super().__init__()
        L, d, h, kv, ff, vocab = shape
        self.emb = torch.nn.Embedding(vocab, d, device=dev, dtype=dtype)
        self.layers = torch.nn.ModuleList(RefLayer(d, h, kv, ff, b, max_ctx, dtype, dev) for _ in range(L))
        self.norm = torch.nn.RMSNorm(d, eps=EPS, device=dev, dtype=dtype)
        self.head = torch.nn.Linear(d, vocab, bias=False, device=dev, dtype=dtype)
        hd = d // h
        inv = 1.0 / ROPE_BASE ** (torch.arange(0, hd, 2, device=dev).float() / hd)
        f = torch.outer(torch.arange(max_ctx, device=dev).float(), inv)
        self.cos, self.sin = torch.cat([f, f], -1).cos().to(dtype), torch.cat([f, f], -1).sin().to(dtype)

    def forward(self, toks, start: int, layer_fn=layer_forward):
        n = toks.shape[1]
        L = start + n
        mask = None if n == 1 else causal_lower_right(n, L)  # PyTorch's documented bottom-right causal bias
        cos, sin = self.cos[start:L], self.sin[start:L]
        x = self.emb(toks)
        for layer in self.layers:
            x = layer_fn(layer, x, cos, sin, start, mask)
        return self.head(self.norm(x))


def _events_median(call, reps: int):
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        call()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) * 1e-3)
    out.sort()
    return out[len(out) // 2], out[len(out) // 10], out[(9 * len(out)) // 10], len(out)


def time_forward(fn, mode: str, reps: int = 30):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    if mode == "eager":
        return _events_median(fn, reps)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return _events_median(g.replay, reps)


_COMPILED = {}
_CACHES: list = []  # (k cache, v cache) per layer, registered for the opaque attention op


@torch.library.custom_op("refcheck::attention", mutates_args=())
def _opaque_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slot: int, start: int) -> torch.Tensor:
    """KV write by index + SDPA as one op the compiler cannot see into, vLLM's piecewise split: the
    layer's caches are looked up by `slot`, not passed, so no functionalised copy of them is made."""
    ck, cv = _CACHES[slot]
    n = q.shape[2]
    idx = torch.arange(start, start + n, device=q.device)
    ck[:, :, idx] = k
    cv[:, :, idx] = v
    L = start + n
    mask = None if n == 1 else causal_lower_right(n, L)
    return F.scaled_dot_product_attention(q, ck[:, :, :L], cv[:, :, :L], attn_mask=mask,
                                          enable_gqa=q.shape[1] != k.shape[1])


@_opaque_attention.register_fake
def _(q, k, v, slot, start):
    return torch.empty_like(q)


def layer_forward_piecewise(layer, x, cos, sin, start: int, mask):
    """layer_forward with the KV write and attention behind the opaque op (`mask` is rebuilt inside)."""
    q, k, v = project(layer, x, cos, sin)
    return finish(layer, x, _opaque_attention(q, k, v, layer.slot, start))


def register_caches(model):
    _CACHES.clear()
    for i, layer in enumerate(model.layers):
        layer.slot = i
        _CACHES.append((layer.ck, layer.cv))


def compiled_layer(mode: str = "compiled"):
    """One decoder layer through torch.compile: `compiled` whole (attention inside, gpt-fast's
    recipe), `piecewise` with the KV write and attention opaque (vLLM's piecewise scheme)."""
    if mode not in _COMPILED:
        torch._dynamo.config.cache_size_limit = 512
        fn = layer_forward_piecewise if mode == "piecewise" else layer_forward
        _COMPILED[mode] = torch.compile(fn, mode="default", dynamic=False, fullgraph=True)
    return _COMPILED[mode]


def row(impl, name, family, shape, mode, b, n, ctx, t, dtype, note=""):
    L, d, h, kv, ff, vocab = shape
    return {"gpu_name": torch.cuda.get_device_name(), "impl": impl, "model": name, "family": family,
            "n_layers": L, "d_model": d, "n_heads": h, "n_kv_heads": kv, "d_ff": ff, "vocab": vocab,
            "mode": mode, "batch": b, "new_tokens": n, "context": ctx, "median_s": t[0], "p10_s": t[1],
            "p90_s": t[2], "repeats": t[3], "dtype": dtype, "torch": torch.__version__, "note": note}


def plain_points(args):
    for name, shape in SHAPES.items():
        for b in args.batch:
            for ctx in args.context:
                if b * ctx > 131072 or (shape[1] >= 4096 and b * ctx > 65536):
                    continue
                for n in args.new_tokens:
                    for mode in args.modes:
                        if mode in ("compiled", "piecewise") and (name not in args.compiled_shapes or ctx > 2048):
                            continue
                        if mode == "eager" and (ctx != 512 or b > 8):
                            continue
                        yield name, shape, b, ctx, n, mode


def run_plain(args, dt, writer, stop_at):
    models = {}
    for name, shape, b, ctx, n, mode in plain_points(args):
        if time.monotonic() > stop_at:
            print("deadline: stopping plain references", flush=True)
            return
        key = (name, b, ctx)
        if key not in models:
            models.clear()
            torch.cuda.empty_cache()
            torch.manual_seed(0)
            models[key] = RefModel(shape, b, ctx + 16, dt, "cuda")
        m = models[key]
        toks = torch.randint(0, shape[5], (b, n), device="cuda")
        if mode == "piecewise":
            register_caches(m)
        lf = compiled_layer(mode) if mode in ("compiled", "piecewise") else layer_forward
        t0 = time.monotonic()
        try:
            with torch.inference_mode():
                t = time_forward(lambda: m(toks, ctx, lf), mode)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        except Exception as e:  # e.g. a compile failure of this torch version: recorded, not fatal
            print(f"plain {name} {mode} b{b} n{n} ctx{ctx}: {type(e).__name__}: {str(e)[:200]}", flush=True)
            continue
        writer(row("plain", name, "llama", shape, mode, b, n, ctx, t, args.dtype))
        print(f"plain {name} {mode} b{b} n{n} ctx{ctx}: {t[0] * 1e3:.4f} ms ({time.monotonic() - t0:.1f} s)", flush=True)


def hf_model(family, shape, dt):
    import transformers as tf

    L, d, h, kv, ff, vocab = shape
    cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM), "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
           "mistral": (tf.MistralConfig, tf.MistralForCausalLM)}[family]
    cfg = cls[0](hidden_size=d, num_hidden_layers=L, num_attention_heads=h, num_key_value_heads=kv,
                 intermediate_size=ff, vocab_size=vocab, max_position_embeddings=16384,
                 attn_implementation="sdpa", torch_dtype=dt)
    with torch.device("cuda"):
        m = cls[1](cfg).to(dt).eval()
    return m


def hf_models(families, dt):
    """(family, reference name, shape, model) per family that this transformers version can build."""
    for family in families:
        name = HF_SHAPES[family]
        try:
            m = hf_model(family, SHAPES[name], dt)
        except Exception as e:  # an API difference of this transformers version: recorded, not fatal
            print(f"hf {family}: cannot build ({type(e).__name__}: {e})", flush=True)
            continue
        yield family, name, SHAPES[name], m


def run_hf(args, dt, writer, stop_at):
    try:
        import transformers  # noqa: F401
        from transformers import DynamicCache
    except ImportError as e:
        print(f"no transformers: {e}", flush=True)
        return
    for family, name, shape, m in hf_models(HF_SHAPES, dt):
        for b in (1, 8):
            for ctx in (512, 2048):
                for n in args.new_tokens:
                    if time.monotonic() > stop_at:
                        print("deadline: stopping hf references", flush=True)
                        return
                    try:
                        with torch.inference_mode():
                            cache = DynamicCache()
                            pre = torch.randint(0, shape[5], (b, ctx), device="cuda")
                            m(input_ids=pre, past_key_values=cache, use_cache=True)
                            toks = torch.randint(0, shape[5], (b, n), device="cuda")
                            pos = torch.arange(ctx, ctx + n, device="cuda")

                            def step():
                                m(input_ids=toks, past_key_values=cache, use_cache=True, cache_position=pos)
                                cache.crop(ctx)
                            t = time_forward(step, "eager")
                    except Exception as e:
                        print(f"hf {family} b{b} ctx{ctx} n{n}: {type(e).__name__}: {e}", flush=True)
                        continue
                    writer(row("hf", name, family, shape, "eager", b, n, ctx, t, args.dtype,
                               note=f"transformers {transformers.__version__}"))
                    print(f"hf {family} {name} eager b{b} n{n} ctx{ctx}: {t[0] * 1e3:.4f} ms", flush=True)
        del m
        torch.cuda.empty_cache()


def run_hf_compiled(args, dt, writer, stop_at):
    """HF's documented recipe for compiled decoding: a StaticCache and the model's forward through
    torch.compile(mode="reduce-overhead", fullgraph=True), which replays CUDA graphs; one prefill,
    then the timed forwards of `n` new tokens at the same cache positions."""
    try:
        import transformers
        from transformers import StaticCache
    except ImportError as e:
        print(f"no transformers: {e}", flush=True)
        return
    torch._dynamo.config.cache_size_limit = 512
    for family, name, shape, m in hf_models(args.hf_compiled_families, dt):
        fwd = torch.compile(m.forward, mode="reduce-overhead", fullgraph=True)
        for b in (1, 8):
            for ctx in (512,):
                for n in args.new_tokens:
                    if time.monotonic() > stop_at:
                        print("deadline: stopping compiled hf references", flush=True)
                        del m
                        return
                    t0 = time.monotonic()
                    try:
                        with torch.no_grad():
                            cache = StaticCache(config=m.config, max_cache_len=ctx + 16)
                            pre = torch.randint(0, shape[5], (b, ctx), device="cuda")
                            m(input_ids=pre, past_key_values=cache, use_cache=True,
                              cache_position=torch.arange(ctx, device="cuda"))
                            toks = torch.randint(0, shape[5], (b, n), device="cuda")
                            pos = torch.arange(ctx, ctx + n, device="cuda")

                            def step():
                                return fwd(input_ids=toks, past_key_values=cache, use_cache=True, cache_position=pos)
                            for _ in range(5):  # compile, then cudagraph trees record on a later call
                                step()
                            t = time_forward(step, "eager")
                    except Exception as e:
                        print(f"hf compiled {family} b{b} n{n}: {type(e).__name__}: {str(e)[:300]}", flush=True)
                        continue
                    writer(row("hf", name, family, shape, "compiled", b, n, ctx, t, args.dtype,
                               note=f"transformers {transformers.__version__}; StaticCache, reduce-overhead"))
                    print(f"hf {family} {name} compiled b{b} n{n} ctx{ctx}: {t[0] * 1e3:.4f} ms "
                          f"({time.monotonic() - t0:.1f} s)", flush=True)
        del m, fwd
        torch.cuda.empty_cache()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="fp16", choices=("fp16", "bf16"))
    ap.add_argument("--deadline-s", type=float, default=240.0)
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--context", default="512,2048,8192")
    ap.add_argument("--new-tokens", default="1,5")
    ap.add_argument("--modes", default="graph,compiled,eager")
    ap.add_argument("--impls", default="plain,hf")
    ap.add_argument("--hf-compiled-families", default="mistral,qwen2",
                    help=f"families timed by --impls hf_compiled (of {', '.join(HF_SHAPES)})")
    ap.add_argument("--compiled-shapes", default=",".join(COMPILED_SHAPES),
                    help="reference shapes timed in compiled mode (compiling each point takes seconds)")
    a = ap.parse_args(argv)
    a.batch = [int(x) for x in a.batch.split(",")]
    a.context = [int(x) for x in a.context.split(",")]
    a.new_tokens = [int(x) for x in a.new_tokens.split(",")]
    a.modes = a.modes.split(",")
    a.impls = a.impls.split(",")
    if set(a.impls) - {"plain", "hf", "hf_compiled"}:
        ap.error(f"--impls {a.impls!r} is not allowed; use some of plain, hf, hf_compiled")
    a.compiled_shapes = [x for x in a.compiled_shapes.split(",") if x]
    a.hf_compiled_families = [x for x in a.hf_compiled_families.split(",") if x]
    badf = [x for x in a.hf_compiled_families if x not in HF_SHAPES]
    if badf:
        ap.error(f"--hf-compiled-families {badf[0]!r} is not allowed; use some of {', '.join(HF_SHAPES)}")
    bad = [x for x in a.compiled_shapes if x not in SHAPES]
    if bad:
        ap.error(f"--compiled-shapes {bad[0]!r} is not allowed; use some of {', '.join(SHAPES)}")
    dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", "/tmp/reference_inductor")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stop_at = time.monotonic() + a.deadline_s
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()

        def writer(r):
            w.writerow(r)
            f.flush()
        if "hf" in a.impls:  # first, short: a few eager points per family
            run_hf(a, dt, writer, min(stop_at, time.monotonic() + max(30.0, 0.2 * a.deadline_s)))
        if "hf_compiled" in a.impls:  # second, bounded: each point compiles
            run_hf_compiled(a, dt, writer, min(stop_at, time.monotonic() + max(60.0, 0.4 * a.deadline_s)))
        if "plain" in a.impls:
            run_plain(a, dt, writer, stop_at)
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
