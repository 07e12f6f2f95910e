"""Compute the latency error bands by source kind from the project's shipped validation data and
write perfmodel/data/error_bands.json (the file perfmodel.latency.bands reads).

Band = 90th percentile of |relative error| of that kind of source against measurement (so a stated
90 % interval is prediction × (1 ± band)). Sources of evidence, per kind:
- measured / interpolated: own speculative-decoding loop, predicted vs measured iteration time
  (validation_h100_{graph,eager,smoke}.csv, status ok), per mode;
- curve (tp > 1 all-reduce curve, whole TP forward): h100-sxm_tp2_validation.csv, per mode;
- fitted / anchored: the analytical model fitted to a profile, on the profile's own rows
  (<gpu>.csv.meta.json fit stats; in-sample, worst shipped GPU);
- datasheet: the catalog (unfitted) analytical model on every shipped profile's layer/lm_head rows;
- operator: issue 11's shape check, when `--operator-check CSV` (columns mode, rel_err) is given.
Checks stored beside the bands: leave-one-draft-out coverage of the loop band and coverage of the
loop band on the whole-model composition check (composition_h100.csv), which it was not fitted on.

    PYTHONPATH=. python scripts/error_bands.py [--operator-check FILE]
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
    e = np.abs(np.asarray(errs, dtype=float))
    e = e[np.isfinite(e)]
    return float(np.percentile(e, Q)), int(e.size)


def loop_errors():
    out = {"graph": [], "eager": []}
    for f in ("validation_h100_graph.csv", "validation_h100_eager.csv", "validation_h100_smoke.csv"):
        for r in _rows(f):
            out[r["mode"]].append((r["draft"], float(r["err_iteration_s"])))
    return out


def datasheet_errors():
    from perfmodel.latency.fit import _groups, _predict
    from perfmodel.latency.table import LatencyTable
    from perfmodel.specs.hardware import resolve_gpu

    errs, files = [], []
    for meta in sorted(DATA.glob("*.csv.meta.json")):
        m = json.loads(meta.read_text())
        if "fit" not in m:
            continue
        csv_path = meta.with_name(meta.name[:-len(".meta.json")])
        groups = _groups(LatencyTable.load(csv_path).ok_rows())
        y = np.concatenate([g[4][:, 3] for g in groups])
        errs.append(_predict(resolve_gpu(m["fit"]["base_gpu"]), groups) / y - 1.0)
        files.append(csv_path.name)
    return np.concatenate(errs), files


def compute(operator_check: str | None = None) -> dict:
    bands: dict = {}
    loop = loop_errors()
    for mode, pts in loop.items():
        b, n = _band([e for _, e in pts])
        for kind in ("measured", "interpolated"):
            bands.setdefault(kind, {})[mode] = {
                "band": b, "n": n, "evidence": "own loop iteration time, validation_h100_*.csv"
                + ("" if kind == "measured" else " (no separate interpolation check: measured band)")}
    for mode in ("graph", "eager"):
        b, n = _band([r["rel_err"] for r in _rows("h100-sxm_tp2_validation.csv") if r["mode"] == mode])
        bands.setdefault("curve", {})[mode] = {"band": b, "n": n, "evidence": "TP forward, h100-sxm_tp2_validation.csv"}
    worst = None
    for meta in sorted(DATA.glob("*.csv.meta.json")):
        st = json.loads(meta.read_text()).get("fit", {}).get("stats", {}).get("layer_and_lm_head")
        if st and (worst is None or st["p90_abs_rel_err"] > worst[0]):
            worst = (st["p90_abs_rel_err"], st["n"], meta.name)
    for kind in ("fitted", "anchored"):
        bands[kind] = {"any": {"band": worst[0], "n": worst[1],
                               "evidence": f"fitted analytical on its profile's rows, in-sample ({worst[2]}, worst shipped GPU)"
                               + ("" if kind == "fitted" else "; anchoring not validated separately: fitted band")}}
    e, files = datasheet_errors()
    b, n = _band(e)
    bands["datasheet"] = {"any": {"band": b, "n": n, "evidence": "catalog analytical vs " + ", ".join(files)}}
    if operator_check:
        with open(operator_check, newline="") as f:
            rows = list(csv.DictReader(f))
        for mode in sorted({r["mode"] for r in rows}):
            b, n = _band([r["rel_err"] for r in rows if r["mode"] == mode])
            bands.setdefault("operator", {})[mode] = {"band": b, "n": n, "evidence": f"shape check {Path(operator_check).name}"}
    return {"level": Q / 100, "definition": "band = 90th percentile of |predicted/measured - 1|",
            "command": "PYTHONPATH=. python scripts/error_bands.py" + (f" --operator-check {operator_check}" if operator_check else ""),
            "bands": bands, "checks": checks(loop, bands)}


def checks(loop, bands) -> dict:
    """Out-of-sample coverage: leave one draft out of the loop band; loop band on composition."""
    out = {}
    for mode, pts in loop.items():
        drafts = sorted({d for d, _ in pts})
        hit = n = 0
        for d in drafts:
            b, _ = _band([e for dd, e in pts if dd != d])
            held = np.abs([e for dd, e in pts if dd == d])
            hit += int((held <= b).sum())
            n += held.size
        out[f"loop_leave_one_draft_out_{mode}"] = {"coverage": hit / n, "n": n, "groups": len(drafts)}
        comp = np.abs([float(r["rel_err"]) for r in _rows("composition_h100.csv") if r["mode"] == mode])
        b = bands["measured"][mode]["band"]
        out[f"composition_with_loop_band_{mode}"] = {"coverage": float((comp <= b).mean()), "n": int(comp.size)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--operator-check", default=None)
    ap.add_argument("--out", default=str(DATA / "error_bands.json"))
    a = ap.parse_args(argv)
    doc = compute(a.operator_check)
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["checks"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
