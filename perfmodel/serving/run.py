"""`serve-sim` as a library call: resolve models, GPU, latency providers and acceptance as `predict`
does, build the engine step tables with and without speculation, sweep the loads and return one
JSON-ready document (finite values, sources and notes included).

Key assumption: the engine without speculation is the same engine (same step overheads, same
scheduler limits) minus the proposer; acceptance does not change with load.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.serving.proposer import Speculation
from specperf.perfmodel.serving.report import Slo, sweep
from specperf.perfmodel.serving.sim import EngineConfig
from specperf.perfmodel.serving.step import EngineOverhead, build_step_table
from specperf.perfmodel.serving.workload import LengthDist, Workload, parse_length, read_trace
from specperf.perfmodel.specs.errors import InputError


@dataclass(frozen=True)
class ServeRequest:
    target: str | None
    draft: str | None
    loads: tuple
    load_kind: str = "rate"  # or "users"
    method: str = "draft"
    gpu: str = "h100-sxm"
    tp: int = 1
    dtype_bytes: int = 2
    mode: str = "graph"
    profile: str | None = None
    analytical: bool = False
    allow_gpu_mismatch: bool = False
    alpha: float | None = None
    acceptance: str | None = None
    gammas: tuple = (1, 2, 3, 4)
    requests: int = 300
    prompt_len: str = "512"
    output_len: str = "128"
    trace: str | None = None
    max_num_seqs: int = 256
    max_batched_tokens: int = 2048
    chunked_prefill: bool = True
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    step_overhead_s: float = 0.0
    seq_overhead_s: float = 0.0
    proposal_overhead_s: float = 0.0
    seq_proposal_overhead_s: float = 0.0
    intervals: bool = True
    seed: int = 0


def _acceptance(alpha, path):
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel, check_alpha

    if path is not None:
        if alpha is not None:
            raise InputError("give --alpha or --acceptance, not both")
        return AcceptanceModel.load(path)
    if alpha is None:
        raise InputError("--alpha is required (α in [0, 1)), or --acceptance FILE")
    return AcceptanceModel(alpha=check_alpha(alpha), source="--alpha")


def tables_for(tgt, proposer: Speculation, latency, prompt: LengthDist, output: LengthDist, engine: EngineConfig,
               gamma_max: int, tp: int = 1, mode: str = "graph", overhead: EngineOverhead = EngineOverhead()):
    """The step tables of the engine without and with speculation for this workload's lengths."""
    max_ctx = prompt.max + output.max + gamma_max + 1
    kw = dict(max_batch=engine.max_num_seqs, max_context=max_ctx,
              max_prefill=engine.max_batched_tokens if engine.chunked_prefill else max(prompt.max, 2),
              gamma_max=gamma_max, tp=tp, mode=mode, overhead=overhead, typical_context=prompt.mean + output.mean / 2)
    return build_step_table(tgt, None, latency, **kw), build_step_table(tgt, proposer, latency, **kw)


def default_rates(off, prompt: LengthDist, output: LengthDist, engine: EngineConfig, n: int = 9) -> list[float]:
    """Request rates from light load to past the no-speculation engine's decode capacity (the full
    batch's tokens per second over the mean output length), geometric."""
    b = engine.max_num_seqs
    cap = b / off.step_s(b, prompt.mean + output.mean / 2, 0, 0, 0.0) / output.mean
    return [float(f"{x:.3g}") for x in np.geomspace(0.05 * cap, 1.2 * cap, n)]


