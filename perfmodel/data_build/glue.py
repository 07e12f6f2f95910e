"""Operator-table metadata derived from measured layers: the operator-composed provider's glue
(perfmodel.latency.operator_fit: graph/eager glue on whole-layer rows, compiled glue on measured
compiled rows) with its in-sample and leave-one-shape-out errors, and the cross-GPU check (the
source GPU's operator tables rescaled by datasheet ratios against another GPU's measured layers).

Key assumption: graph and eager glue are fitted on tp = 1 rows (eager on `eager_layers`: eager time
is host time, so on the rows that best represent the hosts the answer is for); compiled glue is
fitted separately and kept when graph/eager glue is refitted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from specperf.perfmodel.latency.operator_fit import fit_all, fit_compiled
from specperf.perfmodel.latency.operator_table import OperatorTable
from specperf.perfmodel.latency.operators import OperatorLatency
from specperf.perfmodel.latency.table import LatencyTable, spec_from_head_shape_key, spec_from_shape_key
from specperf.perfmodel.specs.hardware import GPUS, resolve_gpu

DERIVED_KEYS = ("glue", "glue_fit", "glue_fit_compiled", "cross_gpu_band", "cross_gpu_command")
CROSS_GPU_NAME = "operator, rescaled by datasheet"  # the provider whose band is stored


PACKED_BACKENDS = ("foldmask-", "split-")  # profiler.attention's `packed`-only verification kernels


def kernel_consistent(rows, layers_path, table_kernels: str) -> tuple[list, int]:
    """The layer rows whose attention ran a kernel of the operator table's kernel set (the layer
    table's `attention_choices`): rows that chose a `packed`-only kernel are left out of a glue fit
    for `engine` tables. Returns (rows kept, rows dropped)."""
    if table_kernels == "packed":
        return rows, 0
    meta = LatencyTable.read_meta(Path(layers_path))
    packed = {(c["batch"], c["heads"], c["kv_heads"], c["new_tokens"], c["kv_len"])
              for c in meta.get("attention_choices", []) if str(c.get("backend", "")).startswith(PACKED_BACKENDS)}
    if not packed:
        return rows, 0
    keep = []
    for r in rows:
        if not r.get("shape"):  # LM-head and overhead rows run no attention
            keep.append(r)
            continue
        sp = spec_from_shape_key(r["shape"])
        if (r["batch"], sp.n_heads, sp.n_kv_heads, r["new_tokens"], r["context"] + r["new_tokens"]) not in packed:
            keep.append(r)
    return keep, len(rows) - len(keep)


def fit_glue(table, command: str, dtype: str = "fp16", layers=None, eager_layers=None,
             compiled_layers=None) -> dict:
    """Fit and store glue in the operator table `table`'s metadata; returns {key: stats}."""
    t = OperatorTable.load(table)
    prov = OperatorLatency(table, resolve_gpu(t.meta.get("gpu", "h200")), dtype)
    out = {}
    if compiled_layers:
        rows, dropped_c = kernel_consistent(LatencyTable.load(compiled_layers).ok_rows(), compiled_layers,
                                            t.meta.get("kernels", "plain"))
        glue, fits = t.meta.setdefault("glue", {}).setdefault(dtype, {}), {}
        for key, comp in (("compiled", "layer"), ("head_compiled", "lm_head")):
            p, fits[key] = fit_compiled(prov, rows, comp)
            if p:
                glue[key] = p
        t.meta.setdefault("glue_fit_compiled", {})[dtype] = {
            "command": command, "compiled_layers": Path(compiled_layers).name, "stats": fits,
            **({"rows_other_kernels": dropped_c} if dropped_c else {})}
        out.update(fits)
    if layers:
        kern = t.meta.get("kernels", "plain")
        rows, dropped = kernel_consistent([r for r in LatencyTable.load(layers).ok_rows() if r["tp"] == 1],
                                          layers, kern)
        eager = kernel_consistent([r for r in LatencyTable.load(eager_layers).ok_rows() if r["tp"] == 1],
                                  eager_layers, kern)[0] if eager_layers else None
        res = fit_all(prov, rows, eager)
        t.meta.setdefault("glue", {}).setdefault(dtype, {}).update(res["params"])  # keeps the compiled glue
        t.meta.setdefault("glue_fit", {})[dtype] = {
            "command": command, "layers": Path(layers).name,
            "eager_layers": Path(eager_layers).name if eager_layers else None, "stats": res["stats"],
            **({"rows_other_kernels": dropped} if dropped else {})}
        out.update(res["stats"])
    t.save(table)
    return out


def cross_gpu_check(table, src: str, dst: str, dst_profile) -> dict:
    """Errors on `dst_profile`'s tp = 1 layer and LM-head rows (both modes) of `src`'s operator
    table rescaled to `dst`, the same table not rescaled, the analytical model with constants
    fitted from the tables, and the datasheet analytical model."""
    from specperf.perfmodel.latency.analytical import AnalyticalLatency
    from specperf.perfmodel.latency.crossgpu import fit_analytical, rescaled

    same = OperatorLatency(table, GPUS[src])
    hw_fit, _ = fit_analytical(same, GPUS[dst])
    provs = {CROSS_GPU_NAME: rescaled(table, GPUS[src], GPUS[dst]),
             "operator, not rescaled": same,
             "analytical, constants fitted from the operator tables": AnalyticalLatency(hw_fit),
             "analytical, datasheet defaults": AnalyticalLatency(GPUS[dst])}
    rows = [r for r in LatencyTable.load(dst_profile).ok_rows()
            if r["tp"] == 1 and r["component"] in ("layer", "lm_head")]
    out = {"fitted_constants": {k: getattr(hw_fit, k) for k in ("matmul_efficiency", "bandwidth_efficiency",
                                                                  "kernel_floor_graph_s", "kernel_floor_eager_s")}}
    for comp in ("layer", "lm_head"):
        for mode in ("graph", "eager"):
            rs = [r for r in rows if r["component"] == comp and r["mode"] == mode]
            for name, p in provs.items():
                e = []
                for r in rs:
                    if comp == "layer":
                        v = p.layer_s(spec_from_shape_key(r["shape"]), r["batch"], r["new_tokens"], r["context"], 1, mode)
                    else:
                        v = p.lm_head_s(spec_from_head_shape_key(r["head_shape"]), r["batch"], r["new_tokens"], 1, mode)
                    e.append(float(v) / r["median_s"] - 1)
                a = np.abs(e)
                out.setdefault(f"{comp}/{mode}", {})[name] = {
                    "n": len(e), "median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
                    "median_signed": float(np.median(e))}
    return out


def store_cross_gpu(table, res: dict, dst: str, command: str) -> None:
    """The rescaled provider's layer p90 per mode into the table's metadata (`cross_gpu_band`)."""
    t = OperatorTable.load(table)
    t.meta["cross_gpu_band"] = {dst: {m: res[f"layer/{m}"][CROSS_GPU_NAME]["p90"] for m in ("graph", "eager")}}
    t.meta["cross_gpu_command"] = command
    t.save(table)
