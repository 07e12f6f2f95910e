"""Serving metrics and the load sweep: throughput, TTFT / TPOT / inter-token percentiles, goodput
under a latency target, the load where speculation stops paying (crossover), the best γ per load
and the batch-size γ schedule, each with an interval from the step model's latency bands.

Key assumptions: "pays" means a lower median request latency (arrival to last token: queueing,
prefill and decode) than the same engine without speculation at the same load — at loads both
sustain, throughput equals the offered load for both, so latency is what differs, and past
saturation a lower latency is a higher capacity; TPOT alone would reward a lookahead that fills the
step's token budget and starves admissions. The best γ per load minimises the same. A metric's
interval is the range between the engine with every latency at the low and at the high end of its
90 % band (the band of the sources answering the batches that load runs at); the crossover's
interval also moves the proposer's band alone (it shifts speculation against no speculation) and,
for request rates, uses the time-scaling identity: all step times × k and the rate ÷ k give the same
sample path in time × k, so a crossover rate scales by 1/k under the target's band.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.serving.sim import EngineConfig, SimResult, simulate
from specperf.perfmodel.serving.step import StepTable
from specperf.perfmodel.serving.workload import Workload

WARMUP_FRACTION = 0.1  # first requests left out of latency percentiles (the engine starts empty)
SATURATED_BELOW = 0.9  # served/offered request rate under which a load is reported as saturated
INTERVAL_KEYS = ("throughput_tok_s", "tpot_p50_s", "ttft_p50_s", "itl_p50_s", "goodput_req_s", "latency_p50_s")
PAYS = "latency_p50_s"  # the metric speculation must lower to pay, and the best γ minimises


@dataclass(frozen=True)
class Slo:
    ttft_s: float | None = None
    tpot_s: float | None = None


def _q(x, p):
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.quantile(x, p)) if x.size else None


def metrics(res: SimResult, slo: Slo = Slo(), open_loop: bool = True) -> dict:
    """One run's metrics; `open_loop`: saturation is judged against the sample's own arrival rate."""
    n = len(res.arrival_s)
    keep = np.arange(n) >= int(WARMUP_FRACTION * n) if n >= 10 else np.ones(n, bool)
    span = res.end_s - float(np.nanmin(res.arrival_s))
    ttft, tpot = res.ttft_s[keep], res.tpot_s[keep]
    ok = np.ones(int(keep.sum()), bool)
    if slo.ttft_s is not None:
        ok &= ttft <= slo.ttft_s
    if slo.tpot_s is not None:
        ok &= ~(tpot > slo.tpot_s)  # one-token outputs have no TPOT: they meet it
    window = res.end_s - float(np.nanmin(res.arrival_s[keep]))
    dec = res.batch_time_s[1:]
    served = n / span
    out = {"throughput_tok_s": float(res.output_tokens.sum()) / span, "served_req_s": served,
           "ttft_p50_s": _q(ttft, .5), "ttft_p90_s": _q(ttft, .9), "ttft_p99_s": _q(ttft, .99),
           "tpot_p50_s": _q(tpot, .5), "tpot_p90_s": _q(tpot, .9), "tpot_p99_s": _q(tpot, .99),
           "itl_p50_s": _q(res.chunk_gaps_s, .5), "itl_p90_s": _q(res.chunk_gaps_s, .9),
           "latency_mean_s": float(np.mean(res.latency_s)), "latency_p50_s": _q(res.latency_s[keep], .5),
           "latency_p90_s": _q(res.latency_s[keep], .9),
           "goodput_req_s": float(ok.sum()) / window if window > 0 else None,
           "slo_attained": float(ok.mean()) if ok.size else None,
           "mean_decode_batch": float((np.arange(1, len(dec) + 1) * dec).sum() / dec.sum()) if dec.sum() else 0.0,
           "p90_decode_batch": int(np.searchsorted(np.cumsum(dec) / dec.sum(), 0.9) + 1) if dec.sum() else 0,
           "occupancy_mean": res.occupancy_integral / res.end_s, "steps": res.steps,
           "gamma_time_share": (res.gamma_time_s / res.gamma_time_s.sum()).round(4).tolist()}
    a = res.arrival_s
    offered = (n - 1) / (a[-1] - a[0]) if open_loop and n > 1 and a[-1] > a[0] else None
    out["offered_req_s"] = offered
    out["saturated"] = bool(offered is not None and served < SATURATED_BELOW * offered)
    return out


def gamma_schedule(spec: StepTable, context: float, max_batch: int) -> list[dict]:
    """γ* per decode batch size (maximising expected tokens per second of a step at `context`), as
    segments {batch_lo, batch_hi, gamma}; γ = 0 means the engine should stop speculating."""
    segs: list[dict] = []
    for b in range(1, max_batch + 1):
        g = spec.best_gamma(b, context)
        if segs and segs[-1]["gamma"] == g:
            segs[-1]["batch_hi"] = b
        else:
            segs.append({"batch_lo": b, "batch_hi": b, "gamma": g})
    return segs


def _schedule_fn(segs):
    def f(b: int) -> int:
        for s in segs:
            if s["batch_lo"] <= b <= s["batch_hi"]:
                return s["gamma"]
        return segs[-1]["gamma"]
    return f


def _crossing(loads, ratio):
    """First load where ratio (spec / no-spec median latency) reaches 1 from below, linearly interpolated;
    None with a verdict when it never crosses within the loads."""
    r = np.asarray(ratio, dtype=float)
    if np.all(r >= 1):
        return None, "speculation does not pay at any tested load"
    if np.all(r < 1):
        return None, "speculation pays at every tested load"
    for i in range(1, len(r)):
        if r[i - 1] < 1 <= r[i]:
            x0, x1 = loads[i - 1], loads[i]
            return float(x0 + (1 - r[i - 1]) * (x1 - x0) / (r[i] - r[i - 1])), "stops paying"
    return None, "speculation loses at low load and pays at high load (no crossover from paying to not)"


def sweep(off: StepTable, spec: StepTable | None, workload: Workload, loads, gammas, engine: EngineConfig,
          slo: Slo = Slo(), kind: str = "rate", intervals: bool = True, seed: int = 0) -> dict:
    """Every load × (no speculation, each constant γ, the batch schedule); the best γ per load,
    the crossover and the bands' intervals. `kind`: 'rate' (req/s) or 'users'."""
    context = workload.prompt.mean + workload.output.mean / 2
    segs = gamma_schedule(spec, context, engine.max_num_seqs) if spec is not None else []
    rows, ratios, ratios_lo, ratios_hi = [], [], [], []
    band_used = 0.0  # the widest target band any load's interval used (the crossover's time scaling)

    def run(table, reqs, sched):
        return metrics(simulate(reqs, table, engine, sched, users=u, seed=seed), slo, u is None)

    if kind == "users" and max(loads) > workload.n_requests:
        from specperf.perfmodel.specs.errors import InputError

        raise InputError(f"users={int(max(loads))} is not allowed with requests={workload.n_requests}; "
                         "give at least as many requests as users", value=int(max(loads)),
                         allowed=f"at most {workload.n_requests} users (or raise --requests)")
    for x in loads:
        wl = workload.with_load(rate_per_s=x) if kind == "rate" else workload.with_load(users=int(x))
        reqs, u = wl.requests(), (None if kind == "rate" else int(x))
        row = {"load": x, "off": run(off, reqs, lambda b: 0)}
        if spec is not None:
            row["gamma"] = {int(g): run(spec, reqs, (lambda gg: lambda b: gg)(int(g))) for g in gammas}
            row["schedule"] = run(spec, reqs, _schedule_fn(segs))
            best = min(row["gamma"], key=lambda g: row["gamma"][g][PAYS])
            row["best_gamma"] = best
            ratios.append(row["gamma"][best][PAYS] / row["off"][PAYS])
        busy = max(row["off"]["p90_decode_batch"], 1)  # the batches this load runs at (90 % of decode time)
        if spec is not None:
            busy = max(busy, row["gamma"][row["best_gamma"]]["p90_decode_batch"])
            bp = spec.bands_at(busy)[1]
            if intervals:
                for k, acc in ((1 - bp, ratios_lo), (1 + bp, ratios_hi)):
                    m = run(spec.scaled(1.0, k), reqs, (lambda gg: lambda b: gg)(best)) if bp > 0 else row["gamma"][best]
                    acc.append(m[PAYS] / row["off"][PAYS])
        if intervals:
            row["interval"] = {}
            row["bands"] = dict(zip(("target", "proposer"), (spec or off).bands_at(busy)))
            row["bands"]["batch"] = busy
            band_used = max(band_used, row["bands"]["target"])
            for name, table, sched in (("off", off, lambda b: 0),) + (
                    (("best", spec, (lambda gg: lambda b: gg)(row["best_gamma"])),) if spec is not None else ()):
                bt, bp = table.bands_at(busy)
                lo = run(table.scaled(1 - bt, 1 - bp), reqs, sched)
                hi = run(table.scaled(1 + bt, 1 + bp), reqs, sched)
                row["interval"][name] = {k: sorted([lo[k], hi[k]]) for k in INTERVAL_KEYS
                                         if lo[k] is not None and hi[k] is not None}
        rows.append(row)
    doc = {"loads": list(loads), "load_kind": kind, "rows": rows, "workload": workload.describe(),
           "engine": {"max_num_seqs": engine.max_num_seqs, "max_batched_tokens": engine.max_batched_tokens,
                      "chunked_prefill": engine.chunked_prefill},
           "slo": {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s}, "schedule": segs,
           "bands": {"target": off.band_target, "proposer": spec.band_propose if spec is not None else None}}
    if spec is not None:
        x, verdict = _crossing(list(loads), ratios)
        doc["crossover"] = {"load": x, "verdict": verdict, "metric": PAYS, "ratio": ratios, "interval": None}
        cands = [x] if x is not None else []
        if ratios_lo and ratios_hi:
            cands += [c for c in (_crossing(list(loads), ratios_lo)[0], _crossing(list(loads), ratios_hi)[0])
                      if c is not None]
            doc["crossover"]["ratio_band"] = [ratios_lo, ratios_hi]
        if cands:
            bt = band_used if kind == "rate" else 0.0
            doc["crossover"]["interval"] = [min(cands) / (1 + bt), max(cands) / (1 - bt)]
        off_segs = [s for s in segs if s["gamma"] == 0]
        doc["schedule_stops_at_batch"] = off_segs[0]["batch_lo"] if off_segs else None
    return doc
