"""`specperf serve-sim`: speculative decoding under load. Builds the engine step model from the
latency providers (as `predict` does), runs the continuous-batching simulation over request rates
(Poisson) or concurrent users with and without speculation, and prints throughput, TTFT / TPOT
percentiles, goodput, the crossover load, the best γ per load and the batch γ schedule.

Module top imports only stdlib, typer and cli.common/options (fast start).
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as o
from .common import UsageError, handle_errors, print_json

MAX_LOADS = 64  # loads one sweep may simulate (each is several simulations)

Rate = Annotated[Optional[str], typer.Option(help="Poisson request rates in requests/s: 1 or a list 0.5,1,2,4.")]
Users = Annotated[Optional[str], typer.Option(help="Concurrent users (closed loop) instead of --rate: N, a list or a range.")]


def float_list(text: str, flag: str, hi: float) -> list[float]:
    allowed = f"positive numbers up to {hi:g}, e.g. 0.5,1,2 (at most {MAX_LOADS} values)"
    try:
        vals = sorted({float(p) for p in str(text).split(",") if p.strip()})
    except ValueError:
        raise UsageError(f"{flag}={text!r} is not allowed; {allowed}", value=text, allowed=allowed) from None
    if not vals or len(vals) > MAX_LOADS or not all(0 < v <= hi for v in vals):
        raise UsageError(f"{flag}={text!r} is not allowed; {allowed}", value=text, allowed=allowed)
    return vals


def _ms(v, flag: str, allow_zero: bool = False):
    if v is None:
        return None
    import math

    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero) or v > 3.6e6:
        allowed = f"milliseconds in {'0' if allow_zero else '(0'}..3.6e6]"
        raise UsageError(f"{flag}={v!r} is not allowed; {allowed}", value=v, allowed=allowed)
    return v / 1e3


def register(app: typer.Typer) -> None:
    @app.command("serve-sim")
    @handle_errors
    def serve_sim(
        target: o.Target = None,
        draft: o.Draft = None,
        method: Annotated[str, typer.Option(help="Speculation method: draft or a registered proposer (as predict --method).")] = "draft",
        gpu: o.Gpu = "h100-sxm",
        tp: o.Tp = 1,
        dtype: o.Dtype = "fp16",
        mode: Annotated[str, typer.Option(help="graph, eager or compiled (one mode).")] = "graph",
        profile: o.Profile = None,
        analytical: o.Analytical = False,
        allow_gpu_mismatch: o.AllowGpuMismatch = False,
        alpha: o.Alpha = None,
        acceptance: o.Acceptance = None,
        gamma: Annotated[str, typer.Option(help="Constant lookaheads compared per load: N, a list or a range.")] = "1..4",
        rate: Rate = None,
        users: Users = None,
        requests: Annotated[int, typer.Option(help="Requests simulated per load.")] = 300,
        prompt_len: Annotated[str, typer.Option(help="Prompt tokens: N or LO..HI (uniform).")] = "512",
        output_len: Annotated[str, typer.Option(help="Output tokens: N or LO..HI (uniform).")] = "128",
        trace: Annotated[Optional[str], typer.Option(help="CSV/JSONL of requests (prompt_tokens, output_tokens) instead of the lengths.")] = None,
        max_num_seqs: Annotated[int, typer.Option(help="Most sequences running at once (vLLM max_num_seqs).")] = 256,
        max_batched_tokens: Annotated[int, typer.Option(help="Token budget per step (vLLM max_num_batched_tokens).")] = 2048,
        chunked_prefill: Annotated[bool, typer.Option(help="Chunk prompts into the step token budget (vLLM V1 does).")] = True,
        slo_ttft_ms: Annotated[Optional[float], typer.Option(help="Goodput: time-to-first-token target (ms).")] = None,
        slo_tpot_ms: Annotated[Optional[float], typer.Option(help="Goodput: time-per-output-token target (ms).")] = None,
        step_overhead_ms: Annotated[float, typer.Option(help="Engine cost per step outside the profile (ms; calibrate from a light load).")] = 0.0,
        seq_overhead_ms: Annotated[float, typer.Option(help="Engine cost per scheduled sequence per step (ms).")] = 0.0,
        proposal_overhead_ms: Annotated[float, typer.Option(help="Engine cost per proposal forward (γ per speculative step, ms).")] = 0.0,
        seq_proposal_overhead_ms: Annotated[float, typer.Option(help="Engine cost per decoding sequence per proposal forward (ms).")] = 0.0,
        intervals: Annotated[bool, typer.Option(help="Rerun at the ends of the latency bands for intervals.")] = True,
        seed: Annotated[int, typer.Option(help="Seed of arrivals, lengths and acceptance draws.")] = 0,
        json_out: o.Json = False,
    ):
        """Throughput and latency under load with and without speculation: the crossover and the γ schedule."""
        from specperf.perfmodel.serving.run import ServeRequest, run_serve

        if (rate is None) == (users is None):
            raise UsageError("give --rate (requests/s) or --users (concurrent users), not both or neither",
                             value=None, allowed="--rate R[,R…] or --users N[,N…]")
        method = o.methods(method, several=False)[0]
        loads = float_list(rate, "rate", 1e5) if rate is not None else [float(u) for u in o.int_list(users, "users", hi=65536)]
        if len(loads) > MAX_LOADS:
            raise UsageError(f"users={users!r} gives {len(loads)} loads; at most {MAX_LOADS}", value=users,
                             allowed=f"at most {MAX_LOADS} values")
        o.positive(tp, "tp")
        o.positive(requests, "requests", 100_000)
        o.positive(max_num_seqs, "max-num-seqs", 65536)
        o.positive(max_batched_tokens, "max-batched-tokens", 1_048_576)
        if not 0 <= seed < 2 ** 32:
            raise UsageError(f"seed={seed} is not allowed; --seed takes an integer in 0..{2 ** 32 - 1}",
                             value=seed, allowed=f"0..{2 ** 32 - 1}")
        gammas = o.int_list(gamma, "gamma", hi=16)
        md = o.modes(mode, both=False)[0]
        from .common import dtype_bytes

        req = ServeRequest(target=target, draft=draft, method=method, gpu=gpu, tp=tp, dtype_bytes=dtype_bytes(dtype),
                           mode=md, profile=profile, analytical=analytical, allow_gpu_mismatch=allow_gpu_mismatch,
                           alpha=alpha, acceptance=acceptance, gammas=tuple(gammas), loads=tuple(loads),
                           load_kind="rate" if rate is not None else "users", requests=requests,
                           prompt_len=prompt_len, output_len=output_len, trace=trace, max_num_seqs=max_num_seqs,
                           max_batched_tokens=max_batched_tokens, chunked_prefill=chunked_prefill,
                           slo_ttft_s=_ms(slo_ttft_ms, "slo-ttft-ms"), slo_tpot_s=_ms(slo_tpot_ms, "slo-tpot-ms"),
                           step_overhead_s=_ms(step_overhead_ms, "step-overhead-ms", True),
                           seq_overhead_s=_ms(seq_overhead_ms, "seq-overhead-ms", True),
                           proposal_overhead_s=_ms(proposal_overhead_ms, "proposal-overhead-ms", True),
                           seq_proposal_overhead_s=_ms(seq_proposal_overhead_ms, "seq-proposal-overhead-ms", True),
                           intervals=intervals, seed=seed)
        doc = run_serve(req)
        if json_out:
            print_json(doc)
            return
        render(doc)


def _f(v, scale=1.0, fmt="{:.1f}"):
    return "–" if v is None else fmt.format(v * scale)


def _iv(row, which, key, scale, fmt):
    iv = row.get("interval", {}).get(which, {}).get(key)
    return "" if not iv else f" [{fmt.format(iv[0] * scale)}–{fmt.format(iv[1] * scale)}]"


def render(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(Console().width, 160))
    unit = "req/s" if doc["load_kind"] == "rate" else "users"
    t = Table(title=f"{doc['title']} — {doc['workload']}")
    for col in (unit, "tok/s off [90 %]", "tok/s spec (best γ) [90 %]", "latency p50 s off / spec", "TPOT ms off", "TPOT ms spec",
                "TTFT p50 ms off / spec", "ITL p50 ms off / spec", "goodput req/s off / spec", "best γ",
                "batch off / spec", "spec pays"):
        t.add_column(col, justify="right")
    for r in doc["rows"]:
        off = r["off"]
        b = r["gamma"][str(r["best_gamma"])] if "best_gamma" in r else None
        sat = lambda m: " (sat.)" if m and m["saturated"] else ""  # noqa: E731
        t.add_row(f"{r['load']:g}",
                  _f(off["throughput_tok_s"], 1, "{:.0f}") + _iv(r, "off", "throughput_tok_s", 1, "{:.0f}") + sat(off),
                  (_f(b["throughput_tok_s"], 1, "{:.0f}") + _iv(r, "best", "throughput_tok_s", 1, "{:.0f}") + sat(b)) if b else "–",
                  f"{_f(off['latency_p50_s'], 1, '{:.2f}')} / {_f(b and b['latency_p50_s'], 1, '{:.2f}')}",
                  _f(off["tpot_p50_s"], 1e3, "{:.2f}") + _iv(r, "off", "tpot_p50_s", 1e3, "{:.2f}"),
                  (_f(b["tpot_p50_s"], 1e3, "{:.2f}") + _iv(r, "best", "tpot_p50_s", 1e3, "{:.2f}")) if b else "–",
                  f"{_f(off['ttft_p50_s'], 1e3)} / {_f(b and b['ttft_p50_s'], 1e3)}",
                  f"{_f(off['itl_p50_s'], 1e3, '{:.2f}')} / {_f(b and b['itl_p50_s'], 1e3, '{:.2f}')}",
                  f"{_f(off['goodput_req_s'], 1, '{:.2f}')} / {_f(b and b['goodput_req_s'], 1, '{:.2f}')}",
                  str(r.get("best_gamma", "–")),
                  f"{off['mean_decode_batch']:.1f} / {b['mean_decode_batch']:.1f}" if b else f"{off['mean_decode_batch']:.1f}",
                  ("yes" if b["latency_p50_s"] < off["latency_p50_s"] else "no") if b else "–")
    con.print(t)
    cx = doc.get("crossover")
    if cx:
        iv = cx.get("interval")
        where = (f"{cx['load']:.3g} {unit}" + (f" [{iv[0]:.3g}–{iv[1]:.3g}]" if iv else "")) if cx["load"] is not None else ""
        con.print(f"crossover: {cx['verdict']}{' at ' + where if where else ''}")
    if doc.get("schedule"):
        segs = ", ".join(f"batch {s['batch_lo']}–{s['batch_hi']}: γ={s['gamma']}" for s in doc["schedule"])
        con.print(f"γ schedule (best expected tokens/s per step at context {doc['schedule_context']:.0f}): {segs}")
    for n in doc.get("notes", []):
        con.print(f"[yellow]note:[/yellow] {n}")
    for k, v in doc.get("sources", {}).items():
        con.print(f"  source {k}: {v}")
