"""Replaying an agreement record (calibration.agreement) as speculative decoding at any lookahead γ
or token tree, with a protocol (iterations skipped and counted per prompt), into tokens per
iteration, α by position, and intervals clustered by prompt.

Chain replay: with per-token acceptance probabilities a_t along a prompt's forced continuation, an
iteration starting at token s accepts k draft tokens with probability Π_{i<k} a_{s+i}·(1 − a_{s+k})
(k < γ) or Π_{i<γ} a_{s+i} (k = γ), emits k + 1 tokens and starts the next iteration at s + k + 1;
the distribution of start positions is propagated exactly (greedy records, a ∈ {0, 1}: one path).
An iteration is counted only while s + γ ≤ N (the record decides all its proposals); the rest is
reported as `truncated`. Intervals treat the prompt as the cluster: the pooled ratio Σ tokens /
Σ iterations (per-iteration weighting, as an engine counts) or the mean of per-prompt ratios
(per-prompt weighting), each with a t interval on R − 1 degrees of freedom, and a prediction
interval for the mean over m new prompts drawn like these (√(1/R + 1/m)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from specperf.perfmodel.specdec.acceptance import AcceptanceModel

from .agreement import AgreementRecord
from .cluster import cluster_ci
from .data import TraceError

LEVEL = 0.90  # the coverage target is stated for 90 % intervals on tokens per iteration


def _outcomes(a: np.ndarray, gamma: int) -> np.ndarray:
    """P[s, k]: from start s (0 ≤ s ≤ N − γ), probability of accepting exactly k = 0..γ drafts."""
    n = a.size - gamma + 1
    if n <= 0:
        return np.zeros((0, gamma + 1))
    win = np.lib.stride_tricks.sliding_window_view(a, gamma)[:n]  # [n, γ]
    pre = np.concatenate([np.ones((n, 1)), np.cumprod(win, axis=1)], axis=1)  # Π_{i<k}, k = 0..γ
    out = pre.copy()
    out[:, :gamma] *= 1.0 - win
    return out


def replay_prompt(a, gamma: int, skip: int = 0, iterations: int | None = None):
    """(iterations, tokens, histogram[γ+1], truncated) expected over counted iterations of one prompt."""
    a = np.asarray(a, dtype=float)
    N = a.size
    P = _outcomes(a, gamma)
    start = np.zeros(N + gamma + 2)
    start[0] = 1.0
    hist = np.zeros(gamma + 1)
    its = tok = trunc = 0.0
    k = np.arange(gamma + 1)
    last = None if iterations is None else skip + iterations
    j = 0
    while start.sum() > 1e-12 and (last is None or j < last):
        valid = start[:P.shape[0]]
        trunc_j = start[P.shape[0]:].sum()
        flow = valid[:, None] * P  # [s, k]
        if j >= skip:
            h = flow.sum(axis=0)
            hist += h
            its += h.sum()
            tok += (h * (k + 1)).sum()
            trunc += trunc_j
        nxt = np.zeros_like(start)
        idx = np.arange(P.shape[0])[:, None] + k[None, :] + 1
        np.add.at(nxt, idx.ravel(), flow.ravel())
        start = nxt
        j += 1
    return its, tok, hist, trunc


@dataclass(frozen=True)
class Replay:
    gamma: int
    kind: str
    prompts: tuple
    domains: tuple
    iterations: np.ndarray  # (R,) expected counted iterations per prompt
    tokens: np.ndarray  # (R,) expected tokens emitted in them
    histogram: np.ndarray  # (R, γ+1) expected iterations with k accepted
    truncated: np.ndarray  # (R,) iteration mass dropped because the record ended
    protocol: dict

    @property
    def tokens_per_iteration(self) -> float:
        return float(self.tokens.sum() / self.iterations.sum())

    def per_prompt(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.tokens / self.iterations

    def position_counts(self):
        """Per prompt (R, γ): reached n_i and accepted k_i of draft position i = 1..γ."""
        tail = np.cumsum(self.histogram[:, ::-1], axis=1)[:, ::-1]  # Σ_{a ≥ j}
        return tail[:, :self.gamma], tail[:, 1:]

    def select(self, domain: str) -> "Replay":
        m = np.array([d == domain for d in self.domains])
        return Replay(self.gamma, self.kind, tuple(np.array(self.prompts, dtype=object)[m]), (domain,) * int(m.sum()),
                      self.iterations[m], self.tokens[m], self.histogram[m], self.truncated[m], self.protocol)


def replay(rec: AgreementRecord, gamma: int, kind: str = "auto", skip: int = 0,
           iterations: int | None = None) -> Replay:
    """Replay every prompt at γ: iterations 0..skip−1 are decoded but not counted, then `iterations`
    (default: until the record ends) are counted — the timed protocol of a benchmark."""
    if gamma < 1:
        raise TraceError(rec.meta.get("path", "record"), f"gamma={gamma} is not allowed; γ must be ≥ 1")
    kind = rec.kind(kind)
    rows = [replay_prompt(a, gamma, skip, iterations) for a in rec.acceptance(kind)]
    spans = rec.spans()
    its, tok, hist, tr = (np.array([r[i] for r in rows]) for i in range(4))
    return Replay(gamma, kind, tuple(s[0] for s in spans), tuple(s[1] for s in spans), its, tok, hist, tr,
                  {"skip_iterations": skip, "iterations": iterations})


def simulate(rec: AgreementRecord, gamma: int, kind: str = "auto", skip: int = 0, iterations: int | None = None,
             rng=None, repeats: int = 1) -> tuple[float, float]:
    """Direct simulation of speculative decoding along the record (a second implementation of
    `replay`): per iteration, draw each proposal's acceptance with its token's probability, stop at the
    first rejection. Returns (tokens, iterations) summed over prompts and repeats."""
    rng = rng or np.random.default_rng(0)
    tok = its = 0
    for _ in range(repeats):
        for a in rec.acceptance(kind):
            s, j = 0, 0
            while s + gamma <= a.size and (iterations is None or j < skip + iterations):
                ok = rng.random(gamma) < a[s:s + gamma]
                k = int(np.argmin(ok)) if not ok.all() else gamma
                if j >= skip:
                    tok, its = tok + k + 1, its + 1
                s, j = s + k + 1, j + 1
    return float(tok), float(its)


def replay_tree(rec: AgreementRecord, parents, ranks, skip: int = 0, iterations: int | None = None):
    """Greedy replay of a token tree from the draft_rank column: from start s the accepted path
    follows, depth by depth, the child whose rank is the target token's rank at that position.
    Returns (tokens, iterations) over all prompts (the record must reach the tree's depth)."""
    if rec.continuation != "greedy":
        raise TraceError(rec.meta.get("path", "record"), "tree replay needs a greedy record")
    child, depth = {}, []
    for j, (p, r) in enumerate(zip(parents, ranks)):
        child[(int(p), int(r))] = j
        depth.append(1 if p < 0 else depth[p] + 1)
    D = max(depth)
    tok = its = 0
    for _, _, sl in rec.spans():
        r = rec.draft_rank[sl]
        s, j = 0, 0
        while s + D <= r.size and (iterations is None or j < skip + iterations):
            node, k = -1, 0
            while (node, int(r[s + k])) in child if k < D else False:
                node, k = child[(node, int(r[s + k]))], k + 1
            if j >= skip:
                tok, its = tok + k + 1, its + 1
            s, j = s + k + 1, j + 1
    return float(tok), float(its)


def depth_rank_counts(rec: AgreementRecord, max_depth: int, max_rank: int, width: int | None = None):
    """Per prompt: (num [R, depth, rank], den [R, depth]) — paths reaching depth d, and those whose
    target token has draft rank r there (see depth_rank_acceptance)."""
    width = max_rank if width is None else width
    spans = rec.spans()
    num, den = np.zeros((len(spans), max_depth, max_rank)), np.zeros((len(spans), max_depth))
    for i, (_, _, sl) in enumerate(spans):
        r = rec.draft_rank[sl]
        n = r.size - max_depth + 1
        if n <= 0:
            continue
        ok = (r >= 0) & (r < width)
        alive = np.ones(n, dtype=bool)
        for d in range(max_depth):
            rd = r[d:d + n]
            den[i, d] += alive.sum()
            num[i, d] += np.bincount(rd[alive & (rd >= 0) & (rd < max_rank)], minlength=max_rank)[:max_rank]
            alive &= ok[d:d + n]
    return num, den


def depth_rank_acceptance(rec: AgreementRecord, max_depth: int, max_rank: int, width: int | None = None) -> np.ndarray:
    """a[d, r] (d = 1..max_depth, r = 0..max_rank−1): over every start token s, the share of paths
    whose depths 1..d−1 were accepted (target rank < width at each) in which the target's token has
    draft rank r at depth d — the input of perfmodel's tokens_per_iteration_tree. Every token is
    taken as an equally likely iteration start (stationary approximation)."""
    num, den = (x.sum(axis=0) for x in depth_rank_counts(rec, max_depth, max_rank, width))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den[:, None] > 0, num / np.maximum(den[:, None], 1), 0.0)


