"""The latency error bands by source kind (the shipped error_bands.json that perfmodel.latency.bands
reads), from the project's validation evidence named in the manifest's `bands` build step.

Band b = exp(90th percentile of |ln(predicted/measured)|) − 1 for a kind of source, so a stated 90 %
interval is [prediction/(1+b), prediction·(1+b)]. Evidence per kind:
- measured / interpolated: the own speculative-decoding loop, predicted vs measured iteration time
  (`loop` files, status ok), per mode; compiled mode from `compiled_loop`'s compiled rows;
- curve (tp > 1 all-reduce curve, whole TP forward): `tp_validation`, per mode;
- fitted / anchored: the analytical model fitted to a profile, on that profile's own rows
  (`analytical_profiles`' fit, in-sample; the worst one);
- datasheet: the catalog (unfitted) analytical model on the same profiles' layer/lm_head rows;
- operator: the unseen-shape checks (per-point errors, perfmodel.data_build.shape_errors).
Stored beside the bands: leave-one-draft-out coverage of the loop band, coverage of the loop band on
the whole-model composition check (`composition`), and each kind's shared fraction ρ (the part of
its error common to all shapes), which the optimiser's win probabilities use.

Key assumption: a kind's band measured on this evidence holds for other predictions answered by
that kind in the same execution mode.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

Q = 90.0  # the band's percentile: a 90 % interval
DEFINITION = "band = exp(90th percentile of |ln(predicted/measured)|) - 1; interval [pred/(1+band), pred*(1+band)]"


def _rows(path):
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("status", "ok") in ("ok", "")]


def band_of(errs):
    """(exp(p90 |ln(predicted/measured)|) − 1, n) from relative errors e = predicted/measured − 1:
    the log-symmetric band that the Monte Carlo's log-normal factor uses."""
    e = np.asarray(errs, dtype=float)
    e = np.abs(np.log1p(e[np.isfinite(e)]))
    return float(np.expm1(np.percentile(e, Q))), int(e.size)


def loop_errors(loop_files, compiled_loop=None) -> dict:
    """{mode: [(draft, iteration-time error)]} of the own-loop validation tables."""
    out = {"graph": [], "eager": [], "compiled": []}
    for f in loop_files:
        for r in _rows(f):
            out[r["mode"]].append((r["draft"], float(r["err_iteration_s"])))
    if compiled_loop:  # its graph rows stay out: the graph band is the other loop's
        for r in _rows(compiled_loop):
            if r["mode"] == "compiled":
                out["compiled"].append((r["draft"], float(r["err_iteration_s"])))
    return out


def analytical_errors(profiles, fitted: bool) -> dict:
    """{file name: relative errors} of the analytical model on each profile's layer/lm_head rows:
    with the catalog (datasheet) constants, or with the constants fitted to that profile."""
    from specperf.perfmodel.latency.fit import _groups, _predict
    from specperf.perfmodel.latency.table import LatencyTable
    from specperf.perfmodel.specs.hardware import resolve_gpu

    errs = {}
    for csv_path in sorted(profiles, key=lambda p: Path(p).name):
        t = LatencyTable.load(csv_path)
        groups = _groups(t.ok_rows())
        hw = resolve_gpu(t.meta["fit"]["base_gpu"])
        if fitted:
            hw = hw.replace(**t.meta["fitted"])
        y = np.concatenate([g[4][:, 3] for g in groups])
        errs[Path(csv_path).name] = _predict(hw, groups) / y - 1.0
    return errs


