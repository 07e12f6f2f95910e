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
# # Depth versus width: what sets a draft's latency?
#
# The study (Yan et al., NAACL 2025) found that at small batch a draft's latency follows its
# **depth**, not its width. Here the analytical model (embedded defaults) shows why: each layer
# pays a fixed floor per kernel (launch cost in eager mode, minimum kernel time under CUDA graphs),
# and a narrow layer's weights are too small to move the roofline off that floor.
# With a measured profile (`plots.figure(..., Setting(profile=...))`) the same figure reads the
# profile's rows instead.

# %%
import pandas as pd

from specperf.perfmodel.specs.catalog import resolve_model
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.latency.analytical import AnalyticalLatency

from specperf import plots
from specperf.plots import depth_width
from specperf.plots.common import Setting

gpu = resolve_gpu("h100-sxm")
base = resolve_model("llama-7b")  # shapes: LLaMA family, its vocabulary
setting = Setting(draft=base, latency=AnalyticalLatency(gpu), gpu=gpu.name, batch=1, context=512, mode="both")

# %% [markdown]
# Draft step latency (ms) for a few depths and widths, per mode:

# %%
rows = []
for mode in ("graph", "eager"):
    g = depth_width.grid(setting, mode, layers=(4, 8, 16, 24, 32), d_models=(1024, 2048, 4096))
    for i, L in enumerate(g["layers"]):
        for j, d in enumerate(g["d_model"]):
            rows.append({"mode": mode, "layers": int(L), "d_model": int(d),
                         "step_ms": g["latency_s"][i, j] * 1e3, "params_B": g["params"][i, j] / 1e9})
table = pd.DataFrame(rows)
table.pivot_table(index=["mode", "layers"], columns="d_model", values="step_ms").round(3)

# %% [markdown]
# Same parameter budget, different shape: 24 layers at width 2048 versus 6 layers at width 4096
# (both ≈ 1.2 B non-embedding parameters). The ratio of their step latencies, per mode:

# %%
deep = base.replace(name="deep 24×2048", n_layers=24, d_model=2048, n_heads=16, n_kv_heads=16, d_ff=5504)
wide = base.replace(name="wide 6×4096", n_layers=6)
lat = setting.latency
for mode in ("graph", "eager"):
    t_deep = float(lat.forward(deep, 1, 1, 512, 1, mode).total_s)
    t_wide = float(lat.forward(wide, 1, 1, 512, 1, mode).total_s)
    print(f"{mode:5s}: deep {t_deep * 1e3:.3f} ms, wide {t_wide * 1e3:.3f} ms, ratio {t_deep / t_wide:.2f}× "
          f"(params {deep.n_layers * deep.layer_params / 1e9:.2f} B vs {wide.n_layers * wide.layer_params / 1e9:.2f} B)")

# %% [markdown]
# The central figure: draft step latency over depth × width, graph and eager side by side, with
# iso-parameter lines and catalog drafts marked. Hover for exact numbers and their source.

# %%
fig = plots.figure("depth-width", setting)
plots.show(fig)
