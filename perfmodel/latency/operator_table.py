"""OperatorTable: the tidy table of measured operator latencies that `specperf profile --operators`
writes and the operator-composed provider reads (numpy + csv only).

One row per (gpu, op, mode, dtype, tokens, n, k, batch_heads, queries, kv_len, head_dim) with
median, p10 and p90 seconds; unused size columns hold 0. Sizes by operator:
  gemm, gemm_bias   tokens M × n (output features N) × k (input features K)
  attention         batch_heads = batch × KV heads, queries = query rows per KV head
  attention_gqa       (n new tokens, × the group size H/KV for _gqa), kv_len = keys attended, head_dim
  attention_verify  grouped-query verification (engine kernels, n > 1 new tokens, native GQA, lower-right
                    causal): tokens = new tokens n, batch_heads = batch × KV heads, queries = group size
                    H/KV, kv_len, head_dim
  rmsnorm, layernorm, add, silu_mul, relu, rope, kv_write, embed   tokens × n (= width)
  launch            one kernel on one element (eager: the host's launch cost)
Metadata (GPU, driver, torch/CUDA, date, grid, timing method, fitted glue) live in a JSON sidecar
`<file>.meta.json`, as for LatencyTable. Key assumption: an operator's time depends only on these
sizes, its dtype and the execution mode.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from specperf.perfmodel.latency.table import RowTable, write_meta, write_rows_csv
from specperf.perfmodel.specs.models import SpecError
from specperf.perfmodel.specs.safeio import text_stream

SCHEMA_VERSION = 1
OPS = ("gemm", "gemm_bias", "attention", "attention_gqa", "attention_verify", "rmsnorm", "layernorm", "add", "silu_mul",
       "relu", "rope", "kv_write", "embed", "launch")
SIZE_COLS = ("tokens", "n", "k", "batch_heads", "queries", "kv_len", "head_dim")
COLUMNS = ("gpu", "op", "mode", "dtype") + SIZE_COLS + ("copies", "median_s", "p10_s", "p90_s",
                                                         "repeats", "status", "reason")
# which size columns span each operator's grid, in interpolation order
AXES = {"gemm": ("tokens", "n", "k"), "gemm_bias": ("tokens", "n", "k"),
        "attention": ("batch_heads", "queries", "kv_len", "head_dim"),
        "attention_gqa": ("batch_heads", "queries", "kv_len", "head_dim"),
        "attention_verify": ("tokens", "batch_heads", "queries", "kv_len", "head_dim"),
        "launch": ("tokens",)}
for _op in ("rmsnorm", "layernorm", "add", "silu_mul", "relu", "rope", "kv_write", "embed"):
    AXES[_op] = ("tokens", "n")
_INT = SIZE_COLS + ("copies", "repeats")
_FLOAT = ("median_s", "p10_s", "p90_s")
MAX_SIZE = 2 ** 40  # any size column, copies or repeats (a GEMM dimension of 10^12 is no operator)
MAX_TIME_S = 3600.0  # one operator call timed at over an hour is a unit error, not a measurement


def _number(text, col: str, where: str):
    """One cell: sizes integers in 0..MAX_SIZE, times finite in [0, MAX_TIME_S] (empty = NaN)."""
    if col in _FLOAT and text in ("", None):
        return float("nan")
    v = float(text)
    if col in _INT:
        if not (v == v and v.is_integer() and 0 <= v <= MAX_SIZE):
            raise SpecError(f"{where}: {col}={text!r} is not allowed; an integer in 0..{MAX_SIZE}")
        return int(v)
    if not 0.0 <= v <= MAX_TIME_S:  # NaN fails too
        raise SpecError(f"{where}: {col}={text!r} is not allowed; seconds in [0, {MAX_TIME_S:g}] or empty")
    return v


def op_key(row: dict) -> tuple:
    return (row["gpu"], row["op"], row["mode"], row["dtype"]) + tuple(int(row[c]) for c in SIZE_COLS)


@dataclass
class OperatorTable(RowTable):

    def done_keys(self) -> set:
        return {op_key(r) for r in self.rows}

    def add(self, row: dict) -> None:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row lacks columns {missing}")
        if row["op"] not in OPS:
            raise ValueError(f"op={row['op']!r} is not one of {OPS}")
        self.rows.append({c: row[c] for c in COLUMNS})

    def save(self, path) -> None:
        p = Path(path)
        write_rows_csv(p, COLUMNS, self.rows)
        write_meta(p, dict(self.meta, schema_version=SCHEMA_VERSION, rows=len(self.rows), ok_rows=len(self.ok_rows())))

    @classmethod
    def load(cls, path) -> "OperatorTable":
        p = Path(path)
        if not p.is_file():
            raise SpecError(f"operator table {str(p)!r} does not exist")
        meta = cls.checked_meta(p, "operator table", SCHEMA_VERSION)
        rows = []
        try:
            with text_stream(p, "operator table") as f:  # bounded, regular files only
                rd = csv.DictReader(f)
                missing = [c for c in COLUMNS if c not in (rd.fieldnames or [])]
                if missing:
                    raise SpecError(f"{str(p)!r} is not a specperf operator table: missing columns "
                                    f"{', '.join(missing)}")
                for i, r in enumerate(rd, start=2):
                    try:
                        row = {c: r[c] for c in COLUMNS}
                        for c in _INT + _FLOAT:
                            row[c] = _number(row[c], c, f"operator table {str(p)!r} line {i}")
                    except (TypeError, ValueError) as e:
                        if isinstance(e, SpecError):
                            raise
                        raise SpecError(f"operator table {str(p)!r} line {i}: malformed value ({e})") from None
                    row["status"] = row["status"] or "ok"
                    if row["op"] not in OPS or row["mode"] not in ("eager", "graph"):
                        raise SpecError(f"operator table {str(p)!r} line {i}: op={row['op']!r} "
                                        f"mode={row['mode']!r}; allowed {OPS} and eager/graph")
                    if row["status"] == "ok" and not row["median_s"] > 0:
                        raise SpecError(f"operator table {str(p)!r} line {i}: median_s must be > 0")
                    rows.append(row)
        except csv.Error as e:
            raise SpecError(f"operator table {str(p)!r} is not a readable CSV file ({e})") from None
        return cls(rows=rows, meta=meta)


__all__ = ["OperatorTable", "OPS", "AXES", "COLUMNS", "SIZE_COLS", "op_key", "SCHEMA_VERSION"]
