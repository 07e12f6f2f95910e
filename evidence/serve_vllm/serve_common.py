"""What evidence/serve_vllm's harnesses share (run.py, heldout.py with heldout_predict.py and
heldout_report.py, crossover.py): the quantities compared, their formatting, the acceptance fit from
a run's /metrics, the live figures of a load, serve-sim's replay of it (the step tables from a CPU
profile, the engine costs fitted on bursts and on whole loads, every band), and the crossover's
ratio line and predicted interval.

What each figure is compared with: the live server (vLLM's engine-side histograms for ITL, TPOT and
request latency, the client for throughput). Nothing here is compared with specperf's own loop.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for _p in (str(ROOT), str(ROOT / "tests" / "engine")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
import serve_live as sl  # noqa: E402

KEYS = ("throughput_tok_s", "itl_p50_s", "tpot_p50_s", "latency_p50_s")
PAYS = "latency_p50_s"  # what speculation must lower to pay (perfmodel.serving.report.PAYS)
TARGET = 15.0  # the bound, percent


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(key, v):
    return "–" if v is None else (f"{v:.0f}" if key == "throughput_tok_s" else f"{v * 1e3:.2f}")


def unit(key):
    return "tok/s" if key == "throughput_tok_s" else "ms"


def cross(rates, ratio):
    """perfmodel.serving.report's crossing: the first rate where spec / no-spec reaches 1 from below."""
    from specperf.perfmodel.serving.report import _crossing

    return _crossing(list(rates), ratio)


