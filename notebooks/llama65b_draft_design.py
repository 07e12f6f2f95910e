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
# # The LLaMA-65B draft-design study
#
# Yan, Agarwal, Venkataraman ("Decoding Speculative Decoding", NAACL 2025) served LLaMA-65B with
# tensor parallelism 4 on A100-80GB GPUs and asked which draft makes speculative decoding fastest.
# Their answer: draft **latency** matters more than draft quality, and at small batch latency
# follows **depth** — so a shallow, wide draft beats the usual deep, narrow small model.
#
# Here the optimiser searches the catalog's LLaMA drafts plus a design space of depths × widths,
# with the analytical A100 model (no A100 profile ships) in both execution modes.
#
# **Acceptance is an input, not a result.** Drafts that do not exist have no measured α; the
# optimiser's α model (fitted to Leviathan et al. 2023, Table 3) supplies one, labelled *assumed*.
# Replace it with calibrated values (`specperf calibrate acceptance`) before trusting a ranking.

# %%
import pandas as pd

from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.optimize.run import OptimizeRequest, run

gpu = resolve_gpu("a100-sxm-80gb")
latency = AnalyticalLatency(gpu)
req = OptimizeRequest(target="llama-65b", drafts=["sheared-llama-1.3b", "sheared-llama-2.7b", "tinyllama-1.1b",
                                                  "llama-7b", "llama-13b"],
                      layers=[1, 2, 4, 6, 8, 12, 16, 24, 32], d_models=[2048, 2560, 4096],
                      batch=[1, 8], context=[512], tp=4, modes=("graph", "eager"), gamma_max=12, top=40)
doc = run(req, latency)
print(doc["n_candidates"], "candidates;", "α model:", doc["alpha_model"]["kind"], "—", doc["alpha_model"]["source"])

# %% [markdown]
# The best drafts per mode at batch 1 (γ re-optimised for each; intervals reflect the α interval):

# %%
def ranked(mode, batch):
    r = next(x for x in doc["rankings"] if x["mode"] == mode and x["batch"] == batch)
    cols = ["draft", "n_layers", "d_model", "alpha", "alpha_kind", "gamma", "t_draft_s", "speedup",
            "speedup_lo", "speedup_hi"]
    return pd.DataFrame(r["rows"])[[c for c in cols if c in r["rows"][0]]].head(8)


ranked("graph", 1)

# %%
ranked("eager", 1)

# %% [markdown]
# Shallow and wide versus the usual small model: the catalog drafts' rows, per mode and batch.

# %%
named = req.drafts
rows = []
for r in doc["rankings"]:
    for row in r["rows"]:
        if row["draft"] in named:
            rows.append({"mode": r["mode"], "batch": r["batch"], "draft": row["draft"], "speedup": row["speedup"]})
pd.DataFrame(rows)

# %% [markdown]
# The design figure: candidates by draft latency and (assumed) α over the target's iso-throughput
# contours; the optimiser's winner is the star. A draft above-left of another is better; a draft
# that is more accurate but slower must climb across the contours to pay for its latency.

# %%
from specperf import plots
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.plots.common import Setting

setting = Setting(target=resolve_model("llama-65b"), latency=latency, gpu=gpu.name, tp=4, mode="graph",
                  batch=1, context=512, gammas=tuple(range(1, 13)))
drafts = [resolve_model(n) for n in req.drafts]
fig = plots.figure("design", setting, drafts=drafts, layers=[1, 2, 4, 8, 16, 32], d_models=[2048, 4096])
plots.show(fig)

# %% [markdown]
# Where speculation stops paying for the study's usual draft, Sheared-LLaMA-1.3B, at an assumed α of 0.7:

# %%
from specperf.perfmodel.specdec.acceptance import AcceptanceModel

be = Setting(target=setting.target, draft=resolve_model("sheared-llama-1.3b"), latency=latency, gpu=gpu.name,
             tp=4, mode="graph", acceptance=AcceptanceModel(alpha=0.7, source="assumed"), gammas=tuple(range(1, 9)))
plots.show(plots.figure("breakeven", be))
