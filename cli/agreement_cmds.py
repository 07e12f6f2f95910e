"""`specperf calibrate agreement`: record, with teacher forcing, whether a draft's proposals would be
accepted by a target over a prompt set (torch, CPU or GPU), or replay such a record; print tokens
per iteration at each γ with intervals clustered by prompt, or one JSON document with --json.

Imports only stdlib, typer and cli helpers at module level; torch and scipy load inside.
"""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as o
from .calibrate_cmds import calibrate_app
from .common import UsageError, finite, handle_errors, print_json

CKPT = "local Hugging Face LLaMA-family checkpoint directory (config.json + *.safetensors); never downloaded"


@calibrate_app.command("agreement")
@handle_errors
def agreement(
    record: Annotated[str, typer.Option(help="Agreement record CSV (+ .meta.json): written when --draft, --target and --prompts are given, else read and replayed.")],
    draft: Annotated[Optional[str], typer.Option(help="Draft model: " + CKPT + ".")] = None,
    target: Annotated[Optional[str], typer.Option(help="Target model: " + CKPT + ".")] = None,
    prompts: Annotated[Optional[str], typer.Option(help='Prompt set, JSON lines {"id", "domain", "tokens": [ids]}.')] = None,
    new_tokens: Annotated[int, typer.Option(help="Tokens the target generates per prompt (the record's length).")] = 128,
    temperature: Annotated[float, typer.Option(help="0: greedy continuation; T > 0: one sample at T and Σ min(p, q) recorded.")] = 0.0,
    max_rank: Annotated[int, typer.Option(help="Draft ranks recorded for token trees (beyond: −1).")] = 8,
    device: Annotated[str, typer.Option(help="cuda, cuda:N or cpu.")] = "cpu",
    dtype: o.Dtype = "fp32",
    seed: Annotated[int, typer.Option(help="Seed of the sampled continuation.")] = 0,
    gamma: Annotated[str, typer.Option(help="Lookaheads to replay: N, a list 1,2,4 or a range 1..8.")] = "1..8",
    skip_iterations: Annotated[int, typer.Option(help="Per prompt, iterations decoded but not counted (a benchmark's warm-up).")] = 0,
    iterations: Annotated[Optional[int], typer.Option(help="Per prompt, iterations counted after the skipped ones (default: to the record's end).")] = None,
    weighting: Annotated[str, typer.Option(help="iteration (pooled, as an engine counts) or prompt (mean of per-prompt ratios).")] = "iteration",
    new_prompts: Annotated[Optional[int], typer.Option(help="Prediction interval for the mean over this many new prompts (default: as many as the record); with --out the α intervals are widened so predict's band is that prediction interval.")] = None,
    out: Annotated[Optional[str], typer.Option(help="Write the AcceptanceModel JSON replayed at the largest γ (for `predict --acceptance`).")] = None,
    json_out: o.Json = False,
):
    """Agreement traces: per prompt and token, would the draft's proposal be accepted? Replayed at any γ."""
    gammas = o.int_list(gamma, "gamma", lo=1, hi=64)
    if weighting not in ("iteration", "prompt"):
        raise UsageError(f"weighting={weighting!r} is not allowed; use iteration or prompt")
    for name, v, lo in (("skip-iterations", skip_iterations, 0), ("iterations", iterations, 1),
                        ("new-prompts", new_prompts, 1), ("new-tokens", new_tokens, 2), ("max-rank", max_rank, 1)):
        if v is not None and not lo <= v <= 1_000_000:
            raise UsageError(f"{name}={v} is not allowed; must be in {lo}..1000000")
    if not 0 <= seed < 2 ** 32:  # torch's own message names no flag
        raise UsageError(f"seed={seed} is not allowed; --seed takes an integer in 0..{2 ** 32 - 1}",
                         value=seed, allowed=f"0..{2 ** 32 - 1}")
    if not 0.0 <= temperature <= 100.0 or temperature != temperature:
        raise UsageError(f"temperature={temperature!r} is not allowed; must be in [0, 100]")
    given = [x is not None for x in (draft, target, prompts)]
    if any(given) and not all(given):
        raise UsageError("give all of --draft, --target and --prompts to record, or none of them to replay --record")
    from specperf.calibration import agreement as ag
    from specperf.calibration import replay as rp

    if all(given):
        rec = _record(draft, target, prompts, new_tokens, temperature, max_rank, device, dtype, seed, record)
        ag.write_record(rec, record, "--record")
    rec = ag.read_record(record)
    table = [rp.interval(rp.replay(rec, g, skip=skip_iterations, iterations=iterations), weighting,
                         new_prompts=new_prompts) for g in gammas]
    doc = {"record": record, "kind": rec.kind(), "prompts": len(rec.spans()), "tokens": int(rec.prompt.size),
           "domains": sorted(set(map(str, rec.domain))), "tokens_per_iteration": table}
    if rec.kind() == "greedy" and len(rec.spans()) >= 2:  # within-prompt structure, clustered by prompt
        from specperf.calibration.hierarchical import fit_hierarchical, trials_from_record

        doc["hierarchical"] = fit_hierarchical(trials_from_record(rec), trend="log").to_dict()
    if out:
        from specperf.perfmodel.specs.safeio import write_json

        model = rp.acceptance_model(rec, max(gammas), skip=skip_iterations, iterations=iterations,
                                    weighting=weighting, gammas=gammas, new_prompts=new_prompts)
        write_json(out, finite(model.to_dict()), "--out")
        doc["acceptance_out"] = out
    if json_out:
        print_json(doc)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{record}: {doc['prompts']} prompts, {doc['tokens']} tokens, {doc['kind']} "
                    f"(90 % intervals clustered by prompt)")
    for col in ("γ", "tokens/iteration", "interval (mean)", "prediction (new prompts)", "between-prompt sd"):
        t.add_column(col, justify="right")
    for r in table:
        t.add_row(str(r["gamma"]), f"{r['tokens_per_iteration']:.3f}", "{:.3f}–{:.3f}".format(*r["ci"]),
                  "{:.3f}–{:.3f} (m={})".format(*r["prediction_interval"], r["new_prompts"]), f"{r['between_prompt_sd']:.3f}")
    Console().print(t)
    if "hierarchical" in doc:
        h = doc["hierarchical"]
        lag = h["within_prompt_logit_slopes"].get("previous token accepted")
        typer.echo(f"between-prompt sd (logit) {h['between_prompt_sd_logit']:.2f}; within prompts, a token after an "
                   f"accepted one: logit {lag['estimate']:+.2f} [{lag['ci'][0]:+.2f}, {lag['ci'][1]:+.2f}] (95 %, by prompt)"
                   if lag else f"between-prompt sd (logit) {h['between_prompt_sd_logit']:.2f}")


