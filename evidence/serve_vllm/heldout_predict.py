"""The prediction side of evidence/serve_vllm/heldout.py: serve-sim's engine model (perfmodel.serving)
replays every live load — each request at the time the server received it, its prompt tokens,
max_tokens outputs, the server's scheduler limits — from profile A and from profile B, first from
the profile alone, then with vLLM's own engine costs (perfmodel.serving.step.EngineOverhead)
FITTED ON THE BURSTS ONLY (calibration.engine_costs) and every Poisson rate held out.

What each figure is compared with: the live server (vLLM's engine-side histograms for ITL and TPOT,
the client for throughput and request latency). Nothing here is compared with specperf's own loop.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))
import serve_live as sl  # noqa: E402

from specperf.calibration.engine_costs import BurstPoint, LoadPoint, fit_engine_costs, fit_engine_costs_to_loads  # noqa: E402
from specperf.perfmodel.serving.report import WARMUP_FRACTION, _crossing  # noqa: E402
from specperf.perfmodel.serving.sim import EngineConfig, simulate  # noqa: E402
from specperf.perfmodel.serving.step import EngineOverhead, build_step_table  # noqa: E402

KEYS = ("throughput_tok_s", "itl_p50_s", "tpot_p50_s", "latency_p50_s")
PAYS = "latency_p50_s"
ENGINE = EngineConfig(sl.MAX_NUM_SEQS, sl.MAX_BATCHED_TOKENS, True)


def replayed(load: dict, max_tokens: int) -> dict:
    """The requests as the server got them: sent times (from the first send), prompt tokens."""
    reqs = sorted((r for r in load["requests"] if "error" not in r), key=lambda r: r["sent_s"])
    t0 = reqs[0]["sent_s"]
    return {"arrival_s": [r["sent_s"] - t0 for r in reqs], "prompt_tokens": [r["prompt_tokens"] for r in reqs],
            "output_tokens": [max_tokens] * len(reqs), "_live": reqs}


def live_metrics(load: dict, max_tokens: int) -> dict:
    reqs = replayed(load, max_tokens)["_live"]
    t0 = reqs[0]["sent_s"]
    toks = sum(r["completion_tokens"] for r in reqs)
    keep = reqs[int(WARMUP_FRACTION * len(reqs)):] if len(reqs) >= 10 else reqs
    eng = load["engine"].get("e2e_request_latency_seconds_p50") if not load.get("stream", True) else None
    return {"throughput_tok_s": toks / (max(r["done_s"] for r in reqs) - t0),
            "latency_p50_s": eng if eng is not None else statistics.median(r["done_s"] - r["sent_s"] for r in keep),
            "itl_p50_s": load["engine"]["inter_token_latency_seconds_p50"],
            "tpot_p50_s": load["engine"]["request_time_per_output_token_seconds_p50"]}


def sim_metrics(tab, reqs: dict, gamma: int, seed: int = 0, every: bool = True) -> dict:
    """`every`: request latency over every request (as the engine's histogram holds them), else
    without the first WARMUP_FRACTION (as the client-side figure of a streamed run)."""
    res = simulate(reqs, tab, ENGINE, lambda b: gamma, seed=seed)
    n = len(res.arrival_s)
    keep = np.arange(n) >= int(WARMUP_FRACTION * n) if n >= 10 and not every else np.ones(n, bool)
    span = res.end_s - float(np.min(res.arrival_s))
    return {"throughput_tok_s": float(res.output_tokens.sum()) / span,
            "latency_p50_s": float(np.median(res.latency_s[keep])),
            "itl_p50_s": float(np.median(res.chunk_gaps_s)),
            "tpot_p50_s": float(np.nanmedian(res.tpot_s))}  # the engine's histogram holds every request


def tables(profile: Path, models: dict, acc, gamma: int, typical: float) -> dict:
    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.serving.proposer import Speculation
    from specperf.perfmodel.specdec.registry import make_method
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    prov = build_provider(resolve_gpu("h100-sxm"), profile=str(profile), allow_gpu_mismatch=True, modes=["eager"])
    tgt = resolve_model(f"{models['target']}/config.json", 4)
    drf = resolve_model(f"{models['draft']}/config.json", 4)
    prop = Speculation(make_method("draft", draft=drf), acc, prov.draft, tgt, "eager")
    kw = dict(max_batch=sl.MAX_NUM_SEQS, max_context=512, max_prefill=sl.MAX_BATCHED_TOKENS, mode="eager",
              typical_context=typical)
    return {"off": build_step_table(tgt, None, prov.target, gamma_max=0, **kw),
            "spec": build_step_table(tgt, prop, prov.target, gamma_max=gamma, **kw)}


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def predict_and_report(raw: dict, out: Path) -> str:
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel

    a = raw["args"]
    g, mt = a["gamma"], a["max_tokens"]
    acc_cmd = [str(ROOT / ".venv/bin/specperf"), "calibrate", "acceptance", str(out / f"metrics_spec{g}.txt"),
               "--out", str(out / "acceptance.json"), "--gamma-max", str(g), "--json"]
    r = subprocess.run(acc_cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    acc = AcceptanceModel.load(str(out / "acceptance.json"))
    raw["acceptance"] = acc.describe()
    ptoks = [q["prompt_tokens"] for ld in raw["off"]["loads"] for q in ld["requests"] if "error" not in q]
    typical = sum(ptoks) / len(ptoks) + mt / 2
    profs = [p for p in ("a", "b") if f"profile_{p}" in raw]
    pred: dict = {}
    fits: dict = {}
    for p in profs:
        tab0 = tables(out / f"profile_{p}.csv", raw["models"], acc, g, typical)
        raw.setdefault("band_target", {})[p] = tab0["off"].band_target
        pts = []
        for side, gg in (("off", 0), ("spec", g)):
            for n in sorted({b["n"] for b in raw[side]["bursts"]}):
                bs = [b for b in raw[side]["bursts"] if b["n"] == n]
                live = _med(b["engine"]["inter_token_latency_seconds_p50"] for b in bs)
                prof = _med(sim_metrics(tab0[side], replayed(b, mt), gg)["itl_p50_s"] for b in bs)
                pts.append(BurstPoint(batch=n, gamma=gg, live_s=live, predicted_s=prof))
        fit = fit_engine_costs(pts)
        fits[p] = fit
        ov = EngineOverhead(**fit.parameters)
        # the second fit: the same costs fitted to the Poisson rates in fit_rates (whole loads, through
        # the simulation), every other rate held out
        reqs = {(side, ld["round"], ld["rate"]): replayed(ld, mt) for side in ("off", "spec") for ld in raw[side]["loads"]}
        gam = {"off": 0, "spec": g}

        def itl(costs, key, tab0=tab0):
            t = replace(tab0[key[0]], overhead=EngineOverhead(**costs))
            return sim_metrics(t, reqs[key], gam[key[0]])["itl_p50_s"]
        lpts = [LoadPoint((side, ld["round"], ld["rate"]), gam[side], ld["engine"]["inter_token_latency_seconds_p50"])
                for side in ("off", "spec") for ld in raw[side]["loads"] if ld["rate"] in a["fit_rates"]]
        fit_r = fit_engine_costs_to_loads(lpts, itl)
        fits[p + "_rates"] = fit_r
        raw.setdefault("fits", {})[p + "_rates"] = fit_r.to_dict()
        ov_r = EngineOverhead(**fit_r.parameters)
        variants = {"profile": tab0, "fitted": {k: replace(t, overhead=ov) for k, t in tab0.items()},
                    "fitted_rates": {k: replace(t, overhead=ov_r) for k, t in tab0.items()}}
        for vname, tabs in variants.items():
            for side, gg in (("off", 0), ("spec", g)):
                tab = tabs[side]
                for kind, k in (("nominal", 0), ("lo", -1), ("hi", 1)):
                    t = tab if k == 0 else tab.scaled(1 + k * tab.band_target, 1 + k * tab.band_propose)
                    for ld in raw[side]["loads"]:
                        pred.setdefault((p, vname, side, kind, ld["round"], ld["rate"]), sim_metrics(t, replayed(ld, mt), gg, every=not ld.get("stream", True)))
                    for b in raw[side]["bursts"]:
                        pred.setdefault((p, vname, side, kind, "burst", b["repeat"], b["n"]),
                                        sim_metrics(t, replayed(b, mt), gg))
                if side == "spec":
                    for kind, k in (("draft_lo", -1), ("draft_hi", 1)):
                        t = tab.scaled(1.0, 1 + k * tab.band_propose)
                        for ld in raw[side]["loads"]:
                            pred[(p, vname, side, kind, ld["round"], ld["rate"])] = sim_metrics(t, replayed(ld, mt), gg, every=not ld.get("stream", True))
        raw.setdefault("fits", {})[p] = fit.to_dict()
    from heldout_report import render

    return render(raw, pred, fits, profs, out)
