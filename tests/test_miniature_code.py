"""The miniature study's code on CPU with tiny models: trained weights export to a Hugging Face
checkpoint that profiler.blocks (and transformers, when installed) decode identically; greedy and
sampling acceptance traces behave as they must (a draft equal to the target is always accepted;
speculative sampling's first token follows the target's distribution); the acceptance and rank
statistics match their definitions."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from specperf.profiler.specloop_weights import load_decoder  # noqa: E402
from studies.miniature import acceptance as acc  # noqa: E402
from studies.miniature import family, lm, stats  # noqa: E402

VOCAB = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny target and draft, trained a few steps on random tokens and exported (fp32)."""
    base = tmp_path_factory.mktemp("mini")
    t, ds = family.tiny_family()
    data = torch.randint(0, VOCAB, (4000,), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    out = {}
    for s in (t, ds[1]):
        torch.manual_seed(0)
        m = lm.LM(s, VOCAB)
        rec = lm.train(m, data, lm.TrainConfig(tokens=32 * 4 * 3, seq=32, batch=4, warmup_steps=1), log=lambda *_: None)
        assert rec["steps"] == 3 and rec["tokens"] == 384
        lm.export(m, base / s.name, dict(s.hf_config(), vocab_size=VOCAB, torch_dtype="float32", dtype="float32"),
                  dtype=torch.float32)
        out[s.role] = (m, base / s.name)
    return out


def test_exported_weights_decode_identically(models):
    m, d = models["target"]
    _, dm = load_decoder(d, max_batch=2, max_context=64, dtype="fp32")
    x = torch.randint(0, VOCAB, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = m(x)
        torch.testing.assert_close(dm(x, torch.zeros(2, dtype=torch.long), None), ref, atol=2e-5, rtol=2e-5)
    transformers = pytest.importorskip("transformers")
    hf = transformers.LlamaForCausalLM.from_pretrained(str(d)).float().eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, ref, atol=2e-5, rtol=2e-5)


def test_perplexity_of_a_uniform_model_is_the_vocabulary(models):
    m, _ = models["target"]
    flat = lm.LM(m.shape, VOCAB)
    with torch.no_grad():
        for p in flat.parameters():
            p.zero_()
    data = torch.randint(0, VOCAB, (2000,), dtype=torch.int32)
    assert lm.perplexity(flat, data, seq=32, max_tokens=1000) == pytest.approx(VOCAB, rel=1e-4)


def _load(models, role, batch):
    return load_decoder(models[role][1], max_batch=batch, max_context=64, dtype="fp32")[1]


def test_a_draft_equal_to_the_target_is_always_accepted(models):
    tgt, same = _load(models, "target", 3), _load(models, "target", 3)
    prompts = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(2))
    assert (acc.greedy_trace(same, tgt, prompts, 3, 4) == 3).all()
    assert (acc.sampling_trace(same, tgt, prompts, 3, 4, seed=1) == 3).all()


def test_traces_of_a_different_draft_are_leading_runs(models):
    tgt, dr = _load(models, "target", 4), _load(models, "narrow", 4)
    prompts = torch.randint(0, VOCAB, (4, 9), generator=torch.Generator().manual_seed(3))
    g = acc.greedy_trace(dr, tgt, prompts, 4, 5)
    s = acc.sampling_trace(dr, tgt, prompts, 4, 5, seed=0)
    for a in (g, s):
        assert a.shape == (5, 4) and a.min() >= 0 and a.max() <= 4
    assert s.mean() < 4  # an untrained different draft is rejected somewhere


def test_first_draft_is_accepted_with_probability_sum_min_p_q(models):
    """Rejection sampling accepts d_1 ~ q with probability Σ_x min(p(x), q(x)) (Leviathan et al. 2023,
    Lemma 3.3): checked over many identical sequences, within 4 standard errors."""
    n = 4000
    tgt, dr = _load(models, "target", n), _load(models, "narrow", n)
    prompt = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(4)).expand(n, 9).contiguous()
    accepted = acc.sampling_trace(dr, tgt, prompt, 2, 1, seed=5)
    with torch.no_grad():
        p = torch.softmax(tgt(prompt[:1], torch.zeros(1, dtype=torch.long), None)[0, -1], -1)
        q = torch.softmax(dr(prompt[:1], torch.zeros(1, dtype=torch.long), None)[0, -1], -1)
    alpha = float(torch.minimum(p, q).sum())
    assert 0.05 < alpha < 0.999
    assert (accepted >= 1).mean() == pytest.approx(alpha, abs=4 * (alpha * (1 - alpha) / n) ** 0.5)


def test_alpha_by_position_and_tokens_per_iteration():
    a = np.array([[0, 2, 1, 2], [2, 2, 0, 1]])
    assert acc.alpha_by_position(a, 2) == pytest.approx([6 / 8, 4 / 6])
    assert acc.tokens_per_iteration(a, 2) == pytest.approx(1 + a.mean())
    assert acc.tokens_per_iteration(a, 1) == pytest.approx(1 + np.minimum(a, 1).mean())
    # E = 1 + Σ_k Π_{i≤k} α_i reproduces the observed mean at the trace's own γ
    ab = acc.alpha_by_position(a, 2)
    assert 1 + ab[0] + ab[0] * ab[1] == pytest.approx(acc.tokens_per_iteration(a, 2))


def test_trace_file_round_trips_through_calibration(tmp_path):
    pytest.importorskip("scipy")
    from specperf.calibration.traces import read_trace

    a = np.array([[0, 3, 1], [3, 2, 0]])
    data = read_trace(acc.write_trace(tmp_path / "t.csv", a, 3, 256))
    assert data.gamma_max == 3 and int(data.total_accepted) == int(a.sum())


def test_spearman_matches_scipy_with_ties_and_bootstrap_is_seeded():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 12).astype(float), rng.normal(size=12)
    assert stats.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)
    b1, b2 = stats.spearman_bootstrap(x, y, n=500, seed=3), stats.spearman_bootstrap(x, y, n=500, seed=3)
    assert b1 == b2 and b1["ci_low"] <= b1["rho"] <= b1["ci_high"]
    assert np.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))


def test_family_budgets_are_matched():
    d = family.DRAFTS
    assert len(d) >= 6 and {1, 2, 4, 8} <= {s.n_layers for s in d if s.role == "wide"}
    assert all(12 <= s.n_layers <= 24 for s in d if s.role == "narrow")
    ne = [s.non_embedding_params for s in d]
    assert max(ne) / min(ne) < 1.45  # within ±20 % of their mean
    assert 50e6 <= family.TARGET.params <= 150e6
