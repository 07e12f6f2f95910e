"""`specperf calibrate acceptance|latency`: fit acceptance from engine traces and latency
corrections from measured runs; print an lmfit-style report, or one JSON document with --json.

Imports only stdlib, typer and cli.common at module level; scipy loads inside the commands.
"""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .common import UsageError, finite, handle_errors, print_json

calibrate_app = typer.Typer(no_args_is_help=True, add_completion=False,
                            help="Fit acceptance (α by position) from engine traces and latency "
                                 "corrections from measured runs.")

FORMAT_HELP = ("auto | vllm-metrics (Prometheus /metrics text) | iterations (CSV/JSONL: gamma, accepted "
               "or pos_0.. flags, optional count, batch, context) | histogram (gpt-fast accept_counts) | "
               "mean-length (gamma + mean_accepted_tokens or mean_acceptance_length, optional n_drafts) | "
               "vllm-requests / sglang-requests / llamacpp-requests (per-request responses, JSON lines; "
               "the cluster column of iterations may be request, sequence or prompt)")


def _labels(items) -> dict:
    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"label={it!r} is not allowed; give NAME=VALUE, e.g. model_name=llama")
        out[k.strip()] = v.strip().strip('"')
    return out


def _write(path: str, doc: dict) -> None:
    """--out, atomically and symlink-safe (perfmodel.specs.safeio): a failed or concurrent write never
    leaves a truncated or mixed document."""
    from specperf.perfmodel.specs.safeio import write_json

    write_json(path, finite(doc), "--out")


