"""Apply a fitted latency correction (from `specperf calibrate latency`) to any latency provider.

The correction, fitted per (GPU, mode) on measured end-to-end runs, is
    iteration_s = k_draft·γ·t_draft_s + k_verify·t_verify_s + overhead_s(provider) + extra_overhead_s
so the wrapped provider scales every forward of a draft model by k_draft, every forward of a target
model (verification and the autoregressive baseline) by k_verify, and adds extra_overhead_s to the
per-iteration overhead (γ = 0 included). Key assumption: the factors carry over to models, batches
and contexts near the calibrated runs; models named in the runs get their role's factor, others get
the factor of the role the wrapper was built for (`for_draft()` gives the draft-side wrapper).

Optional host terms (an entry's extra keys; absent = 0), each a measured or calibrated quantity of a
client's host software rather than a scale on the GPU's times (issue 29):
- `host_per_layer_s`, `host_per_forward_s`: added to every forward (per decoder layer executed, per
  forward call), after the k scaling: an eager Python client's module and call overheads (HF
  transformers: `studies/miniature/host_overheads.py`). A catch-up's extra token costs none of it.
- `host_per_iteration_s`: added to the overhead at γ > 0 only (an assisted-generation loop's own
  per-iteration work; the target alone decodes without it).
- `bookkeeping_s` {γ: seconds}: a loop's measured per-iteration cost outside its forwards, which
  replaces the provider's overhead row (it contains the argmax/compare/sync that row times);
  linear in γ between the measured γ, the nearest measured value outside them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specperf.perfmodel.latency.base import ComponentTimes
from specperf.perfmodel.specs.models import SpecError, read_json
from specperf.perfmodel.specs.safeio import write_json

KIND = "specperf latency correction"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CorrectionEntry:
    gpu: str
    mode: str
    k_draft: float = 1.0
    k_verify: float = 1.0
    extra_overhead_s: float = 0.0
    targets: tuple = ()
    drafts: tuple = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        d = {"gpu": self.gpu, "mode": self.mode, "k_draft": self.k_draft, "k_verify": self.k_verify,
             "extra_overhead_s": self.extra_overhead_s, "targets": list(self.targets),
             "drafts": list(self.drafts)}
        d.update(self.extra)
        return d


@dataclass(frozen=True)
class LatencyCorrection:
    entries: tuple
    provider: str = ""  # name of the provider the correction was fitted against
    source: str = ""

    def entry(self, gpu: str | None, mode: str) -> CorrectionEntry | None:
        hits = [e for e in self.entries if e.mode == mode and (gpu is None or e.gpu.lower() == gpu.lower())]
        return hits[0] if len(hits) == 1 else None

    def describe(self) -> str:
        return ", ".join(f"{e.gpu}/{e.mode}" for e in self.entries)

    def to_dict(self) -> dict:
        return {"kind": KIND, "schema_version": SCHEMA_VERSION, "provider": self.provider,
                "source": self.source, "entries": [e.to_dict() for e in self.entries]}

    def save(self, path, flag: str = "--out") -> None:
        write_json(path, self.to_dict(), flag)  # atomic, symlink-safe

    @classmethod
    def from_dict(cls, d: dict, source: str = "file") -> "LatencyCorrection":
        if not isinstance(d, dict) or d.get("kind") != KIND or not isinstance(d.get("entries"), list):
            raise SpecError(f"calibration file {source} is not a specperf latency correction "
                            "(write one with `specperf calibrate latency RUNS.csv --out FILE`)")
        known = {"gpu", "mode", "k_draft", "k_verify", "extra_overhead_s", "targets", "drafts"}
        out = []
        for i, e in enumerate(d["entries"]):
            try:
                ce = CorrectionEntry(gpu=str(e["gpu"]), mode=str(e["mode"]), k_draft=float(e["k_draft"]),
                                     k_verify=float(e["k_verify"]), extra_overhead_s=float(e["extra_overhead_s"]),
                                     targets=tuple(e.get("targets") or ()), drafts=tuple(e.get("drafts") or ()),
                                     extra={k: v for k, v in e.items() if k not in known})
            except (KeyError, TypeError, ValueError) as exc:
                raise SpecError(f"calibration file {source}: entry {i} is malformed ({exc!r})") from None
            bad = _bad_host_terms(ce.extra)
            if bad:
                raise SpecError(f"calibration file {source}: entry {i} {bad}")
            if not (np.isfinite(ce.k_draft) and np.isfinite(ce.k_verify) and ce.k_draft > 0 and ce.k_verify > 0
                    and np.isfinite(ce.extra_overhead_s)):
                raise SpecError(f"calibration file {source}: entry {i} has k_draft={ce.k_draft}, "
                                f"k_verify={ce.k_verify}, extra_overhead_s={ce.extra_overhead_s}; factors must be "
                                "finite and > 0, the overhead finite")
            out.append(ce)
        return cls(entries=tuple(out), provider=str(d.get("provider", "")), source=source)

    @classmethod
    def load(cls, path) -> "LatencyCorrection":
        return cls.from_dict(read_json(path, "calibration file"), source=str(Path(path)))


HOST_TERMS = ("host_per_layer_s", "host_per_forward_s", "host_per_iteration_s")


def _bad_host_terms(extra: dict) -> str:
    """'' when the optional host terms are well formed, else what is wrong (one clause)."""
    for k in HOST_TERMS:
        if k in extra:
            v = extra[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                return f"has {k}={v!r}; a host term must be a finite number ≥ 0 (seconds)"
    if "bookkeeping_s" in extra:
        t = extra["bookkeeping_s"]
        try:
            items = [(float(g), float(v)) for g, v in dict(t).items()]
        except (TypeError, ValueError):
            return f"has bookkeeping_s={t!r}; it must map γ to seconds"
        if not items or any(not (np.isfinite(g) and np.isfinite(v)) or g < 0 or v < 0 for g, v in items):
            return f"has bookkeeping_s={t!r}; γ and seconds must be finite and ≥ 0, at least one"
    return ""


def _bookkeeping(table: dict, gamma):
    """The measured bookkeeping at γ: linear between measured γ, the nearest value outside them."""
    ks = sorted((float(g), float(v)) for g, v in table.items())
    return np.interp(np.asarray(gamma, dtype=float), [k for k, _ in ks], [v for _, v in ks])


def _banded(prov, band: float | None):
    """A calibrated component's band is the calibration's own leave-one-out error (issue 14)."""
    if band is None or not hasattr(prov, "parts"):
        return prov
    parts = tuple(p if p.kind == "none" else dataclasses.replace(p, band=band) for p in prov.parts)
    return dataclasses.replace(prov, parts=parts, members=tuple(_banded(m, band) for m in prov.members))


def _scale(ft: ComponentTimes, k: float, note: str, band: float | None = None) -> ComponentTimes:
    src = {key: _banded(v.with_note(f"× {note}"), band) for key, v in ft.sources.items()}
    return ComponentTimes(layer_s=np.asarray(ft.layer_s) * k, allreduce_s=np.asarray(ft.allreduce_s) * k,
                          lm_head_s=np.asarray(ft.lm_head_s) * k, n_layers=ft.n_layers, sources=src)


class CorrectedLatency:
    """Wraps a provider (.forward, .overhead_s); modes without a correction entry pass through."""

    def __init__(self, base, correction: LatencyCorrection, gpu: str | None = None, role: str = "target"):
        if role not in ("target", "draft"):
            raise ValueError(f"role={role!r}; use target or draft")
        self.base, self.correction, self.gpu, self.role = base, correction, gpu, role
        self.name = f"{getattr(base, 'name', type(base).__name__)} + calibration {correction.source}"

    def for_draft(self) -> "CorrectedLatency":
        return CorrectedLatency(self.base, self.correction, self.gpu, role="draft")

    def factor(self, spec, mode: str) -> tuple[float, str]:
        e = self.correction.entry(self.gpu, mode)
        if e is None:
            return 1.0, f"uncalibrated ({mode})"
        role = "draft" if spec.name in e.drafts else "target" if spec.name in e.targets else self.role
        k = e.k_draft if role == "draft" else e.k_verify
        return k, f"k_{'draft' if role == 'draft' else 'verify'}={k:.4g} ({self.correction.source})"

    def forward(self, spec, batch, new_tokens, context, tp=1, mode="graph") -> ComponentTimes:
        ft = self.base.forward(spec, batch, new_tokens, context, tp, mode)
        k, note = self.factor(spec, mode)
        out = _scale(ft, k, note, self._band(mode))
        e = self.correction.entry(self.gpu, mode)
        hl, hf = (0.0, 0.0) if e is None else (float(e.extra.get("host_per_layer_s", 0.0)),
                                                float(e.extra.get("host_per_forward_s", 0.0)))
        if hl or hf:
            note = f"+ host {hl * 1e3:.4g} ms/layer, {hf * 1e3:.4g} ms/forward ({self.correction.source})"
            src = {key: (v.with_note(note) if key in ("layer", "lm_head") else v) for key, v in out.sources.items()}
            out = ComponentTimes(layer_s=np.asarray(out.layer_s) + hl, allreduce_s=out.allreduce_s,
                                 lm_head_s=np.asarray(out.lm_head_s) + hf, n_layers=out.n_layers, sources=src)
        return out

    def _band(self, mode: str) -> float | None:
        e = self.correction.entry(self.gpu, mode)
        return None if e is None else e.extra.get("loo_band")

    def overhead_s(self, spec, batch, gamma, mode="graph"):
        ov, src = self.base.overhead_s(spec, batch, gamma, mode)
        e = self.correction.entry(self.gpu, mode)
        if e is None:
            return ov, src
        notes = []
        if "bookkeeping_s" in e.extra:  # measured loop bookkeeping replaces the provider's overhead row
            ov = np.asarray(ov) * 0.0 + _bookkeeping(e.extra["bookkeeping_s"], gamma)
            notes.append("measured loop bookkeeping (replaces the overhead row)")
        hi = float(e.extra.get("host_per_iteration_s", 0.0))
        if hi:
            ov = np.asarray(ov) + hi * (np.asarray(gamma) > 0)
            notes.append(f"+ host {hi * 1e3:.4g} ms/iteration at γ > 0")
        for n in notes:
            src = src.with_note(n)
        return ov + e.extra_overhead_s, _banded(src.with_note(f"+ calibrated {e.extra_overhead_s * 1e3:.4g} ms"),
                                                e.extra.get("loo_band"))



def apply_correction(provider, path, gpu: str, modes, hint: str = ""):
    """Wrap `provider` with the correction in `path`: (target-side provider, draft-side provider).

    Every mode in `modes` must have an entry for `gpu`; otherwise one SpecError line says what the
    file has (and `hint`, if given).
    """
    corr = LatencyCorrection.load(path)
    missing = [m for m in modes if corr.entry(gpu, m) is None]
    if missing:
        raise SpecError(f"calibration {path} has no entry for gpu={gpu}, mode={missing[0]} "
                        f"(it has: {corr.describe()}){hint}")
    wrapped = CorrectedLatency(provider, corr, gpu=gpu)
    return wrapped, wrapped.for_draft()
