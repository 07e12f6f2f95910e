"""GPU checks of the profiler (skipped without CUDA): graph replay equals eager, cached decode equals
full recompute in fp16 on the device, and `specperf profile --device cuda` measures both modes."""
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from specperf.cli.main import app  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.latency.table import LatencyTable  # noqa: E402

pytestmark = pytest.mark.gpu
GQA = "llama-2-70b:n_layers=3,d_model=512,n_heads=8,n_kv_heads=2,d_ff=1024,vocab=1000"
OPT = "opt-125m:n_layers=3,d_model=512,n_heads=8,d_ff=1024,vocab=1000"


@pytest.mark.parametrize("name", [GQA, OPT])
def test_graph_replay_equals_eager_and_recompute(name):
    from specperf.profiler.blocks import DecoderModel
    from specperf.profiler.timing import capture_graph

    spec = resolve_model(name)
    m = DecoderModel(spec, max_batch=2, max_context=64, dtype="fp16", device="cuda")
    toks = torch.randint(0, spec.vocab, (2, 20), device="cuda")
    with torch.inference_mode():
        full = m(toks, torch.zeros(2, dtype=torch.long, device="cuda")).float()
        step_tok = toks[:, 17:20].clone()
        pos = torch.full((2,), 17, dtype=torch.long, device="cuda")
        eager = m(step_tok, pos).float()
        graph, out = capture_graph(lambda: m(step_tok, pos), "cuda")
        graph.replay()
        torch.cuda.synchronize()
    torch.testing.assert_close(out.float(), eager, rtol=0, atol=0)
    torch.testing.assert_close(eager, full[:, 17:20], rtol=2e-2, atol=2e-2)


def test_profile_cli_on_cuda_measures_both_modes(tmp_path):
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["profile", "--models", GQA, "--batch", "1,4", "--context", "128",
                                 "--gamma-max", "1", "--device", "cuda", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    t = LatencyTable.load(out)
    assert len(t.ok_rows()) == len(t) and {r["mode"] for r in t.rows} == {"graph", "eager"}
    import torch

    from specperf.profiler.env import catalog_gpu

    card = torch.cuda.get_device_name(0)  # the card this test runs on, whatever it is
    assert t.meta["gpu_name"] == card, (t.meta["gpu_name"], card)
    assert t.meta["gpu"] == catalog_gpu(card) and t.meta["gpu"] not in ("", "cpu")
