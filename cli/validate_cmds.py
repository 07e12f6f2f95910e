"""`specperf validate`: run real speculative decoding on this machine's GPU (or CPU), predict the same
points from a profile taken on the same device, and print per-point error, median/p90 absolute
error and the γ regret; `--out` saves the table (CSV + .meta.json), `--json` prints one document."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from . import options as o
from .common import UsageError, handle_errors, parse_floats, parse_names, print_json
from .measuring import check_device, check_dtype, parse_modes, use_device


MAX_SEED = 2 ** 32 - 1  # numpy's seed range (torch's is wider)
MAX_REPEATS, MAX_ITERATIONS = 1000, 10000  # timed repeats per point, iterations per repeat (time bound)


def run(*, target, draft, gamma, batch, alpha, context, mode, profile, device, dtype, gpu, repeats,
        iterations, seed, out, profile_out, json_out):
    import os
    import tempfile
    from pathlib import Path

    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specdec.maths import GAMMA_MAX

    if not 0 <= seed <= MAX_SEED:  # torch and numpy take different seed ranges; their messages name no flag
        raise UsageError(f"seed={seed} is not allowed; --seed takes an integer in 0..{MAX_SEED}",
                         value=seed, allowed=f"0..{MAX_SEED}")
    for name, v, hi in (("repeats", repeats, MAX_REPEATS), ("iterations", iterations, MAX_ITERATIONS)):
        if not 1 <= v <= hi:
            raise UsageError(f"{name}={v} is not allowed; --{name} takes an integer in 1..{hi}",
                             value=v, allowed=f"1..{hi}")
    gammas = o.int_list(gamma, "gamma", hi=GAMMA_MAX)
    batches, contexts = o.batch_context(batch, context)
    alphas = parse_floats(alpha, "alpha")
    modes = parse_modes(mode)
    dtype, by = check_dtype(dtype)
    for p in (out, profile_out):
        if p and (Path(p).suffix != ".csv" or not os.access(Path(p).parent if str(Path(p).parent) else ".", os.W_OK)):
            raise UsageError(f"out={p!r} is not allowed; give a writable .csv path")
    targets = tuple(resolve_model(t, by) for t in parse_names(target, "target"))
    drafts = tuple(resolve_model(d, by) for d in parse_names(draft, "draft"))
    check_device(device)

    from specperf.profiler import validate as V
    from specperf.profiler.validate_run import ValidationConfig, make_profile, run_validation

    import dataclasses

    cfg = ValidationConfig(targets=targets, drafts=drafts, gammas=tuple(gammas), batches=tuple(batches),
                           alphas=tuple(alphas), context=contexts[0], modes=modes, dtype=dtype,
                           device=device, repeats=repeats, iterations=iterations, seed=seed)
    cfgs = [dataclasses.replace(cfg, context=c) for c in contexts]
    for c in cfgs:
        c.check()  # bad input refused before anything is built or measured
    use_device(device)
    from rich.console import Console

    con = Console(stderr=True)
    command = "specperf validate " + " ".join(sys.argv[2:])
    done: list = []

    def on_row(row, rows):
        if out:
            V.save_rows(done + rows, out)
        if row["status"] == "ok" and not json_out:
            con.print(f"{row['target']} ← {row['draft']} {row['mode']} b={row['batch']} ctx={row['context']} "
                      f"γ={row['gamma']} α={row['alpha']}: {row['measured_tok_s']:.1f} tok/s measured, "
                      f"{row['predicted_tok_s']:.1f} predicted ({row['err_tok_s_expected']:+.1%})", highlight=False,
                      markup=False)  # model names are user text

    profiles, sources = [], {}
    for c in cfgs:  # one steady-state context per pass; a profile taken here covers that context
        prof = profile
        if prof is None:
            prof = profile_out or os.path.join(tempfile.mkdtemp(prefix="specperf-validate-"), "profile.csv")
            if len(cfgs) > 1:  # one profile per context (make_profile writes a fresh table)
                prof = str(Path(prof).with_name(f"{Path(prof).stem}_ctx{c.context}.csv"))
            con.print(f"profiling the shapes this validation needs at context {c.context} into {prof} …")
            make_profile(c, prof, command=command, console=con)
        rows_c, src = run_validation(c, prof, gpu=gpu, on_row=on_row, log=(lambda s_: con.print(s_, highlight=False)))
        done += rows_c
        sources.update(src)
        profiles.append(str(prof))
    rows, profile = done, profiles[0] if len(set(profiles)) == 1 else sorted(set(profiles))
    from specperf.profiler import env

    summary = V.summarize(rows)
    meta = env.metadata(device, dtype, command)
    meta.update(profile=profile, sources=sources, summary=summary, repeats=repeats,
                iterations=iterations, seed=seed, targets=V.TARGETS)
    if out:
        V.save_rows(rows, out, meta)
    if json_out:
        print_json({"meta": meta, "summary": summary, "regret": {m: V.gamma_regret([r for r in rows if r["mode"] == m])
                                                                for m in summary}, "rows": rows})
        return
    render(rows, summary, meta)


def render(rows, summary, meta) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(Console().width, 150))
    pairs = list(dict.fromkeys((r["target"], r["draft"]) for r in rows))
    for tgt, drf in pairs:
        from rich.markup import escape

        t = Table(title=escape(f"{drf} → {tgt} on {meta.get('gpu_name', '?')}: measured vs predicted"))
        for c in ("mode", "b", "γ", "α", "iter ms", "pred ms", "err iter", "tok/iter", "tok/s", "tok/s @E",
                  "pred tok/s", "err", "err @E"):
            t.add_column(c, justify="left" if c == "mode" else "right")
        for r in rows:
            if (r["target"], r["draft"]) != (tgt, drf):
                continue
            head = (r["mode"], str(r["batch"]), str(r["gamma"]), f"{r['alpha']:g}")
            if r["status"] != "ok":
                t.add_row(*head, "skipped", r["reason"][:60], *[""] * 7)
                continue
            t.add_row(*head, f"{r['measured_iteration_s'] * 1e3:.3f}", f"{r['predicted_iteration_s'] * 1e3:.3f}",
                      f"{r['err_iteration_s']:+.1%}", f"{r['measured_tokens_per_iteration']:.2f}",
                      f"{r['measured_tok_s']:.1f}", f"{r['measured_tok_s_expected']:.1f}",
                      f"{r['predicted_tok_s']:.1f}", f"{r['err_tok_s']:+.1%}", f"{r['err_tok_s_expected']:+.1%}")
        con.print(t)
    con.print("tok/s @E: batch × closed-form tokens per iteration / measured iteration time (latency only); "
              "err = predicted / measured − 1", highlight=False)
    for mode, s in summary.items():
        e, ee, reg = s["err_tok_s"], s["err_tok_s_expected"], s["gamma_regret"]
        con.print(f"[bold]{mode}[/bold]: {s['points']} points ({s['skipped']} skipped). tokens/s |error| "
                  f"at closed-form acceptance: median {ee['median_abs']:.1%}, p90 {ee['p90_abs']:.1%}; "
                  f"with realised acceptance: median {e['median_abs']:.1%}, p90 {e['p90_abs']:.1%}; "
                  f"γ regret mean {reg['mean']:.2%}, max {reg['max']:.2%} over {reg['groups']} groups "
                  f"(γ* hit rate {reg['gamma_hit_rate']:.0%})", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def validate(
        target: Annotated[str, typer.Option(help="Target model(s): catalog name, config.json, NAME:field=value; comma-separated.")],
        draft: Annotated[str, typer.Option(help="Draft model(s), same forms; must share the target's vocabulary.")],
        gamma: o.Gamma = "1,2,4,8",
        batch: o.Batch = "1,8,32",
        alpha: Annotated[str, typer.Option(help="Oracle acceptance rates α, e.g. 0.6,0.8.")] = "0.6,0.8",
        context: o.Context = "512",
        mode: o.Mode = "graph",
        profile: Annotated[Optional[str], typer.Option(help="LatencyTable measured on this device (default: profile now).")] = None,
        device: Annotated[str, typer.Option(help="cuda, cuda:N or cpu.")] = "cuda",
        dtype: Annotated[str, typer.Option(help="fp16, bf16 (or fp32 on CPU).")] = "fp16",
        gpu: Annotated[Optional[str], typer.Option(help="Catalog GPU for the analytical fallback (default: this device's).")] = None,
        repeats: Annotated[int, typer.Option(help="Timed repeats per point (median over them).")] = 5,
        iterations: Annotated[int, typer.Option(help="Iterations per repeat.")] = 6,
        seed: Annotated[int, typer.Option(help="Seed of the weights and the oracle.")] = 0,
        out: Annotated[Optional[str], typer.Option(help="Write the validation table here (.csv + .meta.json).")] = None,
        profile_out: Annotated[Optional[str], typer.Option(help="Keep the profile taken by this run here (.csv).")] = None,
        json_out: o.Json = False,
    ):
        """Measure speculative decoding for real and compare it with specperf's prediction."""
        run(target=target, draft=draft, gamma=gamma, batch=batch, alpha=alpha, context=context, mode=mode,
            profile=profile, device=device, dtype=dtype, gpu=gpu, repeats=repeats, iterations=iterations,
            seed=seed, out=out, profile_out=profile_out, json_out=json_out)
