"""The speculation side of a serving engine: a perfmodel.specdec SpeculationMethod (draft model,
EAGLE/MTP/Medusa heads, n-gram lookup — the one seam that owns per-iteration costs and tokens per
iteration) with its acceptance and its latency provider, plus what a load simulation needs beyond
one iteration: per-sequence token draws and the proposer's own prefill of a prompt.

Key assumptions: acceptance is i.i.d. across sequences and iterations at the AcceptanceModel's rates
by position (perfmodel.specdec.maths.simulate_tokens_per_iteration), independent of batch and load;
a method whose expected tokens are not a chain's (a token tree) draws the two whole numbers around
its expected value with that mean; the proposer prefills a prompt as one forward of its
`proposer_spec` (a draft model or a head as a 1-layer model; none for n-gram lookup or Medusa).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from specperf.perfmodel.specdec.acceptance import AcceptanceModel
from specperf.perfmodel.specdec.maths import simulate_tokens_per_iteration


def max_band(sources: dict, prefix: str = "") -> float:
    """Largest relative 90 % band among the provenance parts of `sources` (keys starting with
    `prefix`); 0 where none is known."""
    out = 0.0
    for key, prov in sources.items():
        if not key.startswith(prefix):
            continue
        for part in getattr(prov, "parts", ()):
            if part.band is not None:
                out = max(out, float(part.band))
    return out


@dataclass(frozen=True)
class Speculation:
    """A SpeculationMethod served by `latency` (the proposer-side LatencyProvider) at `acceptance`."""
    method: object  # perfmodel.specdec.methods.SpeculationMethod
    acceptance: AcceptanceModel
    latency: object
    target: object  # the target ModelSpec (heads read its width)
    mode: str = "graph"

    @property
    def name(self) -> str:
        return self.method.describe()

    def tokens_per_iteration(self, gamma):
        return np.asarray(self.method.tokens_per_iteration(self.acceptance, np.atleast_1d(gamma)), dtype=float)

    def _chain(self, gamma) -> bool:
        g = np.atleast_1d(gamma)
        chain = self.acceptance.tokens_per_iteration(g)
        return bool(np.allclose(self.tokens_per_iteration(g), chain, rtol=1e-12, atol=0))

    def sample_tokens(self, rng, n, gamma):
        if self._chain(gamma):
            ab = self.acceptance.alpha_by_position or (self.acceptance.alpha,)
            return simulate_tokens_per_iteration(ab, int(gamma), int(n), rng)
        e = float(self.tokens_per_iteration(gamma)[0])
        lo = int(np.floor(e))
        return lo + (rng.random(int(n)) < e - lo).astype(int)

    def prefill_s(self, tokens, context):
        spec = self.method.proposer_spec(self.target)
        shape = np.broadcast(np.asarray(tokens), np.asarray(context)).shape
        if spec is None:
            return np.zeros(shape)
        return self.latency.forward(spec, 1, tokens, context, 1, self.mode).total_s + np.zeros(shape)
