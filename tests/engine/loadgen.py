"""A bounded open-loop load generator for a live OpenAI-compatible server on 127.0.0.1: Poisson
arrivals at a given request rate (or all at once), streamed greedy completions, per-request TTFT,
end-to-end latency, completion tokens and the arrival times of every streamed chunk.

Key assumptions: requests are greedy with ignore_eos, so each decodes exactly max_tokens; a
streamed chunk's arrival is when the client read it (client time, not the engine's); the request
count is bounded (at most MAX_REQUESTS) and every request has a timeout. Standard library only, so
it runs under any interpreter (the engine venv or specperf's).
"""
from __future__ import annotations

import json
import random
import threading
import time
import urllib.request

MAX_REQUESTS = 512  # a bound on one load run (2-core CI box: a run should take seconds, not hours)


def one_request(url: str, model: str, prompt, max_tokens: int, t_start: float, timeout_s: float,
                stream: bool = True) -> dict:
    """Stream one completion (or, `stream` False, read it whole: one response, no chunk times, so
    the client's own work per token does not compete with the server); times relative to t_start
    (the load's origin), in seconds."""
    doc = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
           "stream": stream}
    if stream:
        doc["stream_options"] = {"include_usage": True}
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(doc).encode(),
                                 headers={"Content-Type": "application/json"})
    sent = time.monotonic() - t_start
    chunks, usage = [], None
    if not stream:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            usage = json.load(r).get("usage")
        return {"sent_s": sent, "first_s": None, "done_s": time.monotonic() - t_start, "chunks_s": [],
                "prompt_tokens": usage and usage.get("prompt_tokens"),
                "completion_tokens": usage and usage.get("completion_tokens")}
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            doc = json.loads(data)
            if doc.get("usage"):
                usage = doc["usage"]
            if doc.get("choices") and doc["choices"][0].get("text"):
                chunks.append(time.monotonic() - t_start)
    done = time.monotonic() - t_start
    return {"sent_s": sent, "first_s": chunks[0] if chunks else None, "done_s": done, "chunks_s": chunks,
            "prompt_tokens": usage and usage.get("prompt_tokens"),
            "completion_tokens": usage and usage.get("completion_tokens")}


def run_load(url: str, model: str, prompts: list, max_tokens: int, rate_per_s: float | None, seed: int = 0,
             timeout_s: float = 300.0, arrivals: list | None = None, stream: bool = True) -> dict:
    """Send len(prompts) requests with Poisson arrivals at rate_per_s (None: all at t = 0), or at the
    given `arrivals` (seconds from the start, non-decreasing: e.g. a simulation's own sample)."""
    if not 1 <= len(prompts) <= MAX_REQUESTS:
        raise ValueError(f"requests={len(prompts)} is not allowed; 1..{MAX_REQUESTS}")
    if rate_per_s is not None and not 0 < rate_per_s <= 1e4:
        raise ValueError(f"rate={rate_per_s!r} is not allowed; requests/s in (0, 1e4]")
    if arrivals is None:
        rng = random.Random(seed)
        arrivals, t = [], 0.0
        for _ in prompts:
            arrivals.append(t)
            t += rng.expovariate(rate_per_s) if rate_per_s else 0.0
    elif len(arrivals) != len(prompts) or any(b < a for a, b in zip(arrivals, arrivals[1:])) or arrivals[0] < 0:
        raise ValueError("arrivals must be one non-decreasing, non-negative time per prompt")
    arrivals = [float(a) for a in arrivals]
    results: list = [None] * len(prompts)
    t0 = time.monotonic()

    def worker(i):
        delay = arrivals[i] - (time.monotonic() - t0)
        if delay > 0:
            time.sleep(delay)
        try:
            results[i] = one_request(url, model, prompts[i], max_tokens, t0, timeout_s, stream)
        except Exception as e:  # noqa: BLE001 — recorded, the run reports it
            results[i] = {"error": f"{type(e).__name__}: {e}"}
        results[i]["arrival_s"] = arrivals[i]

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(prompts))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout_s + arrivals[-1] + 10)
    return {"rate_per_s": rate_per_s, "max_tokens": max_tokens, "seed": seed, "wall_s": time.monotonic() - t0,
            "requests": results}


