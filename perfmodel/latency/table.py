"""LatencyTable: the tidy measured-latency table the profiler writes and `predict` reads.

One row per (gpu, model, component, mode, dtype, tp, batch, new_tokens, context) with median, p10
and p90 seconds; metadata (GPU, driver, torch/CUDA versions, date, schema version) in a JSON
sidecar `<file>.meta.json`. Stored as CSV via the csv module (no pandas needed to read it);
`.parquet` works when pandas and pyarrow are installed. Key assumption: a layer's time depends on
its shape, not on the model's name, so rows carry a `shape` key used for lookups.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specperf.perfmodel.specs.families import traits
from specperf.perfmodel.specs.safeio import atomic_open, atomic_write, text_stream
from specperf.perfmodel.specs.models import ModelSpec, SpecError, read_json

SCHEMA_VERSION = 1
COMPONENTS = ("layer", "lm_head", "embed", "overhead", "allreduce")
from specperf.perfmodel.specs.modes import MODES  # noqa: E402  (the one definition)
COLUMNS = ("gpu", "model", "shape", "head_shape", "component", "mode", "dtype", "tp", "batch",
           "new_tokens", "context", "median_s", "p10_s", "p90_s", "repeats", "status", "reason")
_INT_COLS = ("tp", "batch", "new_tokens", "context", "repeats")
MAX_TIME_S = 3600.0  # one forward timed at over an hour is a unit error, not a measurement
_FLOAT_COLS = ("median_s", "p10_s", "p90_s")


def read_csv(path: str | Path, required, what: str) -> list[dict]:
    """Rows of the CSV file `path` as dicts (strings); a one-line SpecError if it is not text or
    lacks a `required` column (`what` names the table, e.g. "a specperf latency table")."""
    p = Path(path)
    try:  # bounded, regular files only (perfmodel.specs.safeio); a spreadsheet's BOM is accepted
        f = text_stream(p, "table")
    except SpecError as e:
        if "UTF-8" in str(e):
            raise SpecError(f"{str(p)!r} is not a text CSV file") from None
        raise
    try:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise SpecError(f"{str(p)!r} is not {what}: missing columns {', '.join(missing)}")
        return list(reader)
    except csv.Error as e:
        raise SpecError(f"{str(p)!r} is not {what}: {e}") from None


def layer_shape_key(spec: ModelSpec) -> str:
    """Identity of one decoder layer's shape (depth and vocabulary excluded)."""
    extra = ("+qkvb" if spec.qkv_bias else "") + ("+bias" if spec.linear_bias else "")
    extra += ("+qkn" if spec.qk_norm else "") + (f"+hd{spec.attn_head_dim}" if spec.attn_head_dim else "")
    mlp = "glu" if spec.gated_mlp else "mlp"
    return f"{spec.family}:d{spec.d_model}:h{spec.n_heads}:kv{spec.n_kv_heads}:ff{spec.d_ff}:{mlp}{extra}"


def head_shape_key(spec: ModelSpec) -> str:
    """Identity of the embedding + final norm + LM head (depends on width and vocabulary)."""
    return f"{spec.family}:d{spec.embed_dim or spec.d_model}:v{spec.vocab}"


def write_rows_csv(p: Path, columns, rows, flag: str = "--out") -> None:
    """CSV of `rows` (NaN as empty), written atomically and symlink-safe (perfmodel.specs.safeio): an
    interrupted or failed save never truncates a table, and no fixed-name temporary exists to plant."""
    with atomic_open(p, flag, newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})


def write_meta(path: Path, meta: dict, flag: str = "--out") -> None:
    """The JSON sidecar PATH.meta.json, written atomically (perfmodel.specs.safeio)."""
    atomic_write(RowTable.meta_path(path), json.dumps(meta, indent=2, sort_keys=True) + "\n", flag)


@dataclass
class RowTable:
    """Rows (dicts) plus metadata: what the latency and operator tables share."""
    rows: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def ok_rows(self) -> list[dict]:
        return [r for r in self.rows if r.get("status", "ok") == "ok"]

    @staticmethod
    def meta_path(path: str | Path) -> Path:
        p = Path(path)
        return p.with_name(p.name + ".meta.json")

    @classmethod
    def read_meta(cls, path: str | Path) -> dict:
        """The metadata next to the table at `path` ({} when there is none)."""
        mp = cls.meta_path(path)
        return read_json(mp, "profile metadata") if mp.exists() else {}

    @classmethod
    def checked_meta(cls, path: str | Path, what: str, version: int) -> dict:
        """The metadata beside the table at `path` ({} when none); a one-line SpecError when it was
        written by a schema other than `version`."""
        mp = cls.meta_path(path)
        meta = read_json(mp, f"{what} metadata") if mp.exists() else {}
        if meta.get("schema_version", version) != version:
            raise SpecError(f"{what} {str(path)!r} has schema_version={meta.get('schema_version')!r}; "
                            f"this specperf reads schema_version={version}")
        return meta


