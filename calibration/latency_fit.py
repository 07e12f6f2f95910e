"""Latency calibration: fit a per-iteration overhead and multiplicative corrections on draft and
verify time to measured end-to-end speculative-decoding runs, per (GPU, mode).

Model (same composition as perfmodel.specdec.predict, so the fit corrects exactly what `predict` computes):
    iteration_s = k_draft·γ·t_draft_s + k_verify·t_verify_s + overhead_s(provider) + extra_overhead_s
Linear in (k_draft, k_verify, extra_overhead_s): weighted least squares on relative residuals
(weights 1/measured, so fast and slow runs count alike), k bounded > 0 (scipy lsq_linear), standard
errors from σ²(AᵀA)⁻¹. Error is reported before (k = 1, extra = 0) and after, and leave-one-out, so
an overfit shows. Key assumption: measured runs decode steadily (no prefill in iteration_s).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize

from specperf.perfmodel.specdec.acceptance import AcceptanceModel, check_alpha
from specperf.perfmodel.latency.corrected import CorrectionEntry, LatencyCorrection
from specperf.perfmodel.specdec.maths import tokens_per_iteration
from specperf.perfmodel.specs.safeio import read_text
from specperf.perfmodel.specs.models import SpecError
from specperf.perfmodel.latency.table import DTYPE_BYTES

from .data import TraceError
from .report import FitReport

PARAMS = ("overhead", "draft", "verify")
K_MIN = 1e-3  # lower bound on a multiplicative factor (a factor ≤ 0 is meaningless)
COND_MAX = 1e7  # condition number beyond which parameters are not identifiable from the runs


@dataclass(frozen=True)
class Run:
    line: int
    gpu: str
    mode: str
    target: str
    draft: str
    gamma: int
    batch: int
    context: int
    tp: int
    dtype_bytes: int
    iteration_s: float
    target_spec: object = None  # resolved ModelSpec
    draft_spec: object = None


# Per-run physical bounds: the same as the CLI's --gamma/--batch/--context/--tp (cli/options.py BOUNDS),
# so a run of batch 1e12 is refused by name instead of failing the fit as "cannot identify".
ROW_BOUNDS = {"gamma": 64, "batch": 65536, "context": 16777216, "tp": 1024}


def _num(v, src, ln, what, integer=False, positive=True):
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise TraceError(src, f"{what}={v!r} is not a number", ln) from None
    if not np.isfinite(x) or (positive and x <= 0) or (not positive and x < 0):
        raise TraceError(src, f"{what}={v!r} is not allowed; must be {'> 0' if positive else '≥ 0'}", ln)
    if integer and not x.is_integer():
        raise TraceError(src, f"{what}={v!r} is not an integer", ln)
    if what in ROW_BOUNDS and x > ROW_BOUNDS[what]:
        raise TraceError(src, f"{what}={v!r} is not allowed; must be at most {ROW_BOUNDS[what]}", ln)
    return int(x) if integer else x


def _cells(raw: str, src, ln) -> list[str]:
    try:
        return next(csv.reader([raw]))
    except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit
        raise TraceError(src, f"is not a readable CSV line ({e})", ln) from None


def read_runs(path, gpu: str | None = None, mode: str | None = None) -> list[Run]:
    from specperf.perfmodel.specs.catalog import resolve_model
    from specperf.perfmodel.specs.hardware import resolve_gpu

    p = Path(path)
    if not p.exists():
        raise TraceError(p, "file does not exist")
    try:  # bounded, regular files only; a spreadsheet BOM is accepted
        lines = read_text(p, "runs file").splitlines()
    except SpecError as e:
        raise TraceError(p, "is not a text file (not UTF-8)" if "UTF-8" in str(e)
                         else str(e).split(f"{str(p)!r} ", 1)[-1]) from None
    body = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        raise TraceError(p, "file is empty")
    hl, header = body[0][0], [h.strip().lower() for h in _cells(body[0][1], p, body[0][0])]
    if "iteration_s" not in header and "measured_iteration_s" in header:  # `specperf validate --out` table
        header[header.index("measured_iteration_s")] = "iteration_s"
    need = ["gamma", "batch", "context", "target", "draft"]
    missing = [c for c in need if c not in header]
    if "iteration_s" not in header and "tokens_per_s" not in header:
        missing.append("iteration_s or tokens_per_s")
    for c, default in (("gpu", gpu), ("mode", mode)):
        if c not in header and default is None:
            missing.append(f"{c} (or --{c})")
    if missing:
        raise TraceError(p, f"runs CSV lacks column(s): {', '.join(missing)}", hl)
    runs = []
    for ln, raw in body[1:]:
        cells = _cells(raw, p, ln)
        if len(cells) != len(header):
            raise TraceError(p, f"has {len(cells)} cells, the header has {len(header)}", ln)
        r = {h: c.strip() for h, c in zip(header, cells)}
        if r.get("status", "ok") not in ("", "ok"):  # skipped/failed points of a validation table
            continue
        g = _num(r["gamma"], p, ln, "gamma", integer=True)
        b = _num(r["batch"], p, ln, "batch", integer=True)
        ctx = _num(r["context"], p, ln, "context", integer=True)
        tp = _num(r.get("tp") or 1, p, ln, "tp", integer=True)
        m = (r.get("mode") or mode or "").lower()
        if m not in ("graph", "eager"):
            raise TraceError(p, f"mode={m!r} is not allowed; use graph or eager", ln)
        dt = (r.get("dtype") or "fp16").lower()
        if dt not in DTYPE_BYTES:
            raise TraceError(p, f"dtype={dt!r} is not allowed; use fp16, bf16 or fp32", ln)
        if r.get("iteration_s"):
            it = _num(r["iteration_s"], p, ln, "iteration_s")
        else:
            tps = _num(r.get("tokens_per_s"), p, ln, "tokens_per_s")
            if r.get("tokens_per_iteration"):
                tpi = _num(r["tokens_per_iteration"], p, ln, "tokens_per_iteration")
                if not 1.0 <= tpi <= g + 1:
                    raise TraceError(p, f"tokens_per_iteration={tpi} is outside [1, γ+1={g + 1}]", ln)
            elif r.get("alpha"):
                try:
                    tpi = float(tokens_per_iteration(check_alpha(_num(r["alpha"], p, ln, "alpha", positive=False)), g))
                except SpecError as e:
                    raise TraceError(p, str(e), ln) from None
            else:
                raise TraceError(p, "tokens_per_s needs alpha or tokens_per_iteration to give iteration time", ln)
            it = b * tpi / tps
        try:
            hw = resolve_gpu(r.get("gpu") or gpu)
            tgt = resolve_model(r["target"], DTYPE_BYTES[dt])
            drf = resolve_model(r["draft"], DTYPE_BYTES[dt])
        except SpecError as e:
            raise TraceError(p, str(e), ln) from None
        runs.append(Run(line=ln, gpu=hw.name, mode=m, target=tgt.name, draft=drf.name, gamma=g, batch=b,
                        context=ctx, tp=tp, dtype_bytes=DTYPE_BYTES[dt], iteration_s=it, target_spec=tgt,
                        draft_spec=drf))
    if not runs:
        raise TraceError(p, "runs CSV has a header but no runs")
    return runs


def components(runs: list[Run], provider_for, source) -> tuple[np.ndarray, dict]:
    """Per run: (γ·t_draft_s, t_verify_s, overhead_s) exactly as perfmodel.specdec.predict composes them;
    and the providers used, one per GPU (built once: a measured one loads its table once)."""
    from specperf.perfmodel.specs.hardware import resolve_gpu
    from specperf.perfmodel.specdec.predict import predict

    out = np.empty((len(runs), 3))
    providers: dict = {}
    acc = AcceptanceModel(alpha=0.5, source="calibration")  # acceptance does not enter iteration_s
    for i, r in enumerate(runs):
        try:
            if r.gpu not in providers:
                providers[r.gpu] = provider_for(resolve_gpu(r.gpu))
            lat = providers[r.gpu]
            p = predict(r.target_spec, r.draft_spec, lat, acc, [r.gamma], [r.batch], [r.context], tp=r.tp, mode=r.mode)
        except SpecError as e:
            raise TraceError(source, str(e), r.line) from None
        out[i] = (r.gamma * p.t_draft_s.item(), p.t_verify_s.item(), p.overhead_s.item())
    return out, providers


def _solve(X, y, w, free, overhead_floor: float = 0.0):
    """Bounded least squares: k_draft, k_verify ≥ K_MIN > 0; extra overhead ≥ −overhead_floor, so the
    corrected per-iteration overhead (provider's + extra) never goes negative on the runs fitted."""
    A, b = X[:, free] * w[:, None], y * w
    lb = [-overhead_floor if f == 2 else K_MIN for f in free]
    res = optimize.lsq_linear(A, b, bounds=(lb, np.inf), method="bvls")
    return res.x, A, b


def _identifiable(A) -> bool:
    if A.shape[0] < A.shape[1]:
        return False
    An = A / np.maximum(np.linalg.norm(A, axis=0), 1e-300)
    return np.linalg.cond(An) < COND_MAX


def fit_group(runs, comp, params=PARAMS, source="runs"):
    """Fit one (gpu, mode) group; returns (CorrectionEntry, FitReport)."""
    meas = np.array([r.iteration_s for r in runs])
    X = np.column_stack([comp[:, 0], comp[:, 1], np.ones(len(runs))])  # k_draft, k_verify, extra
    order = {"draft": 0, "verify": 1, "overhead": 2}
    free = sorted(order[p] for p in params)
    fixed = [j for j in range(3) if j not in free]
    y = meas - comp[:, 2] - X[:, fixed] @ np.array([1.0 if j < 2 else 0.0 for j in fixed])
    w = 1.0 / meas
    g0 = runs[0]
    floor = float(np.min(comp[:, 2])) if len(runs) else 0.0
    if len(runs) < len(free) + 2 or not _identifiable(X[:, free] * w[:, None]):
        varied = "γ, batch, context or models"
        raise TraceError(source, f"{g0.gpu}/{g0.mode}: {len(runs)} run(s) cannot identify {', '.join(params)} "
                                 f"(need ≥ {len(free) + 2} well-separated runs); "
                                 f"vary {varied} across more runs, or fit fewer with --fit overhead")
    x, A, b = _solve(X, y, w, free, floor)
    theta = np.array([1.0, 1.0, 0.0])
    theta[free] = x
    dof = len(runs) - len(free)
    sigma2 = float(((A @ x - b) ** 2).sum() / dof)
    cov = sigma2 * np.linalg.pinv(A.T @ A)
    se = dict(zip(free, np.sqrt(np.maximum(np.diag(cov), 0.0))))
    before = X[:, :2].sum(axis=1) + comp[:, 2]
    after = X @ theta + comp[:, 2]
    loo = np.full(len(runs), np.nan)
    for i in range(len(runs)):
        keep = np.arange(len(runs)) != i
        if keep.sum() >= len(free) + 2 and _identifiable(X[keep][:, free] * w[keep, None]):
            xi, _, _ = _solve(X[keep], y[keep], w[keep], free, floor)
            th = np.array([1.0, 1.0, 0.0])
            th[free] = xi
            loo[i] = X[i] @ th + comp[i, 2]
    pct = lambda pred: np.abs(pred - meas) / meas * 100.0  # noqa: E731

    def summary(pred):
        e = pct(pred)
        e = e[np.isfinite(e)]
        return {"median_abs_pct": float(np.median(e)) if e.size else None,
                "p90_abs_pct": float(np.percentile(e, 90)) if e.size else None}
    err = {"before": summary(before), "after": summary(after), "loo": summary(loo)}
    names = ["k_draft", "k_verify", "extra_overhead_s"]
    stderr = {names[j]: float(se[j]) if j in se else None for j in range(3)}
    entry = CorrectionEntry(
        gpu=g0.gpu, mode=g0.mode, k_draft=float(theta[0]), k_verify=float(theta[1]),
        extra_overhead_s=float(theta[2]), targets=tuple(sorted({r.target for r in runs})),
        drafts=tuple(sorted({r.draft for r in runs})),
        extra={"k_draft_stderr": stderr["k_draft"], "k_verify_stderr": stderr["k_verify"],
               "extra_overhead_s_stderr": stderr["extra_overhead_s"], "fitted": list(params),
               "n_runs": len(runs), "error": err, **_loo_band(loo, meas)})
    z = 1.959963984540054  # standard normal 97.5 % quantile
    notes = [f"unfitted parameters held at identity: {', '.join(names[j] for j in fixed)}"] if fixed else []
    for j in free:
        if se[j] >= abs(theta[j]):
            notes.append(f"{names[j]} is poorly determined (stderr {se[j]:.3g} ≥ |value| {abs(theta[j]):.3g}): "
                         "the runs barely separate it from the other terms; vary batch, context or models")
    if np.isnan(loo).any():
        notes.append(f"{int(np.isnan(loo).sum())} leave-one-out fit(s) not identifiable (left out of LOO error)")
    rep = FitReport(
        title=f"latency calibration: {source} ({g0.gpu}, {g0.mode})",
        method="weighted linear least squares on relative residuals (scipy lsq_linear, k > 0)",
        n=len(runs), n_label="runs", parameters={names[j]: float(theta[j]) for j in free},
        stderr={names[j]: stderr[names[j]] for j in free},
        ci={names[j]: (float(theta[j] - z * se[j]), float(theta[j] + z * se[j])) for j in free},
        ci_method="θ ± 1.96·stderr (normal approximation)",
        residuals=tuple(float(v) for v in (after - meas) / meas * 100.0),
        residual_labels=tuple(f"line {r.line} γ={r.gamma} b={r.batch} ctx={r.context}" for r in runs),
        residual_kind="after-fit error, % of measured iteration_s",
        metrics={"median |%err| before": err["before"]["median_abs_pct"],
                 "p90 |%err| before": err["before"]["p90_abs_pct"],
                 "median |%err| after": err["after"]["median_abs_pct"],
                 "p90 |%err| after": err["after"]["p90_abs_pct"],
                 "median |%err| LOO": err["loo"]["median_abs_pct"],
                 "p90 |%err| LOO": err["loo"]["p90_abs_pct"], "reduced chi-square": sigma2},
        notes=tuple(notes))
    return entry, rep


def _loo_band(loo, meas) -> dict:
    """The calibrated provider's error band (issue 14): exp(p90 |ln(LOO prediction/measured)|) − 1
    over the runs whose leave-one-out fit was identifiable, with its n; empty when fewer than 3."""
    ok = np.isfinite(loo) & (loo > 0)
    if ok.sum() < 3:
        return {}
    e = np.abs(np.log(loo[ok] / meas[ok]))
    return {"loo_band": float(np.expm1(np.percentile(e, 90))), "loo_band_n": int(ok.sum())}


def fit_latency(path, provider_for, provider_name: str | None = None, params=PARAMS, gpu=None, mode=None):
    """Read runs, fit each (gpu, mode) group → (LatencyCorrection, [FitReport]). `provider_name`
    defaults to the names of the providers `provider_for` returned."""
    params = tuple(params)
    bad = [p for p in params if p not in PARAMS]
    if bad or not params:
        raise SpecError(f"--fit {','.join(params)} is not allowed; choose from {', '.join(PARAMS)}")
    runs = read_runs(path, gpu, mode)
    comp, providers = components(runs, provider_for, path)
    if provider_name is None:
        provider_name = ", ".join(sorted({getattr(p, "name", type(p).__name__) for p in providers.values()}))
    entries, reports = [], []
    for key in sorted({(r.gpu, r.mode) for r in runs}):
        idx = [i for i, r in enumerate(runs) if (r.gpu, r.mode) == key]
        e, rep = fit_group([runs[i] for i in idx], comp[idx], params, path)
        entries.append(e), reports.append(rep)
    return LatencyCorrection(entries=tuple(entries), provider=provider_name, source=str(path)), reports


# Quality gate of a correction before it is written: a p90 |%err| of 50 % on held-out runs (leave-one-
# out; the after-fit error where no LOO fit was identifiable) means the correction predicts a run it
# did not see off by half; the widest error band the project ships for an uncorrected provider is
# ±73 % (eager glue, docs/accuracy.md), so a correction worse than 50 % is no correction (issue 25).
MAX_P90_ABS_PCT = 50.0


def quality_problems(corr: LatencyCorrection, limit_pct: float = MAX_P90_ABS_PCT) -> list[str]:
    """One line per (gpu, mode) entry whose held-out error exceeds `limit_pct` ([] = fit to write)."""
    out = []
    for e in corr.entries:
        err = e.extra.get("error", {})
        which = "loo" if (err.get("loo") or {}).get("p90_abs_pct") is not None else "after"
        p90 = (err.get(which) or {}).get("p90_abs_pct")
        if p90 is None or not np.isfinite(p90) or p90 > limit_pct:
            shown = "not computable" if p90 is None or not np.isfinite(p90) else f"{p90:.0f} %"
            out.append(f"{e.gpu}/{e.mode}: p90 |%err| {'leave-one-out' if which == 'loo' else 'after fit'} "
                       f"{shown} (gate {limit_pct:.0f} %)")
    return out
