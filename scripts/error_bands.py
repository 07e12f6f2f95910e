"""Compute the latency error bands by source kind from the project's shipped validation data and
write perfmodel/data/error_bands.json (the file perfmodel.latency.bands reads).

Band b = exp(90th percentile of |ln(predicted/measured)|) − 1 for that kind of source (so a stated
90 % interval is [prediction/(1+b), prediction·(1+b)]). Sources of evidence, per kind:
- measured / interpolated: own speculative-decoding loop, predicted vs measured iteration time
  (validation_h100_{graph,eager,smoke}.csv, status ok), per mode; compiled mode from the H200 loop
  (validation_h200_compiled.csv, its compiled rows);
- curve (tp > 1 all-reduce curve, whole TP forward): h100-sxm_tp2_validation.csv, per mode;
- fitted / anchored: the analytical model fitted to a profile, on the profile's own rows
  (<gpu>.csv.meta.json fit stats; in-sample, worst shipped GPU);
- datasheet: the catalog (unfitted) analytical model on every shipped profile's layer/lm_head rows;
- operator: the unseen-shape checks, when `--operator-check CSV` (columns mode, rel_err; repeatable)
  is given.
Checks stored beside the bands: leave-one-draft-out coverage of the loop band and coverage of the
loop band on the whole-model composition check (composition_h100.csv), which it was not fitted on.
Also stored: each kind's shared fraction ρ (the part of its error common to all shapes), which the
optimiser's win probabilities use to draw errors of different draft shapes partly independently.

    PYTHONPATH=. python scripts/error_bands.py [--operator-check FILE ...]
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "perfmodel" / "data"
Q = 90.0


def _rows(name):
    with open(DATA / name, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("status", "ok") in ("ok", "")]


def _band(errs):
    """exp(p90 |ln(predicted/measured)|) − 1 from relative errors e = predicted/measured − 1: the
    log-symmetric band that the Monte Carlo's log-normal factor uses (covers e < 0 and e > 0 alike)."""
    e = np.asarray(errs, dtype=float)
    e = np.abs(np.log1p(e[np.isfinite(e)]))
    return float(np.expm1(np.percentile(e, Q))), int(e.size)


def loop_errors():
    out = {"graph": [], "eager": [], "compiled": []}
    for f in ("validation_h100_graph.csv", "validation_h100_eager.csv", "validation_h100_smoke.csv"):
        for r in _rows(f):
            out[r["mode"]].append((r["draft"], float(r["err_iteration_s"])))
    for r in _rows("validation_h200_compiled.csv"):  # its graph rows stay out: the graph band is the H100 loop's
        if r["mode"] == "compiled":
            out["compiled"].append((r["draft"], float(r["err_iteration_s"])))
    return out


def analytical_errors(fitted: bool):
    """Relative errors of the analytical model on every shipped profile's layer/lm_head rows: with
    the catalog (datasheet) constants, or with the constants fitted to that profile (in-sample)."""
    from perfmodel.latency.fit import _groups, _predict
    from perfmodel.latency.table import LatencyTable
    from perfmodel.specs.hardware import resolve_gpu

    errs, files = {}, []
    for meta in sorted(DATA.glob("*.csv.meta.json")):
        m = json.loads(meta.read_text())
        if "fit" not in m or "compiled" in meta.name:  # compiled tables: operator-composed off-grid, own bands
            continue
        csv_path = meta.with_name(meta.name[:-len(".meta.json")])
        groups = _groups(LatencyTable.load(csv_path).ok_rows())
        hw = resolve_gpu(m["fit"]["base_gpu"])
        if fitted:
            hw = hw.replace(**m["fitted"])
        y = np.concatenate([g[4][:, 3] for g in groups])
        errs[csv_path.name] = _predict(hw, groups) / y - 1.0
    return errs


def compute(operator_check: str | None = None) -> dict:
    bands: dict = {}
    loop = loop_errors()
    for mode, pts in loop.items():
        b, n = _band([e for _, e in pts])
        for kind in ("measured", "interpolated"):
            bands.setdefault(kind, {})[mode] = {
                "band": b, "n": n, "evidence": "own loop iteration time, "
                + ("validation_h200_compiled.csv" if mode == "compiled" else "validation_h100_*.csv")
                + ("" if kind == "measured" else " (no separate interpolation check: measured band)")}
    for mode in ("graph", "eager"):
        b, n = _band([r["rel_err"] for r in _rows("h100-sxm_tp2_validation.csv") if r["mode"] == mode])
        bands.setdefault("curve", {})[mode] = {"band": b, "n": n, "evidence": "TP forward, h100-sxm_tp2_validation.csv"}
    fits = {f: _band(e) for f, e in analytical_errors(fitted=True).items()}
    f_w = max(fits, key=lambda f: fits[f][0])
    worst = (fits[f_w][0], fits[f_w][1], f_w)
    for kind in ("fitted", "anchored"):
        bands[kind] = {"any": {"band": worst[0], "n": worst[1],
                               "evidence": f"fitted analytical on its profile's rows, in-sample ({worst[2]}, worst shipped GPU)"
                               + ("" if kind == "fitted" else "; anchoring not validated separately: fitted band")}}
    ds = analytical_errors(fitted=False)
    b, n = _band(np.concatenate(list(ds.values())))
    bands["datasheet"] = {"any": {"band": b, "n": n, "evidence": "catalog analytical vs " + ", ".join(ds)}}
    rows = []
    for path in operator_check or ():
        with open(path, newline="") as f:
            rows += [dict(r, _file=Path(path).name) for r in csv.DictReader(f)]
    for mode in sorted({r["mode"] for r in rows}):
        b, n = _band([r["rel_err"] for r in rows if r["mode"] == mode])
        files = sorted({r["_file"] for r in rows if r["mode"] == mode})
        bands.setdefault("operator", {})[mode] = {"band": b, "n": n, "evidence": f"shape check {', '.join(files)}"}
    shared = shared_fractions(loop, rows)
    return {"level": Q / 100, "definition": "band = exp(90th percentile of |ln(predicted/measured)|) - 1; interval [pred/(1+band), pred*(1+band)]",
            "shared_fraction": shared,
            "command": "PYTHONPATH=. python scripts/error_bands.py" + "".join(f" --operator-check {p}" for p in operator_check or ()),
            "bands": bands, "checks": checks(loop, bands)}


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


def checks(loop, bands) -> dict:
    """Out-of-sample coverage: leave one draft out of the loop band; loop band on composition."""
    out = {}
    for mode, pts in loop.items():
        if mode == "compiled":  # no compiled composition table on the H100; the H200 loop only
            continue
        drafts = sorted({d for d, _ in pts})
        hit = n = 0
        for d in drafts:
            b, _ = _band([e for dd, e in pts if dd != d])
            held = np.array([e for dd, e in pts if dd == d])
            hit += int((np.abs(np.log1p(held)) <= np.log1p(b)).sum())
            n += held.size
        out[f"loop_leave_one_draft_out_{mode}"] = {"coverage": hit / n, "n": n, "groups": len(drafts)}
        comp = np.array([float(r["rel_err"]) for r in _rows("composition_h100.csv") if r["mode"] == mode])
        b = bands["measured"][mode]["band"]
        out[f"composition_with_loop_band_{mode}"] = {"coverage": float((np.abs(np.log1p(comp)) <= np.log1p(b)).mean()),
                                                    "n": int(comp.size)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--operator-check", action="append", default=None)
    ap.add_argument("--out", default=str(DATA / "error_bands.json"))
    a = ap.parse_args(argv)
    doc = compute(a.operator_check)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["checks"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
