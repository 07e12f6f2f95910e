"""Validation of specperf's prediction against measured speculative decoding: the table of points,
the per-point errors, their median/p90, and the γ regret; plus the prediction of the same points.

Errors are signed relative errors `predicted / measured − 1`. Two measured throughputs are kept:
`measured_tok_s` (tokens the oracle really accepted / wall time: carries the sampling error of a
finite number of accept/reject draws) and `measured_tok_s_expected` (batch × the closed-form
tokens per iteration / measured iteration time: the latency alone, which is what the oracle is for).
γ regret of a group (target, draft, mode, batch, α, context) = 1 − measured(γ̂*) / max_γ measured,
γ̂* the predicted best γ among the measured ones. Key assumption: every point of a group was
measured in one run on one card. This module needs no torch (the loop lives in validate_run).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from specperf.perfmodel.jsonsafe import finite as _finite
from specperf.perfmodel.specs.models import ModelSpec, SpecError
from specperf.perfmodel.specs.safeio import atomic_open, atomic_write
from specperf.perfmodel.latency.table import read_csv

KEY_COLUMNS = ("gpu", "target", "draft", "mode", "dtype", "context", "batch", "alpha", "gamma")
MEASURED_COLUMNS = ("measured_iteration_s", "measured_iteration_p10_s", "measured_iteration_p90_s",
                    "measured_tokens_per_iteration", "expected_tokens_per_iteration", "acceptance_z",
                    "measured_tok_s", "measured_tok_s_expected", "measured_baseline_tok_s",
                    "measured_speedup", "iterations", "repeats")
PREDICTED_COLUMNS = ("predicted_iteration_s", "predicted_t_draft_s", "predicted_t_verify_s",
                     "predicted_overhead_s", "predicted_tok_s", "predicted_baseline_tok_s",
                     "predicted_speedup")
ERROR_COLUMNS = ("err_tok_s", "err_tok_s_expected", "err_iteration_s", "err_speedup")
COLUMNS = KEY_COLUMNS + ("status", "reason") + MEASURED_COLUMNS + PREDICTED_COLUMNS + ERROR_COLUMNS
GROUP_KEYS = ("gpu", "target", "draft", "mode", "dtype", "context", "batch", "alpha")
# The acceptance targets (graph mode on the H100): |error| median ≤ 5 %, p90 ≤ 10 %, regret ≤ 2 %
TARGETS = {"median_abs": 0.05, "p90_abs": 0.10, "gamma_regret": 0.02}


def rel_err(predicted, measured):
    """Signed relative error predicted / measured − 1 (NaN where either is missing)."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((m > 0) & np.isfinite(p), p / m - 1.0, np.nan)


def abs_error_summary(errors) -> dict:
    """n, median and p90 of |error|, max |error|, mean signed error (NaNs ignored)."""
    e = np.asarray(errors, dtype=float).ravel()
    e = e[np.isfinite(e)]
    if e.size == 0:
        return {"n": 0, "median_abs": math.nan, "p90_abs": math.nan, "max_abs": math.nan,
                "mean_signed": math.nan}
    a = np.abs(e)
    return {"n": int(e.size), "median_abs": float(np.median(a)), "p90_abs": float(np.percentile(a, 90)),
            "max_abs": float(a.max()), "mean_signed": float(e.mean())}


def gamma_regret(rows: list[dict], measured_key: str = "measured_tok_s_expected",
                 predicted_key: str = "predicted_tok_s") -> list[dict]:
    """Per group: the measured best γ, the predicted best γ, and the throughput lost by the latter."""
    groups: dict = {}
    for r in rows:
        if r.get("status", "ok") != "ok" or not np.isfinite(r.get(measured_key, np.nan)) \
                or not np.isfinite(r.get(predicted_key, np.nan)):
            continue
        groups.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
    out = []
    for key, rs in groups.items():
        if len(rs) < 2:
            continue
        rs = sorted(rs, key=lambda r: r["gamma"])
        meas = np.array([r[measured_key] for r in rs])
        pred = np.array([r[predicted_key] for r in rs])
        best, chosen = int(np.argmax(meas)), int(np.argmax(pred))
        out.append(dict(zip(GROUP_KEYS, key), gamma_measured_best=rs[best]["gamma"],
                        gamma_predicted_best=rs[chosen]["gamma"],
                        regret=float(1.0 - meas[chosen] / meas[best])))
    return out


