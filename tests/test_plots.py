"""Figures agree with the model they draw (numbers checked against perfmodel.specdec.predict, Leviathan et
al.'s Table 1 and planted profile rows), hover names the latency source, and bad input is one line
with exit code 2. No GPU and no browser needed (the browser checks are in test_plots_browser.py)."""
import re

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("plotly")

from specperf.cli.main import app  # noqa: E402
from specperf.perfmodel.specdec.acceptance import AcceptanceModel  # noqa: E402
from specperf.perfmodel.specs.catalog import resolve_model  # noqa: E402
from specperf.perfmodel.specs.hardware import resolve_gpu  # noqa: E402
from specperf.perfmodel.latency.analytical import AnalyticalLatency  # noqa: E402
from specperf.perfmodel.specdec.predict import predict  # noqa: E402
from specperf.perfmodel.latency.table import LatencyTable, head_shape_key, layer_shape_key  # noqa: E402

from specperf import plots  # noqa: E402
from specperf.plots import breakdown, breakeven, depth_width, design, speedup  # noqa: E402
from specperf.plots.common import Setting, source_kind  # noqa: E402

runner = CliRunner()
HW = resolve_gpu("h100-sxm")
LAT = AnalyticalLatency(HW)
TARGET, DRAFT = resolve_model("llama-65b"), resolve_model("sheared-llama-1.3b")
PAIR = ["--target", "llama-65b", "--draft", "sheared-llama-1.3b", "--tp", "4", "--analytical"]


def setting(**kw):
    base = dict(target=TARGET, draft=DRAFT, latency=LAT, gpu=HW.name, tp=4, gammas=tuple(range(1, 9)))
    base.update(kw)
    return Setting(**base)


def planted_profile(path, widths=(1024, 2048, 4096), head_widths=(1024, 2048)):
    """Layer rows with median = 1e-5·(1 + d/1024)·(graph 1, eager 2) s at contexts 256 and 1024."""
    from specperf.perfmodel.optimize.space import design_space

    base = resolve_model("llama-7b")
    shapes, _ = design_space(base, [1], list(widths))
    t = LatencyTable(meta={"gpu": "h100-sxm"})
    for s in shapes.shape_specs:
        s = s.replace(vocab=base.vocab)
        for mode, k in (("graph", 1.0), ("eager", 2.0)):
            common = dict(gpu="h100-sxm", model="planted", shape=layer_shape_key(s), head_shape=head_shape_key(s),
                          mode=mode, dtype="fp16", tp=1, batch=1, new_tokens=1, repeats=10, status="ok", reason="")
            for ctx in (256, 1024):
                med = k * 1e-5 * (1 + s.d_model / 1024)
                t.add(dict(common, component="layer", context=ctx, median_s=med, p10_s=0.9 * med, p90_s=1.2 * med))
            if s.d_model in head_widths:
                t.add(dict(common, component="lm_head", context=0, median_s=k * 3e-5, p10_s=k * 2.9e-5,
                           p90_s=k * 3.3e-5))
    t.save(path)
    return path


# ---- speedup ----------------------------------------------------------------------------------
def test_speedup_grid_agrees_with_predict():
    st = setting(gammas=tuple(range(1, 13)))
    d = speedup.grid(st)
    for a in (0.3, 0.6, 0.85):
        i = int(np.argmin(np.abs(d["alpha"] - a)))
        p = predict(TARGET, DRAFT, LAT, AcceptanceModel(alpha=float(d["alpha"][i])), range(1, 13), [1], [512], tp=4)
        np.testing.assert_allclose(d["speedup"][i], p.speedup[0, 0], rtol=1e-12)
        g_star, s_star = speedup.ridge(d)
        assert g_star[i] == p.optimal_gamma[0, 0] and s_star[i] == pytest.approx(p.optimal_speedup[0, 0])