HISTOGRAMS = ("inter_token_latency_seconds", "request_time_per_output_token_seconds", "time_to_first_token_seconds",
              "e2e_request_latency_seconds")


def histograms(text: str) -> dict:
    """{name: [(upper bound, cumulative count), …]} of the engine-side latency histograms in one
    /metrics scrape (vLLM V1 stamps them with the engine core's own timestamps)."""
    import re

    out: dict = {h: {} for h in HISTOGRAMS}
    pat = re.compile(r'^vllm:(\w+)_bucket\{([^}]*)\} (\S+)$', re.M)
    for m in pat.finditer(text):
        if m.group(1) in out:
            le = re.search(r'le="([^"]+)"', m.group(2)).group(1)
            out[m.group(1)][float(le)] = out[m.group(1)].get(float(le), 0.0) + float(m.group(3))
    return {h: sorted(v.items()) for h, v in out.items()}


def hist_quantile(before: list, after: list, q: float) -> float | None:
    """Quantile q of the observations between two scrapes, linear inside a bucket (the bucket
    width bounds its error: the test server runs with fine buckets)."""
    b = dict(before)
    pts = [(le, c - b.get(le, 0.0)) for le, c in after]
    total = pts[-1][1] if pts else 0
    if total <= 0:
        return None
    lo_le, lo_c = 0.0, 0.0
    for le, c in pts:
        if c >= q * total:
            if le == float("inf"):
                return lo_le
            return lo_le + (le - lo_le) * ((q * total - lo_c) / (c - lo_c) if c > lo_c else 0.0)
        lo_le, lo_c = le, c
    return None


def fine_buckets() -> str:
    """The --custom-histogram-buckets JSON: 0.1 ms steps to 40 ms, 1 ms to 200 ms, then coarse."""
    itl = [round(0.0001 * k, 4) for k in range(1, 401)] + [round(0.001 * k, 3) for k in range(41, 201)] + \
        [0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0]
    ttft = [round(0.001 * k, 3) for k in range(1, 501)] + [0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]
    return json.dumps({"inter_token_latency": itl, "time_to_first_token": ttft})


def summarise(load: dict) -> dict:
    """Throughput (completion tokens / span from first arrival to last completion), TTFT, TPOT
    ((done − first token) / (tokens − 1)) and inter-chunk gaps, as medians and p90s."""
    ok = [r for r in load["requests"] if r and "error" not in r and r["first_s"] is not None]
    if not ok:
        return {"ok": 0}
    span = max(r["done_s"] for r in ok) - min(r["arrival_s"] for r in ok)
    toks = sum(r["completion_tokens"] or len(r["chunks_s"]) for r in ok)
    ttft = sorted(r["first_s"] - r["sent_s"] for r in ok)
    tpot = sorted((r["done_s"] - r["first_s"]) / max((r["completion_tokens"] or 2) - 1, 1) for r in ok)
    gaps = sorted(b - a for r in ok for a, b in zip(r["chunks_s"], r["chunks_s"][1:]))

    def q(xs, p):
        return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None
    return {"ok": len(ok), "errors": len(load["requests"]) - len(ok), "span_s": span, "tokens": toks,
            "throughput_tok_s": toks / span, "ttft_p50_s": q(ttft, 0.5), "ttft_p90_s": q(ttft, 0.9),
            "tpot_p50_s": q(tpot, 0.5), "tpot_p90_s": q(tpot, 0.9), "itl_p50_s": q(gaps, 0.5),
            "itl_p90_s": q(gaps, 0.9)}
