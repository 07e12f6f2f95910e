"""Choose the latency provider for a prediction: a measured profile when one is given or shipped
for the GPU (perfmodel/data/<gpu>.csv), the analytical roofline otherwise.

Key assumption: a shipped profile applies only to the GPU it was measured on.
"""
from __future__ import annotations

from pathlib import Path

from perfmodel.specs.hardware import HardwareProfile
from perfmodel.latency.analytical import AnalyticalLatency
from perfmodel.specs.models import SpecError

DATA = Path(__file__).resolve().parent.parent / "data"


def shipped_profile(gpu: str) -> Path | None:
    """The profile shipped for catalog GPU `gpu`, or None."""
    p = DATA / f"{gpu}.csv"
    return p if p.exists() else None


def latency_provider(hw: HardwareProfile, profile: str | None = None, use_shipped: bool = True):
    """Return an object with .forward(spec, b, n, ctx, tp, mode) and .overhead_s(spec, b, γ, mode)."""
    from perfmodel.latency.measured import MeasuredLatency

    if profile is not None:
        if not Path(profile).is_file():
            raise SpecError(f"profile {str(profile)!r} does not exist")
        return MeasuredLatency(profile, hw)
    if use_shipped:
        p = shipped_profile(hw.name)
        if p is not None:
            return MeasuredLatency(p, hw)
        from perfmodel.latency.tp import with_allreduce_curve  # tp > 1: shipped TP tables + all-reduce curve

        return with_allreduce_curve(AnalyticalLatency(hw), hw.name)
    return AnalyticalLatency(hw)
