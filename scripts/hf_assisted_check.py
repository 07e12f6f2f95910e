"""A real client for specperf's speculative-decoding loop model: Hugging Face transformers' assisted
generation (`generate(assistant_model=…)`, greedy, a fixed lookahead γ) timed on the GPU, one CSV row
per (target/draft pair, γ) with every field a predictor needs. It imports nothing from specperf;
scripts/hf_assisted_report.py compares specperf's predictions with it on the CPU.

    PYTHONPATH=. python scripts/hf_assisted_check.py --out DIR --deadline-s 200        # GPU
    python scripts/hf_assisted_check.py --out /tmp/hfa --device cpu --smoke             # CPU, tiny

Models: LlamaForCausalLM / Qwen2ForCausalLM built from configs with random weights (fp16 on the GPU,
attn_implementation="sdpa", eager — HF generate runs eager), several shapes, grouped-query and MHA.
A draft is the target's first k layers (same embedding, final norm and LM head) while the target's
later layers have their residual writes (o_proj, down_proj) scaled by `tail_scale`, so the draft
agrees with the target often but not always; one pair's draft is instead a full-depth copy with small
weight noise (as studies/miniature/hf_check.py does). Acceptance is measured, not planted.

Protocol: all models resident; a warm-up round (every configuration, short generate) first; then
rounds in which every configuration (pairs × γ ∈ --gammas, and γ = 0: the target alone) runs once,
in an order shuffled per round (fixed seed), until --repeats rounds or the deadline. A configuration
always decodes the same prompt (greedy, so the same tokens every repeat). Per generate:
- `prefill_s`: from the call to the end of the target's first forward (a forward hook synchronises
  there once per generate; HF's loop syncs every iteration anyway);
- the decode window: from there to the end of generate; decode tokens = new tokens − the first
  iteration's tokens (read from the target's cache length at its second forward), decode iterations
  = target forwards − 1; decode tok/s = decode tokens / decode window (median over repeats);
- draft forwards per decode iteration and target tokens per verification forward (checks that the
  lookahead was constant).
Per-forward times of the target (1 token; γ+1 tokens) and the draft (1 token; 2 tokens: the first
draft step of an HF iteration re-feeds 2 tokens) are timed alone at the run's mid-decode context
(prompt + new_tokens/2) against a prefilled DynamicCache cropped back after each forward, with CUDA
events (median of repeats) and with a host clock around a synchronised call.

Outputs in --out: hf_assisted.csv (one row per configuration), hf_assisted_runs.csv (one row per
timed generate, written as it goes), log.txt (a copy of stdout). A run cut by the deadline keeps what
it measured (configurations with at least one timed repeat).
Key assumption: random weights time like trained ones (dense kernels do not look at values); the
acceptance they produce is an input of the comparison, not something predicted.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# name: (family, (n_layers, d_model, n_heads, n_kv_heads, d_ff, vocab), draft_layers, tail_scale,
#        draft_noise, prompt_len, new_tokens). tail_scale / noise chosen on the CPU (fp32, γ = 4, 40 tokens)
# for tokens per iteration of about 2.2-3: 2048x16 tail 0.15 → 2.24; qwen2 tail 0.05 → 2.31 (0.15 → 1.08);
# 3072x8 tail 0.05 → 3.5, 0.15 → 1.94; copy noise 0.03 → 3.13 (48 tokens), 0.05 → 1.95, 0.15 → 1.03.
PAIRS = {
    "hfa-llama-2048x16-gqa4": ("llama", (16, 2048, 16, 4, 5632, 32000), 4, 0.15, 0.0, 256, 96),
    "hfa-qwen2-1024x16-gqa8": ("qwen2", (16, 1024, 16, 2, 2816, 151936), 2, 0.04, 0.0, 512, 96),
    "hfa-llama-3072x8-mha": ("llama", (8, 3072, 24, 24, 8192, 32000), 2, 0.08, 0.0, 128, 96),
    "hfa-llama-1536x6-copy": ("llama", (6, 1536, 12, 4, 4096, 49152), 6, 1.0, 0.03, 1024, 96),
}
SMOKE_PAIRS = {
    "hfa-smoke-llama": ("llama", (3, 64, 4, 2, 128, 512), 1, 0.3, 0.0, 24, 16),
    "hfa-smoke-qwen2": ("qwen2", (2, 64, 4, 4, 128, 512), 2, 1.0, 0.05, 16, 16),
}
FIELDS = (
    "gpu_name", "device", "torch", "transformers", "python", "dtype", "attn_implementation", "pair", "family",
    "t_n_layers", "t_d_model", "t_n_heads", "t_n_kv_heads", "t_head_dim", "t_d_ff", "t_vocab",
    "d_n_layers", "d_d_model", "d_n_heads", "d_n_kv_heads", "d_head_dim", "d_d_ff", "d_vocab",
    "target_config", "draft_config", "draft_kind", "tail_scale", "draft_noise",
    "gamma", "batch", "prompt_len", "new_tokens", "context", "repeats", "first_order",
    "decode_tok_s", "decode_tok_s_p10", "decode_tok_s_p90", "decode_s", "e2e_tok_s", "prefill_s",
    "decode_tokens", "decode_iterations", "tokens_per_iteration", "measured_iteration_s",
    "target_forwards", "draft_forwards", "draft_forwards_per_iteration", "verify_tokens_per_iteration",
    "tokens_first_iteration", "equals_target_greedy",
    "t_target_s", "t_target_wall_s", "t_verify_s", "t_verify_wall_s", "t_draft_s", "t_draft_wall_s",
    "t_draft2_s", "t_draft2_wall_s", "forward_repeats", "note",
)
RUN_FIELDS = ("pair", "gamma", "round", "order", "new_tokens", "wall_s", "prefill_s", "decode_s", "decode_tokens",
              "decode_iterations", "target_forwards", "draft_forwards", "decode_draft_forwards",
              "verify_tokens_per_iteration", "tokens_first_iteration")


class Log:
    def __init__(self, path: Path):
        self.f = path.open("w")

    def __call__(self, *a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        self.f.write(s + "\n")
        self.f.flush()


def sync(dev: str):
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def hf_config(family: str, shape, n_layers: int | None = None) -> dict:
    """A config.json-style dict (what a user would hand specperf's `--target config.json`)."""
    L, d, h, kv, ff, vocab = shape
    return {"model_type": family, "architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[family]],
            "hidden_size": d, "num_hidden_layers": n_layers or L, "num_attention_heads": h,
            "num_key_value_heads": kv, "intermediate_size": ff, "vocab_size": vocab, "head_dim": d // h,
            "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float16"}


def build_model(family: str, cfg: dict, dtype, dev: str):
    import transformers as tf

    cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM), "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM)}[family]
    kw = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "torch_dtype")}
    conf = cls[0](**kw, bos_token_id=1, eos_token_id=None, pad_token_id=0)
    conf._attn_implementation = "sdpa"
    with torch.device(dev):
        m = cls[1](conf)
    m = m.to(dtype).eval()
    if getattr(m.config, "_attn_implementation", "sdpa") != "sdpa":
        m.config._attn_implementation = "sdpa"
    gc = m.generation_config
    gc.eos_token_id, gc.pad_token_id, gc.bos_token_id = None, 0, 1
    gc.do_sample, gc.temperature, gc.top_p, gc.top_k = False, None, None, None
    return m


