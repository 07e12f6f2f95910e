"""The explorer's under-load view (`specperf explore --load`): serve-sim sweeps precomputed in Python
for the page's study setting (first target, the study's GPU and tp when the page has them, the
page's first mode) — per draft × α of a small grid — embedded as JSON and drawn by plots/explorer_load.js: tokens/s,
median request latency and median TPOT against the Poisson request rate, without speculation and
with the batch-size γ schedule, the rate where speculation stops paying, and the schedule itself.

Key assumption: a continuous-batching simulation cannot run in the page, so the page shows the
precomputed α nearest its slider and says so; other targets, GPUs or tps point to `specperf
serve-sim`. Every number is perfmodel.serving's (the same tables, schedule and crossover rule as
serve-sim: speculation pays while its median request latency is below the engine's without it).
"""
from __future__ import annotations

from specperf.perfmodel.serving.proposer import Speculation
from specperf.perfmodel.serving.report import _crossing, _schedule_fn, gamma_schedule, metrics
from specperf.perfmodel.serving.run import default_rates, tables_for
from specperf.perfmodel.serving.sim import EngineConfig, simulate
from specperf.perfmodel.serving.workload import LengthDist, Workload
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.registry import make_method

PROMPT, OUTPUT = 512, 128  # serve-sim's default lengths
REQUESTS = 100  # requests per simulated rate (measured: about 3 s a sweep on the 2-core CI box)
RATES = 6  # rates per sweep, from light load to past the no-speculation engine's capacity
MAX_SEQS = 128  # running sequences (the study's case: 128 × 640 tokens of KV cache fit on H100 tp 4)
LOAD_ALPHAS = (0.6, 0.7, 0.8)
GAMMA_MAX = 6
KEYS = ("throughput_tok_s", "latency_p50_s", "tpot_p50_s")


def sweep_entry(target, draft, latency, mode: str, tp: int, alpha: float) -> dict:
    """One (draft, mode, α): rates, both engines' curves, the crossover and the γ schedule."""
    prompt, output = LengthDist(PROMPT, PROMPT), LengthDist(OUTPUT, OUTPUT)
    engine = EngineConfig(max_num_seqs=MAX_SEQS)
    acc = AcceptanceModel(alpha=alpha, source="explorer α grid")
    sp = Speculation(make_method("draft", draft=draft), acc, latency, target, mode)
    off, spec = tables_for(target, sp, latency, prompt, output, engine, GAMMA_MAX, tp, mode)
    rates = default_rates(off, prompt, output, engine, n=RATES)
    segs = gamma_schedule(spec, PROMPT + OUTPUT / 2, MAX_SEQS)
    sched = _schedule_fn(segs)
    out = {"rates": rates, "off": {k: [] for k in KEYS + ("saturated",)},
           "spec": {k: [] for k in KEYS + ("saturated",)}, "schedule": segs}
    base = Workload(prompt, output, REQUESTS, rate_per_s=1.0)
    for r in rates:
        reqs = base.with_load(rate_per_s=r).requests()
        for name, tab, fn in (("off", off, lambda b: 0), ("spec", spec, sched)):
            m = metrics(simulate(reqs, tab, engine, fn))
            for k in KEYS + ("saturated",):
                out[name][k].append(m[k])
    ratio = [s / o for s, o in zip(out["spec"]["latency_p50_s"], out["off"]["latency_p50_s"])]
    x, verdict = _crossing(rates, ratio)
    out["crossover"] = {"load": x, "verdict": verdict, "ratio": ratio}
    return out


def load_data(target: tuple, drafts: dict, gpu: str, tp: int, modes, latency, alphas=LOAD_ALPHAS) -> dict:
    """Everything the view needs for `target` = (name, spec) at (gpu, tp): 'draft|mode|α' entries;
    `latency`: the provider answering both sides (as the page's tables)."""
    tgt = target
    entries = {}
    for m in modes:
        for dname, dspec in drafts.items():
            for a in alphas:
                entries[f"{dname}|{m}|{a:.2f}"] = sweep_entry(tgt[1], dspec, latency, m, tp, a)
    return {"setting": {"target": tgt[0], "gpu": gpu, "tp": int(tp), "modes": list(modes)}, "alphas": [float(a) for a in alphas],
            "prompt": PROMPT, "output": OUTPUT, "requests": REQUESTS, "max_num_seqs": MAX_SEQS,
            "gamma_max": GAMMA_MAX, "entries": entries}
