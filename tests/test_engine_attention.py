"""Engine-grade attention (profiler.attention): the mask-free / lower-right-causal kernels compute the
same layer as the plain folded-and-masked kernels and as a float64 reference, on CPU; on a GPU every
backend the chooser may pick agrees with the reference, and a compiled (opaque-kv) model equals eager."""
import pytest

torch = pytest.importorskip("torch")

from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.profiler import attention  # noqa: E402
from specperf.profiler.blocks import DecoderLayer, DecoderModel  # noqa: E402

GQA = "llama-7b:d_model=128,n_heads=8,n_kv_heads=2,d_ff=256,n_layers=2,vocab=256"
MHA = "llama-7b:d_model=128,n_heads=4,d_ff=256,n_layers=2,vocab=256"


@pytest.fixture
def kernels():
    old = attention.kernels()
    yield attention.set_kernels
    attention.set_kernels(old)


def _ref(q, k, v, n):  # float64, K/V repeated per query head, lower-right causal
    grp = q.shape[1] // k.shape[1]
    k, v = k.double().repeat_interleave(grp, 1), v.double().repeat_interleave(grp, 1)
    L = k.shape[2]
    s = q.double() @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    ok = torch.arange(L)[None, :] <= (L - n + torch.arange(n))[:, None]
    return torch.softmax(s.masked_fill(~ok, float("-inf")), -1) @ v


@pytest.mark.parametrize("heads,kv", [(8, 2), (4, 4), (6, 1)])
@pytest.mark.parametrize("n", [1, 5])
def test_engine_sdpa_equals_reference(heads, kv, n):
    g = torch.Generator().manual_seed(heads * 10 + n)
    q = torch.randn(3, heads, n, 16, generator=g)
    k, v = torch.randn(3, kv, 37, 16, generator=g), torch.randn(3, kv, 37, 16, generator=g)
    torch.testing.assert_close(attention.engine_sdpa(q, k, v).double(), _ref(q, k, v, n), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [GQA, MHA])
@pytest.mark.parametrize("n", [1, 4])
def test_engine_layer_equals_plain_layer(name, n, kernels):
    """At a uniform context the mask-free engine layer and the plain masked layer give one output."""
    spec = resolve_model(name)
    layer = DecoderLayer(spec, max_batch=2, max_context=64, dtype="fp32", seed=5)
    x, pos = torch.randn(2, n, spec.d_model), torch.full((2,), 30)
    cache = (layer.cache_k.clone(), layer.cache_v.clone())
    with torch.inference_mode():
        kernels("plain")
        want = layer(x, pos, 30 + n)
        layer.cache_k.copy_(cache[0]), layer.cache_v.copy_(cache[1])
        kernels("engine")
        got = layer(x, pos, 30 + n)  # no mask: exactly 30 + n keys
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_engine_masked_path_handles_per_sequence_positions(kernels):
    """Sequences at different positions (the speculative loop): the broadcast-mask GQA path equals plain."""
    spec = resolve_model(GQA)
    m = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp32", seed=2)
    toks, pos = torch.randint(0, 256, (2, 3)), torch.tensor([11, 25])
    with torch.inference_mode():
        kernels("plain")
        want = m(toks, pos, 40)
        kernels("engine")
        got = m(toks, pos, 40)
        uni = m(toks, torch.full((2,), 25), 28, uniform=True)
        kernels("plain")
        uni_want = m(toks, torch.full((2,), 25), 28)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(uni, uni_want, rtol=1e-5, atol=1e-5)


def test_kernels_switch_refuses_unknown_names():
    with pytest.raises(ValueError, match="--kernels 'fast' is not allowed"):
        attention.set_kernels("fast")


def test_choices_are_recorded_once_per_shape():
    meta = {}
    q, k = torch.randn(1, 4, 1, 8), torch.randn(1, 2, 19, 8)
    attention.engine_sdpa(q, k, k)
    attention.record_choices(meta)
    attention.record_choices(meta)
    shapes = [c for c in meta["attention_choices"] if (c["heads"], c["kv_heads"], c["kv_len"]) == (4, 2, 19)]
    assert len(shapes) == 1 and shapes[0]["backend"] == "fold-math"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("heads,kv,n,L", [(32, 8, 1, 4096), (10, 2, 5, 2048), (16, 16, 1, 512), (28, 4, 9, 8192)])
