"""Real-weight loops on CPU: a Hugging Face-layout safetensors checkpoint (written from a random
tiny model) loads into blocks.DecoderModel with identical logits, a layer-truncated copy of it
serves as the draft, and greedy speculative decoding with both reproduces the target's own greedy
output; a checkpoint lacking a tensor is refused in one line."""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from specperf.perfmodel.specs.models import SpecError, from_hf_config  # noqa: E402
from specperf.profiler.blocks import DecoderModel  # noqa: E402
from specperf.profiler.specloop import SpecLoop, greedy_reference  # noqa: E402
from specperf.profiler.specloop_weights import load_decoder, save_hf  # noqa: E402

CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
          "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256,
          "max_position_embeddings": 128, "_name_or_path": "tiny-llama-test"}


@pytest.fixture()
def checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    spec = from_hf_config(tmp_path / "config.json", dtype_bytes=4)
    model = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp32", seed=9)
    save_hf(model, tmp_path, CONFIG)
    return tmp_path, model


def test_checkpoint_loads_with_identical_logits(checkpoint):
    d, ref = checkpoint
    spec, m = load_decoder(d, max_batch=2, max_context=64, dtype="fp32")
    assert spec.n_kv_heads == 2 and len(m.layers) == 3
    toks = torch.randint(0, 256, (2, 10), generator=torch.Generator().manual_seed(0))
    pos = torch.zeros(2, dtype=torch.long)
    torch.testing.assert_close(m(toks, pos), ref(toks, pos), rtol=0, atol=0)


def test_greedy_speculative_decoding_with_loaded_weights(checkpoint):
    d, _ = checkpoint
    _, target = load_decoder(d, max_batch=2, max_context=64, dtype="fp32")
    _, draft = load_decoder(d, max_batch=2, max_context=64, dtype="fp32", n_layers=2)  # layer-pruned draft
    prompt = torch.randint(0, 256, (2, 6), generator=torch.Generator().manual_seed(1))
    loop = SpecLoop(draft, target, 2, 3)
    loop.reset(5, prompt)
    log = loop.run(6, collect_output=True)
    ref = greedy_reference(target, prompt, 24)
    for s in range(2):
        assert log.output[s] == ref[s][:len(log.output[s])]
    assert log.tokens.max() > 1  # the pruned draft gets some tokens accepted


def test_incomplete_checkpoint_is_refused(checkpoint):
    from safetensors.torch import load_file, save_file

    d, _ = checkpoint
    state = load_file(str(d / "model.safetensors"))
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(SpecError, match="up_proj"):
        load_decoder(d, dtype="fp32")