def add_errors(row: dict) -> dict:
    row["err_tok_s"] = float(rel_err(row.get("predicted_tok_s"), row.get("measured_tok_s")))
    row["err_tok_s_expected"] = float(rel_err(row.get("predicted_tok_s"), row.get("measured_tok_s_expected")))
    # iteration time: the error of the time is the inverse view; keep it signed the same way
    row["err_iteration_s"] = float(rel_err(row.get("predicted_iteration_s"), row.get("measured_iteration_s")))
    row["err_speedup"] = float(rel_err(row.get("predicted_speedup"), row.get("measured_speedup")))
    return row


def summarize(rows: list[dict]) -> dict:
    """Per mode: error summaries for tokens/s (both measures), iteration time, speedup; γ regret."""
    out = {}
    for mode in sorted({r["mode"] for r in rows}):
        rs = [r for r in rows if r["mode"] == mode and r.get("status", "ok") == "ok"]
        s = {k: abs_error_summary([r.get(k, math.nan) for r in rs]) for k in ERROR_COLUMNS}
        for name, mk in (("gamma_regret", "measured_tok_s_expected"),
                         ("gamma_regret_realised", "measured_tok_s")):
            reg = gamma_regret(rs, mk)
            vals = np.array([g["regret"] for g in reg]) if reg else np.array([math.nan])
            s[name] = {"groups": len(reg), "mean": float(np.nanmean(vals)) if reg else math.nan,
                       "median": float(np.nanmedian(vals)) if reg else math.nan,
                       "max": float(np.nanmax(vals)) if reg else math.nan,
                       "gamma_hit_rate": float(np.mean([g["gamma_measured_best"] == g["gamma_predicted_best"]
                                                        for g in reg])) if reg else math.nan}
        s["points"] = len(rs)
        s["skipped"] = sum(1 for r in rows if r["mode"] == mode and r.get("status") != "ok")
        out[mode] = s
    return out


def predicted_fields(latency, target: ModelSpec, draft: ModelSpec, gamma: int, batch: int, alpha: float,
                     context: int, mode: str) -> tuple[dict, dict]:
    """The PREDICTED_COLUMNS of one point (oracle acceptance α) and the sources the prediction used."""
    from specperf.perfmodel.specdec.acceptance import AcceptanceModel
    from specperf.perfmodel.specdec.predict import predict

    p = predict(target, draft, latency, AcceptanceModel(alpha=alpha, source="oracle α"), [gamma], [batch],
                [context], mode=mode)
    i = (0, 0, 0)
    return ({"predicted_iteration_s": float(p.iteration_s[i]), "predicted_t_draft_s": float(p.t_draft_s[i]),
             "predicted_t_verify_s": float(p.t_verify_s[i]), "predicted_overhead_s": float(p.overhead_s[i]),
             "predicted_tok_s": float(p.throughput_tok_s[i]), "predicted_baseline_tok_s": float(p.baseline_tok_s[i]),
             "predicted_speedup": float(p.speedup[i])}, p.sources)


def repredict(rows: list[dict], latency, dtype_bytes: int = 2) -> list[dict]:
    """The same measured rows with predicted_* (and errors) recomputed from another latency provider
    (e.g. the shipped profile instead of the one taken in the validation run)."""
    from specperf.perfmodel.specs.catalog import resolve_model

    out = []
    for r in rows:
        r = dict(r)
        if r.get("status", "ok") == "ok":
            t, d = resolve_model(r["target"], dtype_bytes), resolve_model(r["draft"], dtype_bytes)
            r.update(predicted_fields(latency, t, d, r["gamma"], r["batch"], r["alpha"], r["context"], r["mode"])[0])
            add_errors(r)
        out.append(r)
    return out


