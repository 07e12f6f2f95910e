"""Fit the operator-composed provider's glue (perfmodel.latency.operator_fit) and store it, with its
in-sample and leave-one-shape-out errors, in the operator table's metadata.

    PYTHONPATH=. python scripts/fit_operator_glue.py perfmodel/data/operators_h200_fp16.csv \
        --layers perfmodel/data/h200.csv --eager-layers perfmodel/data/h200.csv
Graph glue is fitted on --layers (tp = 1 rows), eager glue on --eager-layers: eager time is host
time, and the shipped H200 glue is fitted on the profile's 2,299 least-contended eager layer rows
(two machines) rather than on a few layers timed beside the operators (one host, one moment), which
under-predicted whole models on three other hosts by 19-34 % (docs/accuracy.md). Compiled
glue is fitted on --compiled-layers (measured compiled rows); given alone, only it is (re)fitted:
    PYTHONPATH=. python scripts/fit_operator_glue.py perfmodel/data/operators_h200_fp16.csv \
        --compiled-layers perfmodel/data/h200_compiled.csv
CPU only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.latency.operator_fit import fit_all, fit_compiled  # noqa: E402
from perfmodel.latency.operator_table import OperatorTable  # noqa: E402
from perfmodel.latency.operators import OperatorLatency  # noqa: E402
from perfmodel.latency.table import LatencyTable  # noqa: E402
from perfmodel.specs.hardware import resolve_gpu  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table")
    ap.add_argument("--layers")
    ap.add_argument("--eager-layers")
    ap.add_argument("--compiled-layers")
    ap.add_argument("--dtype", default="fp16")
    a = ap.parse_args(argv)
    if not (a.layers or a.compiled_layers):
        ap.error("give --layers (graph/eager glue) and/or --compiled-layers (compiled glue)")
    t = OperatorTable.load(a.table)
    prov = OperatorLatency(a.table, resolve_gpu(t.meta.get("gpu", "h200")), a.dtype)
    if a.compiled_layers:
        rows = LatencyTable.load(a.compiled_layers).ok_rows()
        glue, fits = t.meta.setdefault("glue", {}).setdefault(a.dtype, {}), {}
        for key, comp in (("compiled", "layer"), ("head_compiled", "lm_head")):
            p, fits[key] = fit_compiled(prov, rows, comp)
            if p:
                glue[key] = p
        t.meta.setdefault("glue_fit_compiled", {})[a.dtype] = {
            "command": "PYTHONPATH=. python scripts/fit_operator_glue.py " + " ".join(argv or sys.argv[1:]),
            "compiled_layers": Path(a.compiled_layers).name, "stats": fits}
        t.save(a.table)
        _print(fits)
    if not a.layers:
        return
    rows = [r for r in LatencyTable.load(a.layers).ok_rows() if r["tp"] == 1]
    eager = [r for r in LatencyTable.load(a.eager_layers).ok_rows() if r["tp"] == 1] if a.eager_layers else None
    res = fit_all(prov, rows, eager)
    t.meta.setdefault("glue", {}).setdefault(a.dtype, {}).update(res["params"])  # keeps the compiled glue
    t.meta.setdefault("glue_fit", {})[a.dtype] = {
        "command": "PYTHONPATH=. python scripts/fit_operator_glue.py " + " ".join(argv or sys.argv[1:]),
        "layers": Path(a.layers).name, "eager_layers": Path(a.eager_layers).name if a.eager_layers else None,
        "stats": res["stats"]}
    t.save(a.table)
    _print(res["stats"])


def _print(stats) -> None:
    for k, s in stats.items():
        loso = s.get("leave_one_shape_out", {})
        print(f"{k:13s} n={s.get('in_sample', {}).get('n', 0):5d} in-sample median "
              f"{s.get('in_sample', {}).get('median_abs_rel_err') or 0:.1%}; leave-one-shape-out median "
              f"{loso.get('median_abs_rel_err') or 0:.1%} p90 {loso.get('p90_abs_rel_err') or 0:.1%}")


if __name__ == "__main__":
    main()
