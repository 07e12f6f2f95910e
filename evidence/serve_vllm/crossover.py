"""The rate at which speculative decoding stops paying, live vLLM CPU server against serve-sim
(issue 30, "the measured crossover rate inside the predicted interval").

Design (why a crossover exists here): on this 2-core CPU the tiny models' step is dominated by
vLLM's own per-step work at batch 1, where a draft at γ = 5 pays (≈ 3.5 tokens a step for a step
≈ 3× the plain one), but the speculating step grows faster with the batch (γ + 1 verified tokens
per sequence, γ draft forwards, the proposer's per-row bookkeeping) — at --max-num-seqs 64 the
speculating server's capacity is well below the plain server's (probe:
crossover_probe/probe_ls0.045.json), so the median request latency with / without speculation goes
from well under 1 at light load to well over 1 once the speculating server saturates, inside a
rate range the load generator can drive.

Measurement: both servers (no speculation; draft_model at γ) are up at once and every load is sent
to one, then the other, with the same arrivals (same Poisson sample per round), alternating which
goes first — host contention that drifts over minutes hits both sides of each ratio alike. Per
round: closed bursts N = 1..64 on both servers (the fit), then every rate on both servers (held out).
Host load average (/proc/loadavg) is recorded before and after every load. Requests are not streamed
(see heldout.py); ITL, TPOT and request latency are the engine's own histograms.

Prediction: serve-sim's engine model (as heldout_predict.py) with vLLM's engine costs fitted on the
BURSTS ONLY — no Poisson load enters the fit, so none of the loads that define the crossover does —
from CPU profiles A (before) and B (after). Crossover analysis: serve_common.crossover_analysis
(live: median over rounds of the paired ratio, a bracket and a bootstrap over rounds; predicted: the
nominal crossing and an interval over profiles × latency bands × the fit's 95 % CI).

Usage: .venv/bin/python evidence/serve_vllm/crossover.py --out evidence/serve_vllm/crossover
       [--rates 3,6,9,12,16,20,24,32] [--bursts 1,2,4,8,16,32,64] [--gamma 5] [--later-scale 0.045]
       [--max-num-seqs 64] [--rounds 3] [--budget-s 1200] [--profile-a-from RAW] [--predict-only]
Needs .venv-vllm (scripts/setup_vllm.sh); nothing is downloaded. Report: OUT/report.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine"), str(HERE)]
import loadgen as lg  # noqa: E402
import serve_live as sl  # noqa: E402
import vllm_server as vs  # noqa: E402
from heldout import one_load, server_argv as heldout_argv  # noqa: E402
from specperf.calibration.engine_costs import FIELDS  # noqa: E402
from specperf.perfmodel.specs.safeio import atomic_write  # noqa: E402


def server_argv(models, gamma, max_num_seqs: int) -> list[str]:
    argv = heldout_argv(models, gamma)
    argv[argv.index("--max-num-seqs") + 1] = str(max_num_seqs)
    return argv


def _load(srv, models, prompts, a, arrivals) -> dict:
    la0 = os.getloadavg()
    t = time.time()
    d = one_load(srv, models, prompts, a.max_tokens, arrivals)
    return {**d, "wall_clock_start": t, "loadavg_before": la0, "loadavg_after": os.getloadavg()}


def measure(a, out: Path) -> dict:
    py = ROOT / ".venv-vllm" / "bin" / "python"
    env = vs.engine_env(ROOT / ".venv-vllm")
    t0 = time.monotonic()
    models = sl.build_models(py, env, out / "models", ("--later-scale", str(a.later_scale)))
    every = json.loads((out / "models" / "prompts.json").read_text())  # bursts draw from all of them
    prompts = every[:a.requests]
    raw = {"args": {k: v for k, v in vars(a).items()}, "models": models, "machine": platform.machine(),
           "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "loadavg_start": os.getloadavg()}
    batch = ",".join(str(n) for n in sorted(set(a.bursts) | {1, a.max_num_seqs}))
    if a.profile_a_from:  # profile A of an earlier start of this run (same models, bit for bit), kept
        raw["profile_a"] = {**json.loads(Path(a.profile_a_from).read_text())["profile_a"], "reused_from": a.profile_a_from}
    else:
        raw["profile_a"] = sl.profile_cpu(models, out / "profile_a.csv", batch=batch, gamma_max=a.gamma)
    sides = {"off": None, "spec": a.gamma}
    srvs = {s: vs.Server(py, server_argv(models, g, a.max_num_seqs), out / f"server_{'spec' + str(g) if g else 'off'}.log",
                         env) for s, g in sides.items()}
    for s, g in sides.items():
        raw[s] = {"gamma": g, "bursts": [], "loads": []}
    try:
        for s, srv in srvs.items():
            srv.start()
            raw[s]["ready_s"] = srv.ready_s
            raw[s]["version"] = json.loads(srv.get("/version"))["version"]
        for srv in srvs.values():
            lg.run_load(srv.url, models["target"], prompts[:4], a.max_tokens, None)  # warm-up
        raw["loadavg_servers_idle"] = os.getloadavg()
        k = 0
        for rnd in range(a.rounds):
            if time.monotonic() - t0 > a.budget_s:
                raw["cut"] = f"stopped before round {rnd}: {a.budget_s:.0f} s budget spent"
                break
            for n in a.bursts:
                start = (rnd * n) % max(len(every) - n, 1)
                for s in (("off", "spec") if k % 2 == 0 else ("spec", "off")):
                    d = _load(srvs[s], models, every[start:start + n], a, [0.0] * n)
                    raw[s]["bursts"].append({"repeat": rnd, "n": n, **d})
                k += 1
            for rate in a.rates:
                arr = sl.arrivals(rate, len(prompts), rnd)
                for s in (("off", "spec") if k % 2 == 0 else ("spec", "off")):
                    d = _load(srvs[s], models, prompts, a, arr)
                    raw[s]["loads"].append({"round": rnd, "rate": rate, **d})
                    print(f"round {rnd} rate {rate:g} {s}: latency p50 {d['engine']['e2e_request_latency_seconds_p50']}"
                          f" itl p50 {d['engine']['inter_token_latency_seconds_p50']} lag {d['max_send_lag_s']:.3f} s "
                          f"load {d['loadavg_before'][0]:.2f}→{d['loadavg_after'][0]:.2f}", flush=True)
                k += 1
            (out / "raw.json").write_text(json.dumps(raw, indent=1))  # kept if a later step fails
        for s, g in sides.items():
            (out / f"metrics_{'spec' + str(g) if g else 'off'}.txt").write_text(srvs[s].get("/metrics"))
    finally:
        for srv in srvs.values():
            srv.stop()
    raw["profile_b"] = sl.profile_cpu(models, out / "profile_b.csv", batch=batch, gamma_max=a.gamma)
    raw["seconds"] = time.monotonic() - t0
    raw["loadavg_end"] = os.getloadavg()
    (out / "raw.json").write_text(json.dumps(raw, indent=1))
    return raw


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rates", default="3,6,9,12,16,20,24,32")
    ap.add_argument("--bursts", default="1,2,4,8,16,32,64")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--gamma", type=int, default=5)
    ap.add_argument("--later-scale", type=float, default=0.045)
    ap.add_argument("--max-num-seqs", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=1200.0, help="no new round starts after this many seconds")
    ap.add_argument("--profile-a-from", default=None,
                    help="raw.json of an earlier start into the same --out whose profile_a.csv is kept (not re-measured)")
    ap.add_argument("--predict-only", action="store_true", help="Predict again from OUT/raw.json and its profiles.")
    ap.add_argument("--nonneg-costs", default="",
                    help=f"engine costs bounded at 0 in the bursts' fit (some of {', '.join(FIELDS)}); "
                         "with --predict-only the report is written as report_nonneg.md")
    a = ap.parse_args(argv)
    a.rates = [float(x) for x in str(a.rates).split(",")]
    a.bursts = [int(x) for x in str(a.bursts).split(",")]
    if not (1 <= a.requests <= 64 and 1 <= a.max_tokens <= 256 and 1 <= a.gamma <= 8 and 1 <= a.rounds <= 6
            and 1 <= a.max_num_seqs <= 128 and all(0 < r <= 100 for r in a.rates)
            and all(1 <= n <= min(a.max_num_seqs, 64) for n in a.bursts)):
        print("requests 1..64, max-tokens 1..256, gamma 1..8, rounds 1..6, max-num-seqs 1..128, rates in (0, 100], "
              "bursts 1..max-num-seqs", file=sys.stderr)
        return 2
    nonneg = [x for x in a.nonneg_costs.split(",") if x]
    if set(nonneg) - set(FIELDS):
        print(f"nonneg-costs {a.nonneg_costs!r} is not allowed; use some of {', '.join(FIELDS)}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = json.loads((out / "raw.json").read_text()) if a.predict_only else measure(a, out)
    suffix = "_nonneg" if nonneg and a.predict_only else ""  # the measured run's own report is kept
    raw["args"]["nonneg_costs"] = nonneg
    raw["args"]["repeats"] = len({b["repeat"] for b in raw["off"]["bursts"]})
    raw["args"]["fit_rates"] = []  # the crossover's prediction fits on the bursts only
    text = crossover_report(raw, out)
    atomic_write(out / f"raw{suffix}.json", json.dumps(raw, indent=1))
    atomic_write(out / f"report{suffix}.md", text)
    print(text)
    return 0


def crossover_report(raw: dict, out: Path) -> str:
    """report.md: heldout_report's tables (bursts fit, every rate held out) and the crossover."""
    from dataclasses import replace

    from heldout_report import render
    from serve_common import PAYS, live_metrics, predict_loads, replayed, sim_metrics
    from specperf.perfmodel.serving.step import EngineOverhead
    from specperf.perfmodel.specs.errors import InputError

    a = raw["args"]
    g, mt, mns, rates = a["gamma"], a["max_tokens"], a["max_num_seqs"], a["rates"]
    pred, fits, profs, tabs = predict_loads(raw, out, mns)
    # the fit's own uncertainty: the two proposal costs at the ends of their 95 % intervals together
    # (the speculating step cheapest / dearest the bursts allow; the plain server's costs unchanged)
    for p in profs:
        f = fits[p]
        for kind, end in (("ci_lo", 0), ("ci_hi", 1)):
            costs = dict(f.parameters)
            for k in ("per_proposal_s", "per_seq_proposal_s"):
                if f.ci.get(k):
                    costs[k] = f.ci[k][end]
            t = replace(tabs[p]["profile"]["spec"], overhead=EngineOverhead(**costs))
            try:
                got = {(p, "fitted", "spec", kind, ld["round"], ld["rate"]): sim_metrics(t, replayed(ld, mt), g,
                                                                                         max_num_seqs=mns)
                       for ld in raw["spec"]["loads"]}
            except InputError as e:  # that end of the interval makes a step non-positive: no curve
                raw.setdefault("ci_curves_omitted", {})[f"{p}:{kind}"] = str(e)
                continue
            pred.update(got)
    text = render(raw, pred, fits, profs, out, max_num_seqs=mns, with_crossover=False)
    res = analyse(raw, pred, profs, rates, mt)
    raw["crossover_test"] = res
    omitted = [f"{k} ({v})" for k, v in raw.get("ci_curves_omitted", {}).items()]
    return text + "\n" + "\n".join(section(raw, res, rates)) + "\n" + (
        "\ncurves omitted from the interval: " + "; ".join(omitted) + "\n" if omitted else "")


