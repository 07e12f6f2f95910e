"""Cross-GPU check: predict the shipped H100 whole-layer and LM-head rows (tp = 1, both modes) from
the H200 operator tables rescaled by datasheet ratios, and from the analytical model with constants
fitted per architecture from those tables; against the same tables un-rescaled and the analytical
model with datasheet defaults. CPU only. Thin wrapper: perfmodel.data_build.glue (the stored band is
a manifest `cross_gpu` step, rebuilt by `python -m specperf.perfmodel.data_build`).

    PYTHONPATH=. python scripts/cross_gpu_check.py
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specperf.perfmodel.data_build.glue import cross_gpu_check  # noqa: E402
from specperf.perfmodel.latency.operators import shipped_operator_table  # noqa: E402
from specperf.perfmodel.latency.providers import shipped_profile  # noqa: E402


def check(src="h200", dst="h100-sxm") -> dict:
    return cross_gpu_check(shipped_operator_table(src), src, dst, shipped_profile(dst))


def main(argv=None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    res = check()
    for k, v in res.items():
        if k == "fitted_constants":
            print("fitted from operator tables:", json.dumps({n: float(f"{x:.4g}") for n, x in v.items()}))
            continue
        for name, s in v.items():
            print(f"{k:14s} {name:55s} n={s['n']:5d} median {s['median']:6.1%} p90 {s['p90']:6.1%} "
                  f"signed {s['median_signed']:+6.1%}")


if __name__ == "__main__":
    main()