def build_pair(name: str, spec, dtype, dev: str, seed: int):
    family, shape, k, tail, noise, _, _ = spec
    torch.manual_seed(seed)
    tcfg = hf_config(family, shape)
    target = build_model(family, tcfg, dtype, dev)
    with torch.no_grad():
        for i, layer in enumerate(target.model.layers):
            if i >= k and tail != 1.0:
                layer.self_attn.o_proj.weight.mul_(tail)
                layer.mlp.down_proj.weight.mul_(tail)
    dcfg = hf_config(family, shape, n_layers=k)
    draft = build_model(family, dcfg, dtype, dev)
    sd = {kk: v for kk, v in target.state_dict().items()
          if not kk.startswith("model.layers.") or int(kk.split(".")[2]) < k}
    missing, unexpected = draft.load_state_dict(sd, strict=False)
    bad = [m for m in missing if "rotary" not in m]
    if bad or unexpected:
        raise RuntimeError(f"{name}: draft weights do not match the target's: {bad[:3]} {unexpected[:3]}")
    if noise > 0:
        g = torch.Generator(device=dev).manual_seed(seed + 1)
        with torch.no_grad():
            for p in draft.parameters():
                if p.dim() == 2:
                    p.add_(noise * p.float().std().to(p.dtype) * torch.randn(p.shape, generator=g, device=dev,
                                                                             dtype=p.dtype))
    kind = "noisy-copy" if k == shape[0] else "truncated"
    return target, draft, tcfg, dcfg, kind


