"""Speculative decoding under load, live: a vLLM CPU server with and without speculation under
bounded Poisson loads on 127.0.0.1, against `specperf serve-sim`'s engine model fed a CPU latency
table of the same tiny models (`specperf profile --device cpu`). Used by
evidence/serve_vllm/run.py (the full measurement) and tests/test_engine_serving.py (a small one).

Key assumptions: the live server and the simulation see the same requests — the same arrival
times (drawn once by perfmodel.serving.workload), the same prompts (their token counts read from
the server's usage) and outputs of exactly max_tokens (greedy, ignore_eos); the server's scheduler
limits are set explicitly and the simulation uses the same; inter-token latency and TPOT are read
from the engine's own histograms (engine-core timestamps, fine buckets) as the difference of two
scrapes around each load, so the API process's scheduling on a busy 2-core box does not enter
them; throughput is client-side (completion tokens from first arrival to last completion).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import loadgen as lg  # noqa: E402
import vllm_server as vs  # noqa: E402

COMMON = ["--dtype", "float32", "--max-model-len", "512", "--seed", "0", "--enforce-eager",
          "--no-enable-prefix-caching"]
MAX_NUM_SEQS, MAX_BATCHED_TOKENS = 16, 2048  # set on the server and in the simulation alike


def build_models(py: Path, env: dict, out: Path, extra=()) -> dict:
    r = subprocess.run([str(py), str(HERE / "build_models.py"), str(out)] + list(extra), capture_output=True,
                       text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def profile_cpu(models: dict, out_csv: Path, batch="1,4,16", context="16,128", new_tokens="1,4,32",
                gamma_max=3, timeout_s=1800) -> dict:
    """`specperf profile --device cpu` of the target and draft (same layer shape: rows shared), with
    the engine's threading: vLLM's CPU backend runs one OpenMP thread bound to core 0 and reserves the
    other core (its log: `core ids=[0]`, `reserved_cpus=[1]`), so the profile runs with
    OMP_NUM_THREADS=1 pinned to core 0 (two threads on a contended 2-core box time OpenMP barriers
    waiting for a descheduled thread: up to 10× the single-thread time)."""
    import os
    import shutil

    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = pin + [str(ROOT / ".venv/bin/specperf"), "profile", "--models",
           f"{models['target']}/config.json,{models['draft']}/config.json", "--device", "cpu", "--mode", "eager",
           "--dtype", "fp32", "--batch", batch, "--context", context, "--new-tokens", new_tokens,
           "--gamma-max", str(gamma_max), "--copies", str(models["layers"]), "--out", str(out_csv), "--quiet"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:] + r.stdout[-2000:])
    shown = " ".join(pin + ["specperf"] + cmd[len(pin) + 1:]).replace(str(ROOT) + "/", "")
    return {"command": "OMP_NUM_THREADS=1 " + shown, "seconds": time.monotonic() - t0}


def arrivals(rate: float, n: int, seed: int) -> list[float]:
    from specperf.perfmodel.serving.workload import LengthDist, Workload

    return Workload(LengthDist(), LengthDist(), n_requests=n, rate_per_s=rate, seed=seed).requests()["arrival_s"].tolist()


def server_argv(models: dict, gamma: int | None) -> list[str]:
    argv = vs.ENTRY + ["--model", models["target"], "--max-num-seqs", str(MAX_NUM_SEQS),
                       "--max-num-batched-tokens", str(MAX_BATCHED_TOKENS),
                       "--custom-histogram-buckets", lg.fine_buckets()] + COMMON
    if gamma:
        argv += ["--speculative-config", json.dumps({"method": "draft_model", "model": models["draft"],
                                                     "num_speculative_tokens": gamma})]
    return argv


def live_loads(py: Path, env: dict, models: dict, gamma: int | None, work: Path, rates, prompts, max_tokens: int,
               rounds: int = 1, seed: int = 0) -> dict:
    """One server (γ None: no speculation): warm-up, then every round × rate as one bounded load."""
    name = f"spec{gamma}" if gamma else "off"
    srv = vs.Server(py, server_argv(models, gamma), work / f"server_{name}.log", env)
    out = {"gamma": gamma, "loads": []}
    with srv:
        out["ready_s"] = srv.ready_s
        out["version"] = json.loads(srv.get("/version"))["version"]
        lg.run_load(srv.url, models["target"], prompts[:4], max_tokens, None)  # warm-up
        for rnd in range(rounds):
            for rate in rates:
                arr = arrivals(rate, len(prompts), seed)
                before = lg.histograms(srv.get("/metrics"))
                load = lg.run_load(srv.url, models["target"], prompts, max_tokens, None, arrivals=arr)
                time.sleep(0.3)
                after = lg.histograms(srv.get("/metrics"))
                eng = {f"{h}_p{int(q * 100)}": lg.hist_quantile(before[h], after[h], q)
                       for h in lg.HISTOGRAMS for q in (0.5, 0.9)}
                out["loads"].append({"round": rnd, "rate": rate, "summary": lg.summarise(load), "engine": eng,
                                     "requests": load["requests"]})
        metrics = srv.get("/metrics")
        (work / f"metrics_{name}.txt").write_text(metrics)
    return out


def predict(profile_csv: Path, models: dict, acceptance, gamma: int | None, prompt_tokens: list[int], rate: float,
            max_tokens: int, seed: int = 0, step_overhead_s: float = 0.0, proposal_overhead_s: float = 0.0) -> dict:
    """serve-sim's engine model for the live load: same arrivals, prompts and outputs, with ±band
    runs for the interval; `step_overhead_s`: an engine cost per step outside the profile
    (serve-sim --step-overhead-ms), 0 = the profile alone."""
    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.serving.proposer import Speculation
    from specperf.perfmodel.specdec.registry import make_method
    from specperf.perfmodel.serving.report import metrics
    from specperf.perfmodel.serving.sim import EngineConfig, simulate
    from specperf.perfmodel.serving.step import EngineOverhead, build_step_table
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    prov = build_provider(resolve_gpu("h100-sxm"), profile=str(profile_csv), allow_gpu_mismatch=True, modes=["eager"])
    typical = sum(prompt_tokens) / len(prompt_tokens) + max_tokens / 2
    tgt = resolve_model(f"{models['target']}/config.json", 4)
    prop = None
    if gamma:
        drf = resolve_model(f"{models['draft']}/config.json", 4)
        prop = Speculation(make_method("draft", draft=drf), acceptance, prov.draft, tgt, "eager")
    tab = build_step_table(tgt, prop, prov.target, max_batch=MAX_NUM_SEQS, max_context=512, max_prefill=MAX_BATCHED_TOKENS,
                           gamma_max=gamma or 0, mode="eager", typical_context=typical,
                           overhead=EngineOverhead(step_overhead_s, 0.0, proposal_overhead_s))
    reqs = {"arrival_s": arrivals(rate, len(prompt_tokens), seed), "prompt_tokens": prompt_tokens,
            "output_tokens": [max_tokens] * len(prompt_tokens)}
    eng = EngineConfig(MAX_NUM_SEQS, MAX_BATCHED_TOKENS, True)
    g = gamma or 0
    out = {"nominal": metrics(simulate(reqs, tab, eng, lambda b: g, seed=seed))}
    for tag, k in (("lo", -1), ("hi", 1)):
        s = tab.scaled(1 + k * tab.band_target, 1 + k * tab.band_propose)
        out[tag] = metrics(simulate(reqs, s, eng, lambda b: g, seed=seed))
    if gamma:  # the proposer's band alone moves speculation against no speculation
        for tag, k in (("draft_lo", -1), ("draft_hi", 1)):
            out[tag] = metrics(simulate(reqs, tab.scaled(1.0, 1 + k * tab.band_propose), eng, lambda b: g, seed=seed))
    out["bands"] = {"target": tab.band_target, "draft": tab.band_propose}
    out["sources"] = tab.sources
    return out


def client_view(m: dict) -> dict:
    """The simulation's metrics under the names the live summary uses."""
    return {k: m[k] for k in ("throughput_tok_s", "itl_p50_s", "tpot_p50_s", "ttft_p50_s", "latency_p50_s")}
