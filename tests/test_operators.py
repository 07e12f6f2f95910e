"""The operator-composed provider: interpolation, composition from planted operator tables, glue
fitting, the shipped H200 tables against measured whole layers, and the operator profiler on CPU."""
import numpy as np
import pytest

from specperf.perfmodel.latency.opgrid import OpGrid
from specperf.perfmodel.latency.operator_fit import fit
from specperf.perfmodel.latency.operator_table import AXES, COLUMNS, SIZE_COLS, OperatorTable
from specperf.perfmodel.latency.operators import OperatorLatency, shards, shipped_operator_table
from specperf.perfmodel.latency.table import LatencyTable
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu

HW = resolve_gpu("h200")
NODES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]


def planted(op, *s):
    """A known cost law per operator: fixed part + bilinear/affine terms (what the grid must recover)."""
    s = [np.asarray(x, dtype=float) for x in s]
    if op.startswith("gemm"):
        m, n, k = s
        return 3e-6 + 2 * n * k / 4e12 + 2 * m * n * k / 6e14 + (1e-6 if op == "gemm_bias" else 0)
    if op == "attention_verify":
        n, bkv, grp, L, hd = s
        return 15e-6 + 4 * bkv * L * hd / 4e12 * (1 + grp * n / 16)
    if op.startswith("attention"):
        bh, q, L, hd = s
        return (8e-6 if op == "attention" else 12e-6) + 4 * bh * L * hd / 4e12 * (1 + q / 64)
    if op == "launch":
        return 1e-6 + 0 * s[0]
    m, w = s
    return {"rope": 9e-6, "kv_write": 6e-6}.get(op, 2e-6) + 4 * m * w / 4e12


def planted_table(path, ops=tuple(AXES)):
    t = OperatorTable(meta={"gpu": "h200"})
    grids = {("tokens",): [[1]], ("tokens", "n"): [[1, 4, 16, 64, 256], [64, 256, 1024, 4096, 16384, 65536]],
             ("tokens", "n", "k"): [[1, 4, 16, 64, 256], [256, 1024, 4096, 16384, 65536, 131072],
                                    [256, 1024, 4096, 16384, 65536]],
             ("batch_heads", "queries", "kv_len", "head_dim"): [[1, 4, 16, 64, 256], [1, 2, 4, 8, 16, 64],
                                                                [128, 512, 2048, 8192], [64, 128]],
             AXES["attention_verify"]: [[2, 5, 8], [1, 4, 16, 64, 256], [2, 4, 8], [128, 512, 2048, 8192], [64, 128]]}
    for op in ops:
        import itertools

        for pt in itertools.product(*grids[AXES[op]]):
            sizes = dict.fromkeys(SIZE_COLS, 0) | dict(zip(AXES[op], pt))
            for mode, f in (("graph", 1.0), ("eager", 0.0)):
                med = planted(op, *pt) * f + (7e-6 if mode == "eager" else 0)
                t.add({"gpu": "h200", "op": op, "mode": mode, "dtype": "fp16", **sizes, "copies": 1,
                       "median_s": med, "p10_s": med, "p90_s": med, "repeats": 10, "status": "ok", "reason": ""})
    t.save(path)
    return path


def test_opgrid_recovers_bilinear_and_affine_with_holes():
    a, b = np.array([1.0, 4, 16, 64]), np.array([256.0, 1024, 4096])
    f = lambda x, y: 2.0 + 0.5 * x + 0.01 * y + 1e-3 * x * y  # noqa: E731
    v = f(a[:, None], b[None, :])
    v[1, 1] = np.nan  # a hole the sweep did not reach
    g = OpGrid([a, b], v)
    x, y = np.array([2.5, 10, 50, 1]), np.array([300, 2000, 4000, 1024])
    assert np.allclose(g(x, y), f(x, y), rtol=1e-12)
    assert np.isclose(g(256, 4096), f(256, 4096), rtol=1e-9)  # beyond the top: affine extrapolation
    assert np.isclose(g(0.5, 256), f(1, 256))  # below: the first node


