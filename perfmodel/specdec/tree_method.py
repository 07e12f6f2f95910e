"""Token-tree speculation as a method: a proposer (a draft model or a feature head, anything with
`step_s(latency, target, batch, new_tokens, context, mode)`) drafts the best tree of γ tokens for
the given per-depth, per-rank acceptance (perfmodel.specdec.trees.best_tree), level by level; the
target verifies the γ+1 tokens at once under a tree mask. `compare` picks the best tree size and
depth under the measured cost curve and sets it beside the best chain.

Key assumptions: a tree of D levels costs D proposer steps: step 1 expands the root (one token, as a
chain's first step), step ℓ expands the width_{ℓ−1} tokens of level ℓ−1 in one forward (as EAGLE-2,
Sequoia and SGLang draft), timed at context + ℓ − 1; the deepest level is never expanded;
verifying N tree tokens costs a forward over N tokens (the tree mask changes which keys a query
sees, not the work of a dense attention kernel); the catch-up is the proposer's for a chain as deep
as the tree; the rank acceptance's interval comes from its effective path counts per depth (`rank_n`:
Dirichlet draws, the tree's shape held at the point tree), else it is taken as exact; a tree's own
work around its forwards (top-k per level, tree masks, path compaction) is the provider's
`tree_overhead_s` where it has one (the own loop's timings do), else a chain's overhead at γ (noted).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from specperf.perfmodel.specdec.methods import IterationCosts, grid
from specperf.perfmodel.specdec.trees import (best_tree, chain, expected_tokens, expected_tokens_draws, rank_draws,
                                     rank_matrix)


# said where the latency provider cannot price a tree's own work (no `tree_overhead_s`): in specperf's eager
# loop it cost 1.0-1.45 ms per iteration beyond a chain's overhead (trees of 6-24 tokens, 16-layer 7B-width
# target, H100, _gpu/r1: predictions 10.8-13.7 % too fast without it)
TREE_OVERHEAD_NOTE = ("token tree: its own per-iteration work (top-k per level, tree masks, gathers, path "
                      "compaction) is priced as a chain's overhead at γ — this latency source does not time it; "
                      "in eager mode it can add about 1 ms per iteration (scripts/specloop_eagle_tree.py times it)")


@lru_cache(maxsize=4096)
def _best(p: tuple, n: int, depth):
    return best_tree(np.asarray(p), n, depth)


@dataclass(frozen=True)
class TokenTree:
    base: object  # DraftModel or FeatureHead: supplies step_s and its chain costs
    rank_acceptance: tuple  # rows per depth of P(rank k child accepted | parent accepted)
    max_depth: int | None = None  # levels allowed (None: as many as tokens)
    rank_n: tuple | None = None  # effective paths per depth behind rank_acceptance (None: taken as exact)

    @property
    def name(self) -> str:
        return f"{self.base.name}_tree"

    def tree(self, n: int):
        return _best(tuple(map(tuple, np.atleast_2d(self.rank_acceptance).tolist())), int(n), self.max_depth)

    def costs(self, latency, target, batch, context, gammas, tp=1, mode="graph", proposer_latency=None) -> IterationCosts:
        pl = proposer_latency or latency
        B, C, G, zero = grid(batch, context, gammas)
        g = np.atleast_1d(np.asarray(gammas)).astype(int)
        prop = np.zeros_like(zero)
        first = np.zeros_like(zero)
        depth = np.zeros(g.size, dtype=int)
        sources: dict = {}
        memo: dict = {}  # (width, level) → step seconds: trees of different sizes share levels
        for j, n in enumerate(g):
            t = self.tree(n)
            depth[j] = t.levels
            widths = t.widths()
            for lvl, w in enumerate((1,) + widths[:-1]):  # step ℓ expands level ℓ−1 (the root first)
                if (w, lvl) not in memo:
                    st, src = self.base.step_s(pl, target, B, w, C + lvl, mode)
                    memo[(w, lvl)] = (np.asarray(st) + zero[..., :1])[..., 0]  # (batch, context)
                    sources.update(src)
                s = memo[(w, lvl)]
                prop[..., j] += s
                if lvl == 0:
                    first[..., j] = s
        chain = self.base.costs(latency, target, batch, context, np.maximum(depth, 1), tp, mode, pl)
        overhead, notes = self._overhead(latency, target, B, g, mode, zero, sources)
        return replace(chain, gamma=g, step_s=first, proposal_s=prop,
                       verify_s=latency.forward(target, B, G + 1, C, tp, mode).total_s + zero,
                       overhead_s=overhead, sources={**chain.sources, **sources},
                       notes=chain.notes + ("token tree: one proposer step per level (the root, then each level's "
                                            "tokens in one forward); verification of γ+1 tokens under a tree mask, "
                                            "priced as a causal verification of γ+1 tokens (true for tree-mask "
                                            "kernels such as FlashInfer's; an explicit-mask SDPA is slower)",) + notes)

    def _overhead(self, latency, target, B, g, mode, zero, sources):
        """(overhead (batch, context, γ), notes): a provider's `tree_overhead_s(spec, batch, tree, mode)`
        where it has one — a tree iteration's own work: per-level top-k, tree masks, gathers, accept/
        reject, compaction, the sync — else its chain overhead at γ, said in a note."""
        hook = getattr(latency, "tree_overhead_s", None)
        if hook is None:
            return latency.overhead_s(target, B, g[None, None, :], mode)[0] + zero, (TREE_OVERHEAD_NOTE,)
        out = np.zeros_like(zero)
        for j, n in enumerate(g):
            s, src = hook(target, B, self.tree(n), mode)
            out[..., j] = (np.asarray(s, dtype=float) + zero)[..., j]
            sources["overhead"] = src
        return out, ()

    def tokens_per_iteration(self, acceptance=None, gammas=()) -> np.ndarray:
        return np.array([expected_tokens(self.tree(int(n)), np.asarray(self.rank_acceptance)) for n in np.atleast_1d(gammas)])

    def tokens_draws(self, gammas, n: int, rng):
        """(n, G) tokens per iteration of each γ's (point) tree under Dirichlet draws of the rank
        acceptance (trees.rank_draws), or None when the acceptance carries no counts."""
        if self.rank_n is None:
            return None
        g = [int(x) for x in np.atleast_1d(gammas)]
        depth = max(max(self.tree(x).levels for x in g), np.atleast_2d(self.rank_acceptance).shape[0])
        dr = rank_draws(self.rank_acceptance, self.rank_n, n, rng, depth)
        return np.stack([expected_tokens_draws(self.tree(x), dr) for x in g], axis=1)

    def proposer_spec(self, target):
        return self.base.proposer_spec(target)

    def describe(self) -> str:
        return f"token tree drafted by {self.base.describe()}"

    def engine_config(self, target, gamma: int, tp: int) -> dict:
        t = self.tree(int(gamma))
        cfg = dict(self.base.engine_config(target, t.levels, tp))
        if cfg.get("sglang"):
            cfg["sglang"] = dict(cfg["sglang"], **{"--speculative-num-steps": t.levels,
                                                   "--speculative-eagle-topk": max(t.widths()),
                                                   "--speculative-num-draft-tokens": int(gamma) + 1})
        cfg["tree"] = {"parent": list(t.parent), "rank": list(t.rank), "widths": list(t.widths())}
        return cfg


def compare(base, rank_acceptance, latency, target, batch: int, context: int, budgets, depths, tp: int = 1,
            mode: str = "graph", proposer_latency=None) -> dict:
    """The best tree (size N ≤ max(budgets), depth ≤ D for D in depths) and the best chain of the same
    proposer at one (batch, context) cell, by speedup under the provider's cost curve."""
    budgets = [int(n) for n in budgets]
    a = rank_matrix(rank_acceptance, max(budgets))
    out = {"trees": []}
    best = None
    for D in depths:
        m = TokenTree(base, tuple(map(tuple, a)), int(D))
        c = m.costs(latency, target, [batch], [context], budgets, tp, mode, proposer_latency).at(0, 0)
        e = m.tokens_per_iteration(None, budgets)
        sp = e * c.baseline_s() / c.iteration_s()
        k = int(np.argmax(sp))
        row = {"max_depth": int(D), "tree_tokens": budgets[k], "levels": m.tree(budgets[k]).levels,
               "widths": list(m.tree(budgets[k]).widths()), "tokens_per_iteration": float(e[k]),
               "iteration_s": float(c.iteration_s()[k]), "speedup": float(sp[k])}
        out["trees"].append(row)
        if best is None or row["speedup"] > best["speedup"]:
            best = row
    chain_p = a[:, :1]  # a chain drafts the top candidate only: α_d = p[d][0]
    cc = base.costs(latency, target, [batch], [context], budgets, tp, mode, proposer_latency).at(0, 0)
    ec = np.array([expected_tokens(chain(n), chain_p) for n in budgets])
    spc = ec * cc.baseline_s() / cc.iteration_s()
    k = int(np.argmax(spc))
    out["best_tree"] = best
    out["best_chain"] = {"gamma": budgets[k], "tokens_per_iteration": float(ec[k]),
                         "iteration_s": float(cc.iteration_s()[k]), "speedup": float(spc[k])}
    out["tree_gain"] = best["speedup"] / out["best_chain"]["speedup"] - 1.0
    return out
