"""The explorer page, driven in headless Debian Chromium through selenium + chromedriver: moving the
α slider (arrow keys) and changing the draft (the dropdown) must change γ* and the numbers shown to
exactly what `specperf predict --json` gives for the same inputs, and the page's 90 % bands (its
Monte Carlo on predict's seeded draws) must equal predict's speedup_lo/hi and throughput_tok_s_lo/hi
to 1e-9 relative, with and without an α interval (the α ± slider); every figure of the page and every
`specperf plot` kind, written with no model arguments, is screenshotted and must have drawn pixels.
Skipped where chromium or chromedriver is missing."""
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

REQUIRED = os.environ.get("SPECPERF_REQUIRE_BROWSER") == "1"  # .ci/run: a missing browser fails, never skips
if REQUIRED:
    import plotly  # noqa: F401
    import selenium  # noqa: F401
pytest.importorskip("plotly")
selenium = pytest.importorskip("selenium")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from specperf.cli.main import app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if REQUIRED and not (CHROMIUM and DRIVER):
    raise RuntimeError(f"SPECPERF_REQUIRE_BROWSER=1 but chromium={CHROMIUM} chromedriver={DRIVER}: run scripts/setup.sh")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromium-driver (Debian)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1100",
         "--host-resolver-rules=MAP * ~NOTFOUND"]  # no network: the page must be self-contained
DRAFTS = "sheared-llama-1.3b,llama-7b:n_layers=2"
runner = CliRunner()
ERRORS_JS = ("window.__errors = []; window.addEventListener('error', function (e) { window.__errors.push("
             "String(e.message || 'resource failed')); }, true);")


def errors(drv) -> list:
    return drv.execute_script("return window.__errors;")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    drv = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    drv.set_page_load_timeout(120)
    drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ERRORS_JS})
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "explorer.html"
    r = runner.invoke(app, ["explore", "--out", str(out), "--drafts", DRAFTS, "--gpus", "h100-sxm",
                            "--tps", "2,4", "--batches", "1,8,64", "--contexts", "512,2048"])
    assert r.exit_code == 0, r.output
    return out


def predict(draft: str, alpha: float, batch: int, context: int, mode="graph", tp=4, acceptance=None,
            catchup=False) -> dict:
    acc = ["--acceptance", str(acceptance)] if acceptance else ["--alpha", f"{alpha:.2f}"]
    r = runner.invoke(app, ["predict", "--target", "llama-65b", "--draft", draft, "--gpu", "h100-sxm",
                            "--tp", str(tp), "--mode", mode, *acc, "--batch", str(batch),
                            "--context", str(context), "--gamma", "auto", "--gamma-max", "12", "--json",
                            *(["--draft-catchup"] if catchup else [])])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def shown(drv) -> dict:
    """What the page shows and the state its script computed."""
    st = drv.execute_script("return window.specperfState;")
    return {"gstar": drv.find_element(By.ID, "gstar").text, "speedup": drv.find_element(By.ID, "speedup").text,
            "tps": drv.find_element(By.ID, "tps").text, "state": st}


def assert_matches_predict(s: dict, want: dict) -> None:
    st = s["state"]
    assert st["optimal_gamma"] == want["optimal_gamma"]
    assert s["gstar"].split()[0] == str(want["optimal_gamma"])
    assert s["speedup"].startswith(f"{want['speedup']:.3f}×")
    assert s["tps"] == f"{want['throughput_tok_s']:.1f}"
    for k in ("speedup", "throughput_tok_s", "baseline_tok_s", "iteration_s", "tokens_per_iteration"):
        assert st["point"][k] == pytest.approx(want[k], rel=1e-12), k
    for k in ("speedup", "throughput_tok_s", "iteration_s"):  # the 90 % band: same Monte Carlo, same draws
        for e in ("lo", "hi"):
            assert st["band"][f"{k}_{e}"] == pytest.approx(want[f"{k}_{e}"], rel=1e-9), f"{k}_{e}"
    assert st["band"]["speedup_lo"] < st["point"]["speedup"] < st["band"]["speedup_hi"]


def band_trace(drv, fid: str) -> tuple[list, list]:
    """(lo, hi) of the figure's shaded 90 % band (the trace filled to the one before it)."""
    return tuple(drv.execute_script(
        "var d=document.getElementById(arguments[0]).data, i=d.findIndex(function(t){return t.meta==='band';});"
        "return [d[i].y, d[i-1].y];", fid))


