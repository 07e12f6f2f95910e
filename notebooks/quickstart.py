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
# # specperf quickstart: predict speculative-decoding speedup from the embedded defaults
#
# No GPU and no measured profile needed: the model catalog gives the architectures (checked
# against each model's `config.json`), the GPU catalog gives datasheet rates, and the analytical
# roofline turns them into forward times. Every number below says where its latency came from.

# %%
from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.specdec.predict import predict

target = resolve_model("llama-65b")
draft = resolve_model("sheared-llama-1.3b")
gpu = resolve_gpu("h100-sxm")
latency = AnalyticalLatency(gpu)  # the embedded default: datasheet roofline with kernel floors
acceptance = AcceptanceModel(alpha=0.8, source="assumed for this example")
print(target.name, f"{target.params / 1e9:.1f} B params;", draft.name, f"{draft.params / 1e9:.2f} B params")

# %% [markdown]
# One call sweeps lookahead γ (and, if given, batch and context). The target runs with tensor
# parallelism 4, as in the study; the draft runs on one GPU.

# %%
p = predict(target, draft, latency, acceptance, gammas=range(1, 9), batch=[1], context=[512], tp=4,
            mode="graph")
frame = p.to_frame()[["gamma", "tokens_per_iteration", "t_draft_s", "t_verify_s", "iteration_s",
                      "throughput_tok_s", "speedup", "optimal"]]
frame

# %%
print(f"optimal γ = {int(p.optimal_gamma[0, 0])}, speedup = {float(p.optimal_speedup[0, 0]):.2f}×")
for key, src in p.sources.items():
    print(f"  {key}: {src}")

# %% [markdown]
# The same setting under eager execution (every kernel launched from the host): the draft's
# many small kernels cost more, so the optimum moves.

# %%
eager = predict(target, draft, latency, acceptance, gammas=range(1, 9), batch=[1], context=[512], tp=4,
                mode="eager")
print(f"eager: optimal γ = {int(eager.optimal_gamma[0, 0])}, speedup = {float(eager.optimal_speedup[0, 0]):.2f}×")

# %% [markdown]
# Where specperf ships a measured profile for the GPU (per-layer latencies timed on the card),
# `latency_provider` uses it and falls back to the analytical model elsewhere; each source says which.

# %%
from specperf.perfmodel.latency.providers import latency_provider

provider = latency_provider(gpu)
shipped = predict(target, draft, provider, acceptance, gammas=range(1, 9), batch=[1], context=[512], tp=4)
print(provider.name)
print(f"optimal γ = {int(shipped.optimal_gamma[0, 0])}, speedup = {float(shipped.optimal_speedup[0, 0]):.2f}×")
print("draft layer:", shipped.sources["draft_layer"])

# %% [markdown]
# The speedup surface over α × γ for this pair — rotate it, hover for exact numbers and sources.

# %%
from specperf import plots
from specperf.plots.common import Setting

setting = Setting(target=target, draft=draft, latency=latency, gpu=gpu.name, tp=4, mode="graph",
                  gammas=tuple(range(1, 13)))
fig = plots.figure("speedup", setting)
plots.show(fig)
