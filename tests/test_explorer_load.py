"""The explorer's under-load view (`specperf explore --load`): its precomputed curves equal
`specperf serve-sim --json`'s γ-schedule rows for the same inputs (two code paths: the page's sweep
and serve-sim's), the work budget refuses in one line, and in headless Chromium the view draws its
three figures and follows the α slider to the nearest precomputed α (skipped without a browser)."""
import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from specperf.cli.main import app

pytest.importorskip("plotly")
runner = CliRunner()
DRAFT = "llama-7b:n_layers=2"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore_load") / "explorer.html"
    r = runner.invoke(app, ["explore", "--out", str(out), "--drafts", DRAFT, "--gpus", "h100-sxm", "--tps", "4",
                            "--modes", "graph", "--batches", "1,8,64", "--contexts", "512,2048", "--load",
                            "--load-alphas", "0.6,0.8"])
    assert r.exit_code == 0, r.output
    return out


def page_data(path) -> dict:
    text = path.read_text()
    blob = re.search(r'<script id="specperf-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    return json.loads(blob.replace("<\\/", "</"))


def test_load_view_equals_serve_sim(page):
    d = page_data(page)["load"]
    assert d["setting"] == {"target": "llama-65b", "gpu": "h100-sxm", "tp": 4, "modes": ["graph"]}
    e = d["entries"][f"{DRAFT}|graph|0.80"]
    rates = ",".join(f"{r:g}" for r in e["rates"])
    r = runner.invoke(app, ["serve-sim", "--target", "llama-65b", "--draft", DRAFT, "--gpu", "h100-sxm", "--tp", "4",
                            "--alpha", "0.8", "--rate", rates, "--gamma", "1..6", "--requests", str(d["requests"]),
                            "--max-num-seqs", str(d["max_num_seqs"]), "--no-intervals", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["schedule"] == e["schedule"]
    for i, row in enumerate(doc["rows"]):
        for k in ("throughput_tok_s", "latency_p50_s", "tpot_p50_s"):
            assert e["spec"][k][i] == pytest.approx(row["schedule"][k], rel=1e-12), (i, k)
            assert e["off"][k][i] == pytest.approx(row["off"][k], rel=1e-12), (i, k)


def test_load_budget_and_bad_alphas_are_one_line(tmp_path):
    for extra in (["--load", "--load-alphas", "0.5,0.6,0.7,0.8,0.9"],  # 6 study drafts × 5 α > 24 sweeps
                  ["--load", "--load-alphas", "0.5,x"], ["--load", "--load-alphas", "1.5"]):
        r = runner.invoke(app, ["explore", "--out", str(tmp_path / "e.html"), "--gpus", "h100-sxm", "--tps", "4"] + extra)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert not (tmp_path / "e.html").exists()


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")), reason="needs chromium")
def test_load_view_draws_and_follows_alpha(page, tmp_path):
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    opts = webdriver.ChromeOptions()
    for f in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600",
              "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'prof'}"):
        opts.add_argument(f)
    drv = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
    try:
        drv.get(page.as_uri())
        st = drv.execute_script("return window.specperfLoad;")
        assert st["shown"] and st["alpha"] == 0.8  # the page's default α is 0.8
        for fid in ("fig-load-tps", "fig-load-lat", "fig-load-tpot"):
            n = drv.execute_script("return document.getElementById(arguments[0]).data.length;", fid)
            assert n == 2, fid
        el = drv.find_element(By.ID, "alpha")
        for _ in range(15):  # 0.80 → 0.65: nearest precomputed is 0.6
            el.send_keys(Keys.ARROW_LEFT)
        st = drv.execute_script("return window.specperfLoad;")
        assert st["alpha"] == 0.6
        assert "0.60" in drv.find_element(By.ID, "load-status").text
        assert drv.execute_script("return window.__errors || [];") == []
    finally:
        drv.quit()
