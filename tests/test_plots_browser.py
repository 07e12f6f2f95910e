"""Every figure kind, written by the CLI with no GPU, renders in headless Chromium: a probe injected
into each page waits for plotly to draw, then reports traces, drawn marks and any JavaScript error
to a parent page (all pages load once, as iframes of one page, in one browser). Planted failures
(a JavaScript error, an empty figure) must be caught. PNG export through kaleido is tested too.
Skipped where no Chromium is installed."""
import html as htmllib
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("plotly")

from specperf.cli.main import app  # noqa: E402
from test_plots import KIND_ARGS, PAIR, planted_profile  # noqa: E402

CHROMIUM = next((c for c in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if c and Path(c).exists()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package `chromium`)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--host-resolver-rules=MAP * ~NOTFOUND"]  # no network: the page must be self-contained

PROBE = r"""<script>
(function () {
  var errs = [];
  window.addEventListener('error', function (e) {
    errs.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'resource failed'));
  }, true);
  window.addEventListener('unhandledrejection', function (e) { errs.push('unhandled rejection: ' + String(e.reason)); });
  var ce = console.error;
  console.error = function () { errs.push('console.error: ' + Array.prototype.join.call(arguments, ' ')); return ce.apply(console, arguments); };
  var tries = 0;
  function report(r) { r.file = __FILE__; r.errors = errs; parent.postMessage(r, '*'); }
  function check() {
    tries++;
    var gd = document.querySelector('.plotly-graph-div');
    if (!gd || !gd._fullLayout || !gd._fullData) {
      if (tries < 100) { return setTimeout(check, 50); }
      return report({rendered: false});
    }
    var fl = gd._fullLayout, gl = 0;
    Object.keys(fl).forEach(function (k) {  // 3-D scenes draw with WebGL: count their drawn objects
      if (/^scene\d*$/.test(k) && fl[k]._scene && fl[k]._scene.glplot) { gl += fl[k]._scene.glplot.objects.length; }
    });
    report({
      rendered: true,
      traces: gd._fullData.length,
      visible: gd._fullData.filter(function (t) { return t.visible === true; }).length,
      marks: gd.querySelectorAll('.point, .js-line, .bars path, .hm image, .heatmaplayer image, ' +
                                 '.contourlevel path, .textpoint text, .js-fill').length,
      gl_objects: gl,
      nowebgl: /WebGL is not supported/i.test(gd.innerText || '')
    });
  }
  window.addEventListener('load', function () { setTimeout(check, 50); });
})();
</script>"""


def render_all(files: list[Path], work: Path) -> dict:
    """Open every file once (iframes of one page, one browser); {file name: probe report}."""
    pages = []
    for i, f in enumerate(files):
        text = f.read_text()
        assert "<head>" in text, f.name
        (work / f"page{i}.html").write_text(text.replace("<head>", "<head>" + PROBE.replace("__FILE__", json.dumps(f.name)), 1))
        pages.append(f"page{i}.html")
    frames = "".join(f'<iframe src="{p}" width="1100" height="650"></iframe>' for p in pages)
    (work / "index.html").write_text(
        "<html><head><script>var R=[];window.addEventListener('message',function(e){R.push(e.data);"
        "var p=document.getElementById('results')||document.body.appendChild(document.createElement('pre'));"
        "p.id='results';p.textContent=JSON.stringify(R);});</script></head><body>" + frames + "</body></html>")
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={work / 'chromium-profile'}", "--virtual-time-budget=30000",
           "--dump-dom", (work / "index.html").as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    m = re.search(r'<pre id="results">(.*?)</pre>', p.stdout, re.S)
    assert m, f"no probe reported (exit {p.returncode}): {p.stderr[-1500:]}"
    return {r["file"]: r for r in json.loads(htmllib.unescape(m.group(1)))}


CASES = {f"{k}.html": ["plot", k, *a] for k, a in KIND_ARGS.items()}
CASES["gamma.html"] += ["--mode", "both", "--batch", "1,8,64"]
CASES["speedup-map.html"] = ["plot", "speedup", *PAIR, "--style", "map"]
PROFILE_CASES = {"depth-width-profile.html": ["plot", "depth-width", "--mode", "both"],
                 "breakdown-profile.html": ["plot", "breakdown", "--target", "llama-7b",
                                            "--draft", "llama-7b:n_layers=4,d_model=2048,n_heads=16,d_ff=5632",
                                            "--alpha", "0.7"]}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    prof = planted_profile(out / "planted.csv")
    runner = CliRunner()
    files = []
    for name, args in [*CASES.items(), *((n, [*a, "--profile", str(prof)]) for n, a in PROFILE_CASES.items())]:
        r = runner.invoke(app, [*args, "--out", str(out / name)])
        assert r.exit_code == 0, (name, r.output)
        files.append(out / name)
    # planted failures, in the same browser run: a figure with nothing in it that also throws
    import plotly.graph_objects as go

    go.Figure().write_html(out / "planted.html", include_plotlyjs=True,
                           post_script="throw new Error('planted error');")
    files.append(out / "planted.html")
    work = tmp_path_factory.mktemp("chromium")
    return files, render_all(files, work)


def problems(r: dict) -> list[str]:
    out = list(r.get("errors", []))
    if not r.get("rendered"):
        out.append("plotly figure never rendered")
    elif r["visible"] == 0 or (r["marks"] == 0 and r["gl_objects"] == 0):
        out.append(f"empty plot ({r['traces']} traces, {r['marks']} SVG marks, {r['gl_objects']} WebGL objects)")
    if r.get("nowebgl"):
        out.append("WebGL not available for a 3-D figure")
    return out


@pytest.mark.parametrize("name", [*CASES, *PROFILE_CASES])
def test_figure_renders_without_errors(rendered, name):
    _, reports = rendered
    assert name in reports, f"{name} never reported back"
    r = reports[name]
    assert problems(r) == [], r
    assert r["traces"] >= 1


def test_the_3d_surface_draws_with_webgl(rendered):
    r = rendered[1]["speedup.html"]
    assert r["gl_objects"] >= 2  # the surface and the ridge line


def test_planted_failures_are_caught(rendered):
    found = problems(rendered[1]["planted.html"])
    assert any("planted error" in e for e in found), found
    assert any("empty plot" in e for e in found), found


def test_pages_work_offline(rendered):
    files, _ = rendered
    for f in files:
        assert not re.search(r"<script[^>]+src=", f.read_text()), f.name


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def test_png_export(tmp_path):
    pytest.importorskip("kaleido")
    png = tmp_path / "dw.png"
    r = CliRunner().invoke(app, ["plot", "depth-width", "--analytical", "--layers", "1..8", "--out",
                                 str(tmp_path / "dw.html"), "--png", str(png)])
    assert r.exit_code == 0, r.output
    w, h = _png_size(png)
    assert (w, h) == (2200, 1240)  # PNG_SIZE at scale 2
    assert png.stat().st_size > 20_000  # a drawn figure, not a blank canvas
