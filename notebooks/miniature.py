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
# # The study in miniature: trained drafts, real acceptance, real clients
#
# Reads `studies/miniature/results.csv` — one row per draft, mode (specperf's loop under CUDA graphs
# and in eager mode; Hugging Face assisted generation) and γ — measured on an **NVIDIA H200** in one
# GPU run (`python -m studies.miniature.run`) and predicted afterwards with specperf's own commands
# (`python -m studies.miniature.analyze`). See `docs/miniature.md` for the method.

# %%
import json
from pathlib import Path

import pandas as pd

root = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "studies/miniature/results.csv").exists())
res = pd.read_csv(root / "studies/miniature/results.csv")
summary = json.loads((root / "studies/miniature/summary.json").read_text())
print(summary["card"]["gpu_name"], "| driver", summary["card"]["driver"], "| torch", summary["card"]["torch"])
res.head()

# %% [markdown]
# ## Acceptance versus language-modelling quality
# Held-out perplexity and greedy α (whole set-A trace, i.i.d. MLE) of each draft, with the Spearman
# correlation and its bootstrap 95 % interval over drafts.

# %%
a = summary["acceptance_vs_perplexity"]
acc = pd.DataFrame({"draft": a["drafts"], "perplexity": a["perplexity"], "greedy_alpha": a["greedy_alpha"],
                    "sampling_alpha": a["sampling_alpha"]})
print({k: (round(v["rho"], 3), round(v["ci_low"], 3), round(v["ci_high"], 3)) for k, v in a["spearman"].items()})
acc

# %% [markdown]
# ## Draft step latency: depth versus width (from the profile taken in the same run)

# %%
lat = pd.DataFrame(summary["draft_step_latency_s"]).T
lat["graph_ms"], lat["eager_ms"] = lat["graph_step_s"] * 1e3, lat["eager_step_s"] * 1e3
lat[["layers", "d_model", "graph_ms", "eager_ms"]]

# %% [markdown]
# ## Measured versus predicted tokens/s, per mode
# `error_pct` uses acceptance calibrated on a different prompt set (first 64 generated tokens);
# `error_pct_latency_only` uses the run's own tokens per iteration, isolating the latency model.

# %%
cols = ["mode", "draft", "gamma", "measured_tok_s", "predicted_tok_s", "error_pct", "error_pct_latency_only"]
errs = res[res.draft != "none"].groupby("mode")[["error_pct", "error_pct_latency_only"]].agg(lambda s: s.abs().median())
print("median |error| %:\n", errs.round(1))
best = res[res.draft != "none"].sort_values("measured_tok_s", ascending=False).groupby("mode").head(1)
best[cols]

# %% [markdown]
# ## A real trace, calibrated
# The greedy trace of the shallow-wide draft (set A, first 64 generated tokens), fitted by the same code as
# `specperf calibrate acceptance`. Pooled over prompts acceptance by position rises (α_2 > α_1), but within
# prompts α_2 − α_1 is negative: easy prompts reach position 2 more often (a between-prompt, Simpson, effect).

# %%
from specperf import plots
from specperf.calibration.acceptance_fit import fit_acceptance
from specperf.calibration.traces import read_trace
from specperf.plots.common import Setting

fit = fit_acceptance(read_trace(root / "studies/miniature/data/derived/draft-1x1024_greedy_h.csv"), gammas=range(1, 9))
print(fit.model.describe())
from studies.miniature.simpson import rows  # noqa: E402

print({r["draft"]: (round(r["a2_minus_a1_pooled"], 3), round(r["a2_minus_a1_within"], 3)) for r in rows()})
plots.show(plots.figure("acceptance", Setting(acceptance=fit.model, gammas=tuple(range(1, 9)))))
