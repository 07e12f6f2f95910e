"""The prediction side of evidence/serve_vllm/heldout.py: serve-sim's engine model (perfmodel.serving)
replays every live load — each request at the time the server received it, its prompt tokens,
max_tokens outputs, the server's scheduler limits — from profile A and from profile B, first from
the profile alone, then with vLLM's own engine costs (perfmodel.serving.step.EngineOverhead)
FITTED ON THE BURSTS ONLY (calibration.engine_costs) and every Poisson rate held out, then with the
same costs fitted at the rates in fit_rates. The replay itself is serve_common.predict_loads
(shared with crossover.py); the report is heldout_report.render.

What each figure is compared with: the live server (vLLM's engine-side histograms for ITL and TPOT,
the client for throughput and request latency). Nothing here is compared with specperf's own loop.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_common import live_metrics, predict_loads, replayed, sim_metrics, tables  # noqa: E402,F401 (used by callers)


def predict_and_report(raw: dict, out: Path) -> str:
    from heldout_report import render

    pred, fits, profs, _ = predict_loads(raw, out)
    return render(raw, pred, fits, profs, out)
