"""The own loop with an EAGLE-style head (profiler.specloop_tree) on CPU: greedy speculative decoding
with the head as a chain and as a token tree emits exactly the target's own greedy tokens (the
verification, tree mask, RoPE positions and KV compaction are right), and training the head on the
target's greedy text raises its agreement with the target."""
import pytest

torch = pytest.importorskip("torch")

from specperf.perfmodel.specdec.trees import Tree, best_tree  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.profiler.blocks import DecoderModel  # noqa: E402
from specperf.profiler.specloop_tree import EagleHead, HeadLoop, greedy_reference, train_head  # noqa: E402

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


def test_training_raises_agreement_and_acceptance(models):
    t, _ = models
    h = EagleHead(t, 256, dtype="fp32", device="cpu", seed=11)
    prompt = torch.randint(0, SPEC.vocab, (1, 12), generator=torch.Generator().manual_seed(9))
    before = HeadLoop(t, h, gamma=3).generate(prompt, 48)
    acc = train_head(t, h, steps=150, seq=48, batch=4, lr=1e-2)
    after = HeadLoop(t, h, gamma=3).generate(prompt, 48)
    assert after["tokens"] == before["tokens"]  # still the target's greedy output
    assert acc > 0.3 and after["iterations"] < before["iterations"]
