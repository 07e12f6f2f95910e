"""A discrete-event simulation of one serving engine under load: continuous batching of decode
steps, prefill chunked into the steps' token budget, speculation with a lookahead chosen per step
from the decode batch size (a γ schedule), requests from a Workload (Poisson or N users).

Key assumptions (vLLM V1's scheduler, simplified): FCFS admission up to `max_num_seqs` running
sequences (KV-cache capacity is not modelled: no preemption); each step first schedules every
decoding sequence's 1 + γ tokens, then prefill chunks of the oldest unfinished prompts in the rest of
`max_batched_tokens` (the whole prompt at once, in a step of its own if needed, without chunking);
a prompt's last prefill chunk yields its first token; a decoding sequence gains the tokens its
proposer's acceptance draws, capped at the tokens it still needs; arrivals during a step wait for
the next one. Time-average occupancy is integrated separately from the per-request records (so
Little's law checks the loop's bookkeeping).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from specperf.perfmodel.serving.step import StepModel
from specperf.perfmodel.specs.errors import InputError

MAX_STEPS = 5_000_000  # a simulation that needs more steps than this is refused, not run for hours


@dataclass(frozen=True)
class EngineConfig:
    max_num_seqs: int = 256  # vLLM's default max_num_seqs (vllm/config/scheduler.py, V1 on GPUs)
    max_batched_tokens: int = 2048  # vLLM V1's default token budget per step with chunked prefill
    chunked_prefill: bool = True

    def __post_init__(self):
        if not 1 <= self.max_num_seqs <= 65536:
            raise InputError(f"max-num-seqs={self.max_num_seqs} is not allowed; an integer in 1..65536")
        if not 1 <= self.max_batched_tokens <= 1_048_576:
            raise InputError(f"max-batched-tokens={self.max_batched_tokens} is not allowed; an integer in 1..1048576")


@dataclass(frozen=True)
class SimResult:
    """Per-request times (s) and the loop's own occupancy integral."""
    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    output_tokens: np.ndarray
    chunk_gaps_s: np.ndarray  # gaps between a sequence's consecutive token-emitting steps
    occupancy_integral: float  # ∫ (requests in the system) dt over [0, end]
    end_s: float
    steps: int
    batch_time_s: np.ndarray  # seconds spent at decode batch b (index b, 0 = prefill-only steps)
    gamma_time_s: np.ndarray  # seconds spent at each γ (index γ)

    @property
    def ttft_s(self):
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self):
        """Per request: (finish − first token) / (output − 1); NaN for one-token outputs."""
        n = self.output_tokens - 1
        return np.where(n > 0, (self.finish_s - self.first_token_s) / np.maximum(n, 1), np.nan)

    @property
    def latency_s(self):
        return self.finish_s - self.arrival_s


def simulate(requests: dict, step: StepModel, engine: EngineConfig, schedule: Callable[[int], int],
             users: int | None = None, seed: int = 0) -> SimResult:
    """Run `requests` (Workload.requests()) through the engine. `schedule(batch) → γ` (0: no
    speculation). `users`: closed loop — the first `users` requests arrive at 0, and each finish
    brings the next request (in index order) at that moment."""
    arrival = np.array(requests["arrival_s"], dtype=float)
    prompt = np.asarray(requests["prompt_tokens"], dtype=int)
    out = np.asarray(requests["output_tokens"], dtype=int)
    n = len(arrival)
    rng = np.random.default_rng(seed)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    prefilled = np.zeros(n, dtype=int)
    generated = np.zeros(n, dtype=int)
    last_emit = np.zeros(n)
    gaps: list = []
    issued = min(users, n) if users is not None else n  # closed loop: requests given an arrival so far
    nxt = 0  # next request not yet arrived (requests arrive in index order)
    waiting: list[int] = []
    running: list[int] = []
    t, area, steps, done = 0.0, 0.0, 0, 0
    in_system = 0
    btime = np.zeros(engine.max_num_seqs + 1)
    gtime: dict = {}
    while done < n:
        while nxt < n and not np.isnan(arrival[nxt]) and arrival[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        if not running and not waiting:
            if nxt >= n or np.isnan(arrival[nxt]):
                raise RuntimeError("no request can arrive: the closed loop lost a user")
            t = arrival[nxt]
            continue
        while waiting and len(running) < engine.max_num_seqs:
            running.append(waiting.pop(0))
        in_system = len(running) + len(waiting)
        dec = [i for i in running if prefilled[i] >= prompt[i]]
        b = len(dec)
        g = int(schedule(b)) if b else 0
        budget = engine.max_batched_tokens - b * (1 + g)
        chunks: list[tuple[int, int]] = []
        for i in running:
            need = prompt[i] - prefilled[i]
            if need <= 0:
                continue
            if engine.chunked_prefill:
                take = min(need, budget)
            else:
                take = need if (need <= budget or (not chunks and b == 0)) else 0
            if take <= 0:
                break
            chunks.append((i, take))
            budget -= take
        p_tok = sum(c for _, c in chunks)
        p_ctx = float(np.mean([prefilled[i] + c for i, c in chunks])) if chunks else 0.0
        ctx = float(np.mean(prompt[dec] + generated[dec])) if b else 0.0
        dt = float(step.step_s(b, ctx, g, p_tok, p_ctx))
        if not dt > 0:
            raise InputError(f"step time {dt!r} s at batch {b}, γ {g} is not positive; check the profile")
        t_end = t + dt
        # occupancy: everyone in the system for the whole step, plus arrivals during it
        area += in_system * dt
        k = nxt
        while k < n and not np.isnan(arrival[k]) and arrival[k] < t_end:
            area += t_end - arrival[k]
            k += 1
        t = t_end
        steps += 1
        btime[b] += dt
        gtime[g] = gtime.get(g, 0.0) + dt
        if b:
            d = np.asarray(dec)
            gain = np.minimum(step.tokens(rng, b, g), out[d] - generated[d])
            generated[d] += gain
            gaps.extend((t - last_emit[d]).tolist())
            last_emit[d] = t
        for i, c in chunks:
            prefilled[i] += c
            if prefilled[i] >= prompt[i]:
                generated[i] = 1
                first[i] = t
                last_emit[i] = t
        still = []
        for i in running:
            if prefilled[i] >= prompt[i] and generated[i] >= out[i]:
                finish[i] = t
                done += 1
                if users is not None and issued < n:
                    arrival[issued] = t
                    issued += 1
            else:
                still.append(i)
        running = still
        if steps > MAX_STEPS:
            raise InputError(f"the simulation needs more than {MAX_STEPS} steps; use fewer --requests or shorter outputs")
    gvec = np.zeros(max(gtime) + 1)
    for g, v in gtime.items():
        gvec[g] = v
    return SimResult(arrival, first, finish, out, np.asarray(gaps), area, t, steps, btime, gvec)
