"""Every notebook in notebooks/ (jupytext percent .py) executes top to bottom in a kernel running
this interpreter (a kernelspec written to a temporary JUPYTER_PATH, so a fresh clone needs nothing
installed beyond the README's set-up), and a planted failing cell does fail."""
import base64
import json
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
KERNEL = "specperf-test-venv"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec named for this venv whose argv is this very interpreter."""
    base = tmp_path_factory.mktemp("jupyter")
    spec = base / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"specperf ({sys.prefix})", "language": "python"}))
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(base))
    mp.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout even without an install
    mp.setenv("MPLBACKEND", "Agg")
    mp.setenv("JUPYTER_RUNTIME_DIR", str(base / "runtime"))  # connection files: never in $HOME
    mp.setenv("IPYTHONDIR", str(base / "ipython"))
    yield base
    mp.undo()


def execute(path: Path, cwd: Path):
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=180, allow_errors=False,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def test_there_are_four_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "depth_vs_width", "calibrate_acceptance", "llama65b_draft_design"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, kernel_env):
    nb = execute(path, path.parent)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "some cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # each notebook ends in (or shows) a figure: the plotly mime bundle is in some output
    mimes = {k for c in code for o in c.get("outputs", []) for k in o.get("data", {})}
    assert "application/vnd.plotly.v1+json" in mimes or "text/html" in mimes
    # every interactive figure carries a static PNG beside it, so the notebook reads on GitHub
    figs = [o["data"] for c in code for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figs, "no figure output"
    for d in figs:
        assert "image/png" in d, f"a figure without a static PNG: {sorted(d)}"
        png = base64.b64decode(d["image/png"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, "the PNG is not a drawn figure"


def test_notebooks_hold_no_library_logic():
    """Notebooks import the package; they define at most tiny presentation helpers, never plotly code."""
    for path in NOTEBOOKS:
        text = path.read_text()
        assert "import plotly" not in text and "from plotly" not in text, path.name
        assert text.count("\ndef ") <= 1, f"{path.name} defines functions: move them into the package"
        assert "# %%" in text and "format_name: percent" in text, f"{path.name} is not jupytext percent format"


def test_a_failing_cell_fails(kernel_env, tmp_path):
    """The harness can fail: a notebook whose second cell raises is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("# %%\nx = 1\n\n# %%\nraise RuntimeError('planted failure')\n")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="planted failure"):
        execute(bad, tmp_path)
