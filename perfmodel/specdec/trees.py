"""Token trees (Sequoia, Chen et al. 2024): expected accepted length of a tree from per-depth,
per-rank acceptance, a Monte Carlo of the same acceptance process, and the best tree of at most n
draft tokens (and at most D levels) by dynamic programming.

Acceptance (Sequoia's positional acceptance, extended by depth): p[d-1][k] is the probability that
the child of rank k (0 = the proposer's top candidate) of an accepted node at depth d-1 is the one
accepted at depth d; at most one child is accepted, so each row sums to ≤ 1. A chain uses rank 0
only: p[d-1][0] = α_d. Rows beyond the given depths repeat the last row; ranks beyond the given
ones have probability 0. Key identity: E[tokens per iteration] = 1 + Σ_v Π_{u ∈ path(v)} p[depth(u)-1][rank(u)]
(the 1 is the target's correction or bonus token), which `simulate` checks by sampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.specdec.acceptance import tokens_per_iteration_tree
from specperf.perfmodel.specs.models import SpecError, read_json

MAX_NODES = 64  # the γ bound of the command line: trees of at most 64 draft tokens


@dataclass(frozen=True)
class Tree:
    """Draft tokens in breadth-first order: parent index (-1 = the last verified token) and rank."""
    parent: tuple
    rank: tuple

    @property
    def size(self) -> int:
        return len(self.parent)

    @property
    def depth(self) -> tuple:
        d = []
        for p in self.parent:
            d.append(1 if p < 0 else d[p] + 1)
        return tuple(d)

    @property
    def levels(self) -> int:
        return max(self.depth, default=0)

    def widths(self) -> tuple:
        """Tokens per level (what one proposer step at that level processes)."""
        return tuple(int(w) for w in np.bincount(self.depth, minlength=self.levels + 1)[1:])

    def mask(self) -> np.ndarray:
        """(size, size) bool: node i attends to node j (its ancestors and itself) — the tree mask
        appended to a causal mask over the context for verification."""
        m = np.eye(self.size, dtype=bool)
        for i, p in enumerate(self.parent):
            if p >= 0:
                m[i] |= m[p]
        return m


def chain(n: int) -> Tree:
    return Tree(tuple(range(-1, n - 1)), (0,) * n)


def rank_matrix(p, depth: int) -> np.ndarray:
    """(depth, K) acceptance rows, the last given row repeated; checked: in [0, 1], rows sum ≤ 1."""
    try:
        a = np.atleast_2d(np.asarray(p, dtype=float))
    except (TypeError, ValueError):
        raise SpecError(f"rank acceptance={p!r} is not allowed; give equally long rows of numbers per depth") from None
    if a.ndim != 2 or a.size == 0 or np.any(~np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise SpecError(f"rank acceptance={np.asarray(p).tolist()!r} is not allowed; give rows of probabilities in [0, 1]")
    if np.any(a.sum(axis=1) > 1 + 1e-9):
        raise SpecError("rank acceptance: a row sums to more than 1; at most one child of a node is accepted, "
                        "so P(rank 0) + P(rank 1) + … ≤ 1")
    if a.shape[0] >= depth:
        return a[:depth]
    return np.vstack([a, np.repeat(a[-1:], depth - a.shape[0], axis=0)])


def expected_tokens(tree: Tree, p) -> float:
    """E[tokens per iteration] = 1 + Σ_v f(v) (Sequoia's F(T), plus the target's token): the one
    implementation, perfmodel.specdec.acceptance.tokens_per_iteration_tree (which the agreement
    replay of issue 29 also uses)."""
    return float(tokens_per_iteration_tree(p, tree.parent, tree.rank))


def simulate(tree: Tree, p, n_iterations: int, rng=None) -> np.ndarray:
    """Tokens per iteration of `n_iterations` sampled verifications: at each accepted node the rank
    of the accepted child is drawn from p (or none); the walk stops when that child is not in the tree."""
    rng = np.random.default_rng(rng)
    a = rank_matrix(p, max(tree.levels, 1))
    K = a.shape[1]
    child = -np.ones((tree.size + 1, K), dtype=np.int64)  # row 0: the root; row i+1: node i
    for i, (par, r) in enumerate(zip(tree.parent, tree.rank)):
        if r < K:
            child[par + 1, r] = i
    cum = np.cumsum(a, axis=1)
    node = np.full(n_iterations, -1, dtype=np.int64)
    alive = np.ones(n_iterations, dtype=bool)
    accepted = np.zeros(n_iterations, dtype=np.int64)
    for d in range(tree.levels):
        u = rng.random(n_iterations)
        k = (u[:, None] >= cum[d][None, :]).sum(axis=1)  # rank drawn; K = no child accepted
        nxt = np.where(k < K, child[node + 1, np.minimum(k, K - 1)], -1)
        alive &= nxt >= 0
        node = np.where(alive, nxt, node)
        accepted += alive
    return accepted + 1


def best_tree(p, n: int, max_depth: int | None = None) -> Tree:
    """The tree of at most n draft tokens and at most max_depth levels (default n) with the largest
    expected tokens per iteration, by dynamic programming over (depth, rank, nodes) as in Sequoia:
    V(d, m) = 1 + max over children ranks 0..c of Σ_k p[d][k]·V(d+1, m_k), Σ m_k ≤ m − 1."""
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_NODES:
        raise SpecError(f"tree size={n!r} is not allowed; give an integer in 1..{MAX_NODES}")
    D = n if max_depth is None else int(max_depth)
    if D < 1:
        raise SpecError(f"tree depth={max_depth!r} is not allowed; give an integer ≥ 1")
    a = rank_matrix(p, D)
    K = a.shape[1]
    M = n + 1  # nodes of a subtree including its root
    V = np.zeros((D + 2, M + 1))  # V[d, m]: subtree rooted at depth d (root = the verified token at d = 0)
    V[D, 1:] = 1.0  # no children below the deepest level
    choice = {}  # (d, k, r) → nodes given to the rank-k child's subtree (0: no child of rank k)
    for d in range(D - 1, -1, -1):
        H = np.zeros((K + 1, M))  # H[k, r]: best Σ_{j ≥ k} p[d][j]·V(d+1, m_j) with ≤ r nodes
        for k in range(K - 1, -1, -1):
            vk = a[d, k] * V[d + 1, 1:M]  # child subtree of s = 1..M-1 nodes
            for r in range(1, M):
                s = np.arange(1, r + 1)
                vals = vk[s - 1] + H[k + 1, r - s]
                j = int(np.argmax(vals))
                if vals[j] > 0.0:  # ties to "no child": no useless nodes
                    H[k, r], choice[(d, k, r)] = vals[j], int(s[j])
        V[d, 1:M + 1] = 1.0 + H[0, 0:M]
    parent, rank = [], []

    def build(d: int, node: int, m: int):
        kids, r = [], m - 1
        for k in range(K):
            s = choice.get((d, k, r), 0) if r > 0 else 0
            if s == 0:
                break
            kids.append((k, s))
            r -= s
        return kids

    frontier = [(0, -1, n + 1)]  # breadth-first: (depth of the node, its index, its subtree size)
    while frontier:
        nxt = []
        for d, idx, m in frontier:
            for k, s in build(d, idx, m):
                parent.append(idx)
                rank.append(k)
                nxt.append((d + 1, len(parent) - 1, s))
        frontier = nxt
    return Tree(tuple(parent), tuple(rank))


def rank_draws(p, n_eff, n: int, rng, depth: int | None = None) -> np.ndarray:
    """(n, depth, K) draws of the rank acceptance: each depth's row (p_0..p_{K−1}, none) from a
    Dirichlet of n_eff[d]·row + ½ (Jeffreys) — the uncertainty of a row measured on n_eff[d] effective
    paths (calibration.replay.depth_rank_effective_n). Depths beyond n_eff repeat its last entry.
    Key assumption: depths are drawn independently — a prompt effect that moves every depth together
    is carried only through the clustered (smaller) n_eff of each row."""
    a = rank_matrix(p, depth or np.atleast_2d(p).shape[0])
    m = np.asarray(n_eff, dtype=float)
    m = np.concatenate([m, np.full(max(a.shape[0] - m.size, 0), m[-1])])[:a.shape[0]]
    out = np.empty((n, a.shape[0], a.shape[1]))
    for d, row in enumerate(a):
        conc = m[d] * np.append(row, max(1.0 - row.sum(), 0.0)) + 0.5
        out[:, d] = rng.dirichlet(conc, n)[:, :-1]
    return out


def expected_tokens_draws(tree: Tree, draws: np.ndarray) -> np.ndarray:
    """(n,) expected tokens per iteration of `tree` under each (depth, K) draw of `draws` — the same
    sum as expected_tokens, vectorised over draws."""
    n, D, K = draws.shape
    reach = np.empty((n, tree.size))
    for j, (par, r, d) in enumerate(zip(tree.parent, tree.rank, tree.depth)):
        pr = draws[:, min(d, D) - 1, r] if r < K else np.zeros(n)
        reach[:, j] = pr if par < 0 else reach[:, par] * pr
    return 1.0 + reach.sum(axis=1)


def read_tree_acceptance(path) -> tuple[tuple, tuple | None]:
    """(rows, effective paths per depth or None) from a tree acceptance document; the counts
    ('rank_acceptance_n', written by `specperf calibrate agreement`) give the rows an interval."""
    rows = read_rank_acceptance(path)
    n = read_json(path, "tree acceptance file").get("rank_acceptance_n")
    if n is None:
        return rows, None
    try:
        m = tuple(float(x) for x in n)
    except (TypeError, ValueError):
        m = ()
    if not m or not all(np.isfinite(x) and x >= 0 for x in m):
        raise SpecError(f"tree acceptance file {str(path)!r}: 'rank_acceptance_n' must be a list of effective "
                        "path counts ≥ 0, one per depth")
    return rows, m


def read_rank_acceptance(path) -> tuple:
    """Rows per depth of per-rank acceptance from a JSON document {"rank_acceptance": [[…], …], "source": …}."""
    doc = read_json(path, "tree acceptance file")
    rows = doc.get("rank_acceptance") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) and r for r in rows):
        raise SpecError(f"tree acceptance file {str(path)!r} needs 'rank_acceptance': a list of rows per depth, "
                        "each a list of P(rank-k child accepted)")
    if len({len(r) for r in rows}) != 1:
        raise SpecError(f"tree acceptance file {str(path)!r}: rows must be equally long lists of numbers")
    a = rank_matrix(rows, len(rows))  # one clear error for values out of [0, 1] or rows summing above 1
    return tuple(map(tuple, a.tolist()))