def run_serve(r: ServeRequest) -> dict:
    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    if r.target is None:
        raise InputError("--target is required")
    from specperf.perfmodel.specdec.registry import check_method, make_method

    key = check_method(r.method)
    if key == "draft_model" and r.draft is None:
        raise InputError("--draft is required with --method draft (or pick a method without a draft model)")
    if key != "draft_model" and r.draft is not None:
        raise InputError(f"draft={r.draft!r} is only for --method draft; method={r.method!r} proposes without one",
                         value=r.draft, allowed="no --draft")
    if key != "draft_model" and getattr(make_method(key), "acceptance_from_traces_only", False) and r.acceptance is None:
        raise InputError(f"method={r.method!r} takes acceptance from traces only: give --acceptance FILE "
                         "(from `specperf calibrate acceptance`)", value=r.method, allowed="--acceptance FILE")
    if r.trace is not None:
        prompt, output = read_trace(r.trace)
    else:
        prompt, output = parse_length(r.prompt_len, "prompt-len"), parse_length(r.output_len, "output-len")
    acc = _acceptance(r.alpha, r.acceptance)
    tgt = resolve_model(r.target, r.dtype_bytes)
    tgt.check_tp(r.tp)
    hw = resolve_gpu(r.gpu)
    prov = build_provider(hw, profile=r.profile, analytical=r.analytical, modes=[r.mode],
                          allow_gpu_mismatch=r.allow_gpu_mismatch)
    max_ctx = prompt.max + output.max + max(r.gammas) + 1
    notes = []
    if max_ctx > tgt.max_positions:
        notes.append(f"prompt + output + γ + 1 = {max_ctx} exceeds {tgt.name}'s max_positions={tgt.max_positions}; "
                     "latency is still modelled")
    drf = resolve_model(r.draft, r.dtype_bytes) if key == "draft_model" else None
    method = make_method(key, draft=drf) if drf is not None else make_method(key)
    proposer = Speculation(method, acc, prov.draft, tgt, r.mode)
    if drf is not None and drf.vocab != tgt.vocab:
        notes.append(f"draft vocab {drf.vocab} differs from target vocab {tgt.vocab}: engines need a shared tokenizer")
    engine = EngineConfig(r.max_num_seqs, r.max_batched_tokens, r.chunked_prefill)
    off, spec = tables_for(tgt, proposer, prov.target, prompt, output, engine, max(r.gammas), r.tp, r.mode,
                           EngineOverhead(r.step_overhead_s, r.seq_overhead_s, r.proposal_overhead_s,
                                          r.seq_proposal_overhead_s))
    from specperf.perfmodel.specs.memory import memory_needed_bytes

    typical = int(prompt.mean + output.mean)
    need = memory_needed_bytes(tgt, drf, r.tp, r.max_num_seqs, typical, max(r.gammas))
    if need > hw.memory_bytes:
        fit = max(1, int(r.max_num_seqs * hw.memory_bytes / need))
        notes.append(f"{r.max_num_seqs} sequences of {typical} tokens need {need / 1e9:.0f} GB on {hw.name} (weights + "
                     f"KV cache): about {fit} fit; KV capacity is not modelled (no preemption), lower --max-num-seqs")
    base = Workload(prompt, output, r.requests, rate_per_s=1.0, seed=r.seed) if r.load_kind == "rate" else \
        Workload(prompt, output, r.requests, users=1, seed=r.seed)
    doc = sweep(off, spec, base, list(r.loads), list(r.gammas), engine, Slo(r.slo_ttft_s, r.slo_tpot_s),
                r.load_kind, r.intervals, r.seed)
    for row in doc["rows"]:  # JSON keys are strings
        if "gamma" in row:
            row["gamma"] = {str(k): v for k, v in row["gamma"].items()}
    doc["schedule_context"] = prompt.mean + output.mean / 2
    doc["workload"] = base.describe().split(", ", 1)[1]
    doc["title"] = f"{proposer.name} → {tgt.name} on {hw.name} (tp={r.tp}, {r.mode})"
    doc.update({"target": tgt.name, "draft": drf.name if drf else None, "method": key, "gpu": hw.name,
                "tp": r.tp, "mode": r.mode, "gammas": list(r.gammas), "acceptance": acc.describe(),
                "engine_overhead": {"per_step_s": r.step_overhead_s, "per_seq_s": r.seq_overhead_s,
                                    "per_proposal_s": r.proposal_overhead_s,
                                    "per_seq_proposal_s": r.seq_proposal_overhead_s},
                "sources": spec.sources, "latency": getattr(prov.target, "name", "")})
    if not r.intervals:
        notes.append("--no-intervals: no latency-band intervals")
    elif doc["bands"]["target"] == 0:
        notes.append("the target's latency source carries no error band: intervals are empty")
    if acc.per_position and max(r.gammas) > (acc.observed_positions or 0):
        notes.append(f"γ > {acc.observed_positions} extrapolates acceptance (the last observed rate repeats)")
    notes.append("speculation 'pays' at a load when its median request latency (arrival to last token, best "
                 "constant γ) is below the engine's without speculation; TPOT, TTFT and throughput beside it")
    doc["notes"] = notes
    return doc
