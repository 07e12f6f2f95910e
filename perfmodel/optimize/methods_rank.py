"""Speculation methods side by side for one target (issue 28): a separate draft model, EAGLE-style
heads, MTP, Medusa, n-gram lookup — per mode × batch × context the best γ of each, its speedup with
a 90 % interval, the probability that it is the fastest method, and that it beats the draft model.

Everything comes through the method seam (perfmodel.specdec.methods): each method's IterationCosts
from the latency provider and its tokens per iteration from its acceptance. The Monte Carlo is the
one of perfmodel.specdec.uncertainty: a source kind's latency error is one draw shared by every
component it answers (so the target's verification, common to all methods, errs the same way for
all), each method's proposer takes the draw of its own source kind, the baseline its own draw;
acceptance is logit-normal per method, independent across methods. Each draw re-optimises γ per
method, so the probabilities compare best achievable speedups. Key assumption: methods share the
target, its tp and the engine's overhead; only proposal, catch-up and acceptance differ.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.specdec.head_alpha import is_prior
from specperf.perfmodel.specdec.cell_bands import baseline_query, cell_factors, fill, kind_normals, stream
from specperf.perfmodel.specdec.uncertainty import LEVEL, N_DRAWS, alpha_draws, fallback_band, tokens_from_draws, tree_draws


def _cell(c, tpi, batch: int) -> dict:
    """Point answer of one method at one (batch, context) cell (c: IterationCosts.at)."""
    it = c.iteration_s()
    sp = tpi * c.baseline_s() / it
    k = int(np.argmax(sp))
    return {"gamma": int(c.gamma[k]), "gamma_index": k, "speedup": float(sp[k]), "tokens_per_iteration": float(tpi[k]),
            "iteration_s": float(it[k]), "proposal_s": float(c.proposal_s[k]), "catchup_s": float(c.catchup_s[k]),
            "verify_s": float(c.verify_s[k]), "throughput_tok_s": batch * float(tpi[k]) / float(it[k]),
            "baseline_tok_s": batch / float(c.baseline_s())}


def acceptance_kind(acc) -> str:
    """How a row's acceptance was obtained: 'published prior', 'stated' or 'measured'."""
    if is_prior(acc):
        return "published prior"
    return "stated" if str(acc.source).startswith(("--alpha", "--acceptance")) else "measured"


def _acc_notes(acc, gamma: int) -> list[str]:
    out = []
    if is_prior(acc):
        out.append(f"acceptance is a published figure carried over, not measured for this target: {acc.source}")
    if acc.extrapolated(gamma):
        out.append(f"α beyond position {acc.observed_positions} repeats the last value (extrapolated to γ={gamma})")
    return out


