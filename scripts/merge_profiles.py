"""Merge measured latency tables (profiles) of one GPU and dtype into one shipped table: the rows of
the chosen modes from every input (a later input's row replaces an earlier one with the same key), the
inputs' metadata kept as `sources`, their compile logs concatenated, then the fit re-run.

    python scripts/merge_profiles.py --mode compiled --out perfmodel/data/h200_compiled.csv A.csv B.csv

Key assumption: the inputs were measured on the same card, dtype and software (checked: gpu, dtype,
torch); a row's key (component, shape, head shape, mode, dtype, tp, batch, new tokens, context)
identifies one measurement.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.latency.fit import refit_file  # noqa: E402
from perfmodel.latency.table import LatencyTable  # noqa: E402

SAME = ("gpu", "dtype", "torch")  # metadata every input must share


def merge(inputs, modes, note: str = "") -> LatencyTable:
    tables = [(str(p), LatencyTable.load(p)) for p in inputs]
    first = tables[0][1].meta
    for p, t in tables[1:]:
        for k in SAME:
            if t.meta.get(k) != first.get(k):
                raise SystemExit(f"{p}: {k}={t.meta.get(k)!r} differs from {tables[0][0]}'s {first.get(k)!r}; "
                                 "merge tables of one card, dtype and torch only")
    rows: dict = {}
    for _, t in tables:
        for r in t.rows:
            if r["mode"] in modes:
                rows[t.key(r)] = r
    meta = {k: v for k, v in first.items() if k not in ("command", "fit", "fitted", "compile_s")}
    meta["sources"] = [{"file": Path(p).name, "command": t.meta.get("command"), "date": t.meta.get("date"),
                        "rows_used": sum(1 for r in t.rows if r["mode"] in modes)} for p, t in tables]
    meta["compile_s"] = [c for _, t in tables for c in (t.meta.get("compile_s") or [])]
    meta["command"] = "python scripts/merge_profiles.py " + " ".join(sys.argv[1:])
    if note:
        meta["note"] = note
    out = LatencyTable(meta=meta)
    out.rows.extend(rows.values())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", default="graph,eager,compiled", help="modes to keep (comma list)")
    ap.add_argument("--note", default="")
    a = ap.parse_args(argv)
    t = merge(a.inputs, set(a.mode.split(",")), a.note)
    t.save(a.out)
    rep = refit_file(a.out)
    print(f"{len(t.rows)} rows from {len(a.inputs)} tables into {a.out}; fit: "
          f"{ {k: round(v, 9) for k, v in rep['params'].items()} }")
    return 0


if __name__ == "__main__":
    sys.exit(main())
