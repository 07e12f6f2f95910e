"""Tensor-parallel all-reduce cost from a measured NCCL curve: fit, extrapolation to other TP
degrees (the provider that puts measured TP tables and the curve into predictions is
perfmodel.latency.tp_provider).

Fit: t(m) = a + m / B (latency + size/bandwidth), by least squares on relative error; optionally two
regimes t(m) = min(a_s + m/B_s, a_l + m/B_l), because NCCL picks the faster of its protocols (LL for
small messages, Simple for large ones; NCCL docs, NCCL_PROTO). Extrapolation from the measured rank
count p0 to p (key assumption, not a measurement): a ring all-reduce moves 2(p−1)/p·m bytes per
rank (Patarasuk & Yuan 2009), so at constant bus bandwidth the size term scales by
[2(p−1)/p] / [2(p0−1)/p0]; the latency term scales by log2 p / log2 p0 (hop depth of NCCL's tree /
multi-step LL paths — an assumption stated in every prediction that uses it). A Megatron layer
does two all-reduces of batch·new_tokens·d_model elements.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specperf.perfmodel.specs.models import ModelSpec, SpecError, read_json
from specperf.perfmodel.specs.safeio import atomic_open, atomic_write
from specperf.perfmodel.latency.table import LatencyTable, read_csv

CURVE_COLUMNS = ("gpu", "tp", "mode", "dtype", "size_bytes", "median_s", "p10_s", "p90_s", "repeats",
                 "status", "reason")
ALLREDUCES_PER_LAYER = 2  # attention output + MLP output (Megatron-LM, Shoeybi et al. 2019, Sec. 3)
MIN_REGIME_POINTS = 4


# ---- fitting ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LineFit:
    latency_s: float
    bytes_per_s: float

    def __call__(self, m):
        return self.latency_s + np.asarray(m, dtype=float) / self.bytes_per_s


def fit_line(m, t) -> LineFit:
    """Least squares on relative error: minimise Σ((a + m/B − t)/t)² with a ≥ 0, B > 0."""
    m, t = np.asarray(m, dtype=float), np.asarray(t, dtype=float)
    A = np.stack([1.0 / t, m / t], axis=1)
    (a, c), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    if a < 0:  # pure bandwidth
        a, c = 0.0, float(np.sum(m / t) / np.sum((m / t) ** 2))
    if c <= 0:  # pure latency (flat curve): a tiny slope keeps B finite
        a, c = float(np.sum(1 / t) / np.sum(1 / t ** 2)), 1e-18
    return LineFit(float(a), float(1.0 / c))


@dataclass(frozen=True)
class AllreduceFit:
    small: LineFit
    large: LineFit | None  # None: one regime
    n: int = 0  # sizes fitted; the errors below are relative, over those sizes
    rel_err_median: float = 0.0
    rel_err_max: float = 0.0

    def __call__(self, m, latency_factor=1.0, bytes_factor=1.0):
        m = np.asarray(m, dtype=float)
        y = self.small.latency_s * latency_factor + m * bytes_factor / self.small.bytes_per_s
        if self.large is not None:
            y = np.minimum(y, self.large.latency_s * latency_factor + m * bytes_factor / self.large.bytes_per_s)
        return y

    def describe(self) -> str:
        lines = [self.small] + ([self.large] if self.large else [])
        parts = [f"{ln.latency_s * 1e6:.1f} µs + m/{ln.bytes_per_s / 1e9:.0f} GB/s" for ln in lines]
        return ("min(" + ", ".join(parts) + ")" if self.large else parts[0]) + \
            f", median fit error {self.rel_err_median:.1%} (max {self.rel_err_max:.1%}, n={self.n})"


def _rel_errors(fit, m, t) -> np.ndarray:
    return np.abs(fit(m) - t) / t


def _rms(r: np.ndarray) -> float:
    return float(np.sqrt(np.mean(r ** 2)))


def fit_allreduce(sizes_bytes, times_s, two_regime: bool = True) -> AllreduceFit:
    """Fit latency + size/bandwidth (and the two-regime min form when it fits better)."""
    m, t = np.asarray(sizes_bytes, dtype=float), np.asarray(times_s, dtype=float)
    ok = np.isfinite(m) & np.isfinite(t) & (t > 0) & (m > 0)
    m, t = m[ok], t[ok]
    if m.size < 2:
        raise SpecError(f"an all-reduce fit needs at least 2 measured sizes; got {m.size}")
    order = np.argsort(m)
    m, t = m[order], t[order]
    one = AllreduceFit(fit_line(m, t), None)
    best, best_rms = one, _rms(_rel_errors(one, m, t))
    if two_regime and best_rms > 1e-3:  # a curve a line fits to 0.1 % needs no second regime
        for k in range(MIN_REGIME_POINTS, m.size - MIN_REGIME_POINTS + 1):
            f = AllreduceFit(fit_line(m[:k], t[:k]), fit_line(m[k:], t[k:]))
            rms = _rms(_rel_errors(f, m, t))
            if rms < 0.9 * best_rms:  # a second regime must earn its two parameters
                best, best_rms = f, rms
    r = np.sort(_rel_errors(best, m, t))
    med = (r[(r.size - 1) // 2] + r[r.size // 2]) / 2  # np.median, which imports numpy.ma (~20 ms of predict)
    return dataclasses.replace(best, n=int(m.size), rel_err_median=float(med), rel_err_max=float(r[-1]))


# ---- curves on disk -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AllreduceCurve:
    gpu: str
    tp: int
    mode: str
    dtype: str
    size_bytes: np.ndarray
    median_s: np.ndarray
    p10_s: np.ndarray
    p90_s: np.ndarray
    path: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def save_curve(rows: list[dict], path, meta: dict | None = None) -> None:
    p = Path(path)
    with atomic_open(p, "--out", newline="") as f:  # atomic, symlink-safe (perfmodel.specs.safeio)
        w = csv.DictWriter(f, fieldnames=list(CURVE_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in CURVE_COLUMNS})
    atomic_write(LatencyTable.meta_path(p), json.dumps(meta or {}, indent=2, sort_keys=True) + "\n")


def load_curves(path) -> list[AllreduceCurve]:
    """One AllreduceCurve per (gpu, tp, mode, dtype) in a curve CSV (rows with status ok)."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"all-reduce curve {str(p)!r} does not exist")
    raw = read_csv(p, CURVE_COLUMNS, "an all-reduce curve")
    meta_p = LatencyTable.meta_path(p)
    meta = read_json(meta_p, "all-reduce curve metadata") if meta_p.exists() else {}
    groups: dict = {}
    for i, r in enumerate(raw, start=2):  # i: the line in the file
        if (r["status"] or "ok") != "ok":
            continue
        try:
            key = (r["gpu"], int(r["tp"]), r["mode"], r["dtype"])
            vals = tuple(float(r[c]) for c in ("size_bytes", "median_s", "p10_s", "p90_s"))
        except (TypeError, ValueError) as e:
            raise SpecError(f"{str(p)!r} line {i}: malformed value ({e})") from None
        size, med, p10, p90 = vals  # NaN fails every comparison below
        if not (1 <= key[1] <= 1024 and 0 < size <= 2 ** 40 and 0 < med <= 3600 and 0 <= p10 <= 3600 and 0 <= p90 <= 3600):
            raise SpecError(f"{str(p)!r} line {i}: tp={r['tp']!r}, size_bytes={r['size_bytes']!r}, median_s={r['median_s']!r}, "
                            f"p10_s/p90_s={r['p10_s']!r}/{r['p90_s']!r} are not allowed; tp in 1..1024, sizes in "
                            "1..2^40 bytes, times in (0, 3600] s")
        groups.setdefault(key, []).append(vals)
    out = []
    for (gpu, tp, mode, dtype), vals in sorted(groups.items()):
        a = np.array(sorted(vals))
        out.append(AllreduceCurve(gpu, tp, mode, dtype, a[:, 0], a[:, 1], a[:, 2], a[:, 3], str(p), meta))
    return out