@calibrate_app.command("acceptance")
@handle_errors
def acceptance(
    file: Annotated[str, typer.Argument(help="Trace file (see --format), or a live vLLM endpoint http://HOST:PORT/metrics.")],
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    out: Annotated[Optional[str], typer.Option(help="Write the AcceptanceModel JSON (for `predict --acceptance`).")] = None,
    model: Annotated[str, typer.Option(help="auto (per-position only if the LR test needs it) | iid | per-position.")] = "auto",
    gamma_max: Annotated[int, typer.Option(help="Predict tokens/iteration for γ = 1..gamma-max.")] = 8,
    label: Annotated[Optional[list[str]], typer.Option(help="Pick one vLLM series: NAME=VALUE (repeatable).")] = None,
    baseline: Annotated[Optional[str], typer.Option(help="Earlier /metrics scrape (file or URL) of the same server: count only what came after it (a restart in between is detected).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the parametric bootstrap for per-position intervals.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
):
    """Fit i.i.d. α and α by position (95 % intervals, LR test) from a speculative-decoding trace."""
    from specperf.calibration.acceptance_fit import fit_acceptance
    from specperf.calibration.traces import read_trace
    from specperf.perfmodel.specdec.maths import GAMMA_MAX

    if not 1 <= gamma_max <= GAMMA_MAX:
        raise UsageError(f"gamma-max={gamma_max} is not allowed; must be in 1..{GAMMA_MAX}")
    if not 0 <= seed < 2 ** 32:  # numpy's seed range; its own message names no flag
        raise UsageError(f"seed={seed} is not allowed; --seed takes an integer in 0..{2 ** 32 - 1}")
    data = read_trace(file, fmt, _labels(label), baseline=baseline)
    fit = fit_acceptance(data, range(1, gamma_max + 1), model=model, seed=seed)
    doc = fit.to_dict()
    if out:
        _write(out, doc)
    if json_out:
        print_json(doc)
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    typer.echo(fit.report.report())  # plain text: rich would re-wrap the report's columns
    t = Table(title="predicted tokens per iteration (95 % intervals; * = extrapolated)")
    for col in ("γ", "observed", "i.i.d. α", "α by position"):
        t.add_column(col, justify="right")
    for r in fit.predictions:
        iid = f"{r['iid']:.3f}" + (f" [{r['iid_ci'][0]:.3f}, {r['iid_ci'][1]:.3f}]" if r["iid_ci"] else "")
        pp = (f"{r['per_position']:.3f} [{r['per_position_ci'][0]:.3f}, {r['per_position_ci'][1]:.3f}]"
              + ("*" if r["per_position_extrapolated"] else "")) if "per_position" in r else "n/a"
        obs = f"{r['observed']:.3f}" if r["observed"] is not None else ""
        t.add_row(str(r["gamma"]), obs, iid + ("*" if r["iid_extrapolated"] else ""), pp)
    con.print(t)
    used = fit.model.extra["model"]
    con.print(f"model written for predict: {used}" + (f" → {out}" if out else " (use --out FILE to save it)"),
              markup=False)  # paths and sources are user text, not rich markup


@calibrate_app.command("latency")
@handle_errors
def latency(
    file: Annotated[str, typer.Argument(help="CSV of measured runs (or a `specperf validate --out` table): gamma, batch, context, iteration_s or "
                                             "tokens_per_s (+ alpha or tokens_per_iteration), target, draft, "
                                             "gpu, mode; optional tp, dtype.")],
    profile: Annotated[Optional[str], typer.Option(help="Measured LatencyTable the correction applies to (default: as predict).")] = None,
    analytical: Annotated[bool, typer.Option("--analytical", help="Calibrate the analytical model (ignore measured profiles).")] = False,
    gpu: Annotated[Optional[str], typer.Option(help="GPU for runs without a gpu column.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="graph or eager, for runs without a mode column.")] = None,
    fit: Annotated[str, typer.Option("--fit", help="Parameters to fit: overhead,draft,verify (any subset).")] = "overhead,draft,verify",
    out: Annotated[Optional[str], typer.Option(help="Write the correction JSON (for `predict --calibration`).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write --out even when the fit fails the quality gate "
                                                        "(p90 |%err| leave-one-out > 50 %).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
):
    """Fit per-iteration overhead and draft/verify time corrections to measured end-to-end runs."""
    from specperf.calibration.latency_fit import MAX_P90_ABS_PCT, fit_latency, quality_problems
    from specperf.perfmodel.latency.providers import build_provider

    params = [p.strip() for p in fit.split(",") if p.strip()]
    corr, reports = fit_latency(file, lambda hw: build_provider(hw, profile=profile, analytical=analytical).target,
                                params=params, gpu=gpu, mode=mode)
    provider = corr.provider
    doc = corr.to_dict()
    doc["profile"] = profile
    bad = quality_problems(corr)
    if out and bad and not force:
        raise UsageError(f"the correction fails the quality gate and is not written: {'; '.join(bad)}; "
                         "add runs, fit fewer parameters (--fit overhead) or pass --force to write it anyway",
                         value=bad[0], allowed=f"p90 |%err| ≤ {MAX_P90_ABS_PCT:.0f} %, or --force")
    doc["quality_gate"] = {"limit_p90_abs_pct": MAX_P90_ABS_PCT, "passed": not bad, "problems": bad}
    if out:
        _write(out, doc)
    if json_out:
        doc["fit_reports"] = [r.to_dict() for r in reports]
        print_json(doc)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console()
    for r in reports:
        typer.echo(r.report())
    t = Table(title=escape(f"latency correction against {provider}; |%err| of iteration_s as median / p90"))
    for col in ("gpu/mode", "runs", "k_draft", "k_verify", "+overhead ms", "before", "after", "LOO"):
        t.add_column(col, justify="right")
    pm = lambda v, s, f=1.0: f"{v * f:.3g}" + (f"±{s * f:.1g}" if s is not None else "")  # noqa: E731
    mp = lambda d: f"{d['median_abs_pct']:.2f}/{d['p90_abs_pct']:.2f}" if d["median_abs_pct"] is not None else "n/a"  # noqa: E731
    for e in corr.entries:
        x, er = e.extra, e.extra["error"]
        t.add_row(f"{e.gpu}/{e.mode}", str(x["n_runs"]), pm(e.k_draft, x["k_draft_stderr"]),
                  pm(e.k_verify, x["k_verify_stderr"]), pm(e.extra_overhead_s, x["extra_overhead_s_stderr"], 1e3),
                  mp(er["before"]), mp(er["after"]), mp(er["loo"]))
    con.print(t)
    con.print(escape(f"correction written → {out}") if out else "use --out FILE to save the correction for "
              "`specperf predict --calibration FILE`")


def register(app: typer.Typer) -> None:
    app.add_typer(calibrate_app, name="calibrate")