def test_speedup_cost_ratio_matches_leviathan_table1():
    # Leviathan et al. 2023, Table 1 (c = 0): (α, γ) → speedup
    table = {(0.6, 2): 1.96, (0.7, 3): 2.53, (0.8, 2): 2.44, (0.8, 5): 3.69, (0.9, 2): 2.71, (0.9, 10): 6.86}
    d = speedup.grid(setting(gammas=tuple(range(1, 11))), cost_ratio=0.0)
    for (a, g), s in table.items():
        i = int(np.argmin(np.abs(d["alpha"] - a)))
        assert d["speedup"][i, g - 1] == pytest.approx(s, abs=0.005)


def test_speedup_ridge_rises_with_alpha_and_figure_carries_it():
    st = setting(gammas=tuple(range(1, 13)))
    g_star, _ = speedup.ridge(speedup.grid(st))
    assert np.all(np.diff(g_star) >= 0) and g_star[-1] > g_star[0]
    for style_ in ("surface", "map"):
        fig = speedup.figure(st, style_=style_)
        ridge = next(t for t in fig.data if "ridge" in (t.name or ""))
        np.testing.assert_array_equal(np.asarray(ridge.x), g_star)


def test_hover_names_the_latency_source():
    fig = speedup.figure(setting(), style_="map")
    text = fig.data[0].text[10][3]
    assert "speedup" in text and "latency: draft analytical" in text and "target analytical" in text


@pytest.mark.parametrize("src,kind", [
    ("measured (h100.csv)", "measured"), ("interpolated (h100.csv)", "measured"),
    ("analytical fitted to h100.csv, scaled to the nearest measured point", "analytical"),
    ("analytical (h100-sxm datasheet roofline)", "analytical"),
    ("measured (h.csv) ×3; analytical fitted to h.csv ×1", "mixed"), ("none (tp=1)", "none")])
def test_source_kind(src, kind):
    assert source_kind(src) == kind


# ---- gamma, breakdown, breakeven ----------------------------------------------------------------
def test_gamma_traces_are_predicts_optimum():
    acc = AcceptanceModel(alpha=0.8)
    fig = plots.figure("gamma", setting(acceptance=acc, mode="both"), batches=(1, 16, 256), contexts=(256, 4096))
    for mode in ("graph", "eager"):
        p = predict(TARGET, DRAFT, LAT, acc, range(1, 9), [1, 16, 256], [512], tp=4, mode=mode)
        tr = next(t for t in fig.data if t.name == f"γ* ({mode})" and list(t.x) == [1, 16, 256])
        g = p.optimal_gamma[:, 0]
        toks = np.array([1, 16, 256]) * (512 + g + 1)  # weights + KV of target shard and draft on one GPU
        fits = (TARGET.weight_bytes / 4 + toks * TARGET.kv_bytes_per_token / 4 + DRAFT.weight_bytes
                + toks * DRAFT.kv_bytes_per_token) <= HW.memory_bytes
        assert list(fits) == [True, True, False]  # 256 × 520 tokens of 65B KV cache / 4 > 80 GB
        np.testing.assert_array_equal(np.asarray(tr.y, dtype=float)[fits], g[fits])
        sp = next(t for t in fig.data if t.name == f"speedup at γ* ({mode})" and list(t.x) == [1, 16, 256])
        np.testing.assert_allclose(np.asarray(sp.y, dtype=float)[fits], p.optimal_speedup[fits, 0])
        assert np.isnan(np.asarray(sp.y, dtype=float)[~fits]).all() and np.isnan(np.asarray(tr.y, dtype=float)[~fits]).all()


def test_breakdown_stacks_to_the_iteration_time():
    st = setting(acceptance=AcceptanceModel(alpha=0.7))
    fig = breakdown.figure(st)
    p = predict(TARGET, DRAFT, LAT, st.acceptance, range(1, 9), [1], [512], tp=4)
    left = [t for t in fig.data if t.type == "bar" and t.offsetgroup == "iteration"]
    assert [t.name.split()[0] for t in left] == ["draft", "verification", "overhead"]
    top = np.asarray(left[-1].base, dtype=float) + np.asarray(left[-1].y, dtype=float)
    np.testing.assert_allclose(top, p.iteration_s[0, 0] * 1e3, rtol=1e-12)
    np.testing.assert_allclose(left[0].y, p.gamma * p.t_draft_s[0, 0] * 1e3, rtol=1e-12)


