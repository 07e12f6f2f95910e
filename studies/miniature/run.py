"""The miniature study's one GPU run, end to end: corpus and tokenizer, a latency profile
(`specperf profile`), the target and the draft family trained from scratch, held-out perplexity,
greedy and sampling acceptance traces, measured tokens/s in specperf's own loop (graph and eager)
and in Hugging Face assisted generation. Prints its plan first; resumes from --work; stops starting
new work before --deadline-s so that whatever was measured is already under --out.

    PYTHONPATH=. python -m studies.miniature.run --out $OUT --work /tmp/miniature        # GPU
    PYTHONPATH=. python -m studies.miniature.run --tiny --out /tmp/mini_out --work /tmp/mini_work

Outputs (≤ 8 files, all small): records.jsonl (one JSON object per measured thing), traces.jsonl
(accepted counts per iteration and sequence), profile.csv + profile.csv.meta.json, tokenizer.json,
log.txt. Predictions are made afterwards on any machine by studies.miniature.analyze. Key
assumption: every timing in one output came from one process on one card, measured one at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from . import acceptance as acc
from . import corpus, family, lm, throughput
from .plan import Plan

MARGIN_S = 12.0  # never start a step with less than this left


class Run:
    def __init__(self, plan: Plan, out: Path, work: Path):
        self.plan, self.out, self.work, self.t0 = plan, out, work, time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        self.records_path = work / "records.jsonl"
        self.done = set()
        if self.records_path.exists():
            for ln in self.records_path.read_text().splitlines():
                r = json.loads(ln)
                if r.get("status", "ok") == "ok":
                    self.done.add(r["key"])

    def left(self) -> float:
        return self.plan.deadline_s - (time.perf_counter() - self.t0)

    def log(self, msg: str) -> None:
        line = f"[{time.perf_counter() - self.t0:6.1f} s] {msg}"
        print(line, flush=True)
        with (self.out / "log.txt").open("a") as f:
            f.write(line + "\n")

    def record(self, key: str, kind: str, **row) -> None:
        row = dict(key=key, kind=kind, status=row.pop("status", "ok"), elapsed_s=time.perf_counter() - self.t0, **row)
        with self.records_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        shutil.copyfile(self.records_path, self.out / "records.jsonl")
        self.done.add(key) if row["status"] == "ok" else None

    def trace(self, **row) -> None:
        with (self.work / "traces.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        shutil.copyfile(self.work / "traces.jsonl", self.out / "traces.jsonl")

    def step(self, key: str, kind: str, need_s: float, fn) -> None:
        """Run fn() unless done before or out of time; record what it returns, or why it did not run."""
        if key in self.done:
            return
        if self.left() < need_s + MARGIN_S:
            self.record(key, kind, status="skipped", reason=f"deadline: {self.left():.0f} s left, needs ~{need_s:.0f} s")
            self.log(f"skip {key}: deadline")
            return
        try:
            row = fn() or {}
            self.record(key, kind, **row)
        except Exception as e:  # noqa: BLE001 - one failed point must not lose the others
            self.record(key, kind, status="error", reason=f"{type(e).__name__}: {e}"[:400])
            self.log(f"ERROR {key}: {traceback.format_exc()}")
        if self.plan.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _env(plan: Plan) -> dict:
    d = {"python": sys.version.split()[0], "torch": torch.__version__, "device": plan.device}
    if plan.device.startswith("cuda"):
        d.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda)
    try:
        import transformers
        d["transformers"] = transformers.__version__
    except ImportError:
        d["transformers"] = None
    import tokenizers
    d["tokenizers"] = tokenizers.__version__
    return d


def _profile(run: Run, configs: dict) -> dict:
    p = run.plan
    dst = run.work / "profile.csv"
    cmd = [sys.executable, "-m", "specperf", "profile", "--models", ",".join(str(c) for c in configs.values()),
           "--out", str(dst), "--batch", "1", "--context", ",".join(map(str, p.profile_contexts)),
           "--gamma-max", str(p.profile_gamma_max), "--mode", ",".join(p.modes), "--dtype", p.dtype,
           "--device", p.device, "--quiet"]
    run.log("profile: " + " ".join(cmd[1:]))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, run.left() - MARGIN_S))
    if res.returncode != 0:
        raise RuntimeError(f"specperf profile failed ({res.returncode}): {res.stderr[-600:]}")
    for f in (dst, dst.with_name(dst.name + ".meta.json")):
        shutil.copyfile(f, run.out / f.name)
    return {"command": "specperf " + " ".join(cmd[3:]).replace(str(run.work) + "/", ""), "rows": sum(1 for _ in dst.open()) - 1}


def _train(run: Run, shape, data, held, tokens, lr, cap_s) -> dict:
    p = run.plan
    torch.manual_seed(p.seed)
    model = lm.LM(shape, run.vocab).to(p.device)
    cfg = lm.TrainConfig(tokens=tokens, seq=p.seq, batch=p.batch, lr=lr, warmup_steps=p.warmup_steps, seed=p.seed,
                         max_s=cap_s)
    rec = lm.train(model, data, cfg, log=run.log)
    model.eval()
    rec["perplexity"] = lm.perplexity(model, held, seq=p.seq)
    dtype = torch.float32 if p.dtype == "fp32" else torch.bfloat16
    lm.export(model, run.work / "models" / shape.name, dict(shape.hf_config(), vocab_size=run.vocab), dtype=dtype)
    run.log(f"trained {shape.name}: {rec['tokens'] / 1e6:.1f} M tokens in {rec['wall_s']:.0f} s "
            f"({rec['tokens_per_s'] / 1e3:.0f} k tok/s), loss {rec['final_loss']:.3f}, held-out ppl {rec['perplexity']:.2f}")
    del model
    return dict(model=shape.name, role=shape.role, n_layers=shape.n_layers, d_model=shape.d_model, params=shape.params,
                non_embedding_params=shape.non_embedding_params, **rec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--tiny", action="store_true", help="CPU dry run with the tiny family")
    ap.add_argument("--deadline-s", type=float, default=None)
    ap.add_argument("--no-hf", action="store_true")
    a = ap.parse_args(argv)
    plan = Plan.tiny() if a.tiny else Plan.gpu()
    if a.deadline_s:
        plan = replace(plan, deadline_s=a.deadline_s)
    if a.no_hf:
        plan = replace(plan, hf=False)
    run = Run(plan, Path(a.out), Path(a.work))
    run.log(plan.describe())
    dev = torch.device(plan.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        run.log("the plan needs CUDA but torch sees no GPU: nothing run")
        return 2
    run.step("env", "env", 0, lambda: _env(plan))

    manifest = corpus.build(run.work / "corpus", plan.corpus, log=run.log)
    run.vocab = int(manifest["vocab"])
    shutil.copyfile(run.work / "corpus" / "tokenizer.json", run.out / "tokenizer.json")
    run.step("corpus", "corpus", 0, lambda: {k: v for k, v in manifest.items() if k != "roots"})
    shapes = (plan.target,) + tuple(plan.drafts)
    configs = family.write_configs(shapes, run.work / "configs", vocab=run.vocab)
    run.step("profile", "profile", 20, lambda: _profile(run, configs))

    train_np = np.load(run.work / "corpus" / "train.npy")
    held_np = np.load(run.work / "corpus" / "heldout.npy")
    data, held = lm.as_tensor(train_np, dev), lm.as_tensor(held_np, dev)
    run.step(f"train:{plan.target.name}", "train", 30,
             lambda: _train(run, plan.target, data, held, plan.target_tokens, plan.target_lr, plan.target_cap_s))
    for d in plan.drafts:
        run.step(f"train:{d.name}", "train", 10,
                 lambda d=d: _train(run, d, data, held, plan.draft_tokens, plan.draft_lr, plan.draft_cap_s))
    del data
    measure(run, held_np)
    run.log(f"done; {run.left():.0f} s left of the deadline")
    return 0


def measure(run: Run, held_np) -> None:
    """Acceptance traces, then the loop in graph and eager mode, then Hugging Face — in that order,
    so that what the predictions need most is measured first."""
    from specperf.profiler.specloop_weights import load_decoder

    p, dev = run.plan, run.plan.device
    models = run.work / "models"
    set_a = torch.from_numpy(corpus.prompts(held_np, p.trace_prompts, p.prompt_len + 1, p.seed, 0)).to(dev)
    n_b = max(p.loop_prompts, p.eager_prompts, p.hf_prompts)
    set_b = torch.from_numpy(corpus.prompts(held_np, n_b, p.prompt_len + 1, p.seed + 1, 1)).to(dev)
    trained = [d for d in p.drafts if (models / d.name / "model.safetensors").exists()]
    if not (models / p.target.name / "model.safetensors").exists():
        run.log("no trained target: nothing to measure")
        return
    load = lambda name: load_decoder(models / name, dtype=p.dtype, device=dev)[1]  # noqa: E731
    target = load(p.target.name)
    loop_mode = "graph" if "graph" in p.modes else "eager"

    def traces(d, draft):
        g, ctx = p.trace_gamma, p.prompt_len
        a = acc.greedy_trace(draft, target, set_a, g, p.trace_iterations, mode=loop_mode, device=dev)
        run.trace(draft=d.name, kind="greedy", prompt_set="A", gamma=g, context=ctx, mode=loop_mode, accepted=a.tolist())
        s = acc.sampling_trace(draft, target, set_a, g, p.sampling_iterations, seed=p.seed)
        run.trace(draft=d.name, kind="sampling", prompt_set="A", gamma=g, context=ctx, temperature=1.0, accepted=s.tolist())
        return {"draft": d.name, "gamma": g, "greedy_alpha_by_position": acc.alpha_by_position(a, g),
                "sampling_alpha_by_position": acc.alpha_by_position(s, g),
                "greedy_tokens_per_iteration": acc.tokens_per_iteration(a, g),
                "sampling_tokens_per_iteration": acc.tokens_per_iteration(s, g),
                "greedy_iterations": int(a.size), "sampling_iterations": int(s.size)}

    def loop(draft, g, mode, name):
        k, its = (p.loop_prompts, p.loop_iterations) if mode == "graph" else (p.eager_prompts, p.eager_iterations)
        r = throughput.specloop_run(draft, target, set_b[:k], g, its, mode, device=dev)
        run.log(f"loop {mode} {name} γ={g}: {r['measured_tok_s']:.1f} tok/s, {r['tokens_per_iteration']:.2f} tok/it")
        return dict(r, draft=name, target=p.target.name)

    for d in trained:
        draft = load(d.name)
        run.step(f"acceptance:{d.name}", "acceptance", 6, lambda d=d, draft=draft: traces(d, draft))
        del draft
    for mode in p.modes:
        gammas = p.graph_gammas if mode == "graph" else p.eager_gammas
        run.step(f"loop:{mode}:target", "loop", 3, lambda mode=mode: loop(None, 0, mode, "none"))
        for d in trained:
            draft = load(d.name)
            for g in gammas:
                run.step(f"loop:{mode}:{d.name}:{g}", "loop", 4, lambda draft=draft, g=g, mode=mode, d=d: loop(draft, g, mode, d.name))
            del draft
    del target
    if p.hf:
        hf_measure(run, trained, set_b[:p.hf_prompts])


def hf_measure(run: Run, drafts, prompts) -> None:
    p, dev = run.plan, run.plan.device
    models = run.work / "models"
    dtype = torch.float32 if p.dtype == "fp32" else torch.bfloat16
    try:
        tgt = throughput.load_hf(models / p.target.name, dev, dtype)
    except Exception as e:  # noqa: BLE001
        run.record("hf:load", "hf", status="error", reason=f"{type(e).__name__}: {e}"[:400])
        return

    def one(draft, g, name):
        r = throughput.hf_run(tgt, draft, prompts, g, p.hf_new_tokens, dev)
        run.log(f"hf {name} γ={g}: {r['measured_tok_s']:.1f} tok/s, {r['tokens_per_iteration']:.2f} tok/it")
        return dict(r, draft=name, target=p.target.name)

    run.step("hf:target", "hf", 5, lambda: one(None, 0, "none"))
    for d in drafts:
        if all(f"hf:{d.name}:{g}" in run.done for g in p.hf_gammas):
            continue
        draft = throughput.load_hf(models / d.name, dev, dtype)
        for g in p.hf_gammas:
            run.step(f"hf:{d.name}:{g}", "hf", 6, lambda draft=draft, g=g, d=d: one(draft, g, d.name))
        del draft


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