def compute(loop_files, compiled_loop, tp_validation, composition, profiles, operator_rows,
            command: str, reference_rows=()) -> dict:
    """The error_bands.json document. `operator_rows`: shape-check error rows, each with
    mode, rel_err and _file (the evidence file it belongs to)."""
    bands: dict = {}
    loop = loop_errors(loop_files, compiled_loop)
    for mode, pts in loop.items():
        b, n = band_of([e for _, e in pts])
        for kind in ("measured", "interpolated"):
            bands.setdefault(kind, {})[mode] = {
                "band": b, "n": n, "evidence": "own loop iteration time, "
                + (Path(compiled_loop).name if mode == "compiled" else "validation_h100_*.csv")
                + ("" if kind == "measured" else " (no separate interpolation check: measured band)")}
    tpv = _rows(tp_validation)
    for mode in ("graph", "eager"):
        b, n = band_of([r["rel_err"] for r in tpv if r["mode"] == mode])
        bands.setdefault("curve", {})[mode] = {"band": b, "n": n, "evidence": f"TP forward, {Path(tp_validation).name}"}
    fits = {f: band_of(e) for f, e in analytical_errors(profiles, fitted=True).items()}
    f_w = max(fits, key=lambda f: fits[f][0])
    for kind in ("fitted", "anchored"):
        bands[kind] = {"any": {"band": fits[f_w][0], "n": fits[f_w][1],
                               "evidence": f"fitted analytical on its profile's rows, in-sample ({f_w}, worst shipped GPU)"
                               + ("" if kind == "fitted" else "; anchoring not validated separately: fitted band")}}
    ds = analytical_errors(profiles, fitted=False)
    b, n = band_of(np.concatenate(list(ds.values())))
    bands["datasheet"] = {"any": {"band": b, "n": n, "evidence": "catalog analytical vs " + ", ".join(ds)}}
    for mode in sorted({r["mode"] for r in operator_rows}):
        b, n = band_of([float(r["rel_err"]) for r in operator_rows if r["mode"] == mode])
        files = sorted({r["_file"] for r in operator_rows if r["mode"] == mode})
        bands.setdefault("operator", {})[mode] = {"band": b, "n": n, "evidence": f"shape check {', '.join(files)}"}
    for mode in sorted({r["mode"] for r in reference_rows}):  # independent references: the truth
        b, n = band_of([float(r["rel_err"]) for r in reference_rows if r["mode"] == mode])
        cur = bands.setdefault("operator", {}).get(mode)
        if cur is None or b > cur["band"]:
            files = sorted({r["_file"] for r in reference_rows if r["mode"] == mode})
            bands["operator"][mode] = {"band": b, "n": n, "evidence": "independent reference models "
                                       + ", ".join(files) + (f" (wider than the {cur['evidence']})" if cur else "")}
    return {"level": Q / 100, "definition": DEFINITION, "shared_fraction": shared_fractions(loop, operator_rows),
            "command": command, "bands": bands, "checks": checks(loop, bands, composition)}


def _shared(errs):
    """ρ = μ² / (μ² + σ²) of ln(1 + e): the share of a kind's error second moment that is a bias common
    to every shape (what two draft shapes answered by that kind err alike); the rest differs by shape."""
    x = np.log1p(np.asarray(errs, dtype=float))
    x = x[np.isfinite(x)]
    m, v = float(np.mean(x)), float(np.var(x))
    return m * m / (m * m + v) if m * m + v > 0 else 1.0, int(x.size)


def shared_fractions(loop, operator_rows) -> dict:
    """{kind: {mode: {rho, n, evidence}}} for the kinds with evidence across several shapes: the own
    loop (measured / interpolated) and the unseen-shape checks (operator). Kinds without it stay
    fully shared (ρ = 1) in perfmodel.optimize.confidence."""
    out: dict = {}
    for mode, pts in loop.items():
        if pts:
            rho, n = _shared([e for _, e in pts])
            for kind in ("measured", "interpolated"):
                out.setdefault(kind, {})[mode] = {"rho": rho, "n": n, "evidence": "own loop iteration time"}
    for mode in sorted({r["mode"] for r in operator_rows}):
        rho, n = _shared([float(r["rel_err"]) for r in operator_rows if r["mode"] == mode])
        out.setdefault("operator", {})[mode] = {"rho": rho, "n": n, "evidence": "unseen-shape checks"}
    return out


def checks(loop, bands, composition) -> dict:
    """Out-of-sample coverage: leave one draft out of the loop band; loop band on composition."""
    out = {}
    comp_rows = _rows(composition)
    for mode, pts in loop.items():
        if mode == "compiled":  # no compiled composition table on the H100; the H200 loop only
            continue
        drafts = sorted({d for d, _ in pts})
        hit = n = 0
        for d in drafts:
            b, _ = band_of([e for dd, e in pts if dd != d])
            held = np.array([e for dd, e in pts if dd == d])
            hit += int((np.abs(np.log1p(held)) <= np.log1p(b)).sum())
            n += held.size
        out[f"loop_leave_one_draft_out_{mode}"] = {"coverage": hit / n, "n": n, "groups": len(drafts)}
        comp = np.array([float(r["rel_err"]) for r in comp_rows if r["mode"] == mode])
        b = bands["measured"][mode]["band"]
        out[f"composition_with_loop_band_{mode}"] = {"coverage": float((np.abs(np.log1p(comp)) <= np.log1p(b)).mean()),
                                                    "n": int(comp.size)}
    return out


def dumps(doc: dict) -> str:
    """error_bands.json's bytes (one-space indent, as shipped)."""
    return json.dumps(doc, indent=1) + "\n"
