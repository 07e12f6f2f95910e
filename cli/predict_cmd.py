"""`specperf predict`: resolve inputs, call perfmodel.specdec.predict over every (batch, context)
cell, render one table per cell or one JSON document (a list under `cells` when several).

`--gamma auto` searches 1..gamma-max and widens (doubling, cap GAMMA_CAP) until every cell's
optimum is interior, saying so when the cap binds.
"""
from __future__ import annotations

import numpy as np

from . import options as o
from .common import UsageError, print_json

GAMMA_CAP = 64  # the i.i.d. optimum is unimodal in γ; beyond 64 drafts are never useful in practice


def auto_search(evaluate, gammas, gamma_max: int):
    """evaluate(list of γ) → (result, optimal γ per cell array). Fixed lists run once; auto widens
    1..gamma_max by doubling until no optimum sits on the top γ or GAMMA_CAP is reached."""
    if gammas is not None:
        return evaluate(gammas)[0], []
    hi = gamma_max
    while True:
        res, best = evaluate(list(range(1, hi + 1)))
        if not np.any(np.asarray(best) == hi) or hi >= GAMMA_CAP:
            break
        hi = min(2 * hi, GAMMA_CAP)
    notes = []
    if np.any(np.asarray(best) == hi) and hi >= GAMMA_CAP:
        notes.append(f"the γ search cap {GAMMA_CAP} binds: the optimum may lie above γ={GAMMA_CAP}")
    elif hi > gamma_max:
        notes.append(f"--gamma auto widened the search to 1..{hi} (the optimum was at the top of 1..{gamma_max})")
    return res, notes


def acceptance_model(alpha, acceptance):
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel, check_alpha

    if acceptance is not None:
        if alpha is not None:
            raise UsageError("give --alpha or --acceptance, not both")
        return AcceptanceModel.load(acceptance)
    if alpha is None:
        raise UsageError("--alpha is required (α in [0, 1)), or --acceptance FILE")
    return AcceptanceModel(alpha=check_alpha(alpha), source="--alpha")


def run_cost_ratio(c, acc, gammas, gamma_max, json_out):
    from specperf.perfmodel.specdec.maths import arithmetic_factor

    if not np.isfinite(c) or c < 0 or c > 1e6:
        raise UsageError(f"cost-ratio={c!r} is not allowed; c = t_draft/t_target must be in 0..1e6",
                         value=c, allowed="a number in 0..1e6")

    def evaluate(gs):
        g = np.array(gs)
        tpi = acc.tokens_per_iteration(g)
        s = tpi / (g * c + 1)
        return (g, tpi, s), np.array([g[int(np.argmax(s))]])

    (g, tpi, s), notes = auto_search(evaluate, gammas, gamma_max)
    k = int(np.argmax(s))
    speculate = s[k] > 1.0
    rows = [{"gamma": int(gi), "tokens_per_iteration": float(t), "speedup": float(si),
             "arithmetic_factor": float(arithmetic_factor(acc.alpha, gi, c)), "optimal": bool(i == k and speculate)}
            for i, (gi, t, si) in enumerate(zip(g, tpi, s))]
    if not speculate:
        notes.append("no γ beats autoregressive decoding at this cost ratio: do not speculate")
    doc = {"mode": "cost-ratio", "alpha": acc.alpha, "cost_ratio": c, "optimal_gamma": int(g[k]) if speculate else 0,
           "verdict": "speculate" if speculate else "do not speculate",
           "speedup": float(s[k]) if speculate else 1.0, "tokens_per_iteration": float(tpi[k]) if speculate else 1.0,
           "throughput_tok_s": None, "iteration_s": None, "rows": rows, "notes": notes,
           "fits_memory": None, "memory_needed_bytes": None,  # no models: memory is not modelled
           "sources": {"latency": "none: Leviathan et al. 2023 cost-ratio form, speedup = E[tokens]/(γc+1)",
                       "acceptance": acc.describe()}}
    if json_out:
        print_json(doc)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"speedup at α={acc.alpha:.4g}, c={c} (Leviathan et al. 2023, Thm 3.8)")
    for col in ("γ", "tokens/iter", "speedup", "arith. ops ×", ""):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(str(r["gamma"]), f"{r['tokens_per_iteration']:.3f}", f"{r['speedup']:.2f}",
                  f"{r['arithmetic_factor']:.2f}", "◀ optimal" if r["optimal"] else "")
    con = Console()
    con.print(t)
    for n in notes:
        con.print(f"[yellow]note:[/yellow] {n}")


