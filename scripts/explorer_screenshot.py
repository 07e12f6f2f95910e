"""Screenshot of the explorer page for the README (docs/figures/explorer.png): writes the page with
`specperf explore`'s defaults (the study's case), opens it in headless Debian chromium through
selenium + chromedriver, sets the controls given on the command line, and saves a PNG.

    .venv/bin/python scripts/explorer_screenshot.py --out docs/figures/explorer.png
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.support.ui import Select

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs/figures/explorer.png"))
    ap.add_argument("--draft", default="llama-7b:n_layers=2")
    ap.add_argument("--mode", default="graph")
    ap.add_argument("--size", default="1400,1250", help="window width,height in px")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "explorer.html"
        subprocess.run([sys.executable, "-m", "specperf", "explore", "--out", str(page)], cwd=ROOT, check=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
        for f in FLAGS + [f"--window-size={a.size}", f"--user-data-dir={Path(tmp) / 'profile'}"]:
            opts.add_argument(f)
        drv = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
        try:
            drv.get(page.as_uri())
            Select(drv.find_element("id", "draft")).select_by_value(a.draft)
            Select(drv.find_element("id", "mode")).select_by_value(a.mode)
            drv.execute_script("window.scrollTo(0, 0);")
            Path(a.out).write_bytes(drv.get_screenshot_as_png())
            st = drv.execute_script("return window.specperfState;")
        finally:
            drv.quit()
    print(f"wrote {a.out}: {st['inputs']}, γ* = {st['optimal_gamma']}, speedup {st['point']['speedup']:.3f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