def depth_rank_effective_n(num, den) -> np.ndarray:
    """Effective sample size per depth of the rank acceptance: the paths counted, divided by the design
    effect of clustering by prompt (cluster-robust over i.i.d. variance of the rank-0 share — the
    chain's acceptance, the row's dominant entry — at least 1). Overlapping start tokens and prompt
    effects make the raw count overstate the evidence; perfmodel.specdec.trees draws each depth's
    row from a Dirichlet of this size."""
    k = num[:, :, 0]  # [R, depth]: the target's token is the draft's top candidate
    K, N = k.sum(axis=0), den.sum(axis=0)
    R = int((den.sum(axis=1) > 0).sum())
    out = np.zeros(N.size)
    for d in range(N.size):
        if N[d] <= 0:
            continue
        s = K[d] / N[d]
        v_iid = s * (1 - s) / N[d]
        v_cl = (R / max(R - 1, 1)) * float(np.sum((k[:, d] - s * den[:, d]) ** 2)) / N[d] ** 2 if R > 1 else v_iid
        deff = max(1.0, v_cl / v_iid) if v_iid > 0 else 1.0
        out[d] = N[d] / deff
    return out


def interval(rep: Replay, weighting: str = "iteration", level: float = LEVEL, new_prompts: int | None = None) -> dict:
    """Tokens per iteration with its cluster-by-prompt interval and, for `new_prompts` m (default R),
    the prediction interval of the mean over m new prompts."""
    if weighting not in ("iteration", "prompt"):
        raise TraceError("replay", f"weighting={weighting!r} is not allowed; use iteration or prompt")
    keep = rep.iterations > 0
    it, tk = rep.iterations[keep], rep.tokens[keep]
    R = int(keep.sum())
    if R == 0:
        raise TraceError("replay", f"no prompt of the record is long enough for one iteration at γ={rep.gamma}")
    if weighting == "iteration":
        est = float(tk.sum() / it.sum())
        sd = float(np.sqrt(np.sum((tk - est * it) ** 2) / max(R - 1, 1))) / float(it.mean())
    else:
        x = tk / it
        est, sd = float(x.mean()), float(x.std(ddof=1)) if R > 1 else 0.0
    m = R if new_prompts is None else int(new_prompts)
    t = float(stats.t.ppf(0.5 + level / 2, max(R - 1, 1)))
    ci = (est - t * sd / np.sqrt(R), est + t * sd / np.sqrt(R))
    pi = (est - t * sd * np.sqrt(1 / R + 1 / m), est + t * sd * np.sqrt(1 / R + 1 / m))
    return {"gamma": rep.gamma, "tokens_per_iteration": est, "ci": [max(1.0, ci[0]), ci[1]],
            "prediction_interval": [max(1.0, pi[0]), pi[1]], "new_prompts": m, "prompts": R,
            "level": level, "weighting": weighting, "between_prompt_sd": sd,
            "truncated_iterations": float(rep.truncated.sum())}


