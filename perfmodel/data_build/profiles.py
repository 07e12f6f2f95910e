"""Measured latency tables made shippable: merge several tables of one GPU and dtype (a later
input's row replaces an earlier one with the same key; the inputs' metadata kept as `sources`,
their compile logs concatenated), and refit the analytical constants stored in a table's metadata.

Key assumption: merged inputs were measured on the same card, dtype and software (checked: gpu,
dtype, torch); a row's key (component, shape, head shape, mode, dtype, tp, batch, new tokens,
context) identifies one measurement.
"""
from __future__ import annotations

from pathlib import Path

from specperf.perfmodel.latency.fit import fit_profile
from specperf.perfmodel.latency.table import LatencyTable, write_meta
from specperf.perfmodel.specs.hardware import GPUS
from specperf.perfmodel.specs.models import SpecError

SAME = ("gpu", "dtype", "torch")  # metadata every merged input must share
DERIVED_KEYS = ("fit", "fitted")  # what refit writes; stripped before a rebuild


def merge(inputs, modes, command: str, note: str = "") -> LatencyTable:
    """One table from the rows of `modes` in every input (LatencyTable files), metadata recorded."""
    tables = [(str(p), LatencyTable.load(p)) for p in inputs]
    first = tables[0][1].meta
    for p, t in tables[1:]:
        for k in SAME:
            if t.meta.get(k) != first.get(k):
                raise SpecError(f"{p}: {k}={t.meta.get(k)!r} differs from {tables[0][0]}'s {first.get(k)!r}; "
                                "merge tables of one card, dtype and torch only")
    rows: dict = {}
    for _, t in tables:
        for r in t.rows:
            if r["mode"] in modes:
                rows[t.key(r)] = r
    meta = {k: v for k, v in first.items() if k not in ("command", "compile_s") + DERIVED_KEYS}
    meta["sources"] = [{"file": Path(p).name, "command": t.meta.get("command"), "date": t.meta.get("date"),
                        "rows_used": sum(1 for r in t.rows if r["mode"] in modes)} for p, t in tables]
    meta["compile_s"] = [c for _, t in tables for c in (t.meta.get("compile_s") or [])]
    meta["command"] = command
    if note:
        meta["note"] = note
    out = LatencyTable(meta=meta)
    out.rows.extend(rows.values())
    return out


def refit(path) -> dict:
    """Fit the analytical constants to the table at `path` and store them in its metadata only
    (`fitted`, `fit`; the CSV is not rewritten). Returns the fit report."""
    t = LatencyTable.load(path)
    base = GPUS.get(t.meta.get("gpu", ""))
    if base is None:
        base = next(iter(GPUS.values())).replace(name=t.meta.get("gpu", "unknown"))
    _, report = fit_profile(t, base)
    meta = dict(t.meta)
    meta["fitted"] = report["params"]
    meta["fit"] = {"stats": report["stats"], "base_gpu": base.name,
                   "method": "Levenberg-Marquardt on log(time) of layer and lm_head rows; "
                             "linear least squares for overhead and all-reduce rows"}
    write_meta(Path(path), meta)
    return report
