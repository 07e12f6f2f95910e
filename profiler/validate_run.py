"""Run the validation grid on one device: profile exactly the shapes it needs (unless a profile is
given), measure real speculative decoding at every (target, draft, mode, batch, γ, α) point, and
predict the same points from that profile with perfmodel.specdec.predict.

Key assumption: the loop runs in steady state at `context` (every sequence is rolled back to
`context` cached tokens before each iteration), so the measured iteration is the one the model
predicts; the iteration time does not depend on α (every sequence does γ draft steps), but each α
is still a separate timed run with its own oracle draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.specs.models import ModelSpec, SpecError

from . import env
from .blocks import DecoderModel, kv_aligned
from .measure import free_memory, is_oom
from .oracle import AcceptanceOracle, realised_acceptance
from .specloop import LOOP_MODES, SpecLoop
from .timing import Timing
from .validate import add_errors, check_pair, check_profile_range, predicted_fields

CONTEXT_STEP = 64  # second profiled context above `context`, so the draft's mid-iteration context interpolates


@dataclass(frozen=True)
class ValidationConfig:
    targets: tuple
    drafts: tuple
    gammas: tuple
    batches: tuple
    alphas: tuple
    context: int = 512
    modes: tuple = ("graph",)
    dtype: str = "fp16"
    device: str = "cuda"
    repeats: int = 5
    iterations: int = 6
    warmup: int = 2
    seed: int = 0

    def check(self) -> None:
        for t in self.targets:
            for d in self.drafts:
                check_pair(t, d)
        for name, vals in (("gamma", self.gammas), ("batch", self.batches)):
            if not vals or any(int(v) != v or v <= 0 for v in vals):
                raise SpecError(f"{name}={list(vals)!r} is not allowed; give positive integers")
        for a in self.alphas:
            if not 0.0 <= a < 1.0:
                raise SpecError(f"alpha={a!r} is not allowed; α must be in [0, 1)")
        if self.context <= 0:
            raise SpecError(f"context={self.context} is not allowed; must be a positive integer")
        for m in self.modes:
            if m not in LOOP_MODES:
                raise SpecError(f"mode={m!r} is not allowed; use {', '.join(LOOP_MODES)}")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise SpecError("--device cuda was asked for but no CUDA device is available")
        for m in self.modes:
            if m != "eager" and dev.type != "cuda":
                raise SpecError(f"mode={m} needs a CUDA device; use --mode eager on CPU")
        for s in self.targets + self.drafts:
            if s.learned_positions and self.context + max(self.gammas) + 1 > s.max_positions:
                raise SpecError(f"context={self.context} + γ exceeds {s.name}'s max_positions={s.max_positions}")

    @property
    def max_context(self) -> int:
        return kv_aligned(self.context + max(self.gammas) + 2)


def make_profile(cfg: ValidationConfig, out, command: str = "", console=None):
    """Profile the targets' and drafts' shapes on exactly this grid (sweep), saved at `out`."""
    from specperf.perfmodel.latency.table import LatencyTable

    from . import sweep

    new = tuple(sorted({1} | {g + 1 for g in cfg.gammas}))
    grid = sweep.Grid(batches=tuple(cfg.batches), contexts=(cfg.context, cfg.context + CONTEXT_STEP),
                      new_tokens=new, modes=tuple(cfg.modes), overhead_gammas=tuple(sorted({0, *cfg.gammas})))
    jobs = sweep.plan([(s, grid) for s in cfg.targets + cfg.drafts])
    table = LatencyTable(meta=env.metadata(cfg.device, cfg.dtype, command))
    return sweep.run(jobs, table, out, cfg.device, cfg.dtype, console=console, verbose=False)


def hardware_key(device, gpu: str | None) -> str:
    key = gpu or env.catalog_gpu(env.device_name(device))
    if key not in GPUS:
        raise SpecError(f"device {env.device_name(device)!r} is not in the GPU catalog; pass --gpu NAME "
                        f"(one of {', '.join(GPUS)}) for the analytical fallback")
    return key


def _build(spec: ModelSpec, cfg: ValidationConfig, seed: int) -> DecoderModel:
    return DecoderModel(spec, max_batch=max(cfg.batches), max_context=cfg.max_context,
                            dtype=cfg.dtype, device=cfg.device, seed=seed)


def measure_loop(loop: SpecLoop, cfg: ValidationConfig) -> dict:
    """Warm up, then `repeats` × `iterations` timed iterations; medians and realised acceptance."""
    loop.reset()
    loop.run(cfg.warmup)
    logs = [loop.run(cfg.iterations) for _ in range(cfg.repeats)]
    times = np.concatenate([lg.iteration_s for lg in logs])
    toks = np.concatenate([lg.tokens for lg in logs])
    per_rep = [lg.total_tokens / lg.iteration_s.sum() for lg in logs]
    t = Timing.from_samples(times, 1)
    return {"measured_iteration_s": t.median_s, "measured_iteration_p10_s": t.p10_s,
            "measured_iteration_p90_s": t.p90_s,
            "measured_tok_s": float(np.median(per_rep)), "_tokens": toks,
            "iterations": int(times.size), "repeats": cfg.repeats}


def run_validation(cfg: ValidationConfig, profile_path, *, gpu: str | None = None, on_row=None, log=print):
    """Measure and predict every point; returns the rows (skipped points carry status/reason)."""
    from specperf.perfmodel.latency.providers import latency_provider
    from specperf.perfmodel.latency.table import LatencyTable

    cfg.check()
    table = LatencyTable.load(profile_path)
    for s in cfg.targets:
        check_profile_range(table, s, cfg.gammas, cfg.modes)
    here = env.catalog_gpu(env.device_name(cfg.device))
    if table.meta.get("gpu") and table.meta["gpu"] != here:
        raise SpecError(f"profile {str(profile_path)!r} was measured on {table.meta['gpu']!r}, but this device "
                        f"is {here!r}: validation compares measurements from one card; profile this one")
    gpu_key = hardware_key(cfg.device, gpu)
    lat = latency_provider(GPUS[gpu_key], profile=str(profile_path), use_shipped=False)
    gpu_name = table.meta.get("gpu") or gpu_key
    rows: list[dict] = []
    sources: dict = {}

    def emit(row):
        rows.append(add_errors(row))
        if on_row:
            on_row(row, rows)

    def base(t, d, mode, b, a, g):
        return {"gpu": gpu_name, "target": t.name, "draft": d.name, "mode": mode, "dtype": cfg.dtype,
                "context": cfg.context, "batch": b, "alpha": a, "gamma": g, "status": "ok", "reason": ""}

    def skip_all(t, ds, mode, bs, gs, reason):
        for d in ds:
            for b in bs:
                for g in gs:
                    for a in cfg.alphas:
                        emit(dict(base(t, d, mode, b, a, g), status="skipped", reason=reason))
        log(f"skipped {t.name} ({mode}) {[d.name for d in ds]} b={list(bs)} γ={list(gs)}: {reason}")

    for mode in cfg.modes:
        for ti, t in enumerate(cfg.targets):
            try:
                target = _build(t, cfg, seed=cfg.seed + 17 * ti)
            except Exception as e:  # noqa: BLE001 - only OOM is tolerated
                if not is_oom(e):
                    raise
                skip_all(t, cfg.drafts, mode, cfg.batches, cfg.gammas, "out of memory building the target")
                free_memory(cfg.device)
                continue
            baseline = {}
            for b in cfg.batches:
                try:
                    lp = SpecLoop(None, target, b, 0, mode=mode, device=cfg.device, steady=True, context=cfg.context)
                    lp.prepare()
                    m = measure_loop(lp, cfg)
                    baseline[b] = b / m["measured_iteration_s"]
                    del lp
                except Exception as e:  # noqa: BLE001
                    if not is_oom(e):
                        raise
                    baseline[b] = math.nan
                free_memory(cfg.device)
            for di, d in enumerate(cfg.drafts):
                try:
                    draft = _build(d, cfg, seed=cfg.seed + 1000 + di)
                except Exception as e:  # noqa: BLE001
                    if not is_oom(e):
                        raise
                    skip_all(t, [d], mode, cfg.batches, cfg.gammas, "out of memory building the draft")
                    free_memory(cfg.device)
                    continue
                for b in cfg.batches:
                    for g in cfg.gammas:
                        try:
                            oracle = AcceptanceOracle([cfg.alphas[0]], g, cfg.device, seed=cfg.seed)
                            loop = SpecLoop(draft, target, b, g, mode=mode, oracle=oracle, device=cfg.device,
                                            steady=True, context=cfg.context)
                            loop.prepare()
                            for ai, a in enumerate(cfg.alphas):
                                loop.oracle = AcceptanceOracle([a], g, cfg.device, seed=cfg.seed + 7919 * ai + g)
                                m = measure_loop(loop, cfg)
                                ra = realised_acceptance(m.pop("_tokens"), [a], g)
                                row = base(t, d, mode, b, a, g)
                                row.update(m)
                                row.update(measured_tokens_per_iteration=ra.mean_tokens,
                                           expected_tokens_per_iteration=ra.expected_tokens, acceptance_z=ra.z,
                                           measured_tok_s_expected=b * ra.expected_tokens / m["measured_iteration_s"],
                                           measured_baseline_tok_s=baseline[b])
                                row["measured_speedup"] = row["measured_tok_s_expected"] / baseline[b]
                                pr, src = predicted_fields(lat, t, d, g, b, a, cfg.context, mode)
                                sources.update({f"{mode}:{k}": v for k, v in src.items()})
                                row.update(pr)
                                emit(row)
                            del loop
                        except Exception as e:  # noqa: BLE001
                            if not is_oom(e):
                                raise
                            done = {(r["gamma"], r["alpha"]) for r in rows if r["target"] == t.name
                                    and r["draft"] == d.name and r["mode"] == mode and r["batch"] == b}
                            for a in cfg.alphas:
                                if (g, a) not in done:
                                    emit(dict(base(t, d, mode, b, a, g), status="skipped",
                                              reason="out of memory: " + str(e).splitlines()[0][:120]))
                            log(f"skipped {t.name}/{d.name} {mode} b={b} γ={g}: out of memory")
                        free_memory(cfg.device)
                del draft
                free_memory(cfg.device)
                log(f"done {t.name} ← {d.name} ({mode})")
            del target
            free_memory(cfg.device)
    return rows, sources
