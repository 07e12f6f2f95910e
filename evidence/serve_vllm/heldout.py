"""Speculative decoding under load on a live vLLM CPU server, second protocol (issue 30): vLLM's own
engine costs are FITTED on closed bursts (N requests sent together, N = 1..16: the step time at a
known batch) and every Poisson rate is HELD OUT — predicted by serve-sim's engine model from a CPU
latency table of the same tiny models plus the fitted costs, and compared with the live server.

Measurement (one server without speculation, then one with the draft at γ; interleaved profiles
A before and B after, as evidence/serve_vllm/run.py): per server a warm-up, the bursts × --repeats,
then --rounds × the rates, each round with its own Poisson sample (seed = round). What the
simulation replays is what the server received: each request's *sent* time (the client's thread
may start late on the shared 2-core box; the largest lag per load is recorded), its prompt tokens
(from usage), max_tokens outputs. Requests are NOT streamed: a streaming Python client on the same
two cores (one read per token, 1,000 reads/s at 16 req/s) fell behind the server by up to 300 ms
(client TTFT 308 ms against the engine's 17 ms) and more so for the engine without speculation (one
chunk per token, against about one per two with the draft), which biased the live crossover. Live
ITL, TPOT and median request latency are the engine's own histograms (engine-side timestamps, fine
buckets; request latency from the API server's arrival to the last token); throughput is
client-side, from the first send to the last completion.

Usage: .venv/bin/python evidence/serve_vllm/heldout.py --out evidence/serve_vllm/heldout
       [--rates 2,4,6,8,12,16] [--bursts 1,2,4,8,16] [--requests 64] [--max-tokens 64] [--gamma 3]
       [--rounds 3] [--repeats 3] [--later-scale 0.03] [--interleave] [--fit-rates 2,16]
       [--predict-only]
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "engine"))
import loadgen as lg  # noqa: E402
import serve_live as sl  # noqa: E402
import vllm_server as vs  # noqa: E402


def buckets() -> str:
    """The harness's fine ITL/TTFT buckets plus fine request-latency buckets (engine-side end-to-end
    latency: 2 ms steps to 4 s, 10 ms to 10 s)."""
    b = json.loads(lg.fine_buckets())
    b["request_latency"] = [round(0.002 * k, 3) for k in range(1, 2001)] + [round(0.01 * k, 2) for k in range(401, 1001)] + \
        [20.0, 60.0]
    return json.dumps(b)


def server_argv(models, gamma) -> list[str]:
    argv = sl.server_argv(models, gamma)
    argv[argv.index("--custom-histogram-buckets") + 1] = buckets()
    return argv


def one_load(srv, models, prompts, max_tokens, arrivals, stream=False) -> dict:
    before = lg.histograms(srv.get("/metrics"))
    load = lg.run_load(srv.url, models["target"], prompts, max_tokens, None, arrivals=arrivals, stream=stream)
    time.sleep(0.3)
    after = lg.histograms(srv.get("/metrics"))
    eng = {f"{h}_p{int(q * 100)}": lg.hist_quantile(before[h], after[h], q)
           for h in lg.HISTOGRAMS for q in (0.5, 0.9)}
    reqs = load["requests"]
    lag = max((r["sent_s"] - r["arrival_s"]) for r in reqs if "sent_s" in r)
    return {"engine": eng, "requests": reqs, "max_send_lag_s": lag, "stream": stream}


def serve_side(py, env, models, gamma, out: Path, a, prompts) -> dict:
    name = f"spec{gamma}" if gamma else "off"
    srv = vs.Server(py, server_argv(models, gamma), out / f"server_{name}.log", env)
    res = {"gamma": gamma, "bursts": [], "loads": []}
    with srv:
        res["ready_s"] = srv.ready_s
        res["version"] = json.loads(srv.get("/version"))["version"]
        lg.run_load(srv.url, models["target"], prompts[:4], a.max_tokens, None)  # warm-up
        def bursts(rep):
            for n in a.bursts:
                start = (rep * n) % max(len(prompts) - n, 1)
                d = one_load(srv, models, prompts[start:start + n], a.max_tokens, [0.0] * n)
                res["bursts"].append({"repeat": rep, "n": n, **d})
        if not a.interleave:
            for rep in range(a.repeats):
                bursts(rep)
        for rnd in range(a.rounds):
            if a.interleave:  # one set of bursts before each round: the host's load drifts over minutes
                bursts(rnd)
            for rate in a.rates:
                d = one_load(srv, models, prompts, a.max_tokens, sl.arrivals(rate, len(prompts), rnd))
                res["loads"].append({"round": rnd, "rate": rate, **d})
                print(f"{name} round {rnd} rate {rate:g}: itl p50 {d['engine']['inter_token_latency_seconds_p50']}"
                      f" lag {d['max_send_lag_s']:.3f} s", flush=True)
        (out / f"metrics_{name}.txt").write_text(srv.get("/metrics"))
    return res


def measure(a, out: Path) -> dict:
    py = ROOT / ".venv-vllm" / "bin" / "python"
    env = vs.engine_env(ROOT / ".venv-vllm")
    t0 = time.monotonic()
    models = sl.build_models(py, env, out / "models", ("--later-scale", str(a.later_scale)))
    prompts = json.loads((out / "models" / "prompts.json").read_text())[:a.requests]
    raw = {"args": {k: v for k, v in vars(a).items()}, "models": models, "machine": platform.machine(),
           "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "loadavg_start": os.getloadavg()}
    raw["profile_a"] = sl.profile_cpu(models, out / "profile_a.csv", batch="1,2,4,8,16")
    for side, g in (("off", None), ("spec", a.gamma)):
        raw[side] = serve_side(py, env, models, g, out, a, prompts)
        (out / "raw.json").write_text(json.dumps(raw, indent=1))  # kept if a later step fails
    raw["profile_b"] = sl.profile_cpu(models, out / "profile_b.csv", batch="1,2,4,8,16")
    raw["seconds"] = time.monotonic() - t0
    raw["loadavg_end"] = os.getloadavg()
    (out / "raw.json").write_text(json.dumps(raw, indent=1))
    return raw


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--rates", default="2,4,6,8,12,16")
    ap.add_argument("--bursts", default="1,2,4,8,16")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--gamma", type=int, default=3)
    ap.add_argument("--later-scale", type=float, default=0.03,
                    help="tests/engine/build_models.py --later-scale: smaller = a draft that agrees more often "
                         "(0.03: acceptance high enough that speculation pays at light load on this box)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--interleave", action="store_true",
                    help="one set of bursts before each round (repeats = rounds) instead of all bursts first")
    ap.add_argument("--fit-rates", default=None,
                    help="rates the second fit uses (whole loads; default: the lowest and the highest rate)")
    ap.add_argument("--predict-only", action="store_true", help="Predict again from OUT/raw.json and its profiles.")
    a = ap.parse_args(argv)
    a.rates = [float(x) for x in str(a.rates).split(",")]
    a.bursts = [int(x) for x in str(a.bursts).split(",")]
    if not (1 <= a.requests <= 64 and 1 <= a.max_tokens <= 256 and 1 <= a.gamma <= 8 and 1 <= a.rounds <= 5
            and 1 <= a.repeats <= 5 and all(0 < r <= 100 for r in a.rates) and all(1 <= n <= 16 for n in a.bursts)):
        print("requests 1..64, max-tokens 1..256, gamma 1..8, rounds/repeats 1..5, rates in (0, 100], bursts 1..16",
              file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = json.loads((out / "raw.json").read_text()) if a.predict_only else measure(a, out)
    rr = raw["args"]["rates"]
    raw["args"]["fit_rates"] = [float(x) for x in a.fit_rates.split(",")] if a.fit_rates else [min(rr), max(rr)]
    from heldout_predict import predict_and_report  # noqa: E402 (beside this file)

    text = predict_and_report(raw, out)
    (out / "raw.json").write_text(json.dumps(raw, indent=1))
    (out / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
