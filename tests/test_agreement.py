"""Agreement records (issue 29): planted acceptance is recovered; the replay equals a direct
simulation of speculative decoding on the same record, and (greedy, CPU) specperf's real loop on
the same weights token for token; token trees from per-depth/per-rank acceptance; bad records and
bad flags are one line, exit code 2."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from specperf.calibration import replay as rp
from specperf.calibration.agreement import make_record, read_record, write_record
from specperf.calibration.data import TraceError
from specperf.cli.main import app
from specperf.perfmodel.specdec.acceptance import tokens_per_iteration_tree
from specperf.perfmodel.specdec.maths import tokens_per_iteration, tokens_per_iteration_by_position

runner = CliRunner()


def _planted(alpha=0.7, prompts=40, n=200, seed=0, greedy=True):
    rng = np.random.default_rng(seed)
    g, r, q = [], [], []
    for _ in range(prompts):
        m = (rng.random(n) < alpha).astype(int)
        g.append(m)
        r.append(np.where(m == 1, 0, rng.integers(1, 4, n)))
        q.append(np.full(n, alpha) if not greedy else rng.random(n))
    return make_record([f"p{i}" for i in range(prompts)], ["abc"[i % 3] for i in range(prompts)], g, r, q,
                       meta={"continuation": "greedy" if greedy else "sample", "temperature": 0 if greedy else 1})


def test_planted_alpha_recovered_with_cluster_intervals():
    rec = _planted(alpha=0.7)
    m = rp.acceptance_model(rec, 6)
    assert m.alpha_ci[0] < 0.7 < m.alpha_ci[1] and abs(m.alpha - 0.7) < 0.02
    assert all(lo < 0.7 < hi for lo, hi in m.alpha_by_position_ci)
    for row in m.extra["tokens_per_iteration_replayed"]:
        assert row["ci"][0] < tokens_per_iteration(0.7, row["gamma"]) < row["ci"][1]
    assert set(m.extra["by_domain"]) == {"a", "b", "c"}
    ra = np.asarray(m.extra["rank_acceptance"])  # what perfmodel.specdec.trees reads as a tree's acceptance
    assert ra.shape == (6, 8) and ra[:, 0] == pytest.approx([0.7] * 6, abs=0.03)


def test_acceptance_document_feeds_token_trees(tmp_path):
    from specperf.perfmodel.specdec.trees import Tree, expected_tokens, read_rank_acceptance

    rec = _planted(alpha=0.6, prompts=30, n=300, seed=3)
    p = tmp_path / "acc.json"
    p.write_text(json.dumps(rp.acceptance_model(rec, 3).to_dict()))
    rows = read_rank_acceptance(p)
    tree = Tree((-1, -1, 0), (0, 1, 0))
    tok, its = rp.replay_tree(rec, tree.parent, tree.rank)
    assert expected_tokens(tree, rows) == pytest.approx(tok / its, rel=0.03)


def test_sampling_record_expected_tokens_equal_the_closed_form():
    rec = _planted(alpha=0.6, greedy=False, prompts=3, n=300)
    rep = rp.replay(rec, 4)
    assert rep.tokens_per_iteration == pytest.approx(tokens_per_iteration(0.6, 4), rel=1e-9)


@pytest.mark.parametrize("gamma", [1, 3, 7])
def test_replay_equals_direct_simulation(gamma):
    rec = _planted(alpha=0.65, prompts=8, n=150)
    rep = rp.replay(rec, gamma, skip=2, iterations=20)
    tok, its = rp.simulate(rec, gamma, skip=2, iterations=20)
    assert rep.tokens.sum() == tok and rep.iterations.sum() == its  # greedy: one path, exact
    srec = make_record(["x", "y"], ["d", "d"], [np.zeros(120)] * 2, [np.ones(120, int)] * 2,
                       [np.random.default_rng(1).uniform(0.3, 0.95, 120)] * 2, {"continuation": "sample"})
    srep = rp.replay(srec, gamma, skip=1, iterations=15)
    tok, its = rp.simulate(srec, gamma, skip=1, iterations=15, rng=np.random.default_rng(2), repeats=3000)
    assert srep.tokens.sum() / srep.iterations.sum() == pytest.approx(tok / its, rel=0.01)


def test_chain_tree_and_depth_rank_acceptance():
    rec = _planted(alpha=0.6, prompts=30, n=300, seed=3)
    for g in (2, 5):
        chain_parents, chain_ranks = list(range(-1, g - 1)), [0] * g
        tok, its = rp.replay_tree(rec, chain_parents, chain_ranks)
        rep = rp.replay(rec, g)
        assert tok == rep.tokens.sum() and its == rep.iterations.sum()
        a = [[0.9], [0.8], [0.5], [0.4], [0.3]][:g]
        assert tokens_per_iteration_tree(a, chain_parents, chain_ranks) == pytest.approx(
            float(tokens_per_iteration_by_position([x[0] for x in a], g)))
    parents, ranks = [-1, -1, 0, 0, 1, 2], [0, 1, 0, 1, 0, 0]
    a = rp.depth_rank_acceptance(rec, 3, 3)
    assert a[:, 0] == pytest.approx([0.6] * 3, abs=0.02)  # planted: rank 0 with probability α
    tok, its = rp.replay_tree(rec, parents, ranks)
    assert tokens_per_iteration_tree(a, parents, ranks) == pytest.approx(tok / its, rel=0.03)
    with pytest.raises(Exception, match="sibling"):
        tokens_per_iteration_tree(a, [-1, -1], [0, 0])


def test_record_round_trip_and_bad_records(tmp_path):
    rec = _planted(prompts=3, n=10)
    p = tmp_path / "r.csv"
    write_record(rec, p)
    back = read_record(p)
    assert np.array_equal(back.greedy_match, rec.greedy_match) and back.meta["prompts"] == 3
    text = p.read_text().splitlines()
    bad = {"gap.csv": [text[0]] + text[1:3] + text[4:], "rank.csv": text[:1] + ["p0,a,0,1,2,"] + text[2:],
           "hdr.csv": ["a,b,c"] + text[1:]}
    for name, lines in bad.items():
        q = tmp_path / name
        q.write_text("\n".join(lines) + "\n")
        (tmp_path / (name + ".meta.json")).write_text((tmp_path / "r.csv.meta.json").read_text())
        with pytest.raises(TraceError) as e:
            read_record(q)
        assert "\n" not in str(e.value) and name in str(e.value)
    (tmp_path / "nometa.csv").write_text(p.read_text())
    with pytest.raises(TraceError, match="sidecar"):
        read_record(tmp_path / "nometa.csv")


def _tiny_models(tmp_path):
    pytest.importorskip("safetensors")
    from specperf.perfmodel.specs.models import from_hf_config
    from specperf.profiler.blocks import DecoderModel
    from specperf.profiler.specloop_weights import save_hf
    from studies.miniature.family import Shape

    cfg = dict(Shape("t", 2, 64, "target").hf_config(), vocab_size=64)
    (tmp_path / "t.json").write_text(json.dumps(cfg))
    save_hf(DecoderModel(from_hf_config(tmp_path / "t.json"), dtype="fp32"), tmp_path / "t", cfg)
    dcfg = dict(Shape("d", 1, 64, "wide").hf_config(), vocab_size=64)
    (tmp_path / "d.json").write_text(json.dumps(dcfg))
    save_hf(DecoderModel(from_hf_config(tmp_path / "d.json"), dtype="fp32", seed=5), tmp_path / "d", dcfg)
    rng = np.random.default_rng(0)
    with (tmp_path / "prompts.jsonl").open("w") as f:
        for i in range(4):
            f.write(json.dumps({"id": f"p{i}", "domain": "ab"[i % 2], "tokens": rng.integers(0, 64, 9).tolist()}) + "\n")
    return tmp_path / "t"


def test_greedy_record_replays_specperfs_real_loop_exactly(tmp_path):
    torch = pytest.importorskip("torch")
    from specperf.profiler.agreement import teacher_forced
    from specperf.profiler.specloop import SpecLoop
    from specperf.profiler.specloop_weights import load_decoder

    d_t = _tiny_models(tmp_path)
    _, t = load_decoder(d_t, dtype="fp32")
    _, d = load_decoder(d_t, dtype="fp32", n_layers=1)  # a 1-layer draft sharing the target's head
    prompts = torch.randint(0, 64, (4, 9), generator=torch.Generator().manual_seed(0))
    out = teacher_forced(d, t, prompts, 60)
    rec = make_record([f"p{i}" for i in range(4)], ["a"] * 4, out["greedy_match"], out["draft_rank"])
    assert 0.2 < out["greedy_match"].mean() < 0.95
    for g in (1, 3, 5):
        rep = rp.replay(rec, g, iterations=8)
        for m in (d, t):
            m.reset_cache(4, 128)
        loop = SpecLoop(d, t, 4, g, mode="eager", device="cpu")
        loop.prepare()
        loop.reset(8, prompts)
        assert rep.tokens.tolist() == loop.run(8).tokens.sum(axis=0).tolist()


def test_cli_records_replays_and_refuses_bad_flags(tmp_path):
    d_t = _tiny_models(tmp_path)
    rec, acc = tmp_path / "rec.csv", tmp_path / "acc.json"
    base = ["calibrate", "agreement", "--target", str(d_t), "--prompts", str(tmp_path / "prompts.jsonl"),
            "--record", str(rec), "--new-tokens", "24", "--temperature", "1", "--gamma", "1,2"]
    r = runner.invoke(app, base + ["--draft", str(d_t), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["kind"] == "sampling" and doc["prompts"] == 4 and doc["domains"] == ["a", "b"]
    # draft = target: Σ min(p, p) = 1 on every token
    assert read_record(rec).accept_prob == pytest.approx(1.0, abs=1e-5)
    r = runner.invoke(app, base + ["--draft", str(tmp_path / "d"), "--out", str(acc)])
    assert r.exit_code == 0, r.output
    assert json.loads(acc.read_text())["alpha_by_position"]
    r = runner.invoke(app, ["calibrate", "agreement", "--record", str(rec), "--gamma", "2", "--skip-iterations", "1"])
    assert r.exit_code == 0 and "tokens/iteration" in r.stdout
    greedy = tmp_path / "greedy.csv"
    r = runner.invoke(app, ["calibrate", "agreement", "--target", str(d_t), "--draft", str(tmp_path / "d"), "--prompts",
                            str(tmp_path / "prompts.jsonl"), "--record", str(greedy), "--new-tokens", "24", "--json"])
    assert r.exit_code == 0, r.output
    h = json.loads(r.stdout)["hierarchical"]
    assert h["prompts"] == 4 and "previous token accepted" in h["within_prompt_logit_slopes"]
    for args, word in ((["--draft", str(d_t)], "give all of"), (["--weighting", "token"], "weighting"),
                       (["--gamma", "0"], "gamma"), (["--iterations", "0"], "iterations")):
        r = runner.invoke(app, ["calibrate", "agreement", "--record", str(rec), *args])
        assert r.exit_code == 2 and word in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["calibrate", "agreement", "--record", str(tmp_path / "none.csv")])
    assert r.exit_code == 2 and "does not exist" in r.output