@dataclass
class LatencyTable(RowTable):

    def column(self, name: str, rows: list[dict] | None = None) -> np.ndarray:
        rows = self.rows if rows is None else rows
        return np.array([r[name] for r in rows])

    def key(self, r: dict) -> tuple:
        return tuple(r[c] for c in ("gpu", "shape", "head_shape", "component", "mode", "dtype", "tp",
                                     "batch", "new_tokens", "context"))

    def done_keys(self) -> set:
        return {self.key(r) for r in self.rows}

    def add(self, row: dict) -> None:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"row lacks columns {missing}")
        self.rows.append({c: row[c] for c in COLUMNS})

    def select(self, **eq) -> list[dict]:
        return [r for r in self.ok_rows() if all(r[k] == v for k, v in eq.items())]

    # ---- I/O ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        p = Path(path)
        if p.suffix == ".parquet":
            import pandas as pd  # optional; only for parquet

            buf = io.BytesIO()
            pd.DataFrame(self.rows, columns=list(COLUMNS)).to_parquet(buf, index=False)
            atomic_write(p, buf.getvalue())
        else:
            write_rows_csv(p, COLUMNS, self.rows)
        write_meta(p, dict(self.meta, schema_version=SCHEMA_VERSION))  # table and metadata never half-written

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        p = Path(path)
        if not p.exists():
            raise SpecError(f"profile {str(p)!r} does not exist")
        if p.is_dir():
            raise SpecError(f"profile {str(p)!r} is a directory; give a LatencyTable CSV file")
        meta = cls.checked_meta(p, "profile", SCHEMA_VERSION)
        if p.suffix == ".parquet":
            import pandas as pd

            raw = pd.read_parquet(p).to_dict("records")
        else:
            raw = read_csv(p, COLUMNS, "a specperf latency table")
        rows = []
        for i, r in enumerate(raw, start=2):
            try:
                row = {c: r[c] for c in COLUMNS}
                for c in _INT_COLS:
                    x = float(row[c])
                    lo = 0 if c in ("context", "repeats") else 1
                    if not (x.is_integer() and lo <= x <= 2 ** 40):  # 1.5 was truncated, -4 or 0 taken
                        raise SpecError(f"profile {str(p)!r} line {i}: {c}={r[c]!r} is not allowed; "
                                        f"an integer in {lo}..2^40")
                    row[c] = int(x)
                for c in _FLOAT_COLS:
                    v = row[c]
                    row[c] = float("nan") if v in ("", None) else float(v)
                row["status"] = row["status"] or "ok"
                if not str(row["gpu"] or "").strip():  # a blank cell is the metadata's GPU (integrity cross-checks)
                    row["gpu"] = meta.get("gpu", "") if isinstance(meta, dict) else ""
                row["reason"] = row["reason"] or ""
            except (KeyError, TypeError, ValueError, OverflowError) as e:
                if isinstance(e, SpecError):
                    raise
                raise SpecError(f"profile {str(p)!r} line {i}: malformed value ({e})") from None
            if row["status"] == "ok" and not (math.isfinite(row["median_s"]) and 0 < row["median_s"] <= MAX_TIME_S):
                raise SpecError(f"profile {str(p)!r} line {i}: median_s={row['median_s']!r} is not allowed; "
                                f"must be a finite number in (0, {MAX_TIME_S:g}] s")
            if row["component"] not in COMPONENTS or row["mode"] not in MODES:
                raise SpecError(f"profile {str(p)!r} line {i}: component={row['component']!r} "
                                f"mode={row['mode']!r}; allowed {COMPONENTS} and {MODES}")
            rows.append(row)
        return cls(rows=rows, meta=meta)


# ---- inverse of the shape keys (additive: lets a table be used without the model catalog) ------
def spec_from_shape_key(key: str, dtype_bytes: int = 2) -> ModelSpec:
    """A ModelSpec with the layer shape of `key` (depth 1, vocabulary 1: only the layer is meaningful)."""
    try:
        fam, d, h, kv, ff, rest = key.split(":", 5)
        mlp, *flags = rest.split("+")
        tr = traits(fam)
        hd = [int(f[2:]) for f in flags if f.startswith("hd")]
        return ModelSpec(name=key, family=fam, n_layers=1, d_model=int(d[1:]), n_heads=int(h[1:]),
                         n_kv_heads=int(kv[2:]), d_ff=int(ff[2:]), vocab=1, gated_mlp=(mlp == "glu"),
                         norm=tr.norm, dtype_bytes=dtype_bytes,
                         qkv_bias="qkvb" in flags, linear_bias="bias" in flags, qk_norm="qkn" in flags,
                         attn_head_dim=hd[0] if hd else 0,
                         learned_positions=tr.learned_positions, max_positions=2**20)
    except (ValueError, IndexError, SpecError) as e:
        raise SpecError(f"layer shape key {key!r} is malformed ({e})") from None


def spec_from_head_shape_key(key: str, dtype_bytes: int = 2) -> ModelSpec:
    """A ModelSpec whose embedding/LM head matches `key` (width d, vocabulary v)."""
    try:
        fam, d, v = key.split(":")
        width = int(d[1:])
        tr = traits(fam)
        return ModelSpec(name=key, family=fam, n_layers=1, d_model=width, n_heads=1, n_kv_heads=1,
                         d_ff=1, vocab=int(v[1:]), gated_mlp=tr.gated_mlp, norm=tr.norm,
                         dtype_bytes=dtype_bytes, learned_positions=tr.learned_positions, max_positions=2**20)
    except (ValueError, IndexError, SpecError) as e:
        raise SpecError(f"head shape key {key!r} is malformed ({e})") from None


DTYPE_BYTES = {"fp16": 2, "bf16": 2, "float16": 2, "bfloat16": 2, "fp32": 4, "float32": 4}
