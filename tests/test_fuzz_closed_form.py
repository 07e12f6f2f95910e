"""Issue 25: ≥ 10⁴ seeded fuzz examples of the closed form, in the default run.

Random α (scalar, per position, hostile values: NaN, ±inf, < 0, ≥ 1, 1 − 1e-16, subnormals), γ
(in and out of 1..64), cost ratios c and token trees go through the gates the command line uses
(AcceptanceModel, the --gamma list parser, `predict --cost-ratio`'s own JSON answer) and, where the
gates accept, the answer must be physical: tokens per iteration in [1, γ + 1] and non-decreasing in
γ, speedup finite and > 0, the optimal γ inside the range searched, the tree's expected tokens in
[1, nodes + 1]. Anything else than an answer or one InputError line is a failure.
"""
import contextlib
import io
import json
import math
import os

import numpy as np

from specperf.cli import options as o
from specperf.cli.predict_cmd import run_cost_ratio
from specperf.perfmodel.specdec.acceptance import AcceptanceModel, tokens_per_iteration_tree
from specperf.perfmodel.specdec.maths import (GAMMA_MAX, iteration_s, optimal_gamma_cost_ratio, speedup, throughput_tok_s,
                                     tokens_per_iteration, tokens_per_iteration_by_position)
from specperf.perfmodel.specdec.trees import rank_matrix
from specperf.perfmodel.specs.errors import InputError

FUZZ_N = int(os.environ.get("SPECPERF_FUZZ_N", "10000"))
EDGES = [0.0, -0.0, 1.0, 1 - 1e-16, 1 - 1e-9, 1e-300, 5e-324, -1e-12, 1.0000000001, 2.0, -1.0, math.nan, math.inf,
         -math.inf, 0.5, 0.999]


def _prob(rng) -> float:
    return float(EDGES[rng.integers(len(EDGES))]) if rng.random() < 0.3 else float(rng.random())


def _cost(rng) -> float:
    k = rng.integers(5)
    return [0.0, float(rng.random()), float(10.0 ** rng.uniform(-12, 7)), float(EDGES[rng.integers(len(EDGES))]),
            float(-rng.random())][k]


def _gamma_text(rng) -> str:
    k = rng.integers(4)
    if k == 0:
        return str(int(rng.integers(-2, GAMMA_MAX + 3)))
    if k == 1:
        a = int(rng.integers(0, GAMMA_MAX + 2))
        return f"{a}..{a + int(rng.integers(-1, 70))}"
    return str(int(rng.integers(1, GAMMA_MAX + 1)))


def _one(rng) -> str | None:
    """One example through the gates; a problem string when an accepted answer is not physical."""
    by_pos = tuple(_prob(rng) for _ in range(int(rng.integers(1, 9)))) if rng.random() < 0.4 else None
    acc = AcceptanceModel(alpha=_prob(rng), alpha_by_position=by_pos, source="fuzz")
    gammas = o.int_list(_gamma_text(rng), "gamma", hi=GAMMA_MAX) if rng.random() < 0.9 else None  # None: --gamma auto
    c = _cost(rng)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        run_cost_ratio(c, acc, gammas, 16, json_out=True)
    doc = json.loads(buf.getvalue())
    prev = 1.0
    for r in doc["rows"]:
        t, s, g = r["tokens_per_iteration"], r["speedup"], r["gamma"]
        if not (1.0 - 1e-12 <= t <= g + 1 + 1e-9) or t < prev - 1e-12:
            return f"tokens_per_iteration {t} at γ={g} (α={acc.alpha}, by position {by_pos})"
        if not (math.isfinite(s) and s > 0) or not (math.isfinite(r["arithmetic_factor"]) and r["arithmetic_factor"] > 0):
            return f"speedup {s} / arithmetic factor {r['arithmetic_factor']} at γ={g}, c={c}"
        prev = t
    searched = [r["gamma"] for r in doc["rows"]]
    if doc["optimal_gamma"] not in [0] + searched or not (math.isfinite(doc["speedup"]) and doc["speedup"] >= 1.0):
        return f"optimal γ {doc['optimal_gamma']} / speedup {doc['speedup']} over {searched[:3]}…"
    return None


def _fuzz(fn, n: int, seed: int):
    rng = np.random.default_rng(seed)
    failures, accepted = [], 0
    for i in range(n):
        try:
            problem = fn(rng)
        except InputError as e:
            if "\n" in str(e):
                failures.append((i, f"message not one line: {e}"))
            continue
        except Exception as e:  # noqa: BLE001 — the crash being looked for
            failures.append((i, f"{type(e).__name__}: {e}"))
            continue
        accepted += 1
        if problem:
            failures.append((i, problem))
    return failures, accepted


def test_cost_ratio_answers_survive_10k_fuzz_examples():
    failures, accepted = _fuzz(_one, FUZZ_N, seed=25)
    assert not failures, failures[:5]
    assert accepted > FUZZ_N // 10


def _tree(rng) -> str | None:
    depth, k = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    rows = [[_prob(rng) / (k if rng.random() < 0.9 else 1) for _ in range(k)] for _ in range(depth)]
    n = int(rng.integers(1, 12))
    parents = [int(rng.integers(-1, j)) if rng.random() < 0.95 else int(rng.integers(-3, n + 2)) for j in range(n)]
    ranks = [int(rng.integers(0, k + 1)) if rng.random() < 0.95 else -1 for _ in range(n)]
    e = tokens_per_iteration_tree(rank_matrix(rows, depth), parents, ranks)
    return None if math.isfinite(e) and 1.0 <= e <= n + 1 + 1e-9 else f"tree E={e} with {n} nodes"


def test_token_trees_survive_10k_fuzz_examples():
    failures, accepted = _fuzz(_tree, FUZZ_N, seed=26)
    assert not failures, failures[:5]
    assert accepted > FUZZ_N // 10


def test_vectorised_closed_form_is_physical_on_a_million_points():
    """10⁶ (α, γ, times) points at once: E[tokens] in [1, γ+1], non-decreasing in γ, equal to the
    per-position sum at constant α; iteration time, throughput and speedup finite and > 0."""
    rng = np.random.default_rng(27)
    a = np.concatenate([rng.random(10 ** 6 - 6), [0.0, 1e-300, 0.5, 1 - 1e-16, 1 - 1e-9, 0.999999]])
    g = rng.integers(1, GAMMA_MAX + 1, a.size)
    t = tokens_per_iteration(a, g)
    assert np.all(np.isfinite(t)) and np.all(t >= 1.0) and np.all(t <= g + 1 + 1e-9)
    assert np.all(tokens_per_iteration(a, g + 1) >= t - 1e-12)
    sub = slice(0, 2000)
    by_pos = np.array([tokens_per_iteration_by_position([x], gi) for x, gi in zip(a[sub], g[sub])])
    np.testing.assert_allclose(by_pos, t[sub], rtol=1e-9)
    td, tv, ov = (10.0 ** rng.uniform(-7, 0, a.size) for _ in range(3))
    it = iteration_s(g, td, tv, ov)
    thr, sp = throughput_tok_s(rng.integers(1, 65536, a.size), t, it), speedup(t, it, tv)
    assert np.all(np.isfinite(thr)) and np.all(thr > 0) and np.all(np.isfinite(sp)) and np.all(sp > 0)
    gs, s = optimal_gamma_cost_ratio(a[:20000], 10.0 ** rng.uniform(-9, 6, 20000))
    assert np.all((gs >= 1) & (gs <= GAMMA_MAX)) and np.all(np.isfinite(s)) and np.all(s > 0)
