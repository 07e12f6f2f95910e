"""The own loop with an EAGLE-style head (profiler.specloop_tree) on CPU: greedy speculative decoding
with the head as a chain and as a token tree emits exactly the target's own greedy tokens (the
verification, tree mask, RoPE positions and KV compaction are right), fitting the head to a target whose
next token is learnable raises its agreement and the loop's acceptance (multi-token tree paths, compaction
included), and a tree iteration's own work can be timed with its forwards stubbed."""
import pytest

torch = pytest.importorskip("torch")

from specperf.perfmodel.specdec.trees import Tree, best_tree  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.profiler.blocks import DecoderModel  # noqa: E402
from specperf.profiler.head_training import agreement, damp_residual, fit_head, training_data  # noqa: E402
from specperf.profiler.specloop_tree import (EagleHead, HeadLoop, StubForwards, greedy_reference,  # noqa: E402
                                             time_tree_bookkeeping)

SPEC = resolve_model("llama-7b:n_layers=2,d_model=64,n_heads=4,n_kv_heads=2,d_ff=128,vocab=97")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    t = DecoderModel(SPEC, max_context=256, dtype="fp32", device="cpu", seed=3)
    return t, EagleHead(t, 256, dtype="fp32", device="cpu")


@pytest.mark.parametrize("tree", [None, Tree((-1, -1, 0, 0, 1, 2), (0, 1, 0, 1, 0, 0)),
                                  best_tree([[0.5, 0.2, 0.1], [0.4, 0.2, 0.0]], 10, 4)])
def test_head_loop_is_lossless(models, tree):
    t, h = models
    prompt = torch.randint(0, SPEC.vocab, (1, 12), generator=torch.Generator().manual_seed(5))
    want = greedy_reference(t, prompt, 40)
    got = HeadLoop(t, h, gamma=3, tree=tree).generate(prompt, 40)
    assert got["tokens"] == want
    assert got["iterations"] <= 40


@pytest.fixture(scope="module")
def fitted():
    """A target with damped residual writes (its next token learnable) and a head fitted to it."""
    torch.manual_seed(0)
    t = DecoderModel(SPEC, max_context=256, dtype="fp32", device="cpu", seed=3)
    damp_residual(t, 0.2)
    h = EagleHead(t, 256, dtype="fp32", device="cpu", seed=11)
    data = training_data(t, 2, 32, 24, 32, seed=0)
    held = training_data(t, 0, 0, 1, 32, seed=1)[0]
    before = agreement(t, h, held)
    fit = fit_head(t, h, data, held, steps=60, lr=1e-3)
    return t, h, before, fit


def test_fitting_raises_agreement_and_acceptance(fitted):
    t, h, before, fit = fitted
    assert before < 0.1 < 0.3 < fit["accuracy"]  # a random head agrees by chance (1/97); the fitted one does not
    assert max(fit["heldout_agreement_lsq"], fit["heldout_agreement_adam"]) > 0.3
    assert fit["kept"] in ("adam", "least squares")
    prompt = torch.randint(0, SPEC.vocab, (1, 12), generator=torch.Generator().manual_seed(9))
    loop = HeadLoop(t, h, gamma=4)
    got = loop.generate(prompt, 48)
    assert got["tokens"] == greedy_reference(t, prompt, 48)  # still the target's greedy output
    assert got["emitted"] / got["iterations"] > 1.5 and loop.rank_acceptance()[0, 0] > 0.3


@pytest.mark.parametrize("n", [6, 12])
def test_fitted_tree_accepts_multi_token_paths_losslessly(fitted, n):
    """Accepted paths of several tokens (off rank 0 too) exercise the KV and feature compaction."""
    t, h, _, _ = fitted
    tree = best_tree([[0.5, 0.2, 0.1], [0.4, 0.2, 0.1]], n, 4)
    prompt = torch.randint(0, SPEC.vocab, (1, 12), generator=torch.Generator().manual_seed(4))
    got = HeadLoop(t, h, tree=tree, record_ranks=False).generate(prompt, 48)
    assert got["tokens"] == greedy_reference(t, prompt, 48)
    assert got["emitted"] / got["iterations"] > 1.5


def test_tree_bookkeeping_is_timed_with_the_forwards_stubbed(fitted):
    t, h, _, _ = fitted
    tree = best_tree([[0.5, 0.2, 0.1], [0.4, 0.2, 0.1]], 10, 4)
    calls = []

    def time_fn(fn, reps):
        for _ in range(reps):
            calls.append(fn())
        return 1e-3

    assert time_tree_bookkeeping(t, h, tree, 40, time_fn, 3) == 1e-3
    assert len(calls) == 3 and all(isinstance(e, list) and len(e) >= 1 for e in calls)  # emitted tokens per iteration
    stub = StubForwards(SPEC.vocab, SPEC.d_model, 11, torch.float32, "cpu")
    lg, hid = stub.target(torch.zeros(1, 11, dtype=torch.long), None, None, None)
    assert lg.shape == (1, 11, SPEC.vocab) and hid.shape == (1, 11, SPEC.d_model)