def test_breakeven_map_is_best_speedup_and_marks_the_crossing():
    acc = AcceptanceModel(alpha=0.7)
    fig = plots.figure("breakeven", setting(acceptance=acc), batches=(1, 64, 512), contexts=(128, 2048))
    p = predict(TARGET, DRAFT, LAT, acc, range(1, 9), [1, 64, 512], [128, 2048], tp=4)
    # memory: target shard + draft, weights + KV cache for context + γ* + 1 tokens, against one GPU
    toks = p.batch[:, None] * (p.context[None, :] + p.optimal_gamma + 1)
    need = (TARGET.weight_bytes / 4 + toks * TARGET.kv_bytes_per_token / 4 + DRAFT.weight_bytes
            + toks * DRAFT.kv_bytes_per_token)
    fits = need <= HW.memory_bytes
    assert fits[0, 0] and not fits[-1, -1]  # batch 512 × 2048 tokens of a 65B KV cache cannot fit in 80 GB
    z = 2 ** np.asarray(fig.data[0].z, dtype=float)
    np.testing.assert_allclose(z[fits], p.optimal_speedup[fits], rtol=1e-12)
    assert np.isnan(z[~fits]).all()  # masked, not drawn as a speedup
    masked = [t for t in fig.data if t.name == "does not fit in GPU memory"]
    assert len(masked) == 1 and np.array_equal(np.isfinite(np.asarray(masked[0].z, dtype=float)), ~fits)
    shown = np.where(fits, p.optimal_speedup, np.nan)
    crosses = np.nanmin(shown) < 1 < np.nanmax(shown)
    assert crosses == any("stops paying" in (t.name or "") for t in fig.data)
    labels = next(t for t in fig.data if t.name == "γ* labels").text
    # LAT is the analytical roofline: every drawn γ* is marked ~ (latency not measured)
    want = ["no fit" if not fits[i, j] else "off" if p.optimal_speedup[i, j] <= 1 else
            f"~γ*={p.optimal_gamma[i, j]}" + ("+" if p.optimal_gamma[i, j] == 8 else "")
            for j in range(len(p.context)) for i in range(len(p.batch))]
    assert list(labels) == want


def test_breakeven_marks_only_cells_that_are_not_measured(tmp_path):
    """With the shipped H100 profile the study's cell (batch 1, context 512) is all measured and not
    marked; batch 512, which the profile never measured (it stops at 64), is marked."""
    from specperf.perfmodel.latency.providers import build_provider

    lat = build_provider(HW).target
    st = setting(acceptance=AcceptanceModel(alpha=0.7), latency=lat)
    fig = plots.figure("breakeven", st, batches=(1, 512), contexts=(512,))
    labels = list(next(t for t in fig.data if t.name == "γ* labels").text)
    est = breakeven.cell_estimated(st, predict(TARGET, DRAFT, lat, st.acceptance, range(1, 9), [1, 512], [512], tp=4))
    assert [bool(e) for e in est[:, 0]] == [False, True]
    assert not labels[0].startswith("~")


# ---- depth-width ------------------------------------------------------------------------------
def test_depth_width_is_depth_times_layer_plus_head():
    st = Setting(draft=resolve_model("llama-7b"), latency=LAT, gpu=HW.name, mode="graph")
    d = depth_width.grid(st, "graph", layers=(1, 4, 16), d_models=(1024, 4096))
    for j, shape in enumerate(d["shapes"]):
        ft = LAT.forward(shape.replace(n_layers=1), 1, 1, 512, 1, "graph")
        np.testing.assert_allclose(d["latency_s"][:, j], np.array([1, 4, 16]) * ft.layer_s + ft.lm_head_s)
    assert np.all(np.diff(d["latency_s"], axis=0) > 0)  # deeper is slower at every width


