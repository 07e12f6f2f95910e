"""Latency from a measured LatencyTable: the same interface as AnalyticalLatency, interpolating
between measured grid points and falling back to the analytical model fitted to the same profile.

Interpolation is multilinear in the raw coordinates (batch, new tokens, context), not in their logs:
every term of a layer's time is a product of affine functions of them — weights read once
(constant), matmul and activation work ∝ batch·new_tokens, attention ∝ batch·new_tokens·
(context + new_tokens) — and multilinear interpolation reproduces such products exactly, while
log-log interpolation bends a "constant + linear" segment. Errors stay in cells that straddle a
roofline knee or a kernel-tile cliff. Outside the grid (or for a missing tp), the fitted analytical
model is scaled to agree with the nearest measured point (continuity at the grid edge); a shape
never measured gets the fitted analytical model alone. `sources` says which, per component.
Compiled mode: a profile with compiled rows answers from them (fallback fitted to them too); one without
any answers graph mode, with the note "compiled not measured: graph-mode latency" and no error band.
Key assumption: a shipped profile applies to the GPU it was measured on. numpy + csv only.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from specperf.perfmodel.specs.hardware import GPUS, HardwareProfile
from specperf.perfmodel.latency.analytical import AnalyticalLatency
from specperf.perfmodel.latency.base import (SAMPLER_NOT_COMPILED, ComponentTimes, check_mode as _check_mode, check_tp,
                                    stand_in_forward)
from specperf.perfmodel.latency.bands import band, load_bands
from specperf.perfmodel.latency.source import NONE_TP1, Provenance, Source
from specperf.perfmodel.specs.models import ModelSpec, read_json
from specperf.perfmodel.specs.safeio import text_stream
from specperf.perfmodel.latency.table import DTYPE_BYTES, SCHEMA_VERSION, LatencyTable, head_shape_key, layer_shape_key

MEASURED, INTERP, FITTED, ANCHORED = 0, 1, 2, 3
_KIND = {MEASURED: "measured", INTERP: "interpolated", FITTED: "fitted", ANCHORED: "anchored"}
_LEAN = ("gpu", "shape", "head_shape", "component", "mode", "dtype", "tp", "batch", "new_tokens",
         "context", "median_s")


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values, as np.unique, which imports numpy.ma (~20 ms of `predict`'s cold start)."""
    s = np.sort(x)
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


class Grid:
    """Values on a (possibly incomplete) tensor grid; NaN marks points not measured."""

    def __init__(self, pts: np.ndarray):  # pts [N, ndim + 1]: coordinates then value
        self.axes = [_unique(pts[:, k]) for k in range(pts.shape[1] - 1)]
        self.v = np.full([len(a) for a in self.axes], np.nan)
        idx = tuple(np.searchsorted(a, pts[:, k]) for k, a in enumerate(self.axes))
        self.v[idx] = pts[:, -1]

    def clamp(self, *xs):
        return [np.clip(x, a[0], a[-1]) for x, a in zip(xs, self.axes)]

    def __call__(self, *xs):
        """(values, kind) with kind MEASURED / INTERP, or NaN where outside or a corner is missing."""
        xs = np.broadcast_arrays(*[np.asarray(x, dtype=float) for x in xs])
        shape = xs[0].shape
        lo, w, inside, exact = [], [], np.ones(shape, bool), np.ones(shape, bool)
        for x, a in zip(xs, self.axes):
            inside &= (x >= a[0]) & (x <= a[-1])
            i = np.clip(np.searchsorted(a, x, side="right") - 1, 0, max(len(a) - 2, 0))
            if len(a) == 1:
                lo.append(np.zeros(shape, int))
                w.append(np.zeros(shape))
                exact &= x == a[0]
                continue
            t = (x - a[i]) / (a[i + 1] - a[i])
            lo.append(i)
            w.append(t)
            exact &= (x == a[i]) | (x == a[i + 1])
        out = np.zeros(shape)
        for corner in range(2 ** len(xs)):
            wt = np.ones(shape)
            ix = []
            for k in range(len(xs)):
                up = (corner >> k) & 1
                wt = wt * (w[k] if up else 1 - w[k])
                ix.append(np.minimum(lo[k] + up, len(self.axes[k]) - 1))
            val = self.v[tuple(ix)]
            out = out + np.where(wt > 0, wt * np.nan_to_num(val, nan=0.0), 0.0)
            out = np.where((wt > 0) & np.isnan(val), np.nan, out)
        out = np.where(inside, out, np.nan)
        return out, np.where(exact, MEASURED, INTERP)