def fit_acceptance(out: Path, gamma: int):
    """`specperf calibrate acceptance` on the speculating server's /metrics scrape → AcceptanceModel
    (written to OUT/acceptance.json)."""
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel

    cmd = [str(ROOT / ".venv/bin/specperf"), "calibrate", "acceptance", str(out / f"metrics_spec{gamma}.txt"),
           "--out", str(out / "acceptance.json"), "--gamma-max", str(gamma), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return AcceptanceModel.load(str(out / "acceptance.json"))


def engine(max_num_seqs: int = sl.MAX_NUM_SEQS):
    from specperf.perfmodel.serving.sim import EngineConfig

    return EngineConfig(max_num_seqs, sl.MAX_BATCHED_TOKENS, True)


def replayed(load: dict, max_tokens: int) -> dict:
    """The requests as the server got them: sent times (from the first send), prompt tokens."""
    reqs = sorted((r for r in load["requests"] if "error" not in r), key=lambda r: r["sent_s"])
    t0 = reqs[0]["sent_s"]
    return {"arrival_s": [r["sent_s"] - t0 for r in reqs], "prompt_tokens": [r["prompt_tokens"] for r in reqs],
            "output_tokens": [max_tokens] * len(reqs), "_live": reqs}


def live_metrics(load: dict, max_tokens: int) -> dict:
    from specperf.perfmodel.serving.report import WARMUP_FRACTION

    reqs = replayed(load, max_tokens)["_live"]
    t0 = reqs[0]["sent_s"]
    toks = sum(r["completion_tokens"] for r in reqs)
    keep = reqs[int(WARMUP_FRACTION * len(reqs)):] if len(reqs) >= 10 else reqs
    eng = load["engine"].get("e2e_request_latency_seconds_p50") if not load.get("stream", True) else None
    return {"throughput_tok_s": toks / (max(r["done_s"] for r in reqs) - t0),
            "latency_p50_s": eng if eng is not None else statistics.median(r["done_s"] - r["sent_s"] for r in keep),
            "itl_p50_s": load["engine"]["inter_token_latency_seconds_p50"],
            "tpot_p50_s": load["engine"]["request_time_per_output_token_seconds_p50"]}


def sim_metrics(tab, reqs: dict, gamma: int, seed: int = 0, every: bool = True, max_num_seqs: int = sl.MAX_NUM_SEQS) -> dict:
    """`every`: request latency over every request (as the engine's histogram holds them), else
    without the first WARMUP_FRACTION (as the client-side figure of a streamed run)."""
    from specperf.perfmodel.serving.report import WARMUP_FRACTION
    from specperf.perfmodel.serving.sim import simulate

    res = simulate(reqs, tab, engine(max_num_seqs), lambda b: gamma, seed=seed)
    n = len(res.arrival_s)
    keep = np.arange(n) >= int(WARMUP_FRACTION * n) if n >= 10 and not every else np.ones(n, bool)
    span = res.end_s - float(np.min(res.arrival_s))
    return {"throughput_tok_s": float(res.output_tokens.sum()) / span,
            "latency_p50_s": float(np.median(res.latency_s[keep])),
            "itl_p50_s": float(np.median(res.chunk_gaps_s)),
            "tpot_p50_s": float(np.nanmedian(res.tpot_s))}  # the engine's histogram holds every request


def tables(profile: Path, models: dict, acc, gamma: int, typical: float, max_batch: int = sl.MAX_NUM_SEQS) -> dict:
    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.serving.proposer import Speculation
    from specperf.perfmodel.serving.step import build_step_table
    from specperf.perfmodel.specdec.registry import make_method
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    prov = build_provider(resolve_gpu("h100-sxm"), profile=str(profile), allow_gpu_mismatch=True, modes=["eager"])
    tgt = resolve_model(f"{models['target']}/config.json", 4)
    drf = resolve_model(f"{models['draft']}/config.json", 4)
    prop = Speculation(make_method("draft", draft=drf), acc, prov.draft, tgt, "eager")
    kw = dict(max_batch=max_batch, max_context=512, max_prefill=sl.MAX_BATCHED_TOKENS, mode="eager",
              typical_context=typical)
    return {"off": build_step_table(tgt, None, prov.target, gamma_max=0, **kw),
            "spec": build_step_table(tgt, prop, prov.target, gamma_max=gamma, **kw)}


def predict_loads(raw: dict, out: Path, max_num_seqs: int = sl.MAX_NUM_SEQS):
    """serve-sim's replay of every live load and burst of a heldout-style raw.json, from profile A
    and from profile B: from the profile alone ("profile"), with vLLM's engine costs fitted on the
    bursts only ("fitted"), and — when raw["args"]["fit_rates"] names rates — fitted on whole loads at
    those rates ("fitted_rates"). Returns (pred, fits, profiles, tables): pred keyed
    (profile, variant, side, kind, round, rate) and (…, "burst", repeat, n); kind ∈ nominal, lo, hi
    (both latency bands) and, with speculation, draft_lo / draft_hi (the proposer's band alone)."""
    from specperf.calibration.engine_costs import BurstPoint, LoadPoint, fit_engine_costs, fit_engine_costs_to_loads
    from specperf.perfmodel.serving.step import EngineOverhead

    a = raw["args"]
    g, mt = a["gamma"], a["max_tokens"]
    acc = fit_acceptance(out, g)
    raw["acceptance"] = acc.describe()
    ptoks = [q["prompt_tokens"] for ld in raw["off"]["loads"] for q in ld["requests"] if "error" not in q]
    typical = sum(ptoks) / len(ptoks) + mt / 2
    profs = [p for p in ("a", "b") if f"profile_{p}" in raw]
    sim = {"max_num_seqs": max_num_seqs}
    pred: dict = {}
    fits: dict = {}
    tabs_by_prof: dict = {}
    for p in profs:
        tab0 = tables(out / f"profile_{p}.csv", raw["models"], acc, g, typical, max_num_seqs)
        raw.setdefault("band_target", {})[p] = tab0["off"].band_target
        pts = []
        for side, gg in (("off", 0), ("spec", g)):
            for n in sorted({b["n"] for b in raw[side]["bursts"]}):
                bs = [b for b in raw[side]["bursts"] if b["n"] == n]
                live = med(b["engine"]["inter_token_latency_seconds_p50"] for b in bs)
                prof = med(sim_metrics(tab0[side], replayed(b, mt), gg, **sim)["itl_p50_s"] for b in bs)
                pts.append(BurstPoint(batch=n, gamma=gg, live_s=live, predicted_s=prof))
        fit = fit_engine_costs(pts, nonnegative=tuple(a.get("nonneg_costs", ())))
        fits[p] = fit
        ov = EngineOverhead(**fit.parameters)
        variants = {"profile": tab0, "fitted": {k: replace(t, overhead=ov) for k, t in tab0.items()}}
        if a.get("fit_rates"):
            # the second fit: the same costs fitted to the Poisson rates in fit_rates (whole loads, through
            # the simulation), every other rate held out
            reqs = {(side, ld["round"], ld["rate"]): replayed(ld, mt) for side in ("off", "spec") for ld in raw[side]["loads"]}
            gam = {"off": 0, "spec": g}

            def itl(costs, key, tab0=tab0):
                t = replace(tab0[key[0]], overhead=EngineOverhead(**costs))
                return sim_metrics(t, reqs[key], gam[key[0]], **sim)["itl_p50_s"]
            lpts = [LoadPoint((side, ld["round"], ld["rate"]), gam[side], ld["engine"]["inter_token_latency_seconds_p50"])
                    for side in ("off", "spec") for ld in raw[side]["loads"] if ld["rate"] in a["fit_rates"]]
            fit_r = fit_engine_costs_to_loads(lpts, itl)
            fits[p + "_rates"] = fit_r
            raw.setdefault("fits", {})[p + "_rates"] = fit_r.to_dict()
            ov_r = EngineOverhead(**fit_r.parameters)
            variants["fitted_rates"] = {k: replace(t, overhead=ov_r) for k, t in tab0.items()}
        tabs_by_prof[p] = variants
        for vname, tabs in variants.items():
            for side, gg in (("off", 0), ("spec", g)):
                tab = tabs[side]
                for kind, k in (("nominal", 0), ("lo", -1), ("hi", 1)):
                    t = tab if k == 0 else tab.scaled(1 + k * tab.band_target, 1 + k * tab.band_propose)
                    for ld in raw[side]["loads"]:
                        pred.setdefault((p, vname, side, kind, ld["round"], ld["rate"]),
                                        sim_metrics(t, replayed(ld, mt), gg, every=not ld.get("stream", True), **sim))
                    for b in raw[side]["bursts"]:
                        pred.setdefault((p, vname, side, kind, "burst", b["repeat"], b["n"]),
                                        sim_metrics(t, replayed(b, mt), gg, **sim))
                if side == "spec":
                    for kind, k in (("draft_lo", -1), ("draft_hi", 1)):
                        t = tab.scaled(1.0, 1 + k * tab.band_propose)
                        for ld in raw[side]["loads"]:
                            pred[(p, vname, side, kind, ld["round"], ld["rate"])] = sim_metrics(
                                t, replayed(ld, mt), gg, every=not ld.get("stream", True), **sim)
        raw.setdefault("fits", {})[p] = fit.to_dict()
    return pred, fits, profs, tabs_by_prof


def predicted_interval(rates, ratio_pred, lo, hi, band_target: float):
    """The predicted crossover and its interval as run.py and heldout_report.py state it: the nominal
    ratio's crossing, and the span of the nominal, low-band and high-band ratios' crossings widened by
    the target's latency band. Returns (crossing, verdict, interval or None)."""
    xp, vp = cross(rates, ratio_pred)
    xs = [x for x in (cross(rates, lo)[0], cross(rates, hi)[0], xp) if x is not None]
    iv = (min(xs) / (1 + band_target), max(xs) / (1 - band_target)) if xs else None
    return xp, vp, iv


def ratio_line(ratio_live, ratio_pred, lo, hi) -> str:
    return (f"median request latency with / without speculation, per rate — live: {', '.join(f'{r:.2f}' for r in ratio_live)}; "
            f"predicted: {', '.join(f'{r:.2f}' for r in ratio_pred)} (draft band and profiles: "
            f"{', '.join(f'{a:.2f}–{b:.2f}' for a, b in zip(lo, hi))})")