def _widen_logit(est: float, ci, factor: float):
    """An interval's half-widths on the logit scale multiplied by `factor` (around `est`)."""
    if ci is None or factor == 1.0:
        return ci
    lg = lambda a: float(np.log(np.clip(a, 1e-9, 1 - 1e-9) / (1 - np.clip(a, 1e-9, 1 - 1e-9))))  # noqa: E731
    ex = lambda z: float(1 / (1 + np.exp(-z)))  # noqa: E731
    m = lg(est)
    return (ex(m - factor * (m - lg(ci[0]))), ex(m + factor * (lg(ci[1]) - m)))


def _band_factor(rep: Replay, ab, ab_ci, weighting: str, new_prompts: int) -> float:
    """The factor (≥ 1) on the α_i intervals' logit half-widths that makes the tokens-per-iteration
    band of independent α_i draws (how predict propagates them; delta method) as wide as the replay's
    90 % prediction interval for `new_prompts` new prompts — between-prompt variation moves every
    position together, which independent draws would miss."""
    a = np.clip(np.asarray(ab, dtype=float), 1e-6, 1 - 1e-6)
    lg = lambda x: np.log(np.clip(x, 1e-9, 1 - 1e-9) / (1 - np.clip(x, 1e-9, 1 - 1e-9)))  # noqa: E731
    sd = np.array([(lg(hi) - lg(lo)) / (2 * 1.959963984540054) for lo, hi in ab_ci])
    cum = np.cumprod(a)  # Π_{j≤k} α_j, k = 1..γ
    grad = np.array([cum[i:].sum() for i in range(a.size)]) * (1 - a)  # ∂T/∂logit α_i
    band = 1.6448536269514722 * float(np.sqrt(np.sum((grad * sd) ** 2)))
    lo, hi = interval(rep, weighting, 0.90, new_prompts)["prediction_interval"]
    target = (hi - lo) / 2
    return float(max(1.0, target / band)) if band > 0 else 1.0


