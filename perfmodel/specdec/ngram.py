"""N-gram prompt lookup as a speculation method: the proposal is a host-side search for the latest
earlier occurrence of the sequence's last n tokens (n from prompt_lookup_max down to
prompt_lookup_min), proposing the γ tokens that followed it; no GPU forward proposes anything.

Proposal cost is measured, not modelled: `propose` (a real numpy implementation of the matcher) is
timed on this host at several context lengths (median of repeats, worst case: no match, every n
tried) and fitted as a + b·context seconds per sequence; an iteration pays it once per sequence,
sequentially on one host thread (key assumption), before the target verifies γ+1 tokens.
Acceptance comes from traces only (how often a prompt repeats is a property of the workload, which
no model of the proposer predicts): callers must pass a measured acceptance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from specperf.perfmodel.specdec.methods import IterationCosts, chain_tokens, grid, target_costs

TIMED_CONTEXTS = (256, 1024, 4096, 16384)  # tokens: spans the explorer's and CLI's usual contexts
REPEATS = 15  # timings per context (median, p10/p90)
VOCAB = 32000  # random token ids for the timing (LLaMA's vocabulary size, DESIGN.md)


def propose(tokens, n_max: int, n_min: int, k: int) -> np.ndarray:
    """Up to k tokens following the latest earlier occurrence of the longest suffix n-gram
    (n_max ≥ n ≥ n_min); empty when nothing matches. `tokens`: 1-D integer array."""
    t = np.asarray(tokens)
    L = t.size
    for n in range(min(n_max, L - 1), n_min - 1, -1):
        if n < 1:
            break
        win = np.lib.stride_tricks.sliding_window_view(t[:L - 1], n)  # windows that end before the suffix
        hits = np.flatnonzero((win == t[L - n:]).all(axis=1))
        if hits.size:
            start = int(hits[-1]) + n
            return t[start:start + k].copy()
    return t[:0].copy()


def propose_reference(tokens, n_max: int, n_min: int, k: int) -> list:
    """The same rule in plain Python loops (the test's second implementation)."""
    t = list(tokens)
    L = len(t)
    for n in range(min(n_max, L - 1), n_min - 1, -1):
        if n < 1:
            break
        for i in range(L - n - 1, -1, -1):
            if t[i:i + n] == t[L - n:]:
                return t[i + n:i + n + k]
    return []


@lru_cache(maxsize=8)
def host_cost(n_max: int = 4, n_min: int = 1, k: int = 8, seed: int = 0):
    """(a_s, b_s_per_token, band, timings) fitted to timings of `propose` on this host."""
    rng = np.random.default_rng(seed)
    med, spread = [], []
    for L in TIMED_CONTEXTS:
        toks = rng.integers(0, VOCAB, L)
        toks[-n_max:] = VOCAB  # a suffix absent from the history: the worst case, every n scanned
        propose(toks, n_max, n_min, k)  # warm-up
        ts = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            propose(toks, n_max, n_min, k)
            ts.append(time.perf_counter() - t0)
        p10, p50, p90 = np.percentile(ts, [10, 50, 90])
        med.append(p50)
        spread.append((p90 - p10) / (2 * p50))
    x = np.asarray(TIMED_CONTEXTS, dtype=float)
    b, a = np.polyfit(x, np.asarray(med), 1)
    return max(float(a), 0.0), max(float(b), 0.0), float(max(spread)), tuple(zip(TIMED_CONTEXTS, med))


@dataclass(frozen=True)
class NgramLookup:
    prompt_lookup_max: int = 4
    prompt_lookup_min: int = 1
    host_cost: tuple | None = None  # (a_s, b_s_per_token): planted cost (tests); None: time this host
    name: str = "ngram"
    acceptance_from_traces_only: bool = True

    def per_sequence_s(self, context):
        """Seconds of one lookup per sequence at `context` tokens, and (file, band) of the timing."""
        if self.host_cost is not None:
            a, b = self.host_cost
            where = ("given host cost", None)
        else:
            a, b, band, _ = host_cost(self.prompt_lookup_max, self.prompt_lookup_min)
            where = ("numpy n-gram matcher timed on this host", band)
        return a + b * np.asarray(context, dtype=float), where

    def costs(self, latency, target, batch, context, gammas, tp=1, mode="graph", proposer_latency=None) -> IterationCosts:
        B, C, G, zero = grid(batch, context, gammas)
        one, (file, band) = self.per_sequence_s(C)
        prop = B * one + zero  # sequential over the batch's sequences
        tc = target_costs(latency, target, batch, context, gammas, tp, mode, prop, prop, zero, {},
                          ("n-gram proposal: host time measured on this machine, once per sequence",))
        # the provider's own provenance type (specdec imports no latency module): a measured host timing
        src = type(tc.sources["overhead"]).of("measured", file=file, band=band, detail="n-gram lookup on the host")
        return replace(tc, sources={"draft_host": src, **tc.sources})

    def tokens_per_iteration(self, acceptance, gammas) -> np.ndarray:
        return chain_tokens(acceptance, gammas)

    def proposer_spec(self, target):
        return None  # no weights: the lookup runs on the host

    def describe(self) -> str:
        return f"n-gram prompt lookup (n {self.prompt_lookup_min}..{self.prompt_lookup_max})"

    def engine_config(self, target, gamma: int, tp: int) -> dict:
        return {"vllm": {"method": "ngram", "num_speculative_tokens": int(gamma),
                         "prompt_lookup_max": self.prompt_lookup_max, "prompt_lookup_min": self.prompt_lookup_min},
                "sglang": {"--speculative-algorithm": "NGRAM", "--speculative-num-draft-tokens": int(gamma) + 1},
                "hf": {"prompt_lookup_num_tokens": int(gamma), "max_matching_ngram_size": int(self.prompt_lookup_max)},
                "needs_checkpoint": False}
