"""GPU checks of the operator profiler: both modes measured, and the attention/RoPE operators compute
what DecoderLayer computes on the same inputs (the operators time the layer's own code)."""
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from specperf.cli.main import app  # noqa: E402
from specperf.perfmodel.latency.operator_table import OperatorTable  # noqa: E402

pytestmark = pytest.mark.gpu


def test_profile_operators_cuda_both_modes(tmp_path):
    out = tmp_path / "ops.csv"
    r = CliRunner().invoke(app, ["profile", "--operators", "--grid", "tiny", "--device", "cuda", "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = OperatorTable.load(out)
    modes = {(row["op"], row["mode"]) for row in t.ok_rows()}
    assert ("gemm", "graph") in modes and ("gemm", "eager") in modes and ("attention_gqa", "graph") in modes
    assert all(0 < row["median_s"] < 0.05 for row in t.ok_rows())


@pytest.mark.parametrize("kernels", ["plain", "engine"])
def test_attention_operator_matches_layer(kernels):
    """Per-sequence positions: the plain layer (mask built inside) and the engine layer (explicit mask,
    native GQA) both equal the folded, repeated-mask attention written out here."""
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.profiler import attention
    from specperf.profiler.blocks import DecoderLayer, causal_mask
    import torch.nn.functional as F

    old = attention.kernels()
    attention.set_kernels(kernels)

    spec = resolve_model("llama-2-70b:d_model=1024,n_heads=8,n_kv_heads=2,d_ff=2048")
    layer = DecoderLayer(spec, max_batch=2, max_context=64, dtype="fp16", device="cuda")
    b, n, hd, H, KV = 2, 3, 128, 8, 2
    x = torch.randn(b, n, 1024, device="cuda", dtype=torch.float16)
    pos = torch.tensor([20, 30], device="cuda")
    with torch.inference_mode():
        want = layer.attention(x, pos, 48, mask=causal_mask(pos, n, 48) if kernels == "engine" else None)
        attention.set_kernels(old)
        qkv = F.linear(x, layer.w_qkv)
        q = qkv[..., :H * hd].view(b, n, H, hd)
        positions = pos[:, None] + torch.arange(n, device="cuda")
        cos, sin = layer.rope_cos[positions][:, :, None, :], layer.rope_sin[positions][:, :, None, :]
        q = q * cos + torch.cat([-q[..., hd // 2:], q[..., :hd // 2]], dim=-1) * sin  # rotate-half
        keys, vals = layer.cache_k[:b, :, :48], layer.cache_v[:b, :, :48]
        grp = H // KV
        qh = q.view(b, n, KV, grp, hd).permute(0, 2, 3, 1, 4).reshape(b, KV, grp * n, hd)
        mask = causal_mask(pos, n, 48).repeat(1, 1, grp, 1)
        o = F.scaled_dot_product_attention(qh, keys, vals, attn_mask=mask)
        o = o.view(b, KV, grp, n, hd).permute(0, 3, 1, 2, 4).reshape(b, n, H * hd)
        got = F.linear(o, layer.w_o)
    assert torch.allclose(got.float(), want.float(), atol=2e-2, rtol=2e-2)