def acceptance_model(rec: AgreementRecord, gamma: int, kind: str = "auto", skip: int = 0,
                     iterations: int | None = None, weighting: str = "iteration", level: float = LEVEL,
                     gammas=range(1, 9), new_prompts: int | None = None) -> AcceptanceModel:
    """An AcceptanceModel (for `predict --acceptance`) from the replay at γ: α by position k_i/n_i
    with cluster-by-prompt 95 % intervals, and the record's tokens per iteration at every γ in
    `gammas` under the same protocol (replayed, not extrapolated), each with its interval. With
    `new_prompts` m the α intervals are widened (`_band_factor`) so that predict's tokens/iteration
    band at γ matches the 90 % prediction interval for a new set of m prompts drawn like these."""
    rep = replay(rec, gamma, kind, skip, iterations)
    n_r, k_r = rep.position_counts()
    n, k = n_r.sum(axis=0), k_r.sum(axis=0)
    keep = n > 0
    ab = tuple(float(x) for x in (k[keep] / n[keep]))
    ab_ci = tuple(cluster_ci(k_r[:, i], n_r[:, i], 0.95) or (0.0, 1.0) for i in np.flatnonzero(keep))
    f = 1.0 if new_prompts is None else _band_factor(rep, ab, ab_ci, weighting, new_prompts)
    ab_ci = tuple(_widen_logit(a, c, f) for a, c in zip(ab, ab_ci))
    S = float((rep.histogram * np.arange(gamma + 1)).sum())
    F = float(rep.histogram[:, :gamma].sum())
    if F <= 0:
        raise TraceError(rec.meta.get("path", "record"), "every replayed draft token was accepted: α̂ = 1")
    S_r = (rep.histogram * np.arange(gamma + 1)).sum(axis=1)
    F_r = rep.histogram[:, :gamma].sum(axis=1)
    a_ci = _widen_logit(S / (S + F), cluster_ci(S_r, S_r + F_r, 0.95), f)
    table = [interval(replay(rec, g, kind, skip, iterations), weighting, level) for g in sorted(set(gammas) | {gamma})]
    domains = {d: interval(rep.select(d), weighting, level) for d in sorted(set(rep.domains))
               if sum(x == d for x in rep.domains) >= 2}
    if rep.kind == "greedy":  # per-depth, per-rank acceptance for token trees (perfmodel.specdec.trees reads it)
        ranks = int(max(1, min(8, int(rec.meta.get("max_rank", 8)))))
        num_r, den_r = depth_rank_counts(rec, gamma, ranks)
        den_tot = den_r.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rank_acc = np.where(den_tot[:, None] > 0, num_r.sum(axis=0) / np.maximum(den_tot[:, None], 1), 0.0).tolist()
        rank_n = [round(float(x), 1) for x in depth_rank_effective_n(num_r, den_r)]
    else:
        rank_acc, rank_n = None, None
    extra = {"fit": "specperf calibrate agreement", "format": "agreement", "kind": rep.kind, "gamma_replayed": gamma,
             "rank_acceptance": rank_acc, "rank_acceptance_n": rank_n,
             "protocol": rep.protocol, "weighting": weighting, "model": "per-position",
             "alpha_intervals_for_new_prompts": new_prompts,
             "tokens_per_iteration_replayed": table, "by_domain": domains, "prompts": len(rep.prompts),
             "ci_method": "ratio estimators clustered by prompt (t on R−1 df); tokens/iteration intervals at level "
                          f"{level}", "record": {k: v for k, v in rec.meta.items() if k in
                                                 ("path", "draft", "target", "temperature", "continuation", "new_tokens")}}
    return AcceptanceModel(alpha=S / (S + F), alpha_ci=a_ci, alpha_by_position=ab, alpha_by_position_ci=ab_ci,
                           source=str(rec.meta.get("path", "agreement record")), n_iterations=int(round(rep.iterations.sum())),
                           extra=extra)
