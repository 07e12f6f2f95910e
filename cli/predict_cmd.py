"""`specperf predict`: resolve inputs, call perfmodel.specdec.predict, render a table or one JSON document."""
from __future__ import annotations

import numpy as np

from .common import UsageError, print_json


def _gammas(gamma: str, gamma_max: int) -> list[int]:
    from perfmodel.specdec.predict import check_gammas
    from perfmodel.specdec.maths import GAMMA_MAX

    if not 1 <= gamma_max <= GAMMA_MAX:
        raise UsageError(f"gamma-max={gamma_max} is not allowed; must be in 1..{GAMMA_MAX}")
    if gamma.strip().lower() == "auto":
        return list(range(1, gamma_max + 1))
    try:
        values = [int(part) for part in gamma.split(",")]
    except ValueError:
        raise UsageError(f"gamma={gamma!r} is not allowed; give an integer in 1..{GAMMA_MAX}, a list, or auto") from None
    return sorted(set(check_gammas(values).tolist()))


def acceptance_model(alpha, acceptance):
    from perfmodel.specdec.acceptance import AcceptanceModel, check_alpha

    if acceptance is not None:
        if alpha is not None:
            raise UsageError("give --alpha or --acceptance, not both")
        return AcceptanceModel.load(acceptance)
    if alpha is None:
        raise UsageError("--alpha is required (α in [0, 1)), or --acceptance FILE")
    return AcceptanceModel(alpha=check_alpha(alpha), source="--alpha")


def run_cost_ratio(c, alpha, gammas, json_out):
    from perfmodel.specdec.acceptance import check_alpha
    from perfmodel.specdec.maths import arithmetic_factor, speedup_cost_ratio, tokens_per_iteration

    if alpha is None:
        raise UsageError("--cost-ratio needs --alpha")
    a = check_alpha(alpha)
    if not np.isfinite(c) or c < 0:
        raise UsageError(f"cost-ratio={c!r} is not allowed; c = t_draft/t_target must be ≥ 0")
    g = np.array(gammas)
    s = speedup_cost_ratio(a, g, c)
    tpi = tokens_per_iteration(a, g)
    k = int(np.argmax(s))
    rows = [{"gamma": int(gi), "tokens_per_iteration": float(t), "speedup": float(si),
             "arithmetic_factor": float(arithmetic_factor(a, gi, c)), "optimal": i == k}
            for i, (gi, t, si) in enumerate(zip(g, tpi, s))]
    doc = {"mode": "cost-ratio", "alpha": a, "cost_ratio": c, "optimal_gamma": int(g[k]),
           "speedup": float(s[k]), "tokens_per_iteration": float(tpi[k]),
           "throughput_tok_s": None, "iteration_s": None, "rows": rows,
           "sources": {"latency": "none: Leviathan et al. 2023 cost-ratio form, speedup = E[tokens]/(γc+1)"}}
    if json_out:
        print_json(doc)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"speedup at α={a}, c={c} (Leviathan et al. 2023, Thm 3.8)")
    for col in ("γ", "tokens/iter", "speedup", "arith. ops ×", ""):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(str(r["gamma"]), f"{r['tokens_per_iteration']:.3f}", f"{r['speedup']:.2f}",
                  f"{r['arithmetic_factor']:.2f}", "◀ optimal" if r["optimal"] else "")
    Console().print(t)


def run(*, target, draft, gpu, alpha, acceptance, gamma, gamma_max, batch, context, tp, dtype_bytes,
        mode, profile, analytical, cost_ratio, json_out, calibration=None):
    gammas = _gammas(gamma, gamma_max)
    if cost_ratio is not None:
        if target is not None or draft is not None or profile is not None:
            raise UsageError("--cost-ratio answers without models; drop --target/--draft/--profile or drop --cost-ratio")
        return run_cost_ratio(cost_ratio, alpha, gammas, json_out)
    if target is None or draft is None:
        raise UsageError("--target and --draft are required (or --cost-ratio with --alpha)")
    if mode not in ("graph", "eager"):
        raise UsageError(f"mode={mode!r} is not allowed; use graph or eager")
    for name, v in (("batch", batch), ("context", context), ("tp", tp)):
        if v <= 0:
            raise UsageError(f"{name}={v} is not allowed; {name} must be a positive integer")
    from perfmodel.latency.providers import build_provider
    from perfmodel.specdec.document import prediction_document
    from perfmodel.specdec.predict import predict
    from perfmodel.specs.catalog import resolve_model
    from perfmodel.specs.hardware import resolve_gpu

    acc = acceptance_model(alpha, acceptance)
    tgt = resolve_model(target, dtype_bytes)
    drf = resolve_model(draft, dtype_bytes)
    hw = resolve_gpu(gpu)
    prov = build_provider(hw, profile=profile, analytical=analytical, calibration=calibration, modes=[mode])
    p = predict(tgt, drf, prov.target, acc, gammas, [batch], [context], tp=tp, mode=mode, draft_latency=prov.draft)
    doc = prediction_document(p, tgt, drf, hw.name, tp, acc)
    rows, best = doc["rows"], doc["rows"][int(p.optimal_index[0, 0])]
    if json_out:
        print_json(doc)
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"{drf.name} → {tgt.name} on {hw.name} (tp={tp}, {mode}, batch {batch}, context {context})")
    for col in ("γ", "tokens/iter", "draft ms", "verify ms", "overhead ms", "iteration ms [90 %]",
                "tokens/s [90 %]", "speedup [90 %]", ""):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(str(r["gamma"]), f"{r['tokens_per_iteration']:.2f}", f"{r['t_draft_s'] * 1e3:.3f}",
                  f"{r['t_verify_s'] * 1e3:.3f}", f"{r['overhead_s'] * 1e3:.3f}", 
                  f"{r['iteration_s'] * 1e3:.2f} [{r['iteration_s_lo'] * 1e3:.2f}–{r['iteration_s_hi'] * 1e3:.2f}]",
                  f"{r['throughput_tok_s']:.0f} [{r['throughput_tok_s_lo']:.0f}–{r['throughput_tok_s_hi']:.0f}]",
                  f"{r['speedup']:.2f} [{r['speedup_lo']:.2f}–{r['speedup_hi']:.2f}]",
                  ("◀ optimal" if r["optimal"] else "") + (" (α extrapolated)" if r["extrapolated_acceptance"] else ""))
    con.print(t)
    con.print(f"autoregressive baseline: {best['baseline_tok_s']:.1f} tokens/s; "
              f"target step {best['t_target_s'] * 1e3:.3f} ms; c = {doc['cost_ratio']:.3f}")
    for k_, v in p.sources.items():
        con.print(f"  source {k_}: {v}")
    u = doc["uncertainty"]
    bands = ", ".join(f"{k} {v['kind']} ±{v['band']:.1%}" for k, v in u["latency_bands"].items())
    con.print(f"90 % intervals: Monte Carlo ({u['draws']} draws) over latency bands ({bands}) and acceptance; "
              f"P(γ={doc['optimal_gamma']} is best) = {u['optimal_gamma_probability']:.2f}, robust γ = {u['robust_gamma']}"
              + (" — near-tie" if u["near_tie"] else ""))
    for n in list(p.notes) + u["notes"]:
        con.print(f"[yellow]note:[/yellow] {n}")
