"""The shipped data: which file of perfmodel/data plays which role, read from
perfmodel/data/manifest.json — the one place that maps a (role, GPU, dtype, mode, tp) to a file.
Providers ask `find(...)`; nothing matches file names.

An entry: `file` (its `.meta.json` sidecar, when there is one, belongs to it), `role` (profile |
tp_profile | allreduce | operators | error_bands), `gpu`, `dtype`, `modes`, `tp`, the `command` that
measured it, for derived parts `build` (how `python -m specperf.perfmodel.data_build` rebuilds them), and
`evidence` (checks of it kept in the checkout's evidence/ folder, by name).

Key assumption: at most one file answers a (role, gpu, dtype, mode, tp) question; the manifest test
(tests/test_data_manifest.py) checks that every file in perfmodel/data is listed and read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
EVIDENCE_DIR = Path(__file__).resolve().parent.parent / "evidence"  # a checkout's evidence/ (not installed)
MANIFEST = "manifest.json"
ROLES = ("profile", "tp_profile", "allreduce", "operators", "error_bands")
_LOOKUPS: list = []  # entries returned by find() (tests check that every entry is read)


@dataclass(frozen=True)
class Entry:
    file: str
    role: str
    gpu: str = ""
    dtype: str = ""
    modes: tuple = ()
    tp: int = 1
    command: str = ""
    build: dict = field(default_factory=dict, hash=False, compare=False)
    evidence: dict = field(default_factory=dict, hash=False, compare=False)  # name -> evidence/ file
    data_dir: Path = DATA_DIR

    @property
    def path(self) -> Path:
        return self.data_dir / self.file


class ManifestError(ValueError):
    """The manifest names a role it does not know, or two files answer one question."""


def load_manifest(data_dir: Path | str = DATA_DIR) -> tuple[Entry, ...]:
    """Every entry of `data_dir`/manifest.json, its role checked (tests/test_data_manifest.py checks
    that every listed file exists)."""
    return _load(str(Path(data_dir).resolve()))


@lru_cache(maxsize=8)
def _load(data_dir: str) -> tuple[Entry, ...]:
    d = Path(data_dir)
    if not (d / MANIFEST).is_file():  # a folder without a manifest ships nothing
        return ()
    doc = json.loads((d / MANIFEST).read_text())
    out = []
    for e in doc["files"]:
        if e.get("role") not in ROLES:
            raise ManifestError(f"{d / MANIFEST}: file {e.get('file')!r} has role {e.get('role')!r}; "
                                f"allowed: {', '.join(ROLES)}")
        out.append(Entry(file=e["file"], role=e["role"], gpu=e.get("gpu", ""), dtype=e.get("dtype", ""),
                         modes=tuple(e.get("modes", ())), tp=int(e.get("tp", 1)), command=e.get("command", ""),
                         build=dict(e.get("build", {})), evidence=dict(e.get("evidence", {})), data_dir=d))
    return tuple(out)


def find(role: str, gpu: str | None = None, dtype: str | None = None, mode: str | None = None,
         tp: int | None = None, data_dir: Path | str = DATA_DIR) -> list[Entry]:
    """The entries of `role` matching every filter given (gpu, dtype, one of its modes, tp)."""
    out = [e for e in load_manifest(data_dir) if e.role == role
           and (gpu is None or e.gpu == gpu) and (dtype is None or e.dtype == dtype)
           and (mode is None or mode in e.modes) and (tp is None or e.tp == tp)]
    _LOOKUPS.extend(out)
    return out


def find_one(role: str, **kw) -> Path | None:
    """The one file of `role` matching `kw` (see find), or None; two matches are a manifest error."""
    hits = find(role, **kw)
    if len(hits) > 1:
        raise ManifestError(f"manifest: {len(hits)} files answer role={role} {kw}: "
                            f"{', '.join(e.file for e in hits)}; keep one")
    return hits[0].path if hits else None


__all__ = ["DATA_DIR", "EVIDENCE_DIR", "Entry", "ManifestError", "find", "find_one", "load_manifest"]
