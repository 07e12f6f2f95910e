"""Latency error bands per (batch, context, γ) cell (issue 26): each cell's role (draft, target,
overhead; the autoregressive baseline) gets the (kind, band) of the sources that answer *that cell*,
so a row's interval does not depend on which other γ, batch or context values were asked with it.

How: a provider's Provenance counts source kinds over the points it was asked. The grid is asked
whole, then split until every cell in a
query is answered by one source (the first axis longer than one halved: batch, then context, then γ);
kinds are piecewise constant over a grid, so a sweep costs tens of provider calls, not one per cell. Draws: one standard normal per source kind, each from its own
seeded stream (`stream`), shared by every cell and role that kind answers and scaled by each cell's
own band — so adding a γ answered by a new kind draws a new stream and moves no other cell's draw. A cell
interpolated between measured rows is reported and drawn as 'measured' (DRAW_KIND).
"""
from __future__ import annotations

import zlib

import numpy as np

Z90 = 1.6448536269514722
ROLES = ("draft", "target", "overhead")
# 'interpolated' is between measured rows of the same profile: it carries that profile's error (the
# shipped bands give both one value, from one validation), so it shares the 'measured' draw
DRAW_KIND = {"interpolated": "measured"}


def draw_kind(kind: str) -> str:
    """The source kind whose draw (and band) a kind shares."""
    return DRAW_KIND.get(kind, kind)


