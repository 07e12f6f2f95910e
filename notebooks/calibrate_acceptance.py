# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Calibrating acceptance from a vLLM `/metrics` dump
#
# vLLM's engine exports speculative-decoding counters (drafts, draft tokens, accepted tokens, and
# accepted tokens per draft position) in Prometheus text format. `specperf calibrate acceptance`
# fits α — i.i.d. and by position, with 95 % intervals and a likelihood-ratio test — from such a
# dump. This notebook does the same from Python and feeds the fit into a prediction.
#
# The dump used here is the project's test fixture (a hand-written dump whose per-position
# counts are stated in its header); if it is missing, an equivalent dump is written inline.

# %%
from pathlib import Path

fixture = next((p / "tests/data/calibration/vllm_metrics.txt" for p in (Path.cwd(), *Path.cwd().parents)
                if (p / "tests/data/calibration/vllm_metrics.txt").exists()), None)
if fixture is None:  # a minimal vLLM v1 dump: 10000 drafts of 4 tokens
    fixture = Path("vllm_metrics_inline.txt")
    labels = 'engine="0",model_name="demo"'
    fixture.write_text("\n".join([
        "# TYPE vllm:spec_decode_num_drafts_total counter",
        f"vllm:spec_decode_num_drafts_total{{{labels}}} 10000.0",
        "# TYPE vllm:spec_decode_num_draft_tokens_total counter",
        f"vllm:spec_decode_num_draft_tokens_total{{{labels}}} 40000.0",
        "# TYPE vllm:spec_decode_num_accepted_tokens_total counter",
        f"vllm:spec_decode_num_accepted_tokens_total{{{labels}}} 21000.0",
        "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter",
        *[f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{{labels},position="{i}"}} {c}.0'
          for i, c in enumerate((8400, 6000, 3900, 2700))], ""]))
print(fixture)

# %%
from specperf.calibration.acceptance_fit import fit_acceptance
from specperf.calibration.traces import read_trace

data = read_trace(str(fixture), "auto")
fit = fit_acceptance(data, gammas=range(1, 9))
print(fit.report.report())

# %% [markdown]
# The fit is a `perfmodel.specdec.acceptance.AcceptanceModel` — the same object `specperf predict
# --acceptance` reads. Acceptance decays with position here, so the i.i.d. α misstates the
# expected tokens per iteration:

# %%
from specperf import plots
from specperf.plots.common import Setting

acc = fit.model
print(acc.describe())
plots.show(plots.figure("acceptance", Setting(acceptance=acc, gammas=tuple(range(1, 9)))))

# %% [markdown]
# Feeding both models into a prediction (Llama-3.1-70B target at tp=4, Llama-3.1-8B draft,
# analytical H100 latency) shows how much the optimal lookahead depends on the acceptance model.

# %%
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.specdec.predict import predict

target, draft = resolve_model("llama-3.1-70b"), resolve_model("llama-3.1-8b")
latency = AnalyticalLatency(resolve_gpu("h100-sxm"))
iid = AcceptanceModel(alpha=acc.alpha, alpha_ci=acc.alpha_ci, source=acc.source + " (i.i.d.)")
for name, model in (("α by position", acc), ("i.i.d. α", iid)):
    p = predict(target, draft, latency, model, range(1, 9), [1], [1024], tp=4)
    print(f"{name:14s}: optimal γ = {int(p.optimal_gamma[0, 0])}, speedup = {float(p.optimal_speedup[0, 0]):.3f}×")
for n in p.notes:
    print("note:", n)