def test_depth_width_from_a_profile_uses_its_rows(tmp_path):
    prof = str(planted_profile(tmp_path / "planted.csv"))
    st = Setting(draft=resolve_model("llama-7b"), latency=LAT, gpu=HW.name, mode="both", profile=prof)
    fig = depth_width.figure(st, layers=(1, 2, 8))
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2
    for tr, k in zip(heat, (1.0, 2.0)):
        assert list(tr.x) == [1024, 2048, 4096]
        layer = k * 1e-5 * (1 + np.array([1024, 2048, 4096]) / 1024)
        z = np.asarray(tr.z)
        # widths with measured heads: exactly L × planted layer + planted head
        np.testing.assert_allclose(z[:, :2], (np.array([1, 2, 8])[:, None] * layer[:2] + k * 3e-5) * 1e3)
        assert "layer: measured · head: measured" in tr.text[0][0]
        assert "layer: measured · head: analytical" in tr.text[0][2]  # the 4096 head was not measured


def test_depth_width_profile_widths_and_family(tmp_path):
    prof = planted_profile(tmp_path / "p.csv")
    t = LatencyTable.load(prof)
    opt = resolve_model("opt-1.3b")  # another family at a profiled width: must not be drawn
    row = dict(t.rows[0], shape=layer_shape_key(opt), head_shape=head_shape_key(opt), median_s=1.0)
    t.add(row)
    t.save(prof)
    st = Setting(draft=resolve_model("llama-7b"), latency=LAT, mode="graph", profile=str(prof))
    fig = depth_width.figure(st, layers=(1, 2), d_models=[1024, 4096])
    assert list(fig.data[0].x) == [1024, 4096] and float(np.max(fig.data[0].z)) < 1.0
    with pytest.raises(Exception, match="no llama layer rows at d_model 3072.*it has d_model 1024, 2048, 4096"):
        depth_width.figure(st, layers=(1, 2), d_models=[3072])


# ---- design -----------------------------------------------------------------------------------
def test_design_winner_is_the_best_by_independent_predict():
    names = ["sheared-llama-1.3b", "sheared-llama-2.7b", "llama-7b", "llama-7b:n_layers=4"]
    specs = [resolve_model(n) for n in names]
    alphas = [0.60, 0.66, 0.75, 0.62]
    st = setting(gammas=tuple(range(1, 13)))
    stated = [(s, a, None, "test") for s, a in zip(specs, alphas)]
    res, mode = design.run(st, drafts=specs, stated=stated)
    pts = design.points(res, mode)
    best = [predict(TARGET, s, LAT, AcceptanceModel(alpha=a), range(1, 13), [1], [512], tp=4).optimal_speedup[0, 0]
            for s, a in zip(specs, alphas)]
    np.testing.assert_allclose(pts["speedup"], best, rtol=1e-9)
    assert pts["winner"] == int(np.argmax(best))
    fig = design.figure(st, drafts=specs, stated=stated)
    star = next(t for t in fig.data if (t.name or "").startswith("winner"))
    assert specs[int(np.argmax(best))].name in star.name
    assert star.x[0] == pytest.approx(pts["t_draft_s"][pts["winner"]] * 1e3)


def test_design_without_stated_alpha_says_assumed():
    fig = design.figure(setting(gammas=tuple(range(1, 9))))
    hover = " ".join(h for t in fig.data if t.hovertext is not None for h in t.hovertext)
    assert "(assumed)" in hover


# ---- CLI --------------------------------------------------------------------------------------
KIND_ARGS = {
    "speedup": PAIR, "gamma": PAIR + ["--alpha", "0.8"], "breakdown": PAIR + ["--alpha", "0.8"],
    "depth-width": ["--analytical", "--layers", "1..8"], "design": ["--target", "llama-65b", "--tp", "4", "--analytical"],
    "breakeven": PAIR + ["--alpha", "0.7", "--batch", "1,64", "--context", "512,4096"],
    "acceptance": ["--alpha", "0.7"],
}


@pytest.mark.parametrize("kind", list(KIND_ARGS))
def test_cli_writes_each_kind(kind, tmp_path):
    out = tmp_path / f"{kind}.html"
    r = runner.invoke(app, ["plot", kind, "--out", str(out), *KIND_ARGS[kind]])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert html.count("<script") >= 2 and "plotly.js" in html[:100_000]  # plotly.js embedded
    assert not re.search(r"<script[^>]+src=", html)  # nothing fetched: works offline


