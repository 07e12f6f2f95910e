"""Measured rows a figure reads straight from a LatencyTable (per-layer and LM-head latency by shape),
with one clear error naming the rows and columns a figure needs when the profile lacks them.

Key assumption: a row applies to any model with the same layer (or head) shape key; where the
requested context was not measured, the nearest measured context is used and reported in hover.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.specs.models import SpecError
from specperf.perfmodel.latency.table import LatencyTable

NEEDED_COLUMNS = ("shape", "head_shape", "component", "mode", "tp", "batch", "new_tokens", "context",
                  "median_s", "p10_s", "p90_s")


@dataclass(frozen=True)
class Measured:
    median_s: float
    p10_s: float
    p90_s: float
    context: int
    gpu: str
    source: str


def _describe(rows: list[dict], key: str) -> str:
    vals = sorted({str(r[key]) for r in rows})
    return ", ".join(vals[:6]) + (" …" if len(vals) > 6 else "") if vals else "none"


def lookup(table: LatencyTable, path: str, *, component: str, shape: str, mode: str, tp: int, batch: int,
           new_tokens: int, context: int, figure: str, required: bool = True) -> Measured | None:
    """The row for (component, shape, mode, tp, batch, new_tokens) at the nearest measured context;
    None instead of the error when not `required` and the profile has no such row."""
    key = "head_shape" if component == "lm_head" else "shape"
    comp = table.select(component=component)
    rows = [r for r in comp if r[key] == shape and r["mode"] == mode and r["tp"] == tp
            and r["batch"] == batch and r["new_tokens"] == new_tokens and np.isfinite(r["median_s"])]
    if not rows and not required:
        return None
    if not rows:
        have = [r for r in comp if r[key] == shape]
        detail = (f"it has {component} rows for {key}s {_describe(comp, key)}" if not have else
                  f"for that {key} it has mode {_describe(have, 'mode')}, tp {_describe(have, 'tp')}, "
                  f"batch {_describe(have, 'batch')}, new_tokens {_describe(have, 'new_tokens')}")
        if not comp:
            detail = f"it has no component={component} rows at all"
        raise SpecError(f"profile {path!r} lacks the rows the {figure} figure needs: component={component}, "
                        f"{key}={shape}, mode={mode}, tp={tp}, batch={batch}, new_tokens={new_tokens} "
                        f"(columns {', '.join(NEEDED_COLUMNS)}); {detail}")
    r = min(rows, key=lambda r: (abs(np.log(r["context"] + 1) - np.log(context + 1)), r["context"]))
    p10 = r["p10_s"] if np.isfinite(r["p10_s"]) else r["median_s"]
    p90 = r["p90_s"] if np.isfinite(r["p90_s"]) else r["median_s"]
    gpu = str(r.get("gpu") or table.meta.get("gpu", ""))
    return Measured(r["median_s"], p10, p90, int(r["context"]), gpu, f"measured ({path}, {gpu})")


def layer_shapes(table: LatencyTable, path: str, *, mode: str, tp: int, batch: int, new_tokens: int,
                 figure: str) -> list[str]:
    """Distinct layer shape keys with rows at (mode, tp, batch, new_tokens)."""
    comp = table.select(component="layer")
    rows = [r for r in comp if r["mode"] == mode and r["tp"] == tp and r["batch"] == batch
            and r["new_tokens"] == new_tokens]
    if not rows:
        detail = ("it has no component=layer rows at all" if not comp else
                  f"its layer rows have mode {_describe(comp, 'mode')}, tp {_describe(comp, 'tp')}, "
                  f"batch {_describe(comp, 'batch')}, new_tokens {_describe(comp, 'new_tokens')}")
        raise SpecError(f"profile {path!r} lacks the rows the {figure} figure needs: component=layer, "
                        f"mode={mode}, tp={tp}, batch={batch}, new_tokens={new_tokens} "
                        f"(columns {', '.join(NEEDED_COLUMNS)}); {detail}")
    return sorted({r["shape"] for r in rows})