def _record(draft, target, prompts, new_tokens, temperature, max_rank, device, dtype, seed, record):
    from specperf.calibration import agreement as ag

    from .measuring import check_device, check_dtype, use_device

    check_device(device)
    dt, _ = check_dtype(dtype)
    use_device(device)
    from specperf.profiler.agreement import run_prompts
    from specperf.profiler.specloop_weights import load_decoder

    from pathlib import Path

    from specperf.perfmodel.specs.models import from_hf_config
    from specperf.perfmodel.specs.safeio import target_path

    target_path(record, "--record")  # a bad output and bad prompts are refused before any weights load
    ps = ag.read_prompts(prompts, vocab=from_hf_config(Path(target) / "config.json").vocab)
    _, d = load_decoder(draft, dtype=dt, device=device)
    spec_t, t = load_decoder(target, dtype=dt, device=device)
    res = run_prompts(d, t, ps, new_tokens, temperature, seed, max_rank, device)
    meta = {"draft": draft, "target": target, "prompts_file": prompts, "new_tokens": new_tokens,
            "temperature": temperature, "continuation": "greedy" if temperature == 0 else "sample",
            "max_rank": max_rank, "device": device, "dtype": dt, "seed": seed,
            "command": "specperf calibrate agreement"}
    return ag.make_record(res["ids"], res["domains"], res["greedy_match"], res["draft_rank"],
                          res["accept_prob"], meta)


def register(app: typer.Typer) -> None:
    """Nothing to add at the top level: the command hangs off `specperf calibrate`."""