def bad(args):
    r = runner.invoke(app, ["plot", *args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
    return r.output


def test_unknown_kind(tmp_path):
    msg = bad(["surfaces", "--out", str(tmp_path / "x.html")])
    assert "unknown plot kind 'surfaces'" in msg and "depth-width" in msg


@pytest.mark.parametrize("where,expect", [("nofolder/x.html", "does not exist"), ("x.txt", "must end in .html"),
                                          ("adir.html", "is a directory")])
def test_unwritable_output(tmp_path, where, expect):
    (tmp_path / "adir.html").mkdir()
    msg = bad(["speedup", "--cost-ratio", "0.1", "--out", str(tmp_path / where)])
    assert expect in msg


def test_unwritable_png_fails_before_work(tmp_path):
    msg = bad(["speedup", "--cost-ratio", "0.1", "--out", str(tmp_path / "a.html"), "--png", str(tmp_path / "n/a.png")])
    assert "--png" in msg and not (tmp_path / "a.html").exists()


def test_profile_lacking_rows_names_them(tmp_path):
    prof = planted_profile(tmp_path / "p.csv")
    msg = bad(["breakdown", "--profile", str(prof), *PAIR[:4], "--out", str(tmp_path / "b.html")])
    assert "component=layer" in msg and layer_shape_key(DRAFT) in msg and "median_s" in msg
    msg = bad(["depth-width", "--profile", str(prof), "--batch", "8", "--out", str(tmp_path / "d.html")])
    assert "component=layer" in msg and "batch=8" in msg and "batch 1" in msg


def test_profile_supplying_nothing_is_refused(tmp_path):
    """A profile with none of the shapes a figure draws would silently mean 'analytical': refuse it."""
    prof = planted_profile(tmp_path / "p.csv")  # widths 1024/2048/4096 only: no 65B or 2.7B layer or head
    msg = bad(["gamma", "--profile", str(prof), "--target", "llama-65b", "--draft", "sheared-llama-2.7b",
               "--alpha", "0.8", "--out", str(tmp_path / "g.html")])
    assert "supplies none of the latencies the gamma figure draws" in msg and "draft_layer" in msg
    r = runner.invoke(app, ["plot", "gamma", "--profile", str(prof), "--target", "llama-7b", "--draft",
                            "llama-7b:n_layers=4,d_model=2048,n_heads=16,d_ff=5632", "--alpha", "0.8",
                            "--out", str(tmp_path / "ok.html")])
    assert r.exit_code == 0, r.output  # the same profile does cover this draft's layer


def test_profile_lacking_columns_names_them(tmp_path):
    p = tmp_path / "cols.csv"
    p.write_text("gpu,model,component,mode,median_s\nh100-sxm,x,layer,graph,1e-5\n")
    msg = bad(["depth-width", "--profile", str(p), "--out", str(tmp_path / "d.html")])
    assert "missing columns" in msg and "shape" in msg and "new_tokens" in msg


@pytest.mark.parametrize("args,expect", [
    (["gamma", *PAIR], "needs --alpha"),
    (["speedup", "--target", "llama-65b"], "needs --target and --draft"),
    (["breakdown", *PAIR, "--mode", "both"], "mode='both' is not allowed for the breakdown"),
    (["speedup", "--cost-ratio", "-1"], "cost-ratio=-1.0"),
    (["design", "--target", "llama-65b", "--drafts", "llama-7b@1.5"], "α must be in [0, 1)"),
    (["gamma", *PAIR, "--alpha", "0.8", "--cost-ratio", "0.1"], "speedup figure only"),
    (["speedup", *PAIR, "--drafts", "llama-7b"], "--drafts applies to the design figure only"),
    (["speedup", *PAIR, "--layers", "1..4"], "--layers applies to the depth-width and design figures only"),
    (["speedup", *PAIR, "--profile", "x.csv"], "not both"),
])
def test_bad_arguments(tmp_path, args, expect):
    assert expect in bad([*args, "--out", str(tmp_path / "x.html")])


def test_plots_package_imports_plotly_lazily():
    import subprocess
    import sys

    code = "import sys, plots; print('plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
