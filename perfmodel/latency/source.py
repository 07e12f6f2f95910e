"""Provenance of a latency as data: which kind of source answered each component of a prediction,
from which file, for how many of the grid points, and with what error band.

Key assumption: every number a provider returns comes from exactly one of a few source kinds, in
order of fidelity (measured row > interpolated between measured rows > operator-composed >
analytical fitted to a profile > analytical from the datasheet); a component answered by several
kinds over a sweep lists each with its point count. Text exists only for display (`describe`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Source kinds, best first. 'anchored' = analytical fitted to a profile, scaled to the nearest
# measured point; 'curve' = a measured all-reduce curve (possibly extrapolated in TP degree).
KINDS = ("measured", "interpolated", "operator", "curve", "anchored", "fitted", "datasheet", "none")
COARSE = {"measured": "measured", "interpolated": "measured", "curve": "measured",
          "operator": "operator", "anchored": "analytical", "fitted": "analytical",
          "datasheet": "analytical", "none": "none"}


@dataclass(frozen=True)
class Source:
    """One source kind behind (part of) a component. `count` = grid points it answered (0 = all)."""
    kind: str
    file: str = ""
    count: int = 0
    detail: str = ""  # display text where the kind alone does not say enough (all-reduce curve, GPU)
    band: float | None = None  # relative half-width of its 90 % error band, from validation data

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"source kind={self.kind!r} is not allowed; use one of {', '.join(KINDS)}")

    def label(self) -> str:
        f, d = self.file, self.detail
        return {"measured": f"measured ({f})", "interpolated": f"interpolated ({f})",
                "operator": f"operator-composed ({f})" + (f"; {d}" if d else ""),
                "fitted": f"analytical fitted to {f}",
                "anchored": f"analytical fitted to {f}, scaled to the nearest measured point",
                "datasheet": f"analytical ({d} datasheet roofline)", "curve": d,
                "none": f"none ({d})" if d else "none"}[self.kind]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "file": self.file, "count": self.count, "band": self.band}


@dataclass(frozen=True)
class Provenance:
    """The sources of one component (several when a sweep mixes kinds), plus display notes such
    as a calibration factor applied on top."""
    parts: tuple[Source, ...]
    notes: tuple[str, ...] = field(default=())
    members: tuple["Provenance", ...] = field(default=())  # set by merge(): one per distinct member

    @classmethod
    def merge(cls, provs) -> "Provenance":
        """Distinct provenances of one component over several models (the optimiser's drafts)."""
        uniq = tuple(dict.fromkeys(provs))
        if len(uniq) == 1:
            return uniq[0]
        return cls(tuple(p for m in uniq for p in m.parts), (), uniq)

    @classmethod
    def of(cls, kind: str, file: str = "", detail: str = "", band: float | None = None) -> "Provenance":
        return cls((Source(kind, file, 0, detail, band),))

    @classmethod
    def from_kinds(cls, kinds, labels: dict) -> "Provenance":
        """From an array of per-point kind names and {kind: Source template}: counts per kind."""
        u, c = np.unique(np.asarray(kinds).ravel(), return_counts=True)
        if len(u) == 1:
            return cls((labels[str(u[0])],))
        return cls(tuple(_with_count(labels[str(k)], int(n)) for k, n in zip(u, c)))

    def with_note(self, note: str) -> "Provenance":
        return Provenance(self.parts, self.notes + (note,))

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(p.kind for p in self.parts)

    @property
    def coarse(self) -> str:
        """'measured', 'operator', 'analytical', 'none' or 'mixed' — for badges and checks."""
        ks = {COARSE[k] for k in self.kinds}
        return ks.pop() if len(ks) == 1 else "mixed"

    @property
    def measured_only(self) -> bool:
        return all(COARSE[k] == "measured" for k in self.kinds) and "curve" not in self.kinds

    def describe(self) -> str:
        if self.members:
            return "; ".join(m.describe() for m in self.members)
        if len(self.parts) == 1:
            text = self.parts[0].label()
        else:
            text = "; ".join(f"{p.label()} ×{p.count}" for p in self.parts)
        return "".join([text] + [f" {n}" for n in self.notes])

    def __str__(self) -> str:
        return self.describe()

    def to_dict(self) -> dict:
        return {"coarse": self.coarse, "parts": [p.to_dict() for p in self.parts], "notes": list(self.notes)}


def _with_count(s: Source, n: int) -> Source:
    return Source(s.kind, s.file, n, s.detail, s.band)


NONE_TP1 = Provenance.of("none", detail="tp=1")


def describe_all(sources: dict) -> dict:
    """{component: display text} for JSON documents and tables (strings pass through)."""
    return {k: str(v) for k, v in sources.items()}
