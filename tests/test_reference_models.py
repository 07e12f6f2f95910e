"""The independent references (scripts/reference_check.py) and their pricing (perfmodel/data_build/reference.py).

Two implementations agree: the reference's piecewise layer (KV write + attention behind an opaque
custom op, vLLM's scheme) computes exactly what its plain layer computes; a `piecewise` reference row is
priced as specperf's compiled mode, identically to the same row labelled `compiled`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import reference_check as ref  # noqa: E402

from specperf.perfmodel.data_build import reference  # noqa: E402


@pytest.mark.parametrize("n", [1, 3])
def test_piecewise_layer_computes_what_the_plain_layer_computes(n):
    shape = (2, 64, 4, 2, 128, 100)  # 2 layers, width 64, 4 query / 2 KV heads
    torch.manual_seed(0)
    a = ref.RefModel(shape, 2, 40, torch.float32, "cpu")
    b = ref.RefModel(shape, 2, 40, torch.float32, "cpu")
    b.load_state_dict(a.state_dict())
    ref.register_caches(b)
    toks = torch.randint(0, 100, (2, n))
    with torch.inference_mode():
        want, got = a(toks, 8), b(toks, 8, ref.layer_forward_piecewise)
    assert torch.equal(want, got)
    for la, lb in zip(a.layers, b.layers):  # the opaque op wrote the same K/V slots
        assert torch.equal(la.ck, lb.ck) and torch.equal(la.cv, lb.cv)
    assert not torch.equal(a.layers[0].ck[:, :, 8:8 + n], torch.zeros_like(a.layers[0].ck[:, :, 8:8 + n]))


def _row(mode):
    return {"impl": "plain", "model": "r640x12", "family": "llama", "n_layers": "12", "d_model": "640",
            "n_heads": "10", "n_kv_heads": "2", "d_ff": "2048", "vocab": "49152", "mode": mode, "batch": "8",
            "new_tokens": "5", "context": "512", "median_s": "0.001"}


def test_a_piecewise_row_is_priced_as_compiled_mode():
    (pw,), (cp,) = reference.predictions([_row("piecewise")], "h100-sxm"), reference.predictions([_row("compiled")], "h100-sxm")
    assert pw["predicted_s"] == cp["predicted_s"] and pw["mode"] == "piecewise"
    (g,) = reference.predictions([_row("graph")], "h100-sxm")
    assert g["predicted_s"] != cp["predicted_s"]


def test_reference_check_rejects_an_unknown_impl(capsys):
    with pytest.raises(SystemExit) as e:
        ref.main(["--out", "/nonexistent/x.csv", "--impls", "plain,bogus"])
    assert e.value.code == 2
    assert "bogus" in capsys.readouterr().err
