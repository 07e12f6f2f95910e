"""`optimize --method a,b,c`'s tables: speculation methods side by side per (mode, batch, context), the
answer (γ*, speedup, its 90 % range, P(best), P>draft, where α came from) first, components below."""
from __future__ import annotations



def _p(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _x(v) -> str:
    return "–" if v is None else f"{v:.2f}×"


def render_methods(con, sec: dict, wide: bool, escape) -> None:
    """`--method a,b,c`: one table per (mode, batch, context), methods ranked by best speedup; the answer
    (method, γ*, speedup, range, P) first, components stacked below when the terminal is narrow."""
    from .tables import Col, render as fit

    cols = [Col("#", repeat=True), Col("method", "left", repeat=True, text=True), Col("γ*", key=True),
            Col("speedup", key=True), Col("90% range", key=True), Col("P(best)", key=True), Col("P>draft", key=True),
            Col("α is", "left", key=True), Col("tok/iter"), Col("propose ms"), Col("verify ms"), Col("tok/s")]
    for t in sec["tables"]:
        rows = [[str(r["rank"]), escape(r["label"] if r["method"] == "draft_model" else r["method"])
                 + (" (draft)" if r["method"] == "draft_model" else ""), str(r["gamma"]), _x(r["speedup"]),
                 f"{r['speedup_lo']:.2f}–{r['speedup_hi']:.2f}", _p(r["p_best"]), _p(r["p_beats_draft"]),
                 {"published prior": "published", "measured": "measured", "stated": "stated", "tree file": "tree"}.get(
                     r.get("acceptance_is", ""), "?"),
                 f"{r['tokens_per_iteration']:.2f}", f"{r['proposal_s'] * 1e3:.3f}", f"{r['verify_s'] * 1e3:.3f}",
                 f"{r['throughput_tok_s']:.1f}"] for r in t["rows"]]
        fit(con, f"methods · {t['mode']} · batch {t['batch']} · context {t['context']} · 90 % range, "
                 f"{t['draws']} draws", cols, rows, wide, title_justify="left")
    priors = sorted({r["method"] for t in sec["tables"] for r in t["rows"] if r.get("acceptance_is") == "published prior"})
    if priors:
        con.print(f"  [yellow]note[/yellow] α of {escape(', '.join(priors))}: published figures carried over (papers "
                  "named in --json 'acceptance'), not measured for this target; --acceptance METHOD=FILE replaces them")
    con.print(f"  best method over the {sec['mode']}-mode cells (geometric mean): {escape(sec['winner'])}; "
              "P(best) / P>draft: share of Monte Carlo draws (latency bands × acceptance intervals) in which the "
              "method's best speedup is the highest / beats the draft model's")
