"""Latency error bands by source kind, read from the shipped error_bands.json (manifest role
error_bands, rebuilt by `python -m specperf.perfmodel.data_build` from the project's shipped validation tables; each band records its n and
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

from specperf.perfmodel.shipped import find_one

from .source import Provenance, Source

BANDS_FILE = find_one("error_bands")  # None when no bands ship


def load_bands(path: Path | str | None = BANDS_FILE) -> dict:
    """{kind: {mode|'any': {band, n, evidence}}}; empty when the file is absent."""
    p = Path(path) if path else None
    return json.loads(p.read_text())["bands"] if p is not None and p.is_file() else {}


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
