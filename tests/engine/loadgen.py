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


def one_request(url: str, model: str, prompt, max_tokens: int, t_start: float, timeout_s: float) -> dict:
    """Stream one completion; times relative to t_start (the load's origin), in seconds."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    sent = time.monotonic() - t_start
    chunks, usage = [], None
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
             timeout_s: float = 300.0) -> dict:
    """Send len(prompts) requests with Poisson arrivals at rate_per_s (None: all at t = 0)."""
    if not 1 <= len(prompts) <= MAX_REQUESTS:
        raise ValueError(f"requests={len(prompts)} is not allowed; 1..{MAX_REQUESTS}")
    if rate_per_s is not None and not 0 < rate_per_s <= 1e4:
        raise ValueError(f"rate={rate_per_s!r} is not allowed; requests/s in (0, 1e4]")
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    for _ in prompts:
        arrivals.append(t)
        t += rng.expovariate(rate_per_s) if rate_per_s else 0.0
    results: list = [None] * len(prompts)
    t0 = time.monotonic()

    def worker(i):
        delay = arrivals[i] - (time.monotonic() - t0)
        if delay > 0:
            time.sleep(delay)
        try:
            results[i] = one_request(url, model, prompts[i], max_tokens, t0, timeout_s)
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
