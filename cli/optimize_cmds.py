"""`specperf optimize`: rank draft candidates (catalog, config.json, shapes, a design space) by the
best speedup over lookahead, per mode × batch × context; print the lookahead policy and break-even
map; optionally write a vLLM / SGLang / Hugging Face configuration for the winner.

Module top imports only stdlib, typer and cli.common (fast start); perfmodel loads inside the command.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as o
from .common import UsageError, handle_errors, parse_floats, parse_names, print_json


def _acceptance_items(values: list[str]) -> list[tuple[str | None, str]]:
    out = []
    for v in values:
        for item in filter(None, (s.strip() for s in v.split(","))):
            name, sep, path = item.rpartition("=")
            if sep and (path.endswith(".json") or Path(path).exists() or _is_number(path)) and name:
                out.append((name, path))
            else:
                out.append((None, item))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# Work budgets of one search, measured on the 2-core CI machine (issue 25): named drafts are timed
# cell by cell (~3 ms a draft × cell: 2 drafts × 1,024 cells took 7 s), so at most 8,192 draft-cells
# (~25 s); a design space is vectorised (262,144 shapes × 32 cells × γ ≤ 12 = 10^8 elements took
# 6.5 s and 0.57 GB), so at most 2^28 shape × cell × γ elements (~13 s, ~1.2 GB).
MAX_DRAFT_CELLS = 8192
MAX_DESIGN_WORK = 2 ** 28


def _check_work(req, methods) -> None:
    """Refuse an oversize search before any latency is computed, naming the longest list flag."""
    cells = {"context": req.context, "batch": req.batch}
    named = len(req.drafts) * len(req.modes) * max(len(methods), 1)
    if named:
        o.check_work(cells, named, MAX_DRAFT_CELLS, "draft-cells",
                     per=f"{len(req.drafts)} drafts × {len(req.modes)} mode(s) × {max(len(methods), 1)} method(s)")
    if req.layers is not None:
        space = {"layers": req.layers, "d-model": req.d_models or [0], "ffn-ratio": req.ffn_ratios or [0],
                 "head-dim": req.head_dims or [0], "kv-heads": req.kv_heads or [0]}
        o.check_work({**space, **cells}, len(req.modes) * req.gamma_max, MAX_DESIGN_WORK, "design-space elements",
                     per=f"{len(req.modes)} mode(s) × γ ≤ {req.gamma_max}")


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def optimize(
        target: Annotated[str, typer.Option(help="Target model: catalog name, config.json, NAME:field=value.")],
        drafts: Annotated[Optional[str], typer.Option(help="Draft candidates a,b,c (catalog names, config.json paths, NAME:field=value shapes).")] = None,
        layers: Annotated[Optional[str], typer.Option(help="Design space: draft depths, e.g. 1..32 or 1,2,4,8.")] = None,
        d_model: Annotated[Optional[str], typer.Option("--d-model", help="Design space: widths, e.g. 1024,2048,4096.")] = None,
        ffn_ratio: Annotated[Optional[str], typer.Option(help="Design space: d_ff/d_model ratios (d_ff rounded to 256). Default 2.6875 (LLaMA-7B).")] = None,
        head_dim: Annotated[Optional[str], typer.Option(help="Design space: head dimensions (default: 128, or 64 where 128 does not divide d_model).")] = None,
        kv_heads: Annotated[Optional[str], typer.Option(help="Design space: KV heads (default: as many as query heads).")] = None,
        gpu: o.Gpu = "h100-sxm",
        profile: o.Profile = None,
        analytical: o.Analytical = False,
        calibration: o.Calibration = None,
        tp: o.Tp = 1,
        batch: o.Batch = "1,8,32",
        context: o.Context = "512",
        gamma_max: o.GammaMax = 12,
        acceptance: Annotated[Optional[list[str]], typer.Option(help="Measured acceptance JSON per draft: DRAFT=FILE (or FILE with a 'draft' field); per method METHOD=FILE or a stated METHOD=α (eagle3=0.8; heads otherwise take published figures). Repeatable.")] = None,
        alpha_model: Annotated[Optional[str], typer.Option(help="(draft, α) pairs (JSON/CSV) to fit the α model, or fitted coefficients (JSON).")] = None,
        alpha: Annotated[Optional[float], typer.Option(help="One stated α for every draft candidate without a measured or stated value (and methods without published figures: medusa, mlp_speculator); EAGLE/EAGLE-3/MTP heads take published figures unless --acceptance METHOD=FILE|α.")] = None,
        mode: o.Mode = "both",
        reference: Annotated[Optional[str], typer.Option(help="Draft to compare against (gain and α needed to match it).")] = None,
        policy_draft: Annotated[Optional[str], typer.Option(help="Draft for the lookahead policy/export (default: best geometric-mean speedup).")] = None,
        top: Annotated[int, typer.Option(help="Rows per ranked table.")] = 5,
        dtype: o.Dtype = "fp16",
        emit: Annotated[Optional[str], typer.Option(help="Write a configuration for the winner: vllm, sglang or hf.")] = None,
        emit_out: Annotated[Optional[str], typer.Option(help="File for --emit (default: print it).")] = None,
        policy_only: Annotated[bool, typer.Option("--policy-only", help="Print only the lookahead policy, break-even map and export (no ranked tables).")] = False,
        allow_tokenizer_mismatch: Annotated[bool, typer.Option("--allow-tokenizer-mismatch", help="Let --emit write a configuration for a draft whose vocabulary differs from the target's.")] = False,
        allow_gpu_mismatch: o.AllowGpuMismatch = False,
        draft_catchup: o.DraftCatchup = False,
        method: o.Method = "draft",
        tree: o.Tree = None,
        tree_depth: o.TreeDepth = None,
        wide: o.Wide = False,
        fmt: o.Format = "table",
        json_out: o.Json = False,
    ):
        """Find the draft and lookahead that make speculative decoding fastest, per mode, batch and context."""
        from specperf.perfmodel.specdec.acceptance import check_alpha
        from specperf.perfmodel.specdec.alpha_model import read_alpha_document
        from specperf.perfmodel.optimize.export import check_engine, write_export
        from specperf.perfmodel.specs.hardware import resolve_gpu
        from specperf.perfmodel.optimize.run import OptimizeRequest, run
        from specperf.perfmodel.latency.providers import build_provider
        from specperf.perfmodel.specdec.maths import GAMMA_MAX

        from .common import dtype_bytes

        modes = o.modes(mode)
        batches, contexts = o.batch_context(batch, context)
        by = dtype_bytes(dtype)
        if emit is not None:
            check_engine(emit)
        if emit_out is not None and emit is None:
            raise UsageError("--emit-out needs --emit vllm|sglang|hf")
        o.positive(gamma_max, "gamma-max", GAMMA_MAX)
        o.positive(top, "top", 10000)
        o.positive(tp, "tp")
        fmt = o.out_format(fmt, json_out)
        json_out = fmt == "json"
        if alpha is not None:
            check_alpha(alpha)
        methods = o.methods(method)
        if "draft" in methods and drafts is None and layers is None and d_model is None:
            raise UsageError("no draft candidates: give --drafts and/or a design space (--layers with --d-model), "
                             "or --method without draft (e.g. eagle3,ngram)")
        req = OptimizeRequest(
            target=target, drafts=parse_names(drafts, "drafts") if drafts is not None else [],
            layers=o.int_list(layers, "layers") if layers is not None else None,
            d_models=o.int_list(d_model, "d-model") if d_model is not None else None,
            ffn_ratios=parse_floats(ffn_ratio, "ffn-ratio") if ffn_ratio is not None else None,
            head_dims=o.int_list(head_dim, "head-dim") if head_dim is not None else None,
            kv_heads=o.int_list(kv_heads, "kv-heads") if kv_heads is not None else None,
            acceptance=_acceptance_items(acceptance or []),
            alpha_doc=read_alpha_document(alpha_model) if alpha_model else None, alpha=alpha,
            batch=batches, context=contexts, gamma_max=gamma_max,
            tp=tp, modes=modes, top=top, reference=reference,
            policy_draft=policy_draft, emit=emit, dtype_bytes=by, allow_tokenizer_mismatch=allow_tokenizer_mismatch,
            draft_catchup=draft_catchup, methods=methods)
        _check_work(req, methods)
        if tree_depth is not None and tree is None:
            raise UsageError("--tree-depth needs --tree FILE")
        if tree is not None:
            from specperf.perfmodel.specdec.trees import read_tree_acceptance

            if not set(methods) & {"draft", "eagle", "eagle3", "mtp"}:
                raise UsageError(f"method={method!r} drafts no tree; --tree works with draft, eagle, eagle3, mtp",
                                 value=method, allowed="draft, eagle, eagle3, mtp")
            req.tree, req.tree_n = read_tree_acceptance(tree)
            req.tree_depth = o.positive(tree_depth, "tree-depth", 64) if tree_depth is not None else None
        hw = resolve_gpu(gpu)
        req.memory_bytes = hw.memory_bytes
        prov = build_provider(hw, profile=profile, analytical=analytical, calibration=calibration,
                              modes=req.modes, hint="; pass --mode to match it", allow_gpu_mismatch=allow_gpu_mismatch)
        provider = prov.target
        doc = run(req, provider, prov.draft)
        doc["gpu"] = hw.name
        doc["fits_memory"] = all(c["fits_memory"] for pol in doc["policy"] for c in pol["cells"]) if doc["policy"] else None
        doc["latency_provider"] = getattr(provider, "name", type(provider).__name__)
        if emit and emit_out:
            doc["export"]["written_to"] = str(write_export(doc["export"], emit_out))
        if json_out:
            print_json(doc)
            return
        if fmt == "csv":  # one line per ranked draft and cell; the rest of the document is --json's
            from .tables import scalars, write_csv

            write_csv([{"mode": rk["mode"], "batch": rk["batch"], "context": rk["context"],
                        "baseline_tok_s": rk["baseline_tok_s"], **scalars(r)} for rk in doc["rankings"] for r in rk["rows"]])
            return
        render(doc, policy_only=policy_only, wide=wide)


# ---- human output ------------------------------------------------------------------------------
def _p(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}×"


def render(doc: dict, policy_only: bool = False, wide: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table as _Table

    from .tables import Col, console, render as fit

    def Table(title: str, **kw):  # noqa: N802 — titles carry literal [brackets]
        return _Table(title=escape(title) if title else None, **kw)

    con = console(wide)
    con.print(f"[bold]specperf optimize[/bold] — target {doc['target']} on {doc['gpu']} (tp={doc['tp']}), "
              f"γ searched 1..{doc['gammas'][-1]}; latency: {doc['latency_provider']}")
    con.print(f"candidates: {doc['n_candidates']} ({doc['n_design_points']} design-space points"
              + (f"; {len(doc['design_skipped'])} invalid combinations skipped" if doc["design_skipped"] else "")
              + ")")
    am = doc["alpha_model"]
    if am:
        coef = ", ".join(f"{k}={v:+.3f}" for k, v in am["coefficients"].items())
        con.print(f"α model ({am['kind']}): {am['formula']}; {coef}; fitted {', '.join(am['fitted'])}; "
                  f"residual sd {am['resid_sd']:.3f}; source: {am['source']}")
    ref = doc.get("reference")
    for rk in [] if policy_only else doc["rankings"]:
        # the answer first (rank, draft, γ*, tok/s, speedup and its range); the rest stacked to fit
        cols = [Col("#", key=True, repeat=True), Col("draft", "left", key=True, repeat=True, text=True),
                Col("γ*", key=True), Col("tok/iter"), Col("draft %"), Col("verify %"), Col("tok/s", key=True),
                Col("speedup", key=True), Col("95% range (γ)", key=True), Col("α"), Col("α is", "left")]
        cols += [Col("P>next")] + ([Col("vs ref"), Col("P>ref"), Col("α to tie ref")] if ref else [])
        rows = []
        for r in rk["rows"]:
            interval = f"{r['speedup_lo']:.2f}–{r['speedup_hi']:.2f} ({r['gamma_lo']}–{r['gamma_hi']})"
            cells = [str(r["rank"]), escape(r["draft"]) + (" ◀ ref" if r["is_reference"] else ""),
                     str(r["gamma"]), f"{r.get('tokens_per_iteration', 0):.2f}", _pct(r.get("draft_share")),
                     _pct(r.get("verify_share")), f"{r['throughput_tok_s']:.1f}" if r["throughput_tok_s"] else "–",
                     _x(r["speedup"]), interval,
                     f"{r['alpha']:.3f}" + (f" [{r['alpha_lo']:.2f}–{r['alpha_hi']:.2f}]"
                                             if r["alpha_hi"] > r["alpha_lo"] else ""),
                     r["alpha_kind"] + (" (by position)" if r["alpha_by_position"] else "")]
            cells.append(_p(r.get("p_beats_next")))
            if ref:
                g = r.get("gain_vs_reference")
                need = r.get("alpha_to_match_reference")
                cells += ["–" if g is None else f"{100 * g:+.0f}%", _p(r.get("p_beats_reference")),
                          "unreachable" if need is None else f"{need:.3f}"]
            rows.append(cells)
        fit(con, escape(f"{rk['mode']} mode · batch {rk['batch']} · context {rk['context']} · autoregressive "
                        f"{rk['baseline_tok_s']:.1f} tok/s" + (f" · ref = {ref}" if ref else "")), cols, rows, wide,
            title_justify="left")
        con.print("  P>next / P>ref: share of Monte Carlo draws (latency bands × acceptance intervals) in which the "
                  "row's best speedup beats the next row's / the reference's")
        for r in rk["rows"][:1]:
            if r.get("gamma_near_tie"):
                con.print(f"  γ near-tie for {escape(r['draft'])}: γ*={r['gamma']} wins in {r['p_gamma_is_best']:.0%} "
                          f"of draws; robust γ = {r['robust_gamma']}")
        for r in rk["rows"]:
            for n in r["notes"]:
                con.print(f"  [yellow]note[/yellow] {r['draft']}: {n}")
    if doc.get("mode_comparison") and not policy_only:
        con.print("[bold]graph vs eager[/bold]: best draft per mode"
                  + (f"; gains over {ref} in eager mode from CUDA graphs, from the best draft, and both" if ref else ""))
        cols = [Col("batch", key=True, repeat=True), Col("context", key=True, repeat=True),
                Col("graph: best (γ)", "left", key=True, text=True), Col("graph tok/s", key=True),
                Col("eager: best (γ)", "left", key=True, text=True), Col("eager tok/s", key=True)] + (
            [Col("ref graph tok/s"), Col("ref eager tok/s"), Col("+graphs"), Col("+draft"), Col("+both")] if ref else [])
        rows = []
        for row in doc["mode_comparison"]:
            g, e = row["graph"], row["eager"]
            cells = [str(row["batch"]), str(row["context"]), f"{g['best_draft']} ({g['gamma']})",
                     f"{g['throughput_tok_s']:.1f}", f"{e['best_draft']} ({e['gamma']})", f"{e['throughput_tok_s']:.1f}"]
            if ref:
                gain = row["gain_over_reference_in_eager"]
                cells += [f"{g['reference_tok_s']:.1f}", f"{e['reference_tok_s']:.1f}",
                          f"{100 * gain['use_cuda_graphs']:+.0f}%", f"{100 * gain['use_best_draft']:+.0f}%",
                          f"{100 * gain['both']:+.0f}%"]
            rows.append([escape(c) for c in cells])
        fit(con, None, cols, rows, wide)
    for pol in doc["policy"]:
        ctxs = sorted({c["context"] for c in pol["cells"]})
        con.print(f"[bold]lookahead policy and break-even map[/bold] — {pol['mode']} mode, draft "
                  f"{escape(pol['draft']['draft'])} (α {pol['alpha']:.3f}, {pol['alpha_kind']}); "
                  "cell: γ* · speedup \\[95% range] · verdict (margin = speedup − 1)")
        cols = [Col("batch", key=True, repeat=True)] + [Col(f"context {c}", "left", key=i == 0, text=True)
                                                          for i, c in enumerate(ctxs)]
        rows = []
        for b in sorted({c["batch"] for c in pol["cells"]}):
            cells = [str(b)]
            for c in ctxs:
                x = next(y for y in pol["cells"] if y["batch"] == b and y["context"] == c)
                cells.append(escape(f"γ={x['gamma']} · {x['speedup']:.2f}× [{x['speedup_lo']:.2f}–{x['speedup_hi']:.2f}]"
                                    f" · {x['verdict']} ({x['margin']:+.2f})"
                                    + ("" if x["fits_memory"] else " · exceeds GPU memory")))
            rows.append(cells)
        fit(con, None, cols, rows, wide)
        be = pol["break_even"]
        con.print(f"  speculation loses (speedup < 1 even at the top of its range) in {be['n_off']} of "
                  f"{be['n_cells']} cells"
                  + (f"; {be['n_exceed_memory']} cell(s) exceed one GPU's memory" if be["n_exceed_memory"] else "")
                  + f"; one γ for engines that take a single value: {pol['export_gamma']}")
    if doc.get("methods"):
        from .methods_table import render_methods

        render_methods(con, doc["methods"], wide, escape)
    ex = doc.get("export")
    if ex:
        con.print(f"[bold]{ex['engine']} configuration[/bold] for {ex['draft']} (γ={ex['gamma']}, {ex['mode']} mode):")
        if ex.get("written_to"):
            con.print(f"  written to {ex['written_to']}")
        else:
            con.print(ex["text"], markup=False, highlight=False)
        if ex.get("command"):
            con.print(f"  command: {ex['command']}", markup=False, highlight=False)
        for n in ex["notes"]:
            con.print(f"  [yellow]note[/yellow] {n}")
        con.print(f"  docs: {', '.join(ex['docs'])}")
    for n in doc["notes"]:
        con.print(f"[yellow]note[/yellow] {n}")