CURVES = (("nominal", "nominal"), ("lo", "lo"), ("hi", "hi"), ("draft_lo", "nominal"), ("draft_hi", "nominal"),
          ("ci_lo", "nominal"), ("ci_hi", "nominal"))


def analyse(raw, pred, profs, rates, mt, variant="fitted", n_boot=4000) -> dict:
    """Live: the paired ratio (same arrivals, sent back to back) per round and rate, its median over
    rounds, that curve's crossing, each round's crossing, a bracket (the highest rate below which every
    round pays … the lowest rate at which no round pays) and a bootstrap over rounds (resampled per
    rate). Predicted: the crossing of each profile's nominal curve, of the two profiles' mean, and
    the interval spanned by every curve in CURVES × profiles (a curve that never crosses inside the
    rates leaves that end open)."""
    import numpy as np
    from serve_common import PAYS, cross, live_metrics

    rounds = sorted({ld["round"] for ld in raw["off"]["loads"]} & {ld["round"] for ld in raw["spec"]["loads"]})

    def live(side, rnd, rate):
        return next(live_metrics(ld, mt)[PAYS] for ld in raw[side]["loads"] if ld["round"] == rnd and ld["rate"] == rate)
    R = np.array([[live("spec", k, r) / live("off", k, r) for r in rates] for k in rounds])
    curve = np.median(R, axis=0)
    xl, vl = cross(rates, curve)
    per_round = [cross(rates, R[i])[0] for i in range(len(rounds))]
    never = [r for j, r in enumerate(rates) if np.all(R[:, j] >= 1)]
    hi_b = min(never) if never else None
    below = [r for j, r in enumerate(rates) if np.all(R[:, j] < 1) and (hi_b is None or r < hi_b)]
    lo_b = max(below) if below else None
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(rounds), size=(len(rounds), len(rates)))
        boot.append(cross(rates, np.median(R[idx, np.arange(len(rates))], axis=0))[0])
    bx = [x for x in boot if x is not None]
    bci = (float(np.percentile(bx, 5)), float(np.percentile(bx, 95))) if bx else None

    def pcurve(p, ks, ko):
        return [float(np.median([pred[(p, variant, "spec", ks, k, r)][PAYS] / pred[(p, variant, "off", ko, k, r)][PAYS]
                                 for k in rounds])) for r in rates]
    curves = {f"{p}:{ks}": pcurve(p, ks, ko) for p in profs for ks, ko in CURVES
              if all((p, variant, "spec", ks, k, r) in pred for k in rounds for r in rates)}
    xing = {name: cross(rates, c) for name, c in curves.items()}
    mean_nom = list(np.mean([curves[f"{p}:nominal"] for p in profs], axis=0))
    xp, vp = cross(rates, mean_nom)
    ends = [x for x, _ in xing.values() if x is not None]
    lo = min(ends) if ends else None
    hi = max(ends) if ends else None
    if any(x is None and "does not pay" in v for x, v in xing.values()):
        lo = None  # some curve says speculation never pays: the interval is open below the lowest rate
    if any(x is None and "pays at every" in v for x, v in xing.values()):
        hi = None  # some curve says it pays at every rate: open above the highest rate
    inside = xl is not None and (lo is None or lo <= xl) and (hi is None or xl <= hi) and bool(ends)
    return {"variant": variant, "rounds": rounds, "rates": rates, "live_ratio": R.tolist(), "live_curve": curve.tolist(),
            "live": xl, "live_verdict": vl, "live_rounds": per_round, "live_bracket": [lo_b, hi_b],
            "live_bootstrap_90": bci, "bootstrap_no_crossing": n_boot - len(bx), "n_boot": n_boot,
            "predicted_curves": curves, "predicted_crossings": {k: v[0] for k, v in xing.items()},
            "predicted": xp, "predicted_verdict": vp, "predicted_mean_curve": mean_nom,
            "predicted_interval": [lo, hi], "inside": inside}