def test_planted_tables_recover_layer_times(tmp_path):
    prov = OperatorLatency(planted_table(tmp_path / "ops.csv"), HW)
    b, n, c = np.array([1, 8, 32]), np.array([1, 5, 1]), np.array([512, 2048, 1000])
    for name, tp in (("llama-2-70b", 8), ("qwen2.5-0.5b", 1), ("opt-1.3b", 2), ("llama-7b", 1)):
        spec = resolve_model(name)
        want = sum(planted(op, *s) for op, *s in prov.layer_ops(spec, b, n, c, tp))
        got = prov.forward(spec, b, n, c, tp, "graph").layer_s
        assert np.allclose(got, want, rtol=1e-9), name
        ops = [o for o, *_ in prov.layer_ops(spec, b, n, c, tp)]
        H, KV, _ = shards(spec, tp)
        assert ("attention_gqa" in ops) == (H // KV > 1)
        assert ("gemm_bias" in ops) == (spec.qkv_bias or spec.linear_bias)
        assert ("rope" in ops) != spec.learned_positions
        eager = prov.forward(spec, b, n, c, tp, "eager").layer_s  # host-bound: n_ops × 7 µs here
        assert np.allclose(eager, np.maximum(len(ops) * 7e-6, want))


def test_glue_fit_recovers_planted_factor_and_constant(tmp_path):
    prov = OperatorLatency(planted_table(tmp_path / "ops.csv"), HW)
    rows = []
    for name in ("llama-7b", "tinyllama-1.1b", "opt-1.3b", "sheared-llama-2.7b"):
        spec = resolve_model(name)
        from specperf.perfmodel.latency.table import layer_shape_key

        for b in (1, 8, 32):
            for n in (1, 5):
                g = sum(planted(op, *s) for op, *s in prov.layer_ops(spec, b, n, 512))
                rows.append({"shape": layer_shape_key(spec), "component": "layer", "mode": "graph", "tp": 1,
                             "batch": b, "new_tokens": n, "context": 512, "median_s": float(1.1 * g + 5e-6)})
    p, s = fit(prov, rows, "layer", "graph")
    assert p["factor"] == pytest.approx(1.1, rel=1e-6) and p["const_s"] == pytest.approx(5e-6, rel=1e-4)
    assert s["leave_one_shape_out"]["median_abs_rel_err"] < 1e-6


@pytest.mark.skipif(shipped_operator_table("h200") is None, reason="no shipped H200 operator table")
def test_shipped_h200_tables_compose_measured_layers():
    """Composed vs measured on the shipped whole-layer rows (graph, tp = 1, context ≤ 2048)."""
    prov = OperatorLatency(shipped_operator_table("h200"), HW)
    rows = [r for r in LatencyTable.load(shipped_operator_table("h200").parent / "h200.csv").ok_rows()
            if r["component"] == "layer" and r["tp"] == 1 and r["context"] <= 2048 and r["mode"] == "graph"]
    from specperf.perfmodel.latency.table import spec_from_shape_key

    err = [float(prov.layer_s(spec_from_shape_key(r["shape"]), r["batch"], r["new_tokens"], r["context"]))
           / r["median_s"] - 1 for r in rows]
    assert len(err) > 500
    assert np.median(np.abs(err)) < 0.05 and np.percentile(np.abs(err), 90) < 0.12


def test_operator_profiler_cpu_resumes(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from specperf.cli.main import app

    out = tmp_path / "ops.csv"
    args = ["profile", "--operators", "--grid", "tiny", "--device", "cpu", "--dtype", "fp32", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    t = OperatorTable.load(out)
    assert {row["op"] for row in t.rows} >= {"gemm", "attention", "attention_gqa", "rope", "launch"}
    assert all(row["mode"] == "eager" and row["median_s"] > 0 for row in t.rows)  # no graphs on a CPU
    assert list(COLUMNS) == list(t.rows[0])
    r2 = CliRunner().invoke(app, args)
    assert r2.exit_code == 0 and "profiled 0 operator points" in r2.output
    runs = OperatorTable.load(out).meta["runs"]  # every run's provenance, the resumed one too
    assert [r["new_points"] for r in runs] == [len(t.rows), 0] and all(r["dtype"] == "fp32" for r in runs)
    bad = CliRunner().invoke(app, args[:-2] + ["--ops", "conv", "--out", str(out)])
    assert bad.exit_code == 2 and "ops='conv'" in bad.output


def test_opgrid_scalar_axes_match_full_interpolation():
    a, b, c = np.array([1.0, 4, 16]), np.array([256.0, 1024, 4096, 16384]), np.array([128.0, 512, 2048])
    rng = np.random.default_rng(0)
    g = OpGrid([a, b, c], rng.uniform(1, 2, (3, 4, 3)))
    x = np.array([1, 3, 9, 16, 40])
    full = g(x, np.full(5, 3000.0), np.full(5, 700.0))
    assert np.allclose(g(x, 3000.0, 700.0), full)  # scalar axes contracted first (cached slice)
    assert np.allclose(g(5.0, 3000.0, 700.0), full[2] * 0 + g(np.array([5.0, 5.0]), 3000.0, 700.0)[0])


def test_chain_measured_rows_first_operator_elsewhere():
    from specperf.perfmodel.latency.chain import OperatorChain
    from specperf.perfmodel.latency.providers import build_provider

    from specperf.perfmodel.latency.providers import CompiledSplit

    prov = build_provider(HW).target
    if isinstance(prov, CompiledSplit):  # the h200 ships a compiled table: graph/eager go to the chain
        prov = prov.base
    assert isinstance(prov, OperatorChain)
    seen = prov.forward(resolve_model("llama-7b"), 1, 1, 512, 1, "graph")
    assert seen.sources["layer"].kinds == ("measured",)
    unseen = resolve_model("llama-7b:d_model=1280,n_heads=10,n_kv_heads=2,d_ff=3584")
    ft = prov.forward(unseen, np.array([1, 8]), 1, 512, 1, "graph")
    assert ft.sources["layer"].kinds == ("operator",) and ft.sources["lm_head"].kinds == ("operator",)
    assert ft.sources["layer"].parts[0].band is not None  # the band measured on unseen shapes
    mixed = prov.forward(resolve_model("llama-7b"), 1, 1, np.array([512, 100000]), 1, "graph")
    assert set(mixed.sources["layer"].kinds) == {"measured", "operator"}
    assert np.all(np.diff(mixed.layer_s) > 0)  # the far context costs more


def test_crossgpu_rescale_moves_bandwidth_bound_only():
    from specperf.perfmodel.latency.crossgpu import rescaled

    table = shipped_operator_table("h200")
    if table is None:
        pytest.skip("no shipped H200 operator table")
    h100 = resolve_gpu("h100-sxm")
    src, dst = OperatorLatency(table, HW), rescaled(table, HW, h100)
    big = src.op_s("gemm", 1, 16384, 8192), dst.op_s("gemm", 1, 16384, 8192)  # 256 MiB of weights
    tiny = src.op_s("add", 1, 256), dst.op_s("add", 1, 256)
    assert big[1] / big[0] == pytest.approx(4.8 / 3.35, rel=0.08)
    assert tiny[1] / tiny[0] == pytest.approx(1.0, abs=0.01)
    assert dst.forward(resolve_model("llama-7b"), 1, 1, 512).sources["layer"].kinds == ("operator",)


def test_glue_refit_keeps_compiled_glue_and_records_its_data(tmp_path):
    """scripts/fit_operator_glue.py --layers refits graph/eager glue without dropping the compiled glue
    fitted by an earlier --compiled-layers run (a refit once silently removed it)."""
    import json
    import shutil
    import sys
    from pathlib import Path

    from specperf.perfmodel.latency.table import LatencyTable

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import fit_operator_glue

    from specperf.perfmodel.shipped import DATA_DIR as DATA

    t = tmp_path / "ops.csv"
    shutil.copy(DATA / "operators_h200_fp16.csv", t)
    shutil.copy(DATA / "operators_h200_fp16.csv.meta.json", tmp_path / "ops.csv.meta.json")
    before = json.loads((tmp_path / "ops.csv.meta.json").read_text())["glue"]["fp16"]
    full = LatencyTable.load(DATA / "h200.csv")
    keep = {"llama-7b", "tinyllama-1.1b", "opt-1.3b", "sheared-llama-1.3b"}
    small = LatencyTable(meta=dict(full.meta), rows=[r for r in full.rows if r["model"] in keep and r["tp"] == 1
                                                    and r["batch"] in (1, 8) and r["context"] == 512])
    small.save(tmp_path / "layers.csv")
    fit_operator_glue.main([str(t), "--layers", str(tmp_path / "layers.csv"), "--eager-layers",
                            str(tmp_path / "layers.csv")])
    meta = json.loads((tmp_path / "ops.csv.meta.json").read_text())
    after = meta["glue"]["fp16"]
    assert after["compiled"] == before["compiled"] and after["head_compiled"] == before["head_compiled"]
    assert after["graph"] != before["graph"]  # refitted on the subset
    assert meta["glue_fit"]["fp16"]["eager_layers"] == "layers.csv"


def test_shape_check_rounds_need_eager_mode_and_report_host_factor(tmp_path, capsys):
    """--rounds times eager only (one clear line, exit 2); the report prints the one-host-factor error."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import shape_check

    with pytest.raises(SystemExit) as e:
        shape_check.main(["--out", str(tmp_path / "x.csv"), "--rounds", "2"])
    assert e.value.code == 2 and "add --modes eager" in capsys.readouterr().err
    from specperf.perfmodel.shipped import EVIDENCE_DIR

    s = shape_check.report(EVIDENCE_DIR / "shape_check_eager_rounds2_h200.csv", shipped_launch_costs=True)["eager"]
    assert s["points"] == 216 and s["host_calibrated_median"] <= s["operator_median"] + 0.01
    assert s["operator_median"] == pytest.approx(0.058, abs=0.002)  # docs/accuracy.md: run D, 5.8 %


def test_per_forward_step_layout_prices_the_step_with_the_head(tmp_path):
    """A table timed in the per-forward-step layout prices positions + the cos/sin gathers once, in
    the head (planted: launch + add + two embeds of head_dim); an older table does not."""
    path = planted_table(tmp_path / "ops.csv")
    old = OperatorLatency(planted_table(tmp_path / "old.csv"), HW)
    t = OperatorTable.load(path)
    t.meta["layer_layout"] = "per-forward-step"
    t.save(path)
    new = OperatorLatency(path, HW)
    for name in ("llama-7b", "opt-1.3b"):
        spec = resolve_model(name)
        b, n = np.array([1, 8]), np.array([1, 5])
        M = b * n
        want = planted("launch", 1) + planted("add", M, 1)
        if not spec.learned_positions:
            want = want + 2 * planted("embed", M, spec.head_dim)
        got = new.lm_head_s(spec, b, n) - old.lm_head_s(spec, b, n)
        assert np.allclose(got, want, rtol=1e-9), name
        assert np.allclose(new.layer_s(spec, b, n, 512), old.layer_s(spec, b, n, 512))


def test_operator_profile_retimes_layout_dependent_rows_on_resume(tmp_path):
    """Resuming a table of the older per-layer layout keeps every operator but RoPE and the KV write,
    which are re-timed; the table then records the new layout."""
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from specperf.cli.main import app

    out = tmp_path / "ops.csv"
    args = ["profile", "--operators", "--grid", "tiny", "--device", "cpu", "--dtype", "fp32", "--out", str(out),
            "--ops", "add,rope,kv_write"]
    assert CliRunner().invoke(app, args).exit_code == 0
    t = OperatorTable.load(out)
    n_rope = sum(r["op"] in ("rope", "kv_write") for r in t.rows)
    adds = [r["median_s"] for r in t.rows if r["op"] == "add"]
    t.meta.pop("layer_layout")
    t.save(out)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"{n_rope} rows of rope, kv_write are re-timed" in r.output
    t2 = OperatorTable.load(out)
    assert t2.meta["layer_layout"] == "per-forward-step"
    assert [r["median_s"] for r in t2.rows if r["op"] == "add"] == adds  # kept, not re-timed
    assert sum(r["op"] in ("rope", "kv_write") for r in t2.rows) == n_rope


def test_engine_table_prices_grouped_verification_from_its_measured_operator(tmp_path):
    """Engine kernels: a grouped layer's attention at n > 1 new tokens is the measured attention_verify
    (planted law recovered on and between nodes); one new token stays folded decode (attention_gqa);
    without attention_verify rows it is composed from per-head attention as before."""
    path = planted_table(tmp_path / "ops.csv")
    t = OperatorTable.load(path)
    t.meta["kernels"] = "engine"
    t.save(path)
    prov = OperatorLatency(path, HW)
    spec = resolve_model("llama-3.1-8b")  # 32 query / 8 KV heads: group 4
    b, n, c = np.array([1, 8, 32, 4]), np.array([5, 5, 1, 3]), np.array([512, 2000, 2048, 600])
    ops = prov.layer_ops(spec, b, n, c)
    att = [o for o in ops if o[0] == "attention_grouped"]
    assert len(att) == 1
    got = prov.op_s(*att[0])
    L = c + n
    want = np.where(n > 1, planted("attention_verify", n, b * 8, 4, L, 128), planted("attention_gqa", b * 8, 4 * n, L, 128))
    assert np.allclose(got[:3], want[:3], rtol=1e-6)
    assert np.isclose(got[3], want[3], rtol=0.05)  # n = 3, L = 603: between nodes
    assert np.allclose(prov.layer_s(spec, b, n, c), sum(np.asarray(prov.op_s(*o)) for o in ops), rtol=1e-9)
    t.rows = [r for r in t.rows if r["op"] != "attention_verify"]
    t.save(path)
    old = OperatorLatency(path, HW)
    assert np.allclose(old.op_s(*att[0])[:1], planted("attention", 8 * 4, 5, 517, 128), rtol=1e-6)
