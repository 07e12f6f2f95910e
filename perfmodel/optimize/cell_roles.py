"""Each optimiser cell's latency roles (issue 26): for one draft layer shape at one (batch, context),
the (kind, band) of the draft step at every γ, of verification and overhead at every γ, and of the
autoregressive baseline — from that cell's own sources (perfmodel.specdec.cell_bands, the same
queries predict makes), so a cell's ranges and win probabilities do not depend on the other γ,
batch, context or modes searched. Computed when first asked and kept.
"""
from __future__ import annotations

import numpy as np

from specperf.perfmodel.specdec.cell_bands import baseline_query, fill, prefixed
from specperf.perfmodel.specdec.maths import draft_context
from specperf.perfmodel.specdec.uncertainty import fallback_band


class CellRoles:
    """roles(shape, bi, ci) → {"draft"|"target"|"overhead": {"kind", "band"} over γ, "baseline": scalars}."""

    def __init__(self, provider, draft_provider, target, shapes, batch, context, gammas, tp: int, mode: str):
        self.p, self.dp, self.target, self.shapes = provider, draft_provider or provider, target, shapes
        self.b, self.c, self.g = (np.atleast_1d(np.asarray(v)) for v in (batch, context, gammas))
        self.tp, self.mode, self.fb = tp, mode, fallback_band(mode)
        self._draft, self._target, self.notes = {}, {}, []

    def _fill(self, q, sizes, roles):
        got, notes = fill(q, sizes, roles, self.fb)
        self.notes = list(dict.fromkeys(self.notes + notes))
        return got

    def draft(self, s: int, bi: int, ci: int) -> dict:
        key = (s, bi, ci)
        if key not in self._draft:
            b, c, spec = self.b[bi], self.c[ci], self.shapes[s]
            q = lambda sel: prefixed(self.dp.forward(spec, b, 1, draft_context(c, self.g[sel[0]]), 1, self.mode).sources,
                                     "draft")
            self._draft[key] = self._fill(q, (self.g.size,), ("draft",))["draft"]
        return self._draft[key]

    def target_side(self, bi: int, ci: int) -> dict:
        if (bi, ci) not in self._target:
            b, c = self.b[bi], self.c[ci]

            def q(sel):
                g = self.g[sel[0]]
                return {**prefixed(self.p.forward(self.target, b, g + 1, c, self.tp, self.mode).sources, "target"),
                        "overhead": self.p.overhead_s(self.target, b, g, self.mode)[1]}
            side = self._fill(q, (self.g.size,), ("target", "overhead"))
            base = self._fill(baseline_query(self.p, self.target, self.b[[bi]], self.c[[ci]], self.tp, self.mode),
                              (1, 1), ("baseline",))["baseline"]
            side["baseline"] = {"kind": base["kind"][0, 0], "band": float(base["band"][0, 0])}
            self._target[(bi, ci)] = side
        return self._target[(bi, ci)]

    def roles(self, s: int, bi: int, ci: int) -> dict:
        return {"draft": self.draft(s, bi, ci), **self.target_side(bi, ci)}