def test_alpha_interval_widens_the_band_as_predict_does(browser, page, tmp_path):
    browser.get(page.as_uri())
    st0 = shown(browser)["state"]
    lo0, hi0 = band_trace(browser, "fig-gamma")
    k = st0["optimal_gamma"] - 1
    assert lo0[k] == pytest.approx(st0["band"]["speedup_lo"], rel=1e-12)
    assert hi0[k] == pytest.approx(st0["band"]["speedup_hi"], rel=1e-12)
    pm = browser.find_element(By.ID, "alpha-pm")
    pm.send_keys(Keys.HOME)
    for _ in range(5):
        pm.send_keys(Keys.ARROW_RIGHT)  # α ± 0.05: α's 95 % interval [0.75, 0.85]
    s = shown(browser)
    assert s["state"]["inputs"]["pm"] == pytest.approx(0.05)
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"alpha": 0.8, "alpha_ci": [0.75, 0.85]}))
    assert_matches_predict(s, predict("sheared-llama-1.3b", 0.8, 1, 512, acceptance=acc))
    lo1, hi1 = band_trace(browser, "fig-gamma")
    width0 = sum(h - lo for lo, h in zip(lo0, hi0) if lo is not None)
    width1 = sum(h - lo for lo, h in zip(lo1, hi1) if lo is not None)
    assert width1 > width0  # the acceptance interval makes the shaded area wider
    it = browser.execute_script("return document.getElementById('fig-breakdown').data"
                                ".find(function (t) { return t.meta === 'band'; }).customdata;")
    k1 = s["state"]["optimal_gamma"] - 1
    assert it[k1] == pytest.approx([s["state"]["band"]["iteration_s_lo"], s["state"]["band"]["iteration_s_hi"]], rel=1e-12)
    blo, bhi = band_trace(browser, "fig-batch")
    assert blo[0] == pytest.approx(s["state"]["band"]["throughput_tok_s_lo"], rel=1e-12)
    assert bhi[0] == pytest.approx(s["state"]["band"]["throughput_tok_s_hi"], rel=1e-12)
    assert errors(browser) == []


def test_slider_and_dropdown_give_predicts_numbers(browser, page):
    browser.get(page.as_uri())
    first = shown(browser)
    assert errors(browser) == []
    assert first["state"]["inputs"]["alpha"] == 0.8 and first["state"]["inputs"]["tp"] == 4
    assert_matches_predict(first, predict("sheared-llama-1.3b", 0.80, 1, 512))

    slider = browser.find_element(By.ID, "alpha")
    slider.click()  # focus; a click may move the thumb, so the value is set from the keys that follow
    slider.send_keys(Keys.END)  # α = 0.98
    for _ in range(33):
        slider.send_keys(Keys.ARROW_LEFT)  # 0.98 − 0.33 = 0.65
    moved = shown(browser)
    assert moved["state"]["inputs"]["alpha"] == pytest.approx(0.65)
    assert_matches_predict(moved, predict("sheared-llama-1.3b", 0.65, 1, 512))
    assert moved["state"]["optimal_gamma"] != first["state"]["optimal_gamma"]

    Select(browser.find_element(By.ID, "draft")).select_by_value("llama-7b:n_layers=2")
    shallow = shown(browser)
    assert_matches_predict(shallow, predict("llama-7b:n_layers=2", 0.65, 1, 512))
    assert shallow["state"]["optimal_gamma"] != moved["state"]["optimal_gamma"]
    assert shallow["state"]["point"]["throughput_tok_s"] > moved["state"]["point"]["throughput_tok_s"]

    batch = browser.find_element(By.ID, "batch")
    batch.send_keys(Keys.END)  # batch 64
    Select(browser.find_element(By.ID, "mode")).select_by_value("eager")
    assert_matches_predict(shown(browser), predict("llama-7b:n_layers=2", 0.65, 64, 512, mode="eager"))
    assert errors(browser) == []


def test_draft_catchup_toggle_gives_predicts_numbers(browser, page):
    browser.get(page.as_uri())
    base = shown(browser)
    assert_matches_predict(base, predict("sheared-llama-1.3b", 0.80, 1, 512))
    browser.find_element(By.ID, "catchup").click()
    on = shown(browser)
    assert on["state"]["inputs"]["catchup"] is True
    assert_matches_predict(on, predict("sheared-llama-1.3b", 0.80, 1, 512, catchup=True))
    assert on["state"]["point"]["iteration_s"] > base["state"]["point"]["iteration_s"]


