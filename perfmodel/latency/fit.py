"""Fit a HardwareProfile's efficiencies, kernel floors and overheads to a measured LatencyTable, so the
analytical model can stand in for the measurements outside their grid.

Key assumption: the analytical model's structure (roofline-plus-floor kernels, perfmodel.latency.analytical) is
right and only its five rate constants are off. Layer and LM-head rows fix matmul_efficiency,
bandwidth_efficiency and the eager/graph kernel floors by Levenberg-Marquardt least squares on
log(time) (relative errors, so a 10 µs layer counts as much as a 10 ms one); overhead rows fix
overhead_{eager,graph}_s and all-reduce rows allreduce_latency_s and the fabric bandwidth by linear
least squares. Compiled-mode rows, when a profile has them, fix only the compiled kernel floor and the
fused small-kernel count per layer (the other constants held), so graph/eager fits are unchanged. numpy only.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.specs.families import FAMILIES
from specperf.perfmodel.specs.hardware import GPUS, HardwareProfile
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.table import DTYPE_BYTES, LatencyTable, spec_from_head_shape_key, spec_from_shape_key

PARAMS = ("matmul_efficiency", "bandwidth_efficiency", "kernel_floor_eager_s", "kernel_floor_graph_s")
BOUNDS = {"matmul_efficiency": (0.02, 1.0), "bandwidth_efficiency": (0.05, 1.0),
          "kernel_floor_eager_s": (1e-7, 1e-3), "kernel_floor_graph_s": (1e-7, 1e-3),
          "kernel_floor_compiled_s": (1e-7, 1e-3), "compiled_small_kernels": (0.5, 64.0)}
COMPILED_PARAMS = ("kernel_floor_compiled_s", "compiled_small_kernels")  # fitted on compiled rows alone
MAX_ROWS_PER_GROUP = 400  # subsample big groups: the fit needs shape variety, not every point


def _groups(rows):
    """Rows grouped by (component, shape key, tp, mode, dtype bytes) as arrays."""
    out: dict = {}
    for r in rows:
        if r["component"] not in ("layer", "lm_head"):
            continue
        by = DTYPE_BYTES.get(r["dtype"], 2)
        key = (r["component"], r["shape"] if r["component"] == "layer" else r["head_shape"], r["tp"], r["mode"], by)
        out.setdefault(key, []).append((r["batch"], r["new_tokens"], r["context"], r["median_s"]))
    groups = []
    rng = np.random.default_rng(0)
    for (comp, key, tp, mode, by), pts in out.items():
        a = np.array(pts, dtype=float)
        if len(a) > MAX_ROWS_PER_GROUP:
            a = a[rng.choice(len(a), MAX_ROWS_PER_GROUP, replace=False)]
        spec = spec_from_shape_key(key, by) if comp == "layer" else spec_from_head_shape_key(key, by)
        groups.append((comp, spec, int(tp), mode, a))
    return groups


def _predict(hw: HardwareProfile, groups):
    lat = AnalyticalLatency(hw)
    out = []
    for comp, spec, tp, mode, a in groups:
        if comp == "layer":
            out.append(lat.layer_s(spec, a[:, 0], a[:, 1], a[:, 2], tp, mode))
        else:
            out.append(lat.lm_head_s(spec, a[:, 0], a[:, 1], tp, mode))
    return np.concatenate(out) if out else np.zeros(0)


def _with(hw, theta, params=PARAMS):
    vals = {p: float(np.clip(np.exp(t), *BOUNDS[p])) for p, t in zip(params, theta)}
    return hw.replace(**vals)


def _lm(hw, groups, y, iters=60, params=PARAMS):
    """Levenberg-Marquardt on log-parameters `params` with a forward-difference Jacobian."""
    theta = np.log([getattr(hw, p) for p in params])

    def resid(th):
        return np.log(_predict(_with(hw, th, params), groups)) - y

    r = resid(theta)
    lam = 1e-2
    for _ in range(iters):
        J = np.empty((r.size, theta.size))
        for k in range(theta.size):
            d = np.zeros_like(theta)
            d[k] = 1e-4
            J[:, k] = (resid(theta + d) - r) / 1e-4
        A, g = J.T @ J, J.T @ r
        improved = False
        for _ in range(8):
            step = np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-12), -g)
            cand = np.log([getattr(_with(hw, theta + step, params), p) for p in params])
            rc = resid(cand)
            if rc @ rc < r @ r:
                theta, r, lam, improved = cand, rc, lam / 3, True
                break
            lam *= 4
        if not improved or np.max(np.abs(step)) < 1e-5:
            break
    return _with(hw, theta, params), r


def _overheads(hw, rows):
    fitted, stats = {}, {}
    for mode in ("eager", "graph"):
        rs = [r for r in rows if r["component"] == "overhead" and r["mode"] == mode]
        if not rs:
            continue
        spec_rows = [(spec_from_head_shape_key(r["head_shape"]), r) for r in rs]
        sample = np.array([4 * r["batch"] * r["new_tokens"] * s.vocab for s, r in spec_rows], dtype=float)
        t = np.array([r["median_s"] for r in rs])
        base = t - sample / (hw.hbm_bytes_per_s * hw.bandwidth_efficiency)
        const = float(np.mean(base))  # the least-squares constant
        fitted[f"overhead_{mode}_s"] = max(const, 0.0)
        stats[f"overhead_{mode}"] = {"n": len(rs), "rms_s": float(np.sqrt(np.mean((base - const) ** 2)))}
    return fitted, stats


def _allreduce(rows):
    rs = [r for r in rows if r["component"] == "allreduce" and r["tp"] > 1]
    if len(rs) < 2:
        return {}, {}
    msg = np.array([2 * (r["tp"] - 1) / r["tp"] * r["batch"] * r["new_tokens"] *
                    spec_from_shape_key(r["shape"]).d_model * DTYPE_BYTES.get(r["dtype"], 2)
                    for r in rs], dtype=float)
    y = np.array([r["median_s"] / 2 for r in rs])  # two all-reduces per layer
    (lat, inv_bw), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(msg), msg]), y, rcond=None)
    out = {"allreduce_latency_s": float(max(lat, 1e-7))}
    if inv_bw > 0:
        out["interconnect_bytes_per_s"] = float(1.0 / inv_bw)
    return out, {"allreduce": {"n": len(rs)}}


def fit_profile(table: LatencyTable, hw: HardwareProfile) -> tuple[HardwareProfile, dict]:
    """Return (hw with fitted constants, report with per-component error statistics)."""
    rows = table.ok_rows()
    all_groups = _groups(rows)
    groups = [g for g in all_groups if g[3] != "compiled"]
    compiled = [g for g in all_groups if g[3] == "compiled"]
    report: dict = {"params": {}, "stats": {}}
    fitted_hw = hw
    for name, gs, params in (("layer_and_lm_head", groups, PARAMS), ("compiled", compiled, COMPILED_PARAMS)):
        if not gs:
            continue
        if params is COMPILED_PARAMS:  # start from graph mode's floor and the unfused kernel count
            fitted_hw = fitted_hw.replace(kernel_floor_compiled_s=fitted_hw.kernel_floor_graph_s,
                                          compiled_small_kernels=float(FAMILIES[gs[0][1].family].small_kernels))
        y = np.log(np.concatenate([g[4][:, 3] for g in gs]))
        before = np.log(_predict(fitted_hw, gs)) - y
        fitted_hw, r = _lm(fitted_hw, gs, y, params=params)
        report["stats"][name] = {
            "n": int(y.size), "median_abs_rel_err_before": float(np.median(np.abs(np.expm1(before)))),
            "median_abs_rel_err": float(np.median(np.abs(np.expm1(r)))),
            "p90_abs_rel_err": float(np.percentile(np.abs(np.expm1(r)), 90))}
    ov, st = _overheads(fitted_hw, rows)
    ar, st2 = _allreduce(rows)
    fitted_hw = fitted_hw.replace(**ov, **ar)
    report["stats"].update(st, **st2)
    cp = COMPILED_PARAMS if compiled else ()
    report["params"] = {p: getattr(fitted_hw, p) for p in PARAMS + cp + tuple(ov) + tuple(ar)}
    return fitted_hw, report


def refit_file(path, hw: HardwareProfile | None = None) -> dict:
    """Fit the profile at `path` and store the fitted constants in its metadata (`fitted`, `fit`)."""
    t = LatencyTable.load(path)
    base = hw or GPUS.get(t.meta.get("gpu", ""), None)
    if base is None:
        base = next(iter(GPUS.values())).replace(name=t.meta.get("gpu", "unknown"))
    fitted, report = fit_profile(t, base)
    t.meta["fitted"] = report["params"]
    t.meta["fit"] = {"stats": report["stats"], "base_gpu": base.name,
                     "method": "Levenberg-Marquardt on log(time) of layer and lm_head rows; "
                               "linear least squares for overhead and all-reduce rows"}
    t.save(path)
    return report