def test_every_gpu_candidate_agrees_and_the_fastest_is_chosen(dtype, heads, kv, n, L):
    g = torch.Generator(device="cuda").manual_seed(L + n)
    q = torch.randn(4, heads, n, 128, generator=g, device="cuda", dtype=dtype)
    k = torch.randn(4, kv, L, 128, generator=g, device="cuda", dtype=dtype)
    v = torch.randn(4, kv, L, 128, generator=g, device="cuda", dtype=dtype)
    ref = _ref(q.cpu(), k.cpu(), v.cpu(), n)
    name = attention.choose(q, k, v)
    entry = [c for c in attention.CHOICES if (c["heads"], c["kv_heads"], c["new_tokens"], c["kv_len"],
                                              c["dtype"]) == (heads, kv, n, L, str(dtype)[6:])][-1]
    assert entry["backend"] == name == min(entry["candidates_s"], key=entry["candidates_s"].get)
    for cand, fn in attention._candidates(n, heads // kv, True, packed=True).items():
        if cand in entry["candidates_s"]:  # the chooser kept it: it must be right on the whole batch
            err = (fn(q, k, v).double().cpu() - ref).norm() / ref.norm()
            assert err < 2e-2, (cand, float(err))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_engine_model_equals_eager_on_gpu(tmp_path, monkeypatch):
    from specperf.profiler import compiled
    from specperf.profiler.timing import capture_graph

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.delenv("SPECPERF_COMPILE_ATTENTION", raising=False)
    assert compiled.attention_mode() == "opaque-kv"
    spec = resolve_model(GQA.replace("d_model=128", "d_model=512").replace("vocab=256", "vocab=1000"))
    m = DecoderModel(spec, max_batch=2, max_context=256, dtype="fp16", device="cuda")
    toks = torch.randint(0, 1000, (2, 5), device="cuda")
    pos = torch.full((2,), 100, dtype=torch.long, device="cuda")
    with torch.inference_mode():
        ck = [(la.cache_k.clone(), la.cache_v.clone()) for la in m.layers]
        want = m(toks, pos, 105, uniform=True).float()
        for la, (a, b) in zip(m.layers, ck):
            la.cache_k.copy_(a), la.cache_v.copy_(b)
        fwd = compiled.model_fn(m)
        graph, out = capture_graph(lambda: fwd(toks, pos, 105, uniform=True), "cuda")
        graph.replay()
        torch.cuda.synchronize()
    torch.testing.assert_close(out.float(), want, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("n,heads,kv", [(1, 8, 2), (5, 8, 2), (5, 4, 4)])
def test_every_cpu_candidate_equals_reference(n, heads, kv):
    g = torch.Generator().manual_seed(n + heads)
    q = torch.randn(2, heads, n, 16, generator=g)
    k, v = torch.randn(2, kv, 29, 16, generator=g), torch.randn(2, kv, 29, 16, generator=g)
    want = _ref(q, k, v, n)
    cands = attention._candidates(n, heads // kv, False, packed=True)
    assert len(cands) >= 2
    assert ("foldmask-math" in cands) == (n > 1 and heads > kv)
    for name, fn in cands.items():
        torch.testing.assert_close(fn(q, k, v).double(), want, rtol=1e-5, atol=1e-5, msg=name)


def test_profile_refuses_unknown_kernels_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from specperf.cli.main import app

    r = CliRunner().invoke(app, ["profile", "--models", "llama-7b", "--device", "cpu", "--out",
                                 str(tmp_path / "p.csv"), "--kernels", "fast"])
    assert r.exit_code == 2
    lines = [x for x in r.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "--kernels 'fast' is not allowed" in lines[0] and "engine, packed or plain" in lines[0]
    assert not (tmp_path / "p.csv").exists()
