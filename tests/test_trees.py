"""Token trees: expected accepted length (Sequoia's F(T) + 1) equals a Monte Carlo of the same
acceptance within 1 %; a chain is the i.i.d./per-position formula; the dynamic programme's tree is
the best of every tree enumerated by brute force; the tree method's costs and its comparison with
chains come from the latency provider through the method seam."""
import itertools

import numpy as np
import pytest

from specperf.perfmodel.latency.providers import build_provider
from specperf.perfmodel.specdec.maths import tokens_per_iteration, tokens_per_iteration_by_position
from specperf.perfmodel.specdec.registry import make_method
from specperf.perfmodel.specdec.tree_method import TokenTree, compare
from specperf.perfmodel.specdec.trees import Tree, best_tree, chain, expected_tokens, simulate
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.specs.models import SpecError

P = [[0.62, 0.15, 0.06], [0.55, 0.14, 0.05], [0.5, 0.12, 0.04]]  # per depth, per rank (rows ≤ 1)


@pytest.mark.parametrize("n,depth", [(8, None), (16, 4), (30, 6)])
def test_expected_length_equals_monte_carlo_within_one_percent(n, depth):
    t = best_tree(P, n, depth)
    e = expected_tokens(t, P)
    mc = simulate(t, P, 400_000, rng=1).mean()
    assert abs(mc / e - 1) < 0.01, (e, mc)
    assert t.size <= n and (depth is None or t.levels <= depth)


def test_chain_is_the_closed_form():
    assert expected_tokens(chain(5), [[0.8]]) == pytest.approx(float(tokens_per_iteration(0.8, 5)), rel=1e-12)
    ab = [0.9, 0.7, 0.6]
    assert expected_tokens(chain(6), [[a] for a in ab]) == pytest.approx(
        float(tokens_per_iteration_by_position(ab, 6)), rel=1e-12)
    assert best_tree([[0.7]], 5) == chain(5)  # one rank only: the best tree is a chain


def _all_trees(n):
    """Every tree of n nodes in BFS order with contiguous sibling ranks (brute force)."""
    def grow(parent, rank):
        if len(parent) == n:
            yield Tree(tuple(parent), tuple(rank))
            return
        last = parent[-1] if parent else -1
        for par in range(last, len(parent)):  # BFS: parents non-decreasing
            r = sum(1 for p in parent if p == par)
            yield from grow(parent + [par], rank + [r])
    yield from grow([], [])


@pytest.mark.parametrize("n", [1, 3, 5, 6])
def test_dynamic_programme_is_the_brute_force_optimum(n):
    best = max(expected_tokens(t, P) for t in _all_trees(n))
    assert expected_tokens(best_tree(P, n), P) == pytest.approx(best, rel=1e-12)


def test_tree_mask_is_ancestors():
    t = Tree((-1, -1, 0, 0, 2), (0, 1, 0, 1, 0))
    m = t.mask()
    assert m[4].tolist() == [True, False, True, False, True] and m[1].tolist() == [False, True, False, False, False]
    assert t.widths() == (2, 2, 1)


def test_bad_acceptance_is_one_clear_error():
    with pytest.raises(SpecError, match="sums to more than 1"):
        best_tree([[0.7, 0.5]], 4)
    with pytest.raises(SpecError, match="tree size=0 is not allowed"):
        best_tree(P, 0)
    with pytest.raises(SpecError, match="equally long rows"):
        best_tree([[0.5, 0.2], [0.4]], 4)


def test_tree_method_costs_and_comparison_with_chains():
    lat = build_provider(GPUS["h100-sxm"]).target
    target = resolve_model("llama-7b")
    head = make_method("eagle")
    m = TokenTree(head, tuple(map(tuple, P)), 6)
    c = m.costs(lat, target, [1], [512], [4, 12], 1, "graph").at(0, 0)
    t12 = m.tree(12)
    expand = (1,) + t12.widths()[:-1]  # the root, then every level but the deepest
    steps = [head.step_s(lat, target, 1, w, 512 + lvl, "graph")[0] for lvl, w in enumerate(expand)]
    assert c.proposal_s[1] == pytest.approx(float(np.sum(steps)), rel=1e-9)
    assert c.verify_s[1] == pytest.approx(float(lat.forward(target, 1, 13, 512, 1, "graph").total_s), rel=1e-12)
    out = compare(head, P, lat, target, 1, 512, range(1, 33), [1, 4, 8])
    assert out["best_tree"]["speedup"] >= out["trees"][0]["speedup"]  # depth 1 ⊂ deeper searches
    # with rank > 0 acceptance the best tree beats the chain at batch 1, where verification is nearly flat
    assert out["tree_gain"] > 0


def test_predict_tree_cli_reports_the_tree_and_the_chain(tmp_path):
    import json

    from typer.testing import CliRunner

    from specperf.cli.main import app

    f = tmp_path / "tree.json"
    f.write_text(json.dumps({"rank_acceptance": P, "source": "test"}))
    r = CliRunner().invoke(app, ["predict", "--target", "llama-7b", "--method", "eagle", "--alpha", "0.7", "--tree",
                                 str(f), "--tree-depth", "4", "--gamma", "1..12", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["method"] == "eagle_tree" and doc["tree"]["tokens"] <= doc["best_gamma"] and doc["tree"]["levels"] <= 4
    row = next(x for x in doc["rows"] if x["gamma"] == doc["best_gamma"])
    assert row["tokens_per_iteration"] == pytest.approx(expected_tokens(best_tree(P, doc["best_gamma"], 4), P))
    tc = doc["tree_vs_chain"]
    assert tc["best_tree"]["speedup"] >= doc["speedup"] - 1e-9  # the comparison searches depths ⊇ {4}
    f.write_text(json.dumps({"rank_acceptance": [[0.9, 0.3]]}))
    r = CliRunner().invoke(app, ["predict", "--target", "llama-7b", "--method", "eagle", "--alpha", "0.7", "--tree", str(f)])
    assert r.exit_code == 2 and "sums to more than 1" in r.output and "Traceback" not in r.output