def test_memory_misfit_and_badges(browser, page):
    browser.get(page.as_uri())
    Select(browser.find_element(By.ID, "tp")).select_by_value("2")  # 65B fp16 / 2 = 65 GB + KV on 80 GB
    browser.find_element(By.ID, "batch").send_keys(Keys.END)
    browser.find_element(By.ID, "context").send_keys(Keys.END)
    st = shown(browser)["state"]
    assert st["fits"] is False and "does not fit" in browser.find_element(By.ID, "mem").text
    badges = browser.find_elements(By.CSS_SELECTOR, "#badges .badge")
    assert [b.text for b in badges] == [st["badges"]["draft"], st["badges"]["target"]]
    assert all(b.text in ("measured", "operator", "analytical", "mixed") for b in badges)


def png_ink(png: bytes) -> float:
    """Fraction of pixels that are not (near) white, from an 8-bit RGB/RGBA non-interlaced PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(png):
        n, typ = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif typ == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev, ink = zlib.decompress(idat), w * bpp, bytearray(w * bpp), 0
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2,
                    4: a if abs(p - a) <= min(abs(p - b), abs(p - c)) else (b if abs(p - b) <= abs(p - c) else c)}[f]
            line[i] = (line[i] + pred) & 0xFF
        ink += sum(1 for x in range(0, stride, bpp) if min(line[x:x + 3]) < 200)
        prev = line
    return ink / (w * h)


def test_every_explorer_figure_draws(browser, page):
    browser.get(page.as_uri())
    for fid in ("fig-gamma", "fig-batch", "fig-pareto", "fig-breakdown"):
        el = browser.find_element(By.ID, fid)
        area = el.find_element(By.CSS_SELECTOR, ".nsewdrag")  # the plot area proper, without axes and title
        assert area.size["width"] > 200 and area.size["height"] > 150, fid
        assert png_ink(el.screenshot_as_png) > 0.01, f"{fid} looks empty"


KINDS = ("speedup", "gamma", "breakdown", "depth-width", "design", "breakeven", "acceptance")


@pytest.mark.parametrize("kind", KINDS)
def test_every_plot_kind_with_no_model_arguments_draws(browser, tmp_path, kind):
    out = tmp_path / f"{kind}.html"
    r = runner.invoke(app, ["plot", kind, "--out", str(out)])
    assert r.exit_code == 0, r.output
    browser.get(out.as_uri())
    gd = browser.find_element(By.CSS_SELECTOR, ".plotly-graph-div")
    assert errors(browser) == []
    assert browser.execute_script("return arguments[0]._fullData.length;", gd) >= 1
    assert png_ink(gd.screenshot_as_png) > 0.01, f"{kind} looks empty"
    clipped = browser.execute_script(
        "var r=arguments[0].getBoundingClientRect(), bad=[];"
        "arguments[0].querySelectorAll('.annotation-text, .gtitle').forEach(function(t){var b=t.getBoundingClientRect();"
        "if (b.width && (b.bottom > r.bottom + 1 || b.top < r.top - 1 || b.right > r.right + 1)) bad.push(t.textContent.slice(0, 60));});"
        "return bad;", gd)
    assert clipped == [], f"{kind}: text outside the figure: {clipped}"


def test_method_control_gives_predicts_numbers(browser, page):
    """The method control: an EAGLE-3 head for the target instead of the draft; the page adds the
    exported parts of the method seam and shows predict --method eagle3's numbers and bands."""
    browser.get(page.as_uri())
    Select(browser.find_element(By.ID, "method")).select_by_value("eagle3")
    s = shown(browser)
    assert s["state"]["inputs"]["method"] == "eagle3" and browser.find_element(By.ID, "draft").get_attribute("disabled")
    r = runner.invoke(app, ["predict", "--target", "llama-65b", "--method", "eagle3", "--gpu", "h100-sxm", "--tp", "4",
                            "--alpha", "0.80", "--batch", "1", "--context", "512", "--gamma", "auto",
                            "--gamma-max", "12", "--json"])
    assert r.exit_code == 0, r.output
    assert_matches_predict(s, json.loads(r.output))
    assert errors(browser) == []