# ---- input checks -------------------------------------------------------------------------------
def check_pair(target: ModelSpec, draft: ModelSpec) -> None:
    if target.vocab != draft.vocab:
        raise SpecError(f"draft {draft.name} has vocab {draft.vocab} but target {target.name} has vocab "
                        f"{target.vocab}: speculative decoding needs one vocabulary; pick a draft of the "
                        "target's family")


def check_profile_range(table, spec: ModelSpec, gammas, modes) -> None:
    """Refuse γ whose verification (γ+1 new tokens) lies beyond what the profile measured."""
    from specperf.perfmodel.latency.table import layer_shape_key

    shape = layer_shape_key(spec)
    for mode in modes:
        ns = [r["new_tokens"] for r in table.select(component="layer", shape=shape, mode=mode)]
        if not ns:
            raise SpecError(f"the profile has no {mode}-mode layer rows for {spec.name} "
                            f"(shape {shape}); profile it first (`specperf profile --models {spec.name}`)")
        g = max(gammas)
        if g + 1 > max(ns):
            raise SpecError(f"gamma={g} is beyond the profile's range: it measured at most "
                            f"{max(ns)} new tokens for {spec.name} in {mode} mode (γ ≤ {max(ns) - 1}); "
                            f"re-profile with --gamma-max {g}")


# ---- table I/O ----------------------------------------------------------------------------------
def save_rows(rows: list[dict], path, meta: dict | None = None) -> None:
    p = Path(path)
    with atomic_open(p, "--out", newline="") as f:  # atomic, symlink-safe (perfmodel.specs.safeio)
        w = csv.DictWriter(f, fieldnames=list(COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k, "")) for k in COLUMNS})
    if meta is not None:
        atomic_write(p.with_name(p.name + ".meta.json"), json.dumps(_finite(meta), indent=2, sort_keys=True) + "\n")


def load_rows(path) -> list[dict]:
    p = Path(path)
    if not p.exists():
        raise SpecError(f"validation table {str(p)!r} does not exist")
    rows = []
    for line, r in enumerate(read_csv(p, KEY_COLUMNS, "a specperf validation table"), start=2):
        row = {}
        for k, v in r.items():
            if k is None or not isinstance(v, (str, type(None))):  # a ragged row: csv puts extras in a list
                raise SpecError(f"validation table {str(p)!r} line {line}: more fields than the header has")
            if k in ("gpu", "target", "draft", "mode", "dtype", "status", "reason"):
                row[k] = v
                continue
            try:
                x = float(v) if v not in ("", None) else (0.0 if k in _INT_COLUMNS else math.nan)
                if k in _INT_COLUMNS and not (x.is_integer() and (1 if k in KEY_COLUMNS else 0) <= x <= 2 ** 40):
                    raise ValueError(k)
                if k == "alpha" and not 0.0 <= x <= 1.0:
                    raise ValueError(k)
                row[k] = int(x) if k in _INT_COLUMNS else x
            except (ValueError, OverflowError):
                raise SpecError(f"validation table {str(p)!r} line {line}: {k}={v!r} is not allowed; "
                                + ("an integer ≥ 1" if k in KEY_COLUMNS and k in _INT_COLUMNS else "an integer ≥ 0"
                                   if k in _INT_COLUMNS else "α in [0, 1]" if k == "alpha" else "a number") + " is needed",
                                value=v, allowed="a number") from None
        rows.append(row)
    return rows


_INT_COLUMNS = ("context", "batch", "gamma", "iterations", "repeats")


def _cell(v):
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return v
