"""Fit the operator-composed provider's glue (perfmodel.latency.operator_fit) and store it, with its
in-sample and leave-one-shape-out errors, in an operator table's metadata (thin wrapper:
perfmodel.data_build.glue; the shipped tables' glue is rebuilt by `python -m specperf.perfmodel.data_build`
as perfmodel/data/manifest.json says).

    PYTHONPATH=. python scripts/fit_operator_glue.py TABLE --layers LAYERS [--eager-layers LAYERS]
    PYTHONPATH=. python scripts/fit_operator_glue.py TABLE --compiled-layers COMPILED
Graph glue is fitted on --layers (tp = 1 rows), eager glue on --eager-layers (eager time is host
time); compiled glue on --compiled-layers (measured compiled rows); given alone, only it is
(re)fitted, and refitting graph/eager glue keeps the compiled glue. CPU only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.data_build.glue import fit_glue  # noqa: E402


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
    stats = fit_glue(a.table, "PYTHONPATH=. python scripts/fit_operator_glue.py " + " ".join(argv or sys.argv[1:]),
                     a.dtype, a.layers, a.eager_layers, a.compiled_layers)
    for k, s in stats.items():
        loso = s.get("leave_one_shape_out", {})
        print(f"{k:13s} n={s.get('in_sample', {}).get('n', 0):5d} in-sample median "
              f"{s.get('in_sample', {}).get('median_abs_rel_err') or 0:.1%}; leave-one-shape-out median "
              f"{loso.get('median_abs_rel_err') or 0:.1%} p90 {loso.get('p90_abs_rel_err') or 0:.1%}")


if __name__ == "__main__":
    main()
