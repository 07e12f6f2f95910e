"""Errors of the operator-composed prediction (and of the pre-operator one: shipped layer profile,
then the analytical roofline fitted to it) on whole models of shapes in no shipped profile, from a
measured shape-check file (scripts/shape_check.py measures it on a GPU). The per-point errors are
the evidence of the operator error band (perfmodel.data_build.bands).

Key assumption: the SHAPES below are in no shipped profile and nothing about them was used to fit
the operator glue; eager time is host time, so eager is predicted from the launch costs re-timed in
the run (`<stem>_host.csv`) or — `shipped_launch_costs`, as on a host never profiled — the table's.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from specperf.perfmodel.latency.measured import MeasuredLatency
from specperf.perfmodel.latency.operator_table import OperatorTable
from specperf.perfmodel.latency.operators import OperatorLatency, shipped_operator_table
from specperf.perfmodel.specs.hardware import resolve_gpu
from specperf.perfmodel.specs.models import ModelSpec

# name: (n_layers, d_model, n_heads, n_kv_heads, d_ff, vocab) — head dims 64/128, GQA 1..8, FFN 2.5..4
SHAPES = {
    "s512x16": (16, 512, 8, 8, 1408, 32000), "s640x12": (12, 640, 10, 2, 2048, 49152),
    "s768x24": (24, 768, 12, 4, 2048, 32768), "s1024x48": (48, 1024, 16, 2, 2816, 32000),
    "s1024x6": (6, 1024, 8, 8, 4096, 128256), "s1280x16": (16, 1280, 10, 10, 3584, 32000),
    "s1536x20": (20, 1536, 12, 4, 4096, 151936), "s1536x4": (4, 1536, 24, 8, 5632, 32000),
    "s1792x8": (8, 1792, 14, 2, 4864, 65536), "s2304x10": (10, 2304, 18, 6, 6144, 32000),
    "s2816x3": (3, 2816, 22, 22, 7680, 32000), "s3072x6": (6, 3072, 24, 8, 12288, 32000),
    "s3584x2": (2, 3584, 28, 4, 9728, 152064), "s4608x2": (2, 4608, 36, 12, 12288, 32000),
    "s5632x1": (1, 5632, 44, 4, 15360, 128256), "s6144x2": (2, 6144, 48, 8, 16384, 32000),
    "s7168x1": (1, 7168, 56, 8, 18432, 32000), "s8192x1": (1, 8192, 64, 8, 20480, 128256),
}
MODES = ("graph", "eager")  # the modes a shape check measures by default
ERROR_COLUMNS = ("gpu", "model", "mode", "batch", "new_tokens", "context", "measured_s", "predicted_s", "rel_err")


def spec_of(name: str) -> ModelSpec:
    L, d, h, kv, ff, v = SHAPES[name]
    return ModelSpec(name=name, family="llama", n_layers=L, d_model=d, n_heads=h, n_kv_heads=kv, d_ff=ff, vocab=v)


def report(path: Path, gpu: str = "h200", table: Path | None = None, errors_out: Path | None = None,
           shipped_launch_costs: bool = False, errors_modes=None, profile: Path | None = None,
           compiled_profile: Path | None = None) -> dict:
    """{mode: error summary} of the operator-composed and the pre-operator predictions against
    `path`'s rows (each row gets rel_err and predicted_s; `errors_out` appends them, `errors_modes`
    only those modes). `profile` / `compiled_profile`: the pre-operator tables (default: shipped)."""
    from specperf.perfmodel.latency.providers import shipped_compiled_profile, shipped_profile

    path = Path(path)
    hw = resolve_gpu(gpu)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    dtype = (rows[0].get("dtype") or "fp16") if rows else "fp16"  # files before the column: fp16
    host = path.with_name(path.stem + "_host.csv")
    if shipped_launch_costs:
        host = path.with_name(path.stem + "_no_such_host_table.csv")
    ops = OperatorLatency(table or shipped_operator_table(gpu, dtype), hw, dtype,
                          host_path=host if host.exists() else None)
    before = MeasuredLatency(profile or shipped_profile(gpu), hw)  # before operators: fitted roofline off-grid
    cp = compiled_profile or shipped_compiled_profile(gpu)  # compiled: its analytical fit to the compiled rows
    before_c = MeasuredLatency(cp, hw) if cp is not None else before
    ref = OperatorTable.load(host).meta.get("host_probe_s") if host.exists() else None
    out = {}
    for m in MODES + ("compiled",):
        rs = [r for r in rows if r["mode"] == m]
        if not rs:
            continue
        e_op, e_old, e_norm = [], [], []
        for r in rs:
            spec = spec_of(r["model"])
            b, n, c = int(r["batch"]), int(r["new_tokens"]), int(r["context"])
            t = float(r["measured_s"])
            e_op.append(float(ops.forward(spec, b, n, c, 1, m).total_s) / t - 1)
            e_old.append(float((before_c if m == "compiled" else before).forward(spec, b, n, c, 1, m).total_s) / t - 1)
            if m == "eager" and ref and r.get("host_probe_s") not in (None, "", "nan"):
                k = float(r["host_probe_s"]) / ref  # host speed when this model ran vs when launch costs were timed
                e_norm.append(float(OperatorLatency(ops.path, hw, dtype, host_path=ops.host_path, host_scale=k)
                                    .forward(spec, b, n, c, 1, m).total_s) / t - 1)
            r["rel_err"], r["predicted_s"] = e_op[-1], t * (1 + e_op[-1])
        a, o = np.abs(e_op), np.abs(e_old)
        out[m] = {"points": len(rs), "shapes": len({r["model"] for r in rs}),
                  "operator_median": float(np.median(a)), "operator_p90": float(np.percentile(a, 90)),
                  "operator_max": float(a.max()), "operator_mean_signed": float(np.mean(e_op)),
                  "before_median": float(np.median(o)), "before_p90": float(np.percentile(o, 90))}
        if m == "eager" and out[m]["shapes"] > 1:  # one host factor, calibrated on the other shapes
            lg, names = np.log1p(e_op), np.array([r["model"] for r in rs])
            cal = np.abs(np.expm1(np.concatenate([lg[names == s] - np.median(lg[names != s]) for s in set(names)])))
            out[m].update(host_calibrated_median=float(np.median(cal)), host_calibrated_p90=float(np.percentile(cal, 90)))
        if e_norm:
            out[m].update(host_normalised_median=float(np.median(np.abs(e_norm))),
                          host_normalised_p90=float(np.percentile(np.abs(e_norm), 90)))
    out["_rows"] = [r for r in rows if "rel_err" in r and (not errors_modes or r["mode"] in errors_modes)]
    if errors_out:  # one row per point: the evidence perfmodel.data_build.bands reads
        errors_out = Path(errors_out)
        new = not errors_out.exists()
        with errors_out.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=ERROR_COLUMNS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerows(out["_rows"])
    return out


def write_errors(path: Path, rows) -> None:
    """The error rows in ERROR_COLUMNS form, as scripts/shape_check.py --errors-out writes them."""
    with Path(path).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ERROR_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