def speculation_method(name: str, drf, catchup: bool, tree: str | None, tree_depth: int | None):
    """The SpeculationMethod of --method (and --tree): one clear error for combinations that mean nothing."""
    from specperf.perfmodel.specdec.registry import make_method

    if name == "draft":
        m = make_method("draft", draft=drf, catchup=catchup)
    else:
        if catchup:
            raise UsageError(f"--draft-catchup is for --method draft; method={name!r} always charges its own catch-up",
                             value=name, allowed="draft")
        m = make_method(name)
    if tree_depth is not None and tree is None:
        raise UsageError("--tree-depth needs --tree FILE")
    if tree is None:
        return m
    if not hasattr(m, "step_s"):
        raise UsageError(f"method={name!r} drafts no tree; --tree works with draft, eagle, eagle3, mtp",
                         value=name, allowed="draft, eagle, eagle3, mtp")
    from specperf.perfmodel.specdec.tree_method import TokenTree
    from specperf.perfmodel.specdec.trees import read_tree_acceptance

    if tree_depth is not None:
        o.positive(tree_depth, "tree-depth", BOUNDS_TREE_DEPTH)
    rows, rank_n = read_tree_acceptance(tree)
    return TokenTree(m, rows, tree_depth, rank_n)


BOUNDS_TREE_DEPTH = 64  # levels of a tree of at most 64 tokens


def _published(name: str):
    """A head's published acceptance (perfmodel.specdec.head_alpha) when nothing is measured or stated."""
    from specperf.perfmodel.specdec.head_alpha import published_acceptance
    from specperf.perfmodel.specdec.registry import check_method

    return None if name == "draft" else published_acceptance(check_method(name))


def run(*, target, draft, gpu, alpha, acceptance, gamma, gamma_max, batch, context, tp, dtype_bytes,
        mode, profile, analytical, cost_ratio, json_out, calibration=None, allow_gpu_mismatch=False,
        draft_catchup=False, method="draft", tree=None, tree_depth=None, wide=False, fmt=None):
    fmt = fmt or ("json" if json_out else "table")
    json_out = fmt == "json"
    gammas = o.gamma_list(gamma, gamma_max)
    name = o.methods(method, several=False)[0]
    if cost_ratio is not None:
        if target is not None or draft is not None or profile is not None:
            raise UsageError("--cost-ratio answers without models; drop --target/--draft/--profile or drop --cost-ratio")
        o.batch_context(batch, context)  # unused by the cost-ratio form, but never accepted when invalid
        if batch != "1" or context != "512" or tp != 1:
            raise UsageError("--cost-ratio answers per sequence, without batch, context or tp; drop --batch/--context/"
                             f"--tp (got batch={batch!r}, context={context!r}, tp={tp})",
                             value={"batch": batch, "context": context, "tp": tp}, allowed="the defaults")
        return run_cost_ratio(cost_ratio, acceptance_model(alpha, acceptance), gammas, gamma_max, json_out)
    if name != "draft" and draft is not None:
        raise UsageError(f"--draft is only for --method draft; method={name!r} proposes without a draft model",
                         value=name, allowed="draft")
    from specperf.perfmodel.specdec.registry import make_method

    if getattr(make_method(name) if name != "draft" else None, "acceptance_from_traces_only", False) and acceptance is None:
        raise UsageError(f"method={name!r} takes acceptance from traces only: give --acceptance FILE "
                         "(from specperf calibrate acceptance), not --alpha", value=name, allowed="--acceptance FILE")
    if target is None or (draft is None and name == "draft"):
        raise UsageError("--target and --draft are required (or --method NAME, e.g. eagle3 or ngram, without "
                         "--draft, or --cost-ratio with --alpha)")
    modes = o.modes(mode)
    batches, contexts = o.batch_context(batch, context)
    o.positive(tp, "tp")
    _check_work(batches, contexts, len(gammas) if gammas is not None else gamma_max, len(modes))
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    acc = _published(name) if alpha is None and acceptance is None else None
    acc = acc or acceptance_model(alpha, acceptance)
    tgt = resolve_model(target, dtype_bytes)
    drf = resolve_model(draft, dtype_bytes) if draft is not None else None
    tgt.check_tp(tp)
    hw = resolve_gpu(gpu)
    meth = speculation_method(name, drf, draft_catchup, tree, tree_depth)
    docs, sources = [], {}
    for md in modes:
        cell_docs, src = _predict_mode(tgt, drf, hw, acc, md, gammas, gamma_max, batches, contexts, tp,
                                       profile, analytical, calibration, allow_gpu_mismatch, draft_catchup, meth)
        docs += cell_docs
        sources[md] = src
    if json_out:
        from specperf.perfmodel.specdec.document import cells_document

        print_json(cells_document(docs))
        return
    if fmt == "csv":
        from .tables import scalars, write_csv

        write_csv([{"target": d["target"], "draft": d.get("draft"), "method": d.get("method"), "gpu": hw.name, "tp": tp,
                    "mode": d["mode"], "batch": d["batch"], "context": d["context"], **scalars(r)}
                   for d in docs for r in d["rows"]])
        return
    render(docs, sources, hw.name, tp, wide)


