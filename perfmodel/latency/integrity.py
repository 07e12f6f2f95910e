"""Integrity of a user-supplied latency profile, checked in one streaming pass before it is used:
numeric, finite, positive latencies; no conflicting duplicate rows (reported with both line
numbers); at least one usable row; the GPU it was measured on matches the GPU asked for (unless
explicitly overridden); a table from a newer schema refused. A UTF-8 BOM is accepted.

The GPU identity comes from the metadata's `gpu` and every row's `gpu` cell, cross-checked: a row
naming another GPU than the metadata, or a row with no GPU when the metadata names none, is refused;
a blank cell takes the metadata's GPU (so blanking the column cannot slip past the --gpu check).

Key assumption: two rows with the same key (gpu, shape, head_shape, component, mode, dtype, tp,
batch, new_tokens, context) are one measurement; equal medians (within 1e-9 relative) are harmless
repeats, different ones are a conflict the model cannot resolve silently.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from specperf.perfmodel.specs.models import SpecError
from specperf.perfmodel.specs.safeio import MAX_JSON_BYTES, loads_json, read_text, text_stream

KEY = ("gpu", "shape", "head_shape", "component", "mode", "dtype", "tp", "batch", "new_tokens", "context")


def check_profile(path: str | Path, gpu: str | None = None, allow_gpu_mismatch: bool = False) -> int:
    """Number of ok rows in the profile at `path`; a one-line SpecError on the first problem."""
    from specperf.perfmodel.latency.table import COLUMNS, SCHEMA_VERSION

    p = Path(path)
    name = str(p)
    meta_p = p.with_name(p.name + ".meta.json")
    meta = {}
    if meta_p.exists():
        try:
            meta = loads_json(read_text(meta_p, "profile metadata", MAX_JSON_BYTES), f"profile metadata {str(meta_p)!r}")
        except ValueError as e:
            if isinstance(e, SpecError):
                raise
            raise SpecError(f"profile metadata {str(meta_p)!r} is not JSON") from None
        ver = meta.get("schema_version", SCHEMA_VERSION) if isinstance(meta, dict) else None
        if not isinstance(ver, int) or ver > SCHEMA_VERSION:
            raise SpecError(f"profile {name!r} has schema_version={ver!r}; this specperf reads "
                            f"schema_version≤{SCHEMA_VERSION} (upgrade specperf)", value=ver,
                            allowed=f"≤ {SCHEMA_VERSION}")
    meta_gpu = meta.get("gpu") if isinstance(meta, dict) else None
    meta_gpu = meta_gpu.strip() if isinstance(meta_gpu, str) and meta_gpu.strip() else None
    if p.suffix != ".csv":
        return -1  # parquet: validated by LatencyTable.load
    seen: dict = {}
    ok = 0
    gpus = set()
    try:
        stream = text_stream(p, "profile")  # bounded, regular files only (perfmodel.specs.safeio)
    except SpecError as e:
        if "UTF-8" in str(e):
            raise SpecError(f"profile {name!r} is not a text CSV file") from None
        raise
    try:
        with stream as f:
            rd = csv.reader(f)
            header = next(rd, None)
            if header is None:
                raise SpecError(f"profile {name!r} is empty", value=name, allowed="a specperf latency table")
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise SpecError(f"{name!r} is not a specperf latency table: missing columns {', '.join(missing)}")
            pos = {c: header.index(c) for c in COLUMNS}
            for line, r in enumerate(rd, start=2):
                if not r:
                    continue
                if len(r) != len(header):
                    raise SpecError(f"profile {name!r} line {line}: {len(r)} fields, header has {len(header)}")
                if (r[pos["status"]] or "ok") != "ok":
                    continue
                v = r[pos["median_s"]]
                try:
                    med = float(v)
                except ValueError:
                    med = float("nan")
                if not (math.isfinite(med) and med > 0):
                    raise SpecError(f"profile {name!r} line {line}: median_s={v!r} is not allowed; must be a "
                                    "finite number > 0", value=v, allowed="finite seconds > 0")
                for c, lo in (("tp", 1), ("batch", 1), ("new_tokens", 1), ("context", 0)):
                    try:
                        x = float(r[pos[c]])
                    except ValueError:
                        x = float("nan")
                    if not (math.isfinite(x) and x.is_integer() and lo <= x <= 2**31):
                        raise SpecError(f"profile {name!r} line {line}: {c}={r[pos[c]]!r} is not allowed; must be an "
                                        f"integer ≥ {lo}", value=r[pos[c]], allowed=f"integer >= {lo}")
                key = tuple(r[pos[c]] for c in KEY)
                if key in seen:
                    l0, m0 = seen[key]
                    if abs(m0 - med) > 1e-9 * max(m0, med):
                        raise SpecError(f"profile {name!r} lines {l0} and {line}: conflicting duplicate rows "
                                        f"({m0!r} s vs {med!r} s for one shape/batch/context/mode); keep one",
                                        value=[l0, line], allowed="one row per measured point")
                else:
                    seen[key] = (line, med)
                row_gpu = r[pos["gpu"]].strip()
                if meta_gpu and row_gpu and row_gpu != meta_gpu:
                    raise SpecError(f"profile {name!r} line {line}: gpu={row_gpu!r} but its metadata says "
                                    f"gpu={meta_gpu!r}; one table holds one GPU's measurements",
                                    value=row_gpu, allowed=meta_gpu)
                if not row_gpu and not meta_gpu:
                    raise SpecError(f"profile {name!r} line {line}: gpu is empty and the table has no metadata "
                                    "naming its GPU; fill the gpu column", value="", allowed="a catalog GPU name")
                gpus.add(row_gpu or meta_gpu)
                ok += 1
    except UnicodeDecodeError:
        raise SpecError(f"profile {name!r} is not a text CSV file") from None
    except csv.Error as e:
        raise SpecError(f"profile {name!r} is not a readable CSV file ({e})") from None
    if ok == 0:
        raise SpecError(f"profile {name!r} holds no measured rows (header only or all skipped)",
                        value=name, allowed="a table with at least one ok row")
    if gpu is not None and not allow_gpu_mismatch:
        other = sorted(g for g in gpus if g and g != gpu)
        if other:
            raise SpecError(f"profile {name!r} was measured on {', '.join(other)}, not on gpu={gpu!r}; pass the "
                            "matching --gpu or --allow-gpu-mismatch", value=other[0], allowed=gpu)
    return ok


def order_violations(rows, drop: float = 0.10) -> dict:
    """{mode: {"groups", "of", "worst", "examples"}}: (layer shape, tp, batch, context) groups whose
    median falls by more than `drop` as new tokens grow — a longer verify timed faster than a shorter
    one, the mark of host contention during eager timing (or of a kernel switch at one token on the
    largest layers, which graph mode shows too). `worst` is the largest fall (fraction)."""
    groups: dict = {}
    for r in rows:
        if r.get("component") != "layer" or r.get("status", "ok") not in ("ok", ""):
            continue
        k = (r["mode"], r["shape"], int(r["tp"]), int(r["batch"]), int(r["context"]))
        groups.setdefault(k, {})[int(r["new_tokens"])] = float(r["median_s"])
    out: dict = {}
    for (mode, shape, tp, b, c), pts in groups.items():
        e = out.setdefault(mode, {"groups": 0, "of": 0, "worst": 0.0, "examples": []})
        e["of"] += 1
        t = [pts[n] for n in sorted(pts)]
        fall = max((1 - t[i] / max(t[:i]) for i in range(1, len(t))), default=0.0)
        if fall > drop:
            e["groups"] += 1
            e["worst"] = max(e["worst"], fall)
            if len(e["examples"]) < 3:
                e["examples"].append(f"{shape} tp{tp} b{b} ctx{c}: −{fall:.0%}")
    return out


# ---- physical consistency -------------------------------------------------------------------------
# A forward does more work with more batch rows, more new tokens, a longer KV cache, and less per
# rank at a higher tensor-parallel degree; its time should follow, within timing noise. TOL: the fall
# tolerated before a pair of rows is flagged — 10 %, the drop order_violations already uses (kernel
# selection changes at one size move graph-mode layers by a few per cent; docs/accuracy.md).
TOL = 0.10
AXES = ("batch", "new_tokens", "context")


def consistency_flags(points_by_group: dict, tol: float = TOL) -> dict:
    """{group: [(axis, lower point, higher point, fall)]} for a profile's points grouped by
    (component, shape key, tp, mode, dtype bytes) → [(batch, new_tokens, context, median_s)]:
    each pair of neighbouring grid points along one axis (the others equal) whose time falls by more
    than `tol` as the axis grows, and each point whose tp-k shard is more than `tol` slower than the
    tp-k/2 (or tp 1) shard of the same layer at the same point ('tp' axis)."""
    out: dict = {}
    for g, pts in points_by_group.items():
        at = {p[:3]: p[3] for p in pts}
        for ax in range(3):
            lines: dict = {}
            for k in at:
                lines.setdefault(k[:ax] + k[ax + 1:], []).append(k)
            for ks in lines.values():
                ks.sort(key=lambda k: k[ax])
                for a, b in zip(ks, ks[1:]):
                    fall = 1 - at[b] / at[a]
                    if fall > tol:
                        out.setdefault(g, []).append((AXES[ax], a, b, fall))
    by_layer: dict = {}
    for (comp, key, tp, mode, by), pts in points_by_group.items():
        by_layer.setdefault((comp, key, mode, by), {})[tp] = {p[:3]: p[3] for p in pts}
    for (comp, key, mode, by), per_tp in by_layer.items():
        tps = sorted(per_tp)
        for lo, hi in zip(tps, tps[1:]):
            for k, t in per_tp[hi].items():
                if k in per_tp[lo] and t > per_tp[lo][k] * (1 + tol):
                    out.setdefault((comp, key, hi, mode, by), []).append(("tp", k, k, t / per_tp[lo][k] - 1))
    return out


# CAP_TOL: a row this much slower than a row of the same group that is at least as large on every
# axis is contradicted by its own table (host contention in eager mode: the H100 profile's llama-65b
# tp 4 shard at batch 4, context 128 took 0.759 ms against 0.458 ms at context 512). 25 %: above the
# few-per-cent kernel-selection steps graph-mode layers show, so only such spikes are capped.
CAP_TOL = 0.25


def cap_contradicted(pts, tol: float = CAP_TOL):
    """(points, capped) for one group's points [(batch, new_tokens, context, median_s)]: each point more
    than `tol` slower than a point that dominates it (every coordinate ≥, one >) takes that point's
    time instead — the largest time physics allows it; `capped` lists (point, new time)."""
    import numpy as np

    a = np.asarray([p[:4] for p in pts], dtype=float).reshape(-1, 4)
    if len(a) < 2:
        return list(pts), []
    dom = (a[None, :, :3] >= a[:, None, :3]).all(-1) & (a[None, :, :3] > a[:, None, :3]).any(-1)
    bound = np.where(dom, a[None, :, 3], np.inf).min(axis=1)  # [i]: fastest point dominating i
    hit = bound < a[:, 3] * (1 - tol)
    out = [tuple(p[:3]) + (float(bound[i]) if hit[i] else p[3],) + tuple(p[4:]) for i, p in enumerate(pts)]
    return out, [(tuple(pts[i][:4]), float(bound[i])) for i in np.flatnonzero(hit)]


def describe_capped(capped: list, n_points: int, mode: str, tp: int, tol: float = CAP_TOL) -> str:
    """One note for an answer served by capped rows."""
    (b, n, c, t), new = capped[0]
    return (f"physical-consistency check: {len(capped)} of this shape's {n_points} {mode}-mode tp {tp} rows "
            f"were over {tol:.0%} slower than a larger point and are capped at it (e.g. b{b} n{n} ctx{c} "
            f"{t * 1e3:.3f} → {new * 1e3:.3f} ms); re-time them")


def describe_flags(flags: list, n_points: int, mode: str, tp: int, tol: float = TOL) -> str:
    """One note for an answer that a flagged group of rows serves."""
    ex = flags[0]
    what = (f"tp {tp} shard {ex[3]:.0%} slower than the smaller tp's at b{ex[1][0]} n{ex[1][1]} ctx{ex[1][2]}"
            if ex[0] == "tp" else
            f"time falls {ex[3]:.0%} as {ex[0]} grows, b{ex[1][0]} n{ex[1][1]} ctx{ex[1][2]} → "
            f"b{ex[2][0]} n{ex[2][1]} ctx{ex[2][2]}")
    axes = ", ".join(a for a in AXES + ("tp",) if any(f[0] == a for f in flags))
    return (f"physical-consistency check: {len(flags)} row pair(s) of this shape's {n_points} {mode}-mode tp {tp} "
            f"rows break monotonicity in {axes} beyond {tol:.0%} (e.g. {what}): re-time them; this answer may be off")


def consistency_report(rows, tol: float = TOL) -> dict:
    """{mode: {"flagged_groups", "groups", "pairs", "examples"}} of LatencyTable rows (dicts) — what
    `specperf profile` prints and stores after a sweep."""
    groups: dict = {}
    for r in rows:
        if r.get("component") not in ("layer", "lm_head") or r.get("status", "ok") not in ("ok", ""):
            continue
        key = r["shape"] if r["component"] == "layer" else r["head_shape"]
        groups.setdefault((r["component"], key, int(r["tp"]), r["mode"], r.get("dtype", "fp16")), []).append(
            (int(r["batch"]), int(r["new_tokens"]), int(r["context"]), float(r["median_s"])))
    flags = consistency_flags(groups, tol)
    out: dict = {}
    for g in groups:
        e = out.setdefault(g[3], {"flagged_groups": 0, "groups": 0, "pairs": 0, "examples": []})
        e["groups"] += 1
        if g in flags:
            e["flagged_groups"] += 1
            e["pairs"] += len(flags[g])
            if len(e["examples"]) < 3:
                e["examples"].append(f"{g[0]} {g[1]} tp{g[2]}: " + describe_flags(flags[g], len(groups[g]), g[3], g[2],
                                                                                   tol).split("(e.g. ")[1].split(")")[0])
    return out
