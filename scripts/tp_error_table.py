"""Error tables of the shipped TP profile (no GPU needed):

  python scripts/tp_error_table.py [--gpu h100-sxm --tp 2] [--json]

1. whole TP model measured vs composed by the measured provider (perfmodel.latency.measured on the shipped
   TP table: n_layers·(layer + allreduce) + lm_head), per mode; 2. per layer: layer measured WITH its
   all-reduces vs layer without + the all-reduce pair; 3. the all-reduce curve fits.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.specs.catalog import resolve_model  # noqa: E402
from perfmodel.specs.hardware import GPUS  # noqa: E402
from perfmodel.latency.measured import MeasuredLatency  # noqa: E402
from perfmodel.latency.table import LatencyTable  # noqa: E402
from perfmodel.latency.tp import DATA_DIR, AllreduceModel, load_curves  # noqa: E402


def whole_model(gpu: str, tp: int) -> list[dict]:
    prov = MeasuredLatency(DATA_DIR / f"{gpu}_tp{tp}.csv", GPUS[gpu])
    out = []
    with open(DATA_DIR / f"{gpu}_tp{tp}_validation.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] != "ok":
                continue
            spec = resolve_model(r["model"])
            b, n, c = int(r["batch"]), int(r["new_tokens"]), int(r["context"])
            ft = prov.forward(spec, b, n, c, tp, r["mode"])
            meas = float(r["measured_s"])
            out.append({"model": r["model"], "mode": r["mode"], "batch": b, "new_tokens": n, "context": c,
                        "measured_s": meas, "composed_s": float(ft.total_s), "rel_err": float(ft.total_s) / meas - 1,
                        "rel_err_in_layer": float(r["rel_err_in_layer"]),
                        "sources": sorted({str(ft.sources[k]) for k in ("layer", "allreduce", "lm_head")})})
    return out


def per_layer(gpu: str, tp: int) -> dict:
    t = LatencyTable.load(DATA_DIR / f"{gpu}_tp{tp}.csv")
    w = LatencyTable.load(DATA_DIR / f"{gpu}_tp{tp}_with_allreduce.csv")
    ar = {(r["shape"], r["mode"], r["batch"], r["new_tokens"]): r["median_s"] for r in t.select(component="allreduce")}
    lay = {(r["shape"], r["mode"], r["batch"], r["new_tokens"], r["context"]): r for r in t.select(component="layer")}
    out: dict = {}
    for r in w.select(component="layer"):
        k = (r["shape"], r["mode"], r["batch"], r["new_tokens"], r["context"])
        if k not in lay or k[:4] not in ar:
            continue
        comp = lay[k]["median_s"] + ar[k[:4]]
        d = out.setdefault((r["model"], r["mode"]), {"err": [], "share": []})
        d["err"].append(comp / r["median_s"] - 1)
        d["share"].append(ar[k[:4]] / comp)
    return {f"{m} {mode}": {"n": len(d["err"]), "median_abs_rel_err": float(np.median(np.abs(d["err"]))),
                            "allreduce_share_median": float(np.median(d["share"])),
                            "allreduce_share_max": float(np.max(d["share"]))}
            for (m, mode), d in sorted(out.items())}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", default="h100-sxm")
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    wm = whole_model(a.gpu, a.tp)
    summary = {}
    for mode in ("graph", "eager"):
        e = np.array([r["rel_err"] for r in wm if r["mode"] == mode])
        e2 = np.array([r["rel_err_in_layer"] for r in wm if r["mode"] == mode])
        if e.size:
            summary[mode] = {"n": int(e.size), "median_abs_rel_err": float(np.median(np.abs(e))),
                             "max_abs_rel_err": float(np.max(np.abs(e))),
                             "median_abs_rel_err_in_layer": float(np.median(np.abs(e2)))}
    fits = {}
    for c in load_curves(DATA_DIR / f"allreduce_{a.gpu}_tp{a.tp}.csv"):
        m = AllreduceModel.from_curve(c)
        fits[c.mode] = {"fit": m.fit.describe(), "tp4_over_tp2_at_16KiB": float(m.one_s(16384, 4) / m.one_s(16384, 2)),
                        "tp8_over_tp2_at_16KiB": float(m.one_s(16384, 8) / m.one_s(16384, 2))}
    doc = {"gpu": a.gpu, "tp": a.tp, "whole_model": summary, "per_layer": per_layer(a.gpu, a.tp),
           "allreduce_fits": fits, "points": wm}
    if a.json:
        print(json.dumps(doc, indent=1))
        return doc
    print(f"whole TP={a.tp} model on {a.gpu}: measured vs composed (measured provider on {a.gpu}_tp{a.tp}.csv)")
    print(f"{'mode':6s} {'model':10s} {'b':>3s} {'n':>2s} {'ctx':>5s} {'measured ms':>12s} {'composed ms':>12s} {'err':>7s} {'in-layer':>9s}")
    for r in wm:
        print(f"{r['mode']:6s} {r['model']:10s} {r['batch']:3d} {r['new_tokens']:2d} {r['context']:5d} "
              f"{r['measured_s'] * 1e3:12.3f} {r['composed_s'] * 1e3:12.3f} {r['rel_err']:+7.1%} {r['rel_err_in_layer']:+9.1%}")
    for mode, s in summary.items():
        print(f"{mode}: median |err| {s['median_abs_rel_err']:.1%} (max {s['max_abs_rel_err']:.1%}, n={s['n']}); "
              f"composing layers measured with their all-reduces: median |err| {s['median_abs_rel_err_in_layer']:.1%}")
    print("\nper layer: (layer without all-reduces + allreduce row) vs layer with its all-reduces "
          "(eager allreduce rows are in situ, so eager agrees by construction up to the context median)")
    for k, v in doc["per_layer"].items():
        print(f"  {k:18s} n={v['n']:4d} median |err| {v['median_abs_rel_err']:.1%}  all-reduce share of the "
              f"layer: median {v['allreduce_share_median']:.1%}, max {v['allreduce_share_max']:.1%}")
    print("\nall-reduce curve fits")
    for mode, f in fits.items():
        print(f"  {mode}: {f['fit']}; extrapolated at 16 KiB: TP=4 ×{f['tp4_over_tp2_at_16KiB']:.2f}, "
              f"TP=8 ×{f['tp8_over_tp2_at_16KiB']:.2f} the TP=2 time")
    return doc


if __name__ == "__main__":
    main()