def _check_work(batches, contexts, n_gamma: int, n_modes: int) -> None:
    """Refuse before allocating: cells × γ × Monte Carlo draws × modes within o.MAX_WORK."""
    from specperf.perfmodel.specdec.uncertainty import N_DRAWS

    o.check_work({"context": contexts, "batch": batches}, n_gamma * N_DRAWS * n_modes,
                 per=f"{n_gamma} γ × {N_DRAWS} Monte Carlo draws × {n_modes} mode(s)")


def _predict_mode(tgt, drf, hw, acc, md, gammas, gamma_max, batches, contexts, tp, profile, analytical,
                  calibration, allow_gpu_mismatch, draft_catchup=False, method=None):
    """One mode: the cell documents (batch-major) and the prediction's sources."""
    from specperf.perfmodel.latency.providers import build_provider
    from specperf.perfmodel.specdec.document import prediction_document
    from specperf.perfmodel.specdec.predict import predict

    prov = build_provider(hw, profile=profile, analytical=analytical, calibration=calibration, modes=[md],
                          allow_gpu_mismatch=allow_gpu_mismatch)

    def evaluate(gs):
        p = predict(tgt, drf, prov.target, acc, gs, batches, contexts, tp=tp, mode=md, draft_latency=prov.draft,
                    draft_catchup=draft_catchup, method=method)
        return p, p.optimal_gamma

    p, search_notes = auto_search(evaluate, gammas, gamma_max)
    for name in ("t_draft_s", "t_verify_s", "iteration_s", "t_target_s"):
        arr = getattr(p, name)
        if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
            raise UsageError(f"{name} is not positive for some γ (a calibration or profile gives a non-physical "
                             f"time, min {float(np.nanmin(arr)):.3g} s); re-fit the calibration or check the profile",
                             value=float(np.nanmin(arr)), allowed="> 0 s")
    from specperf.perfmodel.specdec.uncertainty import propagate

    _check_work(batches, contexts, len(p.gamma), 1)  # --gamma auto may have widened the search
    u = propagate(p, acc, method=method)  # once for every cell of this mode
    proposer = method.proposer_spec(tgt) if method is not None else drf
    docs = [prediction_document(p, tgt, proposer, hw.name, tp, acc, bi, ci, memory_bytes=hw.memory_bytes, u=u)
            for bi in range(len(batches)) for ci in range(len(contexts))]
    for d in docs:
        d["notes"] = search_notes + d["notes"]
    if hasattr(method, "rank_acceptance"):  # a token tree: its shape, and the best tree vs the best chain
        from specperf.perfmodel.specdec.tree_method import compare

        for d in docs:
            t = method.tree(max(d["best_gamma"], 1))
            d["tree"] = {"tokens": t.size, "levels": t.levels, "widths": list(t.widths()), "parent": list(t.parent),
                         "rank": list(t.rank)}
            depths = sorted({1, 2, 4, method.max_depth or 8})
            d["tree_vs_chain"] = compare(method.base, method.rank_acceptance, prov.target, tgt, d["batch"], d["context"],
                                         [int(r["gamma"]) for r in d["rows"]], depths, tp, md, prov.draft)
    return docs, p.sources


