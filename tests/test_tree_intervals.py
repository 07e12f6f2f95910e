"""Token-tree acceptance with an interval (issue 28): the agreement record's per-depth, per-rank
acceptance carries effective path counts (clustered by prompt); Dirichlet draws of the rows give the
tree's tokens per iteration an interval that covers the truth at its stated rate, and predict /
optimize propagate it instead of taking the tree's acceptance as exact."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.calibration import replay as rp
from specperf.calibration.agreement import make_record
from specperf.cli.main import app
from specperf.perfmodel.specdec.trees import (best_tree, expected_tokens, expected_tokens_draws, rank_draws,
                                     read_tree_acceptance)

P = [[0.62, 0.15, 0.06], [0.55, 0.14, 0.05], [0.5, 0.12, 0.04]]
runner = CliRunner()


def test_draws_centre_on_the_point_and_shrink_with_evidence():
    t = best_tree(P, 10, 4)
    e = expected_tokens(t, P)
    rng = np.random.default_rng(0)
    wide = expected_tokens_draws(t, rank_draws(P, [50, 40, 30], 4000, rng, 4))
    narrow = expected_tokens_draws(t, rank_draws(P, [5e4, 4e4, 3e4], 4000, rng, 4))
    assert np.median(narrow) == pytest.approx(e, rel=0.01) and np.median(wide) == pytest.approx(e, rel=0.05)
    assert np.std(narrow) < np.std(wide) / 10
    one = np.asarray(P)[None]  # a single draw equal to the point: the same sum as expected_tokens
    assert expected_tokens_draws(t, np.concatenate([one, one[:, -1:]], axis=1))[0] == pytest.approx(e)


def test_interval_covers_the_true_tree_length_at_its_rate():
    """Rows estimated from n paths per depth (multinomial), interval from rank_draws(n): the true
    tokens per iteration lies inside the 90 % interval in about 90 % of repeats."""
    rng = np.random.default_rng(1)
    t = best_tree(P, 10, 3)
    truth = expected_tokens(t, P)
    n, hits, reps = 150, 0, 300
    full = [np.append(r, 1 - sum(r)) for r in P]
    for _ in range(reps):
        est = [rng.multinomial(n, f)[:-1] / n for f in full]
        s = expected_tokens_draws(t, rank_draws(est, [n] * 3, 1500, rng, 3))
        lo, hi = np.percentile(s, [5, 95])
        hits += lo <= truth <= hi
    assert 0.84 <= hits / reps <= 0.96, hits / reps


def _record(prompts=30, n=300, seed=3, alpha=0.6):
    rng = np.random.default_rng(seed)
    g, r, q = [], [], []
    for i in range(prompts):
        a = alpha + (0.15 if i % 2 else -0.15)  # prompt effects: the clustered count is below the raw count
        m = (rng.random(n) < a).astype(int)
        g.append(m)
        r.append(np.where(m == 1, 0, rng.integers(1, 4, n)))
        q.append(rng.random(n))
    return make_record([f"p{i}" for i in range(prompts)], ["abc"[i % 3] for i in range(prompts)], g, r, q,
                       meta={"continuation": "greedy", "temperature": 0})


def test_agreement_document_carries_clustered_counts(tmp_path):
    rec = _record()
    doc = rp.acceptance_model(rec, 3).to_dict()
    num, den = rp.depth_rank_counts(rec, 3, 8)
    n_eff = np.asarray(doc["rank_acceptance_n"])
    assert n_eff.shape == (3,) and np.all(n_eff > 0) and np.all(n_eff < den.sum(axis=0))  # design effect > 1
    f = tmp_path / "acc.json"
    f.write_text(json.dumps(doc))
    rows, m = read_tree_acceptance(f)
    assert m == tuple(doc["rank_acceptance_n"]) and np.asarray(rows).shape == (3, 8)


def _predict(f):
    r = runner.invoke(app, ["predict", "--target", "llama-7b", "--method", "eagle", "--alpha", "0.7", "--tree", str(f),
                            "--tree-depth", "3", "--gamma", "6", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_predict_and_optimize_propagate_the_tree_interval(tmp_path):
    f, g = tmp_path / "counted.json", tmp_path / "bare.json"
    f.write_text(json.dumps({"rank_acceptance": P, "rank_acceptance_n": [80, 60, 40]}))
    g.write_text(json.dumps({"rank_acceptance": P}))
    a, b = _predict(f), _predict(g)
    ra, rb = a["rows"][0], b["rows"][0]
    assert ra["speedup"] == pytest.approx(rb["speedup"])  # the point answer is the same
    wa, wb = (r["speedup_hi"] - r["speedup_lo"] for r in (ra, rb))
    assert wa > 1.5 * wb
    notes = lambda d: d["notes"] + d["uncertainty"]["notes"]  # noqa: E731
    assert not any("token-tree acceptance" in n for n in notes(a))
    assert any("token-tree acceptance" in n for n in notes(b))
    r = runner.invoke(app, ["optimize", "--target", "llama-7b", "--mode", "graph", "--method", "eagle", "--tree", str(f),
                            "--tree-depth", "3", "--batch", "1", "--json"])
    assert r.exit_code == 0, r.output
    row = next(x for x in json.loads(r.stdout)["methods"]["tables"][0]["rows"] if x["method"] == "eagle_tree")
    assert row["speedup_lo"] < row["speedup"] < row["speedup_hi"]
    assert not any("token-tree acceptance" in n for n in row["notes"]) and row["acceptance_is"] == "tree file"
    g.write_text(json.dumps({"rank_acceptance": P, "rank_acceptance_n": [80, -1, 40]}))
    r = runner.invoke(app, ["predict", "--target", "llama-7b", "--method", "eagle", "--alpha", "0.7", "--tree", str(g)])
    assert r.exit_code == 2 and "rank_acceptance_n" in r.output and "Traceback" not in r.output