class Probe:
    """Forward hooks on the top-level model: per call, tokens fed and cache length before it; once per
    generate (first call of the target) a synchronised timestamp at its end."""

    def __init__(self, model, dev: str, mark_first: bool, shared: dict):
        self.dev, self.mark_first, self.shared = dev, mark_first, shared
        self.calls: list[tuple[int, int, int]] = []  # (tokens, cache_len, target calls so far)
        self.t_first_end = None
        self.h = [model.register_forward_pre_hook(self.pre, with_kwargs=True), model.register_forward_hook(self.post)]

    def reset(self):
        self.calls, self.t_first_end = [], None

    def pre(self, mod, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        pkv = kwargs.get("past_key_values")
        cl = int(pkv.get_seq_length()) if pkv is not None and hasattr(pkv, "get_seq_length") else 0
        self.calls.append((int(ids.shape[1]) if ids is not None else 0, cl, self.shared["target_calls"]))

    def post(self, mod, args, out):
        if self.mark_first:
            self.shared["target_calls"] += 1
            if self.t_first_end is None:
                sync(self.dev)
                self.t_first_end = time.perf_counter()

    def remove(self):
        for h in self.h:
            h.remove()


def generate_once(target, draft, gamma: int, prompt, new_tokens: int, dev: str, probes) -> tuple[dict, torch.Tensor]:
    pt, pd, shared = probes
    shared["target_calls"] = 0
    pt.reset()
    if pd is not None:
        pd.reset()
    kw = dict(max_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None,
              attention_mask=torch.ones_like(prompt))
    if gamma > 0:
        gc = draft.generation_config
        gc.num_assistant_tokens, gc.num_assistant_tokens_schedule = gamma, "constant"
        gc.assistant_confidence_threshold = 0.0  # no confidence-based early stop: a fixed lookahead
        kw["assistant_model"] = draft
    sync(dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = target.generate(prompt, **kw)
    sync(dev)
    t1 = time.perf_counter()
    P = prompt.shape[1]
    made = int(out.shape[1] - P)
    calls = pt.calls
    tok1 = (calls[1][1] - P + 1) if len(calls) > 1 else made
    dcalls = pd.calls if pd is not None else []
    dec_draft = sum(1 for c in dcalls if c[2] >= 1)
    verify = [c[0] for c in calls[1:]]
    r = {"new_tokens": made, "wall_s": t1 - t0, "prefill_s": (pt.t_first_end or t1) - t0,
         "decode_s": t1 - (pt.t_first_end or t1), "decode_tokens": made - tok1,
         "decode_iterations": len(calls) - 1, "target_forwards": len(calls), "draft_forwards": len(dcalls),
         "decode_draft_forwards": dec_draft,
         "verify_tokens_per_iteration": (sum(verify) / len(verify)) if verify else 0.0,
         "tokens_first_iteration": tok1}
    return r, out[0, P:].detach().cpu()


def _median_events(call, reps: int, dev: str):
    ev, wall = [], []
    for _ in range(reps):
        if dev.startswith("cuda"):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            call()
            b.record()
            b.synchronize()
            ev.append(a.elapsed_time(b) * 1e-3)
        sync(dev)
        t0 = time.perf_counter()
        call()
        sync(dev)
        wall.append(time.perf_counter() - t0)
    return (statistics.median(ev) if ev else statistics.median(wall)), statistics.median(wall)


def time_forwards(model, vocab: int, ctx: int, ns, dev: str, reps: int, logits_last: bool = False) -> dict:
    """{n: (events_s, wall_s)}: one forward of n new tokens at context ctx (batch 1) against a
    prefilled DynamicCache cropped back after each forward (the crop is a view; timed with it)."""
    from transformers import DynamicCache

    out = {}
    g = torch.Generator().manual_seed(ctx)
    with torch.inference_mode():
        cache = DynamicCache()
        pre = torch.randint(3, vocab, (1, ctx), generator=g).to(dev)
        model(input_ids=pre, attention_mask=torch.ones_like(pre), past_key_values=cache, use_cache=True)
        for n in ns:
            toks = torch.randint(3, vocab, (1, n), generator=g).to(dev)
            pos = torch.arange(ctx, ctx + n, device=dev)
            am = torch.ones(1, ctx + n, dtype=torch.long, device=dev)

            def step():
                model(input_ids=toks, attention_mask=am, past_key_values=cache, use_cache=True, cache_position=pos,
                      position_ids=pos[None], logits_to_keep=1 if logits_last else n)
                cache.crop(ctx)
            for _ in range(3):
                step()
            sync(dev)
            out[n] = _median_events(step, reps, dev)
    return out


def shape_fields(prefix: str, cfg: dict) -> dict:
    return {f"{prefix}n_layers": cfg["num_hidden_layers"], f"{prefix}d_model": cfg["hidden_size"],
            f"{prefix}n_heads": cfg["num_attention_heads"], f"{prefix}n_kv_heads": cfg["num_key_value_heads"],
            f"{prefix}head_dim": cfg["head_dim"], f"{prefix}d_ff": cfg["intermediate_size"],
            f"{prefix}vocab": cfg["vocab_size"]}


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p * (len(xs) - 1)))))]