# the answer (γ, tokens/s, speedup, the optimum) in the first table; the components stacked below
PREDICT_COLS = (("γ", "right", True, True), ("tokens/s [90 %]", "right", True, False),
                ("speedup [90 %]", "right", True, False), ("", "left", True, False),
                ("tokens/iter", "right", False, False), ("propose ms", "right", False, False),
                ("verify ms", "right", False, False), ("overhead ms", "right", False, False),
                ("iteration ms [90 %]", "right", False, False))


def render(docs, sources, gpu, tp, wide: bool = False) -> None:
    from rich.markup import escape

    from .tables import Col, console, render as table

    con = console(wide)
    cols = [Col(n, j, key=k, repeat=r) for n, j, k, r in PREDICT_COLS]
    for doc in docs:
        who = doc["draft"] if doc.get("method", "draft_model") == "draft_model" else doc["method"]
        rows = [[str(r["gamma"]),
                 f"{r['throughput_tok_s']:.0f} [{r['throughput_tok_s_lo']:.0f}–{r['throughput_tok_s_hi']:.0f}]",
                 f"{r['speedup']:.2f} [{r['speedup_lo']:.2f}–{r['speedup_hi']:.2f}]",
                 ("◀ optimal" if r["optimal"] else "") + (" (α extrapolated)" if r["extrapolated_acceptance"] else ""),
                 f"{r['tokens_per_iteration']:.2f}", f"{r['proposal_s'] * 1e3:.3f}",
                 f"{r['t_verify_s'] * 1e3:.3f}", f"{r['overhead_s'] * 1e3:.3f}",
                 f"{r['iteration_s'] * 1e3:.2f} [{r['iteration_s_lo'] * 1e3:.2f}–{r['iteration_s_hi'] * 1e3:.2f}]"]
                for r in doc["rows"]]
        table(con, escape(f"{who} → {doc['target']} on {gpu} (tp={tp}, {doc['mode']}, batch {doc['batch']}, "
                          f"context {doc['context']})"), cols, rows, wide)  # names are user text, not markup
        best = doc["rows"][0]
        con.print(f"autoregressive baseline: {best['baseline_tok_s']:.1f} tokens/s; target step "
                  f"{best['t_target_s'] * 1e3:.3f} ms; c = {doc['cost_ratio']:.3f}; optimal γ = "
                  f"{doc['optimal_gamma']} ({doc['verdict']}); GPU memory needed "
                  f"{doc['memory_needed_bytes'] / 1e9:.1f} GB" + ("" if doc["fits_memory"] else " — DOES NOT FIT"))
        u = doc["uncertainty"]
        bands = ", ".join(f"{k} {v['kind']} ±{v['band']:.1%}" for k, v in u["latency_bands"].items())
        con.print(f"90 % intervals: Monte Carlo ({u['draws']} draws) over latency bands ({bands}) and acceptance; "
                  f"P(γ={doc['best_gamma']} is best) = {u['optimal_gamma_probability']:.2f}, robust γ = "
                  f"{u['robust_gamma']}" + (" — near-tie" if u["near_tie"] else ""))
        tc = doc.get("tree_vs_chain")
        if tc:
            bt, bc = tc["best_tree"], tc["best_chain"]
            con.print(f"token tree at γ*: {doc['tree']['tokens']} tokens, widths {doc['tree']['widths']}; best tree "
                      f"(depth ≤ {bt['max_depth']}): {bt['tree_tokens']} tokens, {bt['speedup']:.2f}× vs best chain "
                      f"γ={bc['gamma']}: {bc['speedup']:.2f}× ({100 * tc['tree_gain']:+.0f} %)")
        for n in doc["notes"] + u["notes"]:
            con.print(f"[yellow]note:[/yellow] {escape(str(n))}")
    for md, src in sources.items():
        for k_, v in src.items():
            con.print(escape(f"  source {k_}: {v}" + (f" ({md})" if len(sources) > 1 else "")))