def rank_methods(entries: list[dict], target, provider, batch, context, gammas, tp: int, modes,
                 draft_provider=None, n: int = N_DRAWS, seed: int = 0, level: float = LEVEL) -> list[dict]:
    """entries: [{"label", "method" (SpeculationMethod), "acceptance" (AcceptanceModel)}]. Returns one
    table per (mode, batch, context): rows ranked by speedup, each with speedup_lo/hi, p_best and
    p_beats_draft (against the entry whose method is the draft model, when there is one)."""
    g = np.asarray(gammas)
    out = []
    for mode in modes:
        costs = [e["method"].costs(provider, target, batch, context, g, tp, mode, draft_provider or provider)
                 for e in entries]
        tpi = [np.asarray(e["method"].tokens_per_iteration(e["acceptance"], g), dtype=float) for e in entries]
        fb = fallback_band(mode)
        for bi, b in enumerate(np.atleast_1d(batch)):
            for ci, cx in enumerate(np.atleast_1d(context)):
                roles, f = _cell_roles(entries, provider, draft_provider, target, b, cx, g, tp, mode, fb, n, seed)
                fbase = f["baseline"][:, None]
                best = np.empty((len(entries), n))
                rows = []
                for j, (e, c, t) in enumerate(zip(entries, costs, tpi)):
                    cc = c.at(bi, ci)
                    row = {"method": e["method"].name, "label": e["label"], "describe": e["method"].describe(),
                           **_cell(cc, t, int(b)), "acceptance": e["acceptance"].describe()}
                    rng = stream(seed, f"alpha:{e['label']}")  # each entry's own: independent of the others
                    ab, note = alpha_draws(e["acceptance"], n, int(g.max()), rng)
                    if e["method"].name.endswith("_tree"):  # rank acceptance: Dirichlet draws where counted
                        td = tree_draws(e["method"], g, n, rng)
                        note = None
                        if td is None:
                            td = t[None]
                            note = "token-tree acceptance (per depth and rank) has no interval: taken as exact"
                    else:
                        td = tokens_from_draws(ab, g)
                    it = cc.iteration_s(f[f"m{j}"], f["target"], f["overhead"])  # (n, G): each γ its own band
                    sp = td * cc.baseline_s(fbase) / it
                    best[j] = sp.max(axis=-1)
                    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
                    row["speedup_lo"], row["speedup_hi"] = (float(v) for v in np.percentile(best[j], q))
                    row["latency_band"] = _widest(roles[f"m{j}"])
                    if e["method"].name.endswith("_tree"):  # its tokens come from the --tree rows, not the chain's α
                        row["acceptance_is"] = "tree file"
                        row["acceptance"] = "per-depth, per-rank acceptance from --tree" + (
                            "" if getattr(e["method"], "rank_n", None) is None else " (with path counts)")
                        row["notes"] = list(cc.notes) + ([note] if note else [])
                    else:
                        row["acceptance_is"] = acceptance_kind(e["acceptance"])
                        row["notes"] = list(cc.notes) + ([note] if note else []) + _acc_notes(e["acceptance"],
                                                                                               row["gamma"])
                    rows.append(row)
                win = np.argmax(best, axis=0)
                ref = next((j for j, e in enumerate(entries) if e["method"].name == "draft_model"), None)
                for j, row in enumerate(rows):
                    row["p_best"] = float(np.mean(win == j))
                    row["p_beats_draft"] = (float(np.mean(best[j] > best[ref])) if ref is not None and j != ref
                                            else None)
                    row["verdict"] = "speculate" if row["speedup"] > 1.0 else "do not speculate"
                order = sorted(range(len(rows)), key=lambda j: (-rows[j]["speedup"], j))
                ranked = [dict(rows[j], rank=r + 1) for r, j in enumerate(order)]
                out.append({"mode": mode, "batch": int(b), "context": int(cx), "level": level, "draws": n,
                            "target_band": _widest(roles["target"]), "rows": ranked})
    return out


def _widest(r: dict) -> dict:
    j = int(np.argmax(r["band"]))
    return {"kind": str(np.asarray(r["kind"])[j]), "band": float(np.asarray(r["band"])[j])}


def _cell_roles(entries, provider, draft_provider, target, b, cx, g, tp, mode, fb, n: int, seed: int):
    """One (batch, context) cell's roles over γ from its own sources (specdec.cell_bands) — each
    method's proposer as role m<j>, the target's verification and overhead, the baseline — and their
    (n, G) factors (one stream per source kind; the baseline its own)."""
    roles = {}
    for j, e in enumerate(entries):
        q = lambda sel, e=e: e["method"].costs(provider, target, [b], [cx], g[sel[0]], tp, mode,
                                               draft_provider or provider).sources
        got, _ = fill(q, (g.size,), ("draft", "target", "overhead") if j == 0 else ("draft",), fb)
        roles[f"m{j}"] = got["draft"]
        roles.update({k: v for k, v in got.items() if k != "draft"})
    base, _ = fill(baseline_query(provider, target, [b], [cx], tp, mode), (1, 1), ("baseline",), fb)
    roles["baseline"] = {"kind": base["baseline"]["kind"][0], "band": base["baseline"]["band"][0]}
    lat = {k: v for k, v in roles.items() if k != "baseline"}
    z = kind_normals([k for v in lat.values() for k in v["kind"]], n, seed)
    f = {k: cell_factors(v, z, n) for k, v in lat.items()}
    zb = stream(seed, "baseline").standard_normal(n)
    f["baseline"] = cell_factors(roles["baseline"], {str(k): zb for k in roles["baseline"]["kind"]}, n)[:, 0]
    return roles, f
