"""`predict --acceptance` with a fitted per-position model moves the optimal γ where acceptance
decays, against the i.i.d. α that has the same mean accepted length at the observed γ."""
import json

import numpy as np
import pytest
from scipy.optimize import brentq
from typer.testing import CliRunner

from specperf.calibration.acceptance_fit import fit_acceptance
from specperf.calibration.data import from_position_counts
from specperf.cli.main import app
from specperf.perfmodel.specdec.maths import tokens_per_iteration, tokens_per_iteration_by_position

runner = CliRunner()
DECAY = [0.95, 0.85, 0.7, 0.5, 0.35, 0.25]  # conditional α_i, positions 0..5


def _predict(path):
    r = runner.invoke(app, ["predict", "--target", "llama-2-70b", "--draft", "sheared-llama-1.3b", "--tp", "4",
                            "--gpu", "h100", "--acceptance", str(path), "--gamma-max", "12", "--json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_decay_moves_the_optimal_gamma(tmp_path):
    # a vLLM-style trace drawn exactly from the decaying rates (100000 drafts, γ = 6)
    n = 100000
    c = np.round(n * np.cumprod(DECAY)).astype(int)
    pp = fit_acceptance(from_position_counts("trace", "vllm-metrics", n, c))
    assert pp.model.alpha_by_position == pytest.approx(DECAY, abs=2e-4)
    (tmp_path / "pp.json").write_text(json.dumps(pp.to_dict()))
    # the i.i.d. α a user would get from the same mean accepted length (mean-length reader)
    E = float(tokens_per_iteration_by_position(pp.model.alpha_by_position, 6))
    a_same = brentq(lambda a: float(tokens_per_iteration(a, 6)) - E, 0.0, 0.999)
    (tmp_path / "iid.json").write_text(json.dumps({"gamma": 6, "mean_acceptance_length": E, "n_drafts": n}))
    r = runner.invoke(app, ["calibrate", "acceptance", str(tmp_path / "iid.json"), "--json",
                            "--out", str(tmp_path / "iid_model.json")])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["alpha"] == pytest.approx(a_same, abs=1e-9)
    d_pp, d_iid = _predict(tmp_path / "pp.json"), _predict(tmp_path / "iid_model.json")
    # same tokens/iteration at the observed γ = 6 ...
    t6 = lambda d: [r for r in d["rows"] if r["gamma"] == 6][0]["tokens_per_iteration"]  # noqa: E731
    assert t6(d_pp) == pytest.approx(t6(d_iid), rel=1e-6)
    # ... but the decay makes long lookaheads worthless sooner: a smaller optimal γ, a higher speedup
    assert d_pp["optimal_gamma"] < d_iid["optimal_gamma"]
    assert d_pp["speedup"] > d_iid["speedup"]
    assert d_pp["alpha_by_position"] is not None and d_iid["alpha_by_position"] is None


def test_layering_imports():
    """calibration never imports torch/plotly; perfmodel.latency.corrected and the CLI module stay scipy-free."""
    import subprocess
    import sys

    code = ("import sys, perfmodel.latency.corrected, cli.calibrate_cmds;"
            "assert 'scipy' not in sys.modules, 'scipy';"
            "import calibration.traces, calibration.acceptance_fit, calibration.latency_fit;"
            "bad = [m for m in ('torch', 'plotly') if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