def summarise(configs, results, M, fwd, outputs, first_order, env, freps, out: Path) -> list[dict]:
    """One row per configuration with at least one timed generate; written atomically to hf_assisted.csv."""
    rows = []
    for name, gg in configs:
        rs = results[(name, gg)]
        if not rs:
            continue
        m = M[name]
        family, shape, k, tail, noise, P, N = m["spec"]
        ft, fd = fwd.get(name, ({}, {}))
        tps = [r["decode_tokens"] / r["decode_s"] for r in rs if r["decode_s"] > 0 and r["decode_iterations"] > 0]
        if not tps:
            continue
        med = min(rs, key=lambda r: abs(r["decode_tokens"] / r["decode_s"] - statistics.median(tps)))
        dt, di = med["decode_tokens"], med["decode_iterations"]
        base = outputs.get((name, 0))
        mine = outputs.get((name, gg))
        eq = "" if base is None or mine is None else int(bool(torch.equal(base, mine)))
        nv = gg + 1 if gg > 0 else 1
        row = {**env, "pair": name, "family": family, **shape_fields("t_", m["tcfg"]), **shape_fields("d_", m["dcfg"]),
               "target_config": json.dumps(m["tcfg"], sort_keys=True), "draft_config": json.dumps(m["dcfg"], sort_keys=True),
               "draft_kind": m["kind"], "tail_scale": tail, "draft_noise": noise, "gamma": gg, "batch": 1,
               "prompt_len": P, "new_tokens": med["new_tokens"], "context": P + N // 2, "repeats": len(rs),
               "first_order": first_order.get((name, gg), ""),
               "decode_tok_s": statistics.median(tps), "decode_tok_s_p10": q(tps, 0.1), "decode_tok_s_p90": q(tps, 0.9),
               "decode_s": statistics.median([r["decode_s"] for r in rs]),
               "e2e_tok_s": statistics.median([r["new_tokens"] / r["wall_s"] for r in rs]),
               "prefill_s": statistics.median([r["prefill_s"] for r in rs]),
               "decode_tokens": dt, "decode_iterations": di, "tokens_per_iteration": dt / di,
               "measured_iteration_s": (dt / di) / statistics.median(tps),  # consistent with decode_tok_s
               "target_forwards": med["target_forwards"], "draft_forwards": med["draft_forwards"],
               "draft_forwards_per_iteration": med["decode_draft_forwards"] / di,
               "verify_tokens_per_iteration": med["verify_tokens_per_iteration"],
               "tokens_first_iteration": med["tokens_first_iteration"], "equals_target_greedy": eq,
               "t_target_s": ft.get(1, ("", ""))[0], "t_target_wall_s": ft.get(1, ("", ""))[1],
               "t_verify_s": ft.get(nv, ("", ""))[0], "t_verify_wall_s": ft.get(nv, ("", ""))[1],
               "t_draft_s": fd.get(1, ("", ""))[0] if gg > 0 else "", "t_draft_wall_s": fd.get(1, ("", ""))[1] if gg > 0 else "",
               "t_draft2_s": fd.get(2, ("", ""))[0] if gg > 0 else "", "t_draft2_wall_s": fd.get(2, ("", ""))[1] if gg > 0 else "",
               "forward_repeats": freps,
               "note": "" if len({r["decode_tokens"] for r in rs}) == 1 else "decode tokens differ across repeats"}
        rows.append(row)
    path = out / "hf_assisted.csv"
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--deadline-s", type=float, default=200.0, help="wall-clock budget after imports")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default=None, choices=("fp16", "bf16", "fp32"), help="default fp16 (cuda), fp32 (cpu)")
    ap.add_argument("--gammas", default="1,2,3,4,5,6")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds at most (the deadline may stop earlier)")
    ap.add_argument("--forward-repeats", type=int, default=20)
    ap.add_argument("--pairs", default="", help="comma-separated subset of pair names")
    ap.add_argument("--new-tokens", type=int, default=0, help="override every pair's new tokens")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, 2 rounds, γ 1..3 (CPU tests)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t_start = time.monotonic()
    stop_at = t_start + a.deadline_s
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "log.txt")
    dev = a.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        log("no CUDA device; pass --device cpu")
        return 2
    pairs = dict(SMOKE_PAIRS if a.smoke else PAIRS)
    if a.pairs:
        keep = a.pairs.split(",")
        unknown = [p for p in keep if p not in pairs]
        if unknown:
            log(f"unknown pair(s) {unknown}; known: {', '.join(pairs)}")
            return 2
        pairs = {k: pairs[k] for k in keep}
    gammas = [1, 2, 3] if a.smoke and a.gammas == "1,2,3,4,5,6" else [int(x) for x in a.gammas.split(",")]
    repeats = min(a.repeats, 2) if a.smoke else a.repeats
    freps = 3 if a.smoke else a.forward_repeats
    dname = a.dtype or ("fp16" if dev.startswith("cuda") else "fp32")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dname]
    import transformers

    transformers.logging.set_verbosity_error()
    gpu = torch.cuda.get_device_name(torch.device(dev)) if dev.startswith("cuda") else f"cpu ({platform.machine()})"
    env = {"gpu_name": gpu, "device": dev, "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "dtype": dname, "attn_implementation": "sdpa"}
    log(json.dumps({"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **env,
                    "deadline_s": a.deadline_s, "gammas": gammas, "repeats": repeats, "pairs": list(pairs),
                    "argv": sys.argv[1:] if argv is None else argv}))

    # 1. models, prompts, per-forward times at each pair's mid-decode context
    M, fwd = {}, {}
    for name, spec in pairs.items():
        if time.monotonic() > stop_at - 0.5 * a.deadline_s:
            log(f"deadline: not building {name}")
            continue
        t0 = time.monotonic()
        try:
            target, draft, tcfg, dcfg, kind = build_pair(name, spec, dtype, dev, a.seed)
        except Exception as e:  # an API difference of this transformers version: recorded, not fatal
            log(f"{name}: cannot build ({type(e).__name__}: {str(e)[:300]})")
            continue
        family, shape, k, tail, noise, P, N = spec
        N = a.new_tokens or N
        g = torch.Generator().manual_seed(1000 + len(M))
        prompt = torch.randint(3, shape[5], (1, P), generator=g).to(dev)
        shared = {"target_calls": 0}
        probes = (Probe(target, dev, True, shared), Probe(draft, dev, False, shared), shared)
        M[name] = dict(target=target, draft=draft, tcfg=tcfg, dcfg=dcfg, kind=kind, prompt=prompt, N=N, P=P,
                       probes=probes, spec=spec)
        ctx = P + N // 2
        try:
            ft = time_forwards(target, shape[5], ctx, [1] + [gg + 1 for gg in gammas if gg + 1 > 1], dev, freps)
            fd = time_forwards(draft, shape[5], ctx, [1, 2], dev, freps, logits_last=True)
        except Exception as e:
            log(f"{name}: forward timing failed ({type(e).__name__}: {str(e)[:300]})")
            ft, fd = {}, {}
        fwd[name] = (ft, fd)
        log(f"{name}: built ({kind}, draft {k} of {shape[0]} layers) in {time.monotonic() - t0:.1f} s; ctx {ctx}: "
            + ", ".join(f"target n{n} {v[0] * 1e3:.3f} ms" for n, v in ft.items())
            + "; " + ", ".join(f"draft n{n} {v[0] * 1e3:.3f} ms" for n, v in fd.items()))
    if not M:
        log("nothing built")
        return 1

    configs = [(name, gg) for name in M for gg in [0] + gammas]
    runs_f = (out / "hf_assisted_runs.csv").open("w", newline="")
    rw = csv.DictWriter(runs_f, fieldnames=RUN_FIELDS)
    rw.writeheader()
    results: dict = {c: [] for c in configs}
    outputs: dict = {}
    est: dict = {}
    first_order: dict = {}

    # 2. warm-up round: every configuration once, short
    for name, gg in configs:
        m = M[name]
        if time.monotonic() > stop_at - 0.4 * a.deadline_s:
            log("deadline: warm-up cut")
            break
        t0 = time.monotonic()
        try:
            generate_once(m["target"], m["draft"], gg, m["prompt"], max(8, m["N"] // 4), dev, m["probes"])
        except Exception as e:
            log(f"{name} γ={gg}: warm-up failed ({type(e).__name__}: {str(e)[:300]})")
            configs = [c for c in configs if c != (name, gg)]
            continue
        est[(name, gg)] = (time.monotonic() - t0) * 4
    log(f"warm-up done at {time.monotonic() - t_start:.1f} s")

    # 3. timed rounds, interleaved, shuffled per round
    rng = random.Random(a.seed)
    for rnd in range(repeats):
        order = list(configs)
        rng.shuffle(order)
        cut = False
        for pos, (name, gg) in enumerate(order):
            m = M[name]
            left = stop_at - time.monotonic()
            if left < 1.5 * est.get((name, gg), 1.0) + 2.0:
                cut = True
                continue
            try:
                r, toks = generate_once(m["target"], m["draft"], gg, m["prompt"], m["N"], dev, m["probes"])
            except Exception as e:
                log(f"{name} γ={gg} round {rnd}: failed ({type(e).__name__}: {str(e)[:300]})")
                continue
            est[(name, gg)] = r["wall_s"]
            first_order.setdefault((name, gg), rnd * len(order) + pos)
            outputs.setdefault((name, gg), toks)
            results[(name, gg)].append(r)
            rw.writerow({"pair": name, "gamma": gg, "round": rnd, "order": pos, **r})
            runs_f.flush()
        summarise(configs, results, M, fwd, outputs, first_order, env, freps, out)
        log(f"round {rnd} done at {time.monotonic() - t_start:.1f} s" + (" (deadline: some configurations skipped)"
                                                                          if cut else ""))
        if cut:
            break
    runs_f.close()

    # 4. one row per configuration (also written after every round)
    rows = summarise(configs, results, M, fwd, outputs, first_order, env, freps, out)
    path = out / "hf_assisted.csv"
    for r in rows:
        log(f"{r['pair']:26s} γ={r['gamma']}  {r['decode_tok_s']:8.2f} tok/s  TPI {r['tokens_per_iteration']:.2f}  "
            f"iter {r['measured_iteration_s'] * 1e3:7.3f} ms  drafts/iter {r['draft_forwards_per_iteration']:.2f}  "
            f"verify n {r['verify_tokens_per_iteration']:.2f}  same-as-greedy {r['equals_target_greedy']}  reps {r['repeats']}")
    log(json.dumps({"wrote": str(path), "rows": len(rows), "elapsed_s": round(time.monotonic() - t_start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