def stream(seed: int, name: str) -> np.random.Generator:
    """The seeded generator of one named draw ('kind:measured', 'baseline', 'acceptance', …)."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _parts(sources: dict, role: str):
    for key, prov in sources.items():
        if (key == role or key.startswith(role + "_")) and hasattr(prov, "parts"):
            yield key, [s for m in (prov.members or (prov,)) for s in m.parts if s.kind != "none"]


def role_band(sources: dict, role: str, fallback: float | None = None) -> tuple[str, float, list[str]]:
    """(kind, band, notes) of the widest-band source among `role`'s components ('draft', 'target',
    'overhead'). A source without a band (operator before its shape check ships) takes `fallback`."""
    best, notes = ("none", 0.0), []
    for _, parts in _parts(sources, role):
        for s in parts:
            b = s.band
            if b is None:
                b = fallback if fallback is not None else 0.0
                notes.append(f"{role}: no validated band for source kind '{s.kind}'"
                             + (f"; the fitted-analytical band ±{b:.0%} is used" if fallback is not None
                                else "; taken as exact"))
            if b >= best[1]:
                best = (s.kind, float(b))
    return best[0], best[1], notes


def uniform(sources: dict, roles, fallback: float | None = None) -> bool:
    """True when every cell of the points asked gets the same (kind, band) for each of `roles`: the
    widest band is carried, at every point, by one component answered by one draw kind, and no other
    kind reaches that band."""
    for r in roles:
        comps = [[(draw_kind(s.kind), fallback or 0.0 if s.band is None else s.band) for s in parts]
                 for _, parts in _parts(sources, r)]
        comps = [c for c in comps if c]
        if not comps:
            continue
        top = max(b for c in comps for _, b in c)
        if len({k for c in comps for k, b in c if b == top}) > 1:
            return False
        if not any(all(b == top for _, b in c) for c in comps):
            return False
    return True


def fill(query, sizes: tuple, roles=ROLES, fallback: float | None = None) -> tuple[dict, list[str]]:
    """({role: {"kind": object array `sizes`, "band": float array}}, notes). `query(sel)` returns the
    sources of the sub-grid `sel` (a tuple of index arrays, one per axis)."""
    out = {r: {"kind": np.full(sizes, "none", dtype=object), "band": np.zeros(sizes)} for r in roles}
    notes: list[str] = []
    todo = [tuple(np.arange(s) for s in sizes)]
    while todo:
        sel = todo.pop()
        src = query(sel)
        lens = [len(a) for a in sel]
        if max(lens) > 1 and not uniform(src, roles, fallback):
            ax = min(i for i in range(len(lens)) if lens[i] > 1)
            h = lens[ax] // 2
            todo += [sel[:ax] + (part,) + sel[ax + 1:] for part in (sel[ax][:h], sel[ax][h:])]
            continue
        ix = np.ix_(*sel)
        for r in roles:
            k, b, ns = role_band(src, r, fallback)
            out[r]["kind"][ix], out[r]["band"][ix] = draw_kind(k), b
            notes += ns
    return out, list(dict.fromkeys(notes))


def prefixed(sources: dict, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in sources.items()}


def baseline_query(latency, target, batch, context, tp: int, mode: str):
    """query(sel) over (batch, context) of the autoregressive step: one target forward over one token
    and the overhead at γ = 0 (methods.target_costs' baseline), as role 'baseline'."""
    b, c = np.asarray(batch), np.asarray(context)

    def q(sel):
        B, C = b[sel[0]][:, None, None], c[sel[1]][None, :, None]
        src = prefixed(latency.forward(target, B, 1, C, tp, mode).sources, "baseline")
        src["baseline_overhead"] = latency.overhead_s(target, B, 0, mode)[1]
        return src
    return q


def prediction_roles(method, latency, proposer_latency, target, batch, context, gammas, tp: int, mode: str,
                     fallback: float | None = None) -> tuple[dict, list[str]]:
    """Every cell's roles of one prediction (predict's method over batch × context × γ) plus the
    baseline's (batch, context): ({"draft"|"target"|"overhead": (B,C,G), "baseline": (B,C)}, notes)."""
    b, c, g = (np.atleast_1d(np.asarray(v)) for v in (batch, context, gammas))

    def q(sel):
        return method.costs(latency, target, b[sel[0]], c[sel[1]], g[sel[2]], tp, mode,
                            proposer_latency=proposer_latency).sources
    roles, notes = fill(q, (b.size, c.size, g.size), ROLES, fallback)
    base, n2 = fill(baseline_query(latency, target, b, c, tp, mode), (b.size, c.size), ("baseline",), fallback)
    return {**roles, **base}, list(dict.fromkeys(notes + n2))


def kind_normals(kinds, n: int, seed: int) -> dict:
    """{kind: (n,) standard normals}, each kind from its own stream."""
    return {k: stream(seed, f"kind:{k}").standard_normal(n) for k in sorted(set(kinds))}


def cell_factors(role: dict, z: dict, n: int) -> np.ndarray:
    """(n, *shape) multiplicative factors of one role: exp(ln(1 + band)/z90 · z_kind) per cell."""
    kind, band = np.asarray(role["kind"], dtype=object), np.asarray(role["band"], dtype=float)
    keys = sorted(z)
    zs = np.stack([z[k] for k in keys]) if keys else np.zeros((1, n))
    idx = np.vectorize(lambda k: keys.index(k) if k in z else 0, otypes=[int])(kind) if kind.size else np.zeros(kind.shape, int)
    sig = np.log1p(band) / Z90
    return np.exp(sig[None] * np.moveaxis(zs[idx], -1, 0))


def all_kinds(roles: dict) -> list[str]:
    return sorted({str(k) for r in roles.values() for k in np.asarray(r["kind"]).ravel()})


def summary(roles: dict, where=None) -> dict:
    """{role: {"kind", "band"}}: each role's widest band over the cells `where` selects (all: None)."""
    out = {}
    for r, v in roles.items():
        kind, band = np.asarray(v["kind"], dtype=object), np.asarray(v["band"], dtype=float)
        if where is not None:
            kind, band = kind[where], band[where]
        j = int(np.argmax(band.ravel())) if band.size else 0
        out[r] = {"kind": str(kind.ravel()[j]) if kind.size else "none", "band": float(band.ravel()[j]) if band.size else 0.0}
    return out
