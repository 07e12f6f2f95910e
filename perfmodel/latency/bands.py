"""Latency error bands by source kind, read from perfmodel/data/error_bands.json (written by
scripts/error_bands.py from the project's shipped validation tables; each band records its n and
evidence). A band is the relative half-width of a 90 % interval: measured value within
prediction × (1 ± band) for 90 % of validation points.

Key assumption: a kind's band, measured on the validation data named in the file, holds for other
predictions answered by that kind in the same execution mode. A kind with no entry (the operator
provider until its shape check ships, or 'none') gets no band here; the Monte Carlo says so.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .source import Provenance, Source

BANDS_FILE = Path(__file__).resolve().parent.parent / "data" / "error_bands.json"


def load_bands(path: Path | str = BANDS_FILE) -> dict:
    """{kind: {mode|'any': {band, n, evidence}}}; empty when the file is absent."""
    p = Path(path)
    return json.loads(p.read_text())["bands"] if p.is_file() else {}


def band_entry(kind: str, mode: str, bands: dict | None = None) -> dict | None:
    b = load_bands() if bands is None else bands
    per = b.get(kind, {})
    if mode == "compiled":  # 'any' bands were validated on graph and eager data only; an all-reduce
        # curve answers compiled mode with its graph-mode time (CompiledSplit), so graph's band holds
        return per.get(mode) or (per.get("graph") if kind == "curve" else None)
    return per.get(mode) or per.get("any")


def band(kind: str, mode: str, bands: dict | None = None) -> float | None:
    e = band_entry(kind, mode, bands)
    return None if e is None else float(e["band"])


def with_band(src: Source, mode: str, bands: dict | None = None) -> Source:
    if src.kind == "none":
        return src
    return dataclasses.replace(src, band=band(src.kind, mode, bands))


def banded(prov: Provenance, mode: str, bands: dict | None = None) -> Provenance:
    """`prov` with every Source's band filled for `mode` (members too)."""
    b = load_bands() if bands is None else bands
    return Provenance(tuple(with_band(s, mode, b) for s in prov.parts), prov.notes,
                      tuple(banded(m, mode, b) for m in prov.members))