# ---- the model: one measured curve, any TP degree -------------------------------------------------
def ring_bytes_factor(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return 2.0 * (p - 1.0) / p


def _fmt_bytes(b: float) -> str:
    for unit, s in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= s:
            return f"{b / s:.3g} {unit}"
    return f"{b:.0f} B"


@dataclass(frozen=True, eq=False)
class AllreduceModel:
    curve: AllreduceCurve
    fit: AllreduceFit

    @classmethod
    def from_curve(cls, curve: AllreduceCurve, two_regime: bool = True) -> "AllreduceModel":
        return cls(curve, fit_allreduce(curve.size_bytes, curve.median_s, two_regime))

    def factors(self, tp: int) -> tuple[float, float]:
        """(latency factor, bytes factor) from the measured rank count to `tp`."""
        p0 = self.curve.tp
        return (math.log2(tp) / math.log2(p0), float(ring_bytes_factor(tp) / ring_bytes_factor(p0)))

    def one_s(self, msg_bytes, tp: int):
        """Seconds of one all-reduce of msg_bytes over tp ranks (0 at tp = 1)."""
        if tp == 1:
            return np.zeros(np.shape(msg_bytes))
        return self.fit(msg_bytes, *self.factors(tp))

    def layer_s(self, spec: ModelSpec, batch, new_tokens, tp: int):
        msg = np.asarray(batch, dtype=float) * np.asarray(new_tokens, dtype=float) * spec.d_model * spec.dtype_bytes
        return ALLREDUCES_PER_LAYER * self.one_s(msg, tp)

    def describe(self, tp: int, msg_bytes=None) -> str:
        c = self.curve
        s = (f"NCCL all-reduce curve measured on {c.tp}× {c.gpu} (TP={c.tp}, {c.mode}, {c.dtype}, "
             f"{_fmt_bytes(c.size_bytes.min())}–{_fmt_bytes(c.size_bytes.max())}; {Path(c.path).name}); "
             f"fit {self.fit.describe()}; ×{ALLREDUCES_PER_LAYER} per layer")
        if tp != c.tp:
            lf, bf = self.factors(tp)
            s += (f"; TP={tp} EXTRAPOLATED from measured TP={c.tp} ({tp / c.tp:g}× the measured ranks): "
                  f"size term ×{bf:.2f} (ring 2(p−1)/p bytes per rank, bus bandwidth assumed constant), "
                  f"latency term ×{lf:.2f} (log2 p, assumed)")
        if msg_bytes is not None:
            m = np.atleast_1d(np.asarray(msg_bytes, dtype=float))
            lo, hi = float(m.min()), float(m.max())
            if tp != c.tp:
                r = self.one_s(m, tp) / self.one_s(m, c.tp)
                s += f" → {float(r.min()):.2f}–{float(r.max()):.2f}× the TP={c.tp} time at these messages"
            if lo < c.size_bytes.min() or hi > c.size_bytes.max():
                s += (f"; messages {_fmt_bytes(lo)}–{_fmt_bytes(hi)} reach outside the measured sizes "
                      "(size extrapolation too)")
            else:
                s += f"; messages {_fmt_bytes(lo)}–{_fmt_bytes(hi)} within the measured sizes"
        return s


def compare_extrapolation(model: AllreduceModel, measured: AllreduceCurve) -> dict:
    """Extrapolated (from model's TP) vs measured (at measured.tp) all-reduce times: relative errors."""
    pred = model.one_s(measured.size_bytes, measured.tp)
    err = (pred - measured.median_s) / measured.median_s
    return {"from_tp": model.curve.tp, "to_tp": measured.tp, "n": int(err.size),
            "median_abs_rel_err": float(np.median(np.abs(err))), "max_abs_rel_err": float(np.max(np.abs(err))),
            "size_bytes": measured.size_bytes.tolist(), "rel_err": err.tolist()}


def eager_allreduce_in_situ(table, with_ar) -> int:
    """Replace eager `allreduce` rows of a TP LatencyTable by what the all-reduces add to an eager
    layer: median over contexts of (layer WITH all-reduces − layer without), p10/p90 over contexts.

    Why: an eager TP forward is host-bound, and each all-reduce also waits for the slower rank and
    syncs NCCL's stream with the compute stream, so the pair timed alone (kept in the curve file)
    undercounts it (the whole-model errors of both ways: docs/accuracy.md and scripts/tp_error_table.py).
    Graph rows stay the pair timed alone. Returns the number of rows replaced."""
    lay, diff = {}, {}
    for r in table.ok_rows():
        if r["component"] == "layer" and r["mode"] == "eager":
            lay[(r["shape"], r["tp"], r["batch"], r["new_tokens"], r["context"])] = r["median_s"]
    for r in with_ar.ok_rows():
        k = (r["shape"], r["tp"], r["batch"], r["new_tokens"], r["context"])
        if r["component"] == "layer" and r["mode"] == "eager" and k in lay:
            diff.setdefault(k[:4], []).append(r["median_s"] - lay[k])
    n = 0
    for r in table.rows:
        k = (r["shape"], r["tp"], r["batch"], r["new_tokens"])
        if r["component"] == "allreduce" and r["mode"] == "eager" and k in diff:
            d = np.asarray(diff[k])
            med = float(np.median(d))
            if med > 0:
                r.update(median_s=med, p10_s=float(np.percentile(d, 10)), p90_s=float(np.percentile(d, 90)),
                         repeats=int(d.size), status="ok", reason="")
                n += 1
    table.meta["eager_allreduce_rows"] = ("in situ: median over contexts of (layer with all-reduces - layer "
                                          "without), p10/p90 over contexts, repeats = contexts "
                                          "(perfmodel.latency.tp.eager_allreduce_in_situ); graph rows: the pair "
                                          "timed alone")
    return n
