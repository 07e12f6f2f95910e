"""Cross-GPU check: predict the shipped H100 whole-layer and LM-head rows (perfmodel/data/h100-sxm.csv,
tp = 1, both modes) from the H200 operator tables rescaled by datasheet ratios, and from the
analytical model with constants fitted per architecture from those tables; against the same
tables un-rescaled and the analytical model with datasheet defaults. CPU only.

    PYTHONPATH=. python scripts/cross_gpu_check.py [--store]   # --store: bands into the table metadata
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.latency.analytical import AnalyticalLatency  # noqa: E402
from perfmodel.latency.crossgpu import fit_analytical, rescaled  # noqa: E402
from perfmodel.latency.operator_table import OperatorTable  # noqa: E402
from perfmodel.latency.operators import OperatorLatency, shipped_operator_table  # noqa: E402
from perfmodel.latency.table import LatencyTable, spec_from_head_shape_key, spec_from_shape_key  # noqa: E402
from perfmodel.specs.hardware import GPUS  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "perfmodel" / "data"


def check(src="h200", dst="h100-sxm") -> dict:
    table = shipped_operator_table(src)
    same = OperatorLatency(table, GPUS[src])
    hw_fit, _ = fit_analytical(same, GPUS[dst])
    provs = {"operator, rescaled by datasheet": rescaled(table, GPUS[src], GPUS[dst]),
             "operator, not rescaled": same,
             "analytical, constants fitted from the operator tables": AnalyticalLatency(hw_fit),
             "analytical, datasheet defaults": AnalyticalLatency(GPUS[dst])}
    rows = [r for r in LatencyTable.load(DATA / f"{dst}.csv").ok_rows()
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", action="store_true")
    a = ap.parse_args(argv)
    res = check()
    for k, v in res.items():
        if k == "fitted_constants":
            print("fitted from operator tables:", json.dumps({n: float(f"{x:.4g}") for n, x in v.items()}))
            continue
        for name, s in v.items():
            print(f"{k:14s} {name:55s} n={s['n']:5d} median {s['median']:6.1%} p90 {s['p90']:6.1%} "
                  f"signed {s['median_signed']:+6.1%}")
    if a.store:
        path = shipped_operator_table("h200")
        t = OperatorTable.load(path)
        name = "operator, rescaled by datasheet"
        t.meta["cross_gpu_band"] = {"h100-sxm": {m: res[f"layer/{m}"][name]["p90"] for m in ("graph", "eager")}}
        t.meta["cross_gpu_command"] = "PYTHONPATH=. python scripts/cross_gpu_check.py --store"
        t.save(path)


if __name__ == "__main__":
    main()