def section(raw, res, rates) -> list[str]:
    def f(x):
        return "none" if x is None else f"{x:.3g}"
    R = res["live_ratio"]
    lo, hi = res["predicted_interval"]
    iv = f"[{'<' + f'{rates[0]:g}' if lo is None else f(lo)}–{'>' + f'{rates[-1]:g}' if hi is None else f(hi)}]"
    lines = ["**The crossover: median request latency with / without speculation** (engine-side; each round's "
             "two loads have the same arrivals and were sent back to back; predicted: costs fitted on the bursts, "
             "every rate held out)", "",
             "| req/s | live ratio per round | live median | predicted A / B (nominal) | predicted, every band and "
             "profile | host load avg before → after (off, spec) |", "|---|---|---|---|---|---|"]
    profs = sorted({k.split(":")[0] for k in res["predicted_curves"]})
    for j, r in enumerate(rates):
        vals = [c[j] for c in res["predicted_curves"].values()]
        las = []
        for side in ("off", "spec"):
            la = [(ld["loadavg_before"][0], ld["loadavg_after"][0]) for ld in raw[side]["loads"] if ld["rate"] == r]
            las.append(", ".join(f"{x:.1f}→{y:.1f}" for x, y in la))
        lines.append(f"| {r:g} | {', '.join(f'{row[j]:.2f}' for row in R)} | {res['live_curve'][j]:.2f} | "
                     f"{' / '.join('%.2f' % res['predicted_curves'][p + ':nominal'][j] for p in profs)} | "
                     f"{min(vals):.2f}–{max(vals):.2f} | {las[0]}; {las[1]} |")
    b = res["live_bootstrap_90"]
    lines += ["",
              f"live crossover: {res['live_verdict']}" + (f" at **{res['live']:.3g} req/s**" if res["live"] else "") +
              f" (median ratio over {len(res['rounds'])} rounds); each round alone: "
              f"{', '.join(f(x) for x in res['live_rounds'])}; bracket (every round pays … no round pays): "
              f"{f(res['live_bracket'][0])}–{f(res['live_bracket'][1])} req/s; bootstrap over rounds, 90 %: "
              + (f"{b[0]:.3g}–{b[1]:.3g} req/s" if b else "none") +
              f" ({res['bootstrap_no_crossing']} of {res['n_boot']} resamples without a crossing)",
              f"predicted crossover: {res['predicted_verdict']}" + (f" at **{res['predicted']:.3g} req/s**" if res["predicted"] else "")
              + " (mean of the profiles' nominal curves); per curve: " +
              ", ".join(f"{k} {f(v)}" for k, v in res["predicted_crossings"].items()) +
              f"; predicted interval {iv}",
              "**the live crossover is " + ("inside" if res["inside"] else "NOT inside") + " the predicted interval**"]
    return lines


if __name__ == "__main__":
    sys.exit(main())
