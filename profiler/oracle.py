"""Synthetic acceptance oracle for the speculative-decoding loop, and the statistics that check it.

Like vLLM's synthetic rejection sampler, the oracle ignores the draft's tokens: draft position i
is accepted with probability α_i given that positions < i were (i.i.d. when every α_i = α), and
the first rejection ends the run. The loop's latency can then be measured against a known
acceptance. Key assumption: the uniforms are drawn on the loop's device from a seeded generator,
one (batch × γ) draw per iteration, so the oracle costs what a real accept/reject kernel costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from specperf.perfmodel.specdec.maths import extend_positions, tokens_per_iteration_by_position
from specperf.perfmodel.specs.models import SpecError


class AcceptanceOracle:
    """Draws the number of accepted draft tokens per sequence, on the device."""

    def __init__(self, alpha_by_position, gamma_max: int, device="cpu", seed: int = 0):
        ab = np.atleast_1d(np.asarray(alpha_by_position, dtype=float))
        if ab.size == 0 or np.any(~np.isfinite(ab)) or np.any(ab < 0) or np.any(ab > 1):
            raise SpecError(f"alpha={alpha_by_position!r} is not allowed; each α_i must be in [0, 1]")
        if gamma_max < 1:
            raise SpecError(f"gamma_max={gamma_max} is not allowed; must be ≥ 1")
        self.alpha_by_position = extend_positions(ab, gamma_max)
        self.gamma_max = int(gamma_max)
        self.device = torch.device(device)
        self._alpha = torch.tensor(self.alpha_by_position, dtype=torch.float32, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def accepted(self, batch: int, gamma: int) -> torch.Tensor:
        """int64 [batch]: leading run of acceptances among γ draft positions (0..γ)."""
        if not 1 <= gamma <= self.gamma_max:
            raise SpecError(f"gamma={gamma} is not allowed; this oracle covers 1..{self.gamma_max}")
        u = torch.rand((batch, gamma), generator=self.generator, device=self.device)
        ok = (u < self._alpha[:gamma]).to(torch.int64)
        return ok.cumprod(dim=1).sum(dim=1)

    def expected_tokens_per_iteration(self, gamma: int) -> float:
        """Closed form: 1 + Σ_{k=1..γ} Π_{i≤k} α_i (Leviathan et al. 2023, Thm 3.8 when i.i.d.)."""
        return float(tokens_per_iteration_by_position(self.alpha_by_position, gamma))


def tokens_per_iteration_variance(alpha_by_position, gamma: int) -> float:
    """Var of tokens per iteration T = 1 + K, K the leading run: E[T²] − E[T]² with
    P(K ≥ k) = Π_{i≤k} α_i, so E[K] = Σ P(K≥k) and E[K²] = Σ (2k − 1) P(K≥k)."""
    ab = extend_positions(np.atleast_1d(np.asarray(alpha_by_position, dtype=float)), max(gamma, 1))
    surv = np.cumprod(ab[:gamma])  # P(K ≥ k), k = 1..γ
    k = np.arange(1, gamma + 1)
    ek = surv.sum()
    ek2 = ((2 * k - 1) * surv).sum()
    return float(ek2 - ek * ek)


@dataclass(frozen=True)
class RealisedAcceptance:
    """Realised tokens per iteration against the closed form, with the sampling error."""
    gamma: int
    n_samples: int  # sequence-iterations
    mean_tokens: float
    expected_tokens: float
    standard_error: float  # of the mean, from the closed-form variance

    @property
    def z(self) -> float:
        """(realised − expected) / standard error; |z| < 4 is sampling error at any sane n."""
        if self.standard_error == 0:
            return 0.0 if self.mean_tokens == self.expected_tokens else math.inf
        return (self.mean_tokens - self.expected_tokens) / self.standard_error


def realised_acceptance(tokens_per_sequence_iteration, alpha_by_position, gamma: int) -> RealisedAcceptance:
    """Summarise the tokens each sequence produced in each iteration (any array shape)."""
    t = np.asarray(tokens_per_sequence_iteration, dtype=float).ravel()
    if t.size == 0:
        raise ValueError("no iterations to summarise")
    var = tokens_per_iteration_variance(alpha_by_position, gamma)
    exp = float(tokens_per_iteration_by_position(np.atleast_1d(alpha_by_position), gamma))
    return RealisedAcceptance(gamma=int(gamma), n_samples=int(t.size), mean_tokens=float(t.mean()),
                              expected_tokens=exp, standard_error=math.sqrt(var / t.size))