class MeasuredLatency:
    """forward()/overhead_s() like AnalyticalLatency, from a measured table (loaded lazily, cached)."""

    def __init__(self, path: str | Path, hw: HardwareProfile):
        self.path = Path(path)
        self.hw = hw
        self.file = self.path.name
        self.name = f"measured ({self.file})"
        self._bands = load_bands()
        self._table = None
        self._grids: dict = {}
        self._index: dict | None = None
        self._fallback = None
        self._meta_cache = None
        self._flags: dict = {}
        self._capped: dict = {}  # group → [(point, capped time)] (integrity.cap_contradicted)
        self.gpu = hw.name

    # ---- lazy state ----------------------------------------------------------------------------
    @property
    def table(self) -> LatencyTable:
        """The full, validated table (only needed to fit when the metadata holds no fitted constants)."""
        if self._table is None:
            self._table = LatencyTable.load(self.path)
        return self._table

    def _meta(self) -> dict:
        if self._meta_cache is None:
            mp = LatencyTable.meta_path(self.path)
            self._meta_cache = read_json(mp, "profile metadata") if mp.exists() else {}
        return self._meta_cache

    def _ok_rows(self):
        """Lean CSV read (csv module, needed columns only) of the ok rows; parquet via LatencyTable."""
        if self.path.suffix != ".csv" or self._meta().get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            return [tuple(r[c] for c in _LEAN) for r in self.table.ok_rows()]
        try:
            with text_stream(self.path, "profile") as f:  # bounded, regular files only (a FIFO would block)
                rd = csv.reader(f)
                header = next(rd, [])
                pos = [header.index(c) for c in _LEAN + ("status",)]
                rows = [tuple(r[i] for i in pos) for r in rd]
        except (ValueError, UnicodeDecodeError, OSError, IndexError, csv.Error):
            return [tuple(r[c] for c in _LEAN) for r in self.table.ok_rows()]  # raises a SpecError
        return [r[:-1] for r in rows if r[-1] in ("ok", "")]

    def _rows_index(self):
        if self._index is None:
            rows = self._ok_rows()
            gpus = {r[0] for r in rows}
            self.gpu = self.hw.name if self.hw.name in gpus or not gpus else sorted(gpus)[0]
            idx: dict = {}
            for gpu, shape, head, comp, mode, dtype, tp, b, n, c, med in rows:
                if gpu != self.gpu:
                    continue
                if comp in ("layer", "allreduce"):
                    key = shape
                elif comp == "overhead":  # argmax/compare/sync: depends on the vocabulary only
                    key = head.rsplit(":", 1)[-1]
                else:
                    key = head
                pt = (int(float(b)), int(float(n)), int(float(c)), float(med))
                idx.setdefault((comp, key, int(float(tp)), mode, DTYPE_BYTES.get(dtype, 2)), {}) \
                    .setdefault(dtype, []).append(pt)
            from specperf.perfmodel.latency.integrity import cap_contradicted

            for k, by_dtype in idx.items():  # rows their own table contradicts: capped, said in answers
                for dt, pts in by_dtype.items():
                    by_dtype[dt], capped = cap_contradicted(pts)
                    if capped and dt == ("fp16" if "fp16" in by_dtype else next(iter(by_dtype))):
                        self._capped[k] = capped
            self._index = idx
        return self._index

    def grid(self, component, key, tp, mode, dtype_bytes):
        k = (component, key, tp, mode, dtype_bytes)
        if k not in self._grids:
            by_dtype = self._rows_index().get(k)
            g = None
            if by_dtype:
                pts = np.array(by_dtype.get("fp16") or next(iter(by_dtype.values())), dtype=float)
                g = Grid(pts if component == "layer" else pts[:, [0, 1, 3]])
            self._grids[k] = g
        return self._grids[k]

    def consistency_note(self, component, key, tp, mode, by, coords) -> str | None:
        """A note when the grid rows answering `coords` break physical consistency
        (perfmodel.latency.integrity.consistency_flags: time falling as batch, new tokens or context
        grow, or a tp shard slower than the smaller tp's), else None."""
        from specperf.perfmodel.latency.integrity import consistency_flags, describe_capped, describe_flags

        k = (component, key, tp, mode, by)
        if k not in self._flags:
            idx, pts = self._rows_index(), {}
            for t in (1, tp // 2, tp):  # the group and the shards it is checked against
                rows = idx.get((component, key, t, mode, by))
                if rows:
                    pts[(component, key, t, mode, by)] = [p if component == "layer" else (p[0], p[1], 0, p[3])
                                                          for p in rows.get("fp16") or next(iter(rows.values()))]
            self._flags[k] = (consistency_flags(pts).get(k, []), len(pts.get(k, ())))
        flags, n = self._flags[k]
        g = self.grid(component, key, tp, mode, by)
        capped = self._capped.get(k, [])
        if not (flags or capped) or g is None:
            return None
        xs = np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in coords])
        brackets = []
        for x, a in zip(xs, g.axes):  # the grid values each query point's cell spans, per axis
            i = np.clip(np.searchsorted(a, x, side="right") - 1, 0, max(len(a) - 2, 0))
            on = (x[..., None] == a).any(-1)  # a measured coordinate: only its own row serves it
            brackets.append((np.where(on, x, a[i]), np.where(on, x, a[np.minimum(i + 1, len(a) - 1)])))
        def serves(pt) -> bool:  # some query point's cell has this row as a corner
            m = np.ones(xs[0].shape, bool)
            for v, (lo, hi) in zip(pt, brackets):
                m &= (v == lo) | (v == hi)
            return bool(m.any())
        used = [f for f in flags if serves(f[1]) or serves(f[2])]
        cap = [c for c in capped if serves(c[0][:3])]
        notes = ([describe_capped(cap, n, mode, tp)] if cap else []) + ([describe_flags(used, n, mode, tp)] if used else [])
        return "; ".join(notes) or None

    @property
    def fallback(self) -> AnalyticalLatency:
        if self._fallback is None:
            self._rows_index()
            fitted = self._meta().get("fitted")
            base = GPUS.get(self.gpu, self.hw)
            if fitted:
                hw = base.replace(**{k: float(v) for k, v in fitted.items() if hasattr(base, k)})
            else:
                from specperf.perfmodel.latency.fit import fit_profile

                hw, _ = fit_profile(self.table, base)
            self._fallback = AnalyticalLatency(hw)
        return self._fallback

    # ---- composition ---------------------------------------------------------------------------
    def _lookup(self, component, key, tp, mode, by, coords, fb_fn):
        """Measured/interpolated where possible, anchored or plain fitted analytical elsewhere."""
        coords = np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in coords])
        g = self.grid(component, key, tp, mode, by)
        tp_anchor = tp
        if g is None and tp > 1:
            g, tp_anchor = self.grid(component, key, 1, mode, by), 1
        fb = np.asarray(fb_fn(*coords, tp), dtype=float) + np.zeros(coords[0].shape)
        if g is None:
            return fb, np.full(coords[0].shape, FITTED)
        val, kind = g(*coords) if tp_anchor == tp else (np.full(coords[0].shape, np.nan), None)
        clamped = g.clamp(*coords)
        edge, _ = g(*clamped)
        anchored = edge * fb / np.asarray(fb_fn(*clamped, tp_anchor), dtype=float)
        out = np.where(np.isfinite(val), val, np.where(np.isfinite(edge), anchored, fb))
        kinds = np.where(np.isfinite(val), kind if kind is not None else INTERP,
                         np.where(np.isfinite(edge), ANCHORED, FITTED))
        return out, kinds

    def _describe(self, kinds, mode: str = "graph") -> Provenance:
        host = self._meta().get("eager_run_to_run") if mode == "eager" else None

        def b(k):  # eager rows that moved between runs on this card: the wider of the two errors stands
            kb = band(_KIND[k], mode, self._bands)
            return kb if kb is None or not host else max(kb, float(host["p90"]))
        labels = {str(k): Source(_KIND[k], self.file, band=b(k)) for k in _KIND}
        prov = Provenance.from_kinds(np.asarray(kinds).astype(int).astype(str), labels)
        if host:
            prov = prov.with_note(f"eager rows of {self.file} moved by a median {host['median']:.0%} between two "
                                  f"runs on this card (host contention): the band is that run-to-run p90")
        return prov

    @property
    def has_compiled(self) -> bool:
        """Whether this profile holds any measured compiled-mode row."""
        return any(k[3] == "compiled" for k in self._rows_index())

    def forward(self, spec: ModelSpec, batch, new_tokens, context, tp=1, mode="graph") -> ComponentTimes:
        _check_mode(mode)
        stand_in = stand_in_forward(self.forward, self.has_compiled, spec, batch, new_tokens, context, tp, mode)
        if stand_in is not None:  # never silently: graph rows, said so, no band
            return stand_in
        tp = check_tp(spec, tp)
        fb, by = self.fallback, spec.dtype_bytes
        layer, lk = self._lookup("layer", layer_shape_key(spec), tp, mode, by, (batch, new_tokens, context),
                                 lambda b, n, c, t: fb.layer_s(spec, b, n, c, t, mode))
        head, hk = self._lookup("lm_head", head_shape_key(spec), tp, mode, by, (batch, new_tokens),
                                lambda b, n, t: fb.lm_head_s(spec, b, n, t, mode))
        shape = np.broadcast(np.asarray(batch), np.asarray(new_tokens), np.asarray(context)).shape
        if tp > 1:
            ar, ak = self._lookup("allreduce", layer_shape_key(spec), tp, mode, by, (batch, new_tokens),
                                  lambda b, n, t: fb.allreduce_s(spec, b, n, t, mode))
            ar_src = self._describe(ak, mode)
        else:
            ar, ar_src = np.zeros(shape), NONE_TP1
        sources = {"layer": self._describe(lk, mode), "lm_head": self._describe(hk, mode), "allreduce": ar_src}
        for comp, key, xy in (("layer", layer_shape_key(spec), (batch, new_tokens, context)),
                              ("lm_head", head_shape_key(spec), (batch, new_tokens))):
            note = self.consistency_note(comp, key, tp, mode, by, xy)
            if note:  # the answer says which of its rows fail the physical-consistency check
                sources[comp] = sources[comp].with_note(note)
        return ComponentTimes(layer_s=layer + np.zeros(shape), allreduce_s=ar + np.zeros(shape),
                              lm_head_s=head + np.zeros(shape), n_layers=spec.n_layers, sources=sources)

    def overhead_s(self, spec: ModelSpec, batch, gamma, mode="graph"):
        _check_mode(mode)
        if mode == "compiled" and not any(k[0] == "overhead" and k[3] == "compiled" for k in self._rows_index()):
            # the overhead is the sampler + sync, which engines (and profiler.measure) never compile:
            # compiled mode's overhead is graph mode's, a measurement, not a stand-in
            val, prov = self.overhead_s(spec, batch, gamma, "graph")
            return val, prov.with_note(SAMPLER_NOT_COMPILED)
        fb = self.fallback
        g1 = np.asarray(gamma, dtype=float) + 1  # rows store γ+1 in new_tokens
        val, kinds = self._lookup("overhead", f"v{spec.vocab}", 1, mode, spec.dtype_bytes, (batch, g1),
                                  lambda b, n, t: fb.overhead_s(spec, b, n - 1, mode)[0])
        return val, self._describe(kinds, mode)
