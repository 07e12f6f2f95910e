"""profiler.specloop and profiler.oracle on CPU with tiny fp32 models: greedy speculative decoding
reproduces the target's own greedy decoding (rejections, all-accepted catch-up, batch > 1, per-
sequence positions), a rolled-back cache gives the same logits as a fresh one, the oracle's realised
tokens per iteration match the closed form within sampling error; graph = eager on a GPU."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.specdec.maths import simulate_tokens_per_iteration, tokens_per_iteration  # noqa: E402
from specperf.perfmodel.specs.models import SpecError  # noqa: E402
from specperf.profiler.blocks import DecoderModel  # noqa: E402
from specperf.profiler.oracle import AcceptanceOracle, realised_acceptance, tokens_per_iteration_variance  # noqa: E402
from specperf.profiler.specloop import SpecLoop, greedy_reference  # noqa: E402

TINY = "llama-7b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=4,d_ff=128,vocab=256"
CTX = 96


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threading only adds contention on a 2-core CI box
    yield
    torch.set_num_threads(n)


def _pair(draft_layers=1, draft_seed=0, batch=3, tiny=TINY):
    spec = resolve_model(tiny, dtype_bytes=4)
    t = DecoderModel(spec, max_batch=batch, max_context=CTX, dtype="fp32", seed=0)
    d = DecoderModel(spec, n_layers=draft_layers, max_batch=batch, max_context=CTX, dtype="fp32", seed=draft_seed)
    return spec, d, t


@pytest.mark.parametrize("gamma", [1, 3, 5])
def test_greedy_speculative_decoding_reproduces_target_greedy(gamma):
    spec, d, t = _pair()
    prompt = torch.randint(0, spec.vocab, (3, 9), generator=torch.Generator().manual_seed(gamma))
    loop = SpecLoop(d, t, 3, gamma)
    loop.reset(8, prompt)
    log = loop.run(8, collect_output=True)
    ref = greedy_reference(t, prompt, 8 * (gamma + 1))
    for s in range(3):
        assert len(log.output[s]) == int(log.tokens[:, s].sum())
        assert log.output[s] == ref[s][:len(log.output[s])]
    # both paths ran: some drafts accepted, some rejected (so sequences sit at different positions)
    assert log.tokens.max() > 1 and log.tokens.min() == 1


def test_draft_equal_to_target_accepts_everything_and_stays_exact():
    """Every draft accepted: the bonus-token path and the draft cache catch-up step."""
    spec, _, t = _pair()
    d = DecoderModel(spec, max_batch=2, max_context=CTX, dtype="fp32", seed=0)  # the same weights
    prompt = torch.randint(0, spec.vocab, (2, 7), generator=torch.Generator().manual_seed(1))
    loop = SpecLoop(d, t, 2, 4)
    loop.reset(6, prompt)
    log = loop.run(5, collect_output=True)
    assert (log.tokens == 5).all()  # γ + 1 tokens every iteration
    ref = greedy_reference(t, prompt, 25)
    assert log.output[0] == ref[0] and log.output[1] == ref[1]


def test_gamma_zero_is_plain_autoregressive_decoding():
    spec, _, t = _pair()
    prompt = torch.randint(0, spec.vocab, (3, 5), generator=torch.Generator().manual_seed(2))
    loop = SpecLoop(None, t, 3, 0)
    loop.reset(4, prompt)
    log = loop.run(6, collect_output=True)
    assert (log.tokens == 1).all()
    assert log.output == [r[:6] for r in greedy_reference(t, prompt, 6)]


def test_rolled_back_cache_gives_the_same_logits_as_a_fresh_one():
    """Verify γ+1 tokens, reject some, roll back (smaller pos), continue: logits equal a fresh cache
    that only ever saw the accepted tokens — per sequence, with different rollback points."""
    spec, _, t = _pair()
    g = torch.Generator().manual_seed(3)
    seq = torch.randint(0, spec.vocab, (2, 20), generator=g)
    t(seq[:, :10], torch.tensor([0, 0]))
    junk = torch.randint(0, spec.vocab, (2, 5), generator=g)
    t(junk, torch.tensor([10, 10]))  # speculative tokens at 10..14, then rejected
    keep = torch.tensor([12, 10])  # sequence 0 kept 2 of them (make them real), sequence 1 none
    seq[0, 10:12] = junk[0, :2]
    got = t(torch.stack([seq[0, 12:16], seq[1, 10:14]]), keep)
    fresh = DecoderModel(spec, max_batch=2, max_context=CTX, dtype="fp32", seed=0)
    want0 = fresh(seq[:1, :16], torch.tensor([0]))[:, 12:16]
    fresh2 = DecoderModel(spec, max_batch=2, max_context=CTX, dtype="fp32", seed=0)
    want1 = fresh2(seq[1:, :14], torch.tensor([0]))[:, 10:14]
    torch.testing.assert_close(got[:1], want0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[1:], want1, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("alpha,gamma", [(0.6, 2), (0.8, 4), ((0.9, 0.7, 0.5), 3)])
def test_oracle_draws_match_the_closed_form(alpha, gamma):
    ab = np.atleast_1d(alpha)
    o = AcceptanceOracle(ab, gamma, seed=11)
    n = torch.cat([o.accepted(4096, gamma) for _ in range(5)]).numpy()
    assert n.min() >= 0 and n.max() <= gamma
    ra = realised_acceptance(n + 1, ab, gamma)
    assert ra.expected_tokens == pytest.approx(o.expected_tokens_per_iteration(gamma))
    assert abs(ra.z) < 4.5  # sampling error only (fails for a biased oracle: 20k draws, SE ≈ 0.01)
    if ab.size == 1:
        assert ra.expected_tokens == pytest.approx(float(tokens_per_iteration(ab[0], gamma)))


def test_oracle_in_the_loop_matches_the_closed_form():
    """The whole loop (tiny models, batch 64, steady state) realises E[tokens] within sampling error."""
    spec, d, t = _pair(batch=64)
    o = AcceptanceOracle([0.7], 3, seed=2)
    loop = SpecLoop(d, t, 64, 3, oracle=o, steady=True, context=16)
    loop.reset()
    log = loop.run(25)
    ra = realised_acceptance(log.tokens, [0.7], 3)
    assert ra.n_samples == 1600
    assert abs(ra.z) < 4.5
    assert ra.expected_tokens == pytest.approx((1 - 0.7 ** 4) / 0.3)


def test_variance_formula_agrees_with_monte_carlo():
    for ab, g in (([0.8], 6), ([0.9, 0.6, 0.3], 3), ([0.5], 1)):
        sim = simulate_tokens_per_iteration(ab, g, 200_000, rng=0)
        assert tokens_per_iteration_variance(ab, g) == pytest.approx(sim.var(), rel=0.02)


def test_bad_inputs():
    spec, d, t = _pair()
    with pytest.raises(SpecError, match="graph"):
        SpecLoop(d, t, 1, 2, mode="graph", device="cpu")
    with pytest.raises(SpecError, match="draft"):
        SpecLoop(None, t, 1, 2)
    with pytest.raises(SpecError, match="alpha"):
        AcceptanceOracle([1.2], 4)
    with pytest.raises(SpecError, match="gamma"):
        AcceptanceOracle([0.5], 2).accepted(1, 3)
    loop = SpecLoop(d, t, 3, 4)
    loop.reset(8, torch.zeros(3, 9, dtype=torch.long))
    with pytest.raises(SpecError, match="max_context"):
        loop.run(40)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,gamma", [("fp32", 3), ("fp16", 1), ("fp32", 1)])
def test_graph_mode_equals_eager_mode_on_gpu(dtype, gamma):
    spec = resolve_model(TINY, dtype_bytes=4 if dtype == "fp32" else 2)
    prompt = torch.randint(0, spec.vocab, (4, 17), generator=torch.Generator().manual_seed(4))
    outs = []
    for mode in ("eager", "graph"):
        t = DecoderModel(spec, max_batch=4, max_context=CTX, dtype=dtype, device="cuda", seed=0)
        d = DecoderModel(spec, n_layers=1, max_batch=4, max_context=CTX, dtype=dtype, device="cuda", seed=5)
        loop = SpecLoop(d, t, 4, gamma, mode=mode, device="cuda")
        loop.prepare()
        loop.reset(16, prompt)
        outs.append(loop.run(6, collect_output=True).output)
    assert outs[0] == outs[1]
    if dtype == "fp32":
        ref = greedy_reference(t, prompt, 6 * (gamma + 1))
        assert all(o == r[:len(o)] for o, r in zip(outs[1], ref))


@pytest.mark.gpu
@pytest.mark.parametrize("gamma", [1, 4])
def test_steady_oracle_loop_graph_equals_eager_on_gpu(gamma):
    """The validation's configuration: oracle acceptance, steady state, fp16, graph vs eager."""
    spec = resolve_model(TINY, dtype_bytes=2)
    outs = []
    for mode in ("eager", "graph"):
        t = DecoderModel(spec, max_batch=8, max_context=CTX, dtype="fp16", device="cuda", seed=0)
        d = DecoderModel(spec, n_layers=1, max_batch=8, max_context=CTX, dtype="fp16", device="cuda", seed=0)
        o = AcceptanceOracle([0.8], gamma, device="cuda", seed=3)
        loop = SpecLoop(d, t, 8, gamma, mode=mode, oracle=o, device="cuda", steady=True, context=32)
        loop.prepare()
        loop.reset()
        log = loop.run(5, collect_output=True)
        outs.append((log.output, log.tokens))
    assert outs[0][0] == outs[1][0]
    assert (outs[0][1] == outs[1][1]).all()
