"""JSON safety: replace non-finite floats (NaN, ±inf) by None, unwrap numpy scalars and arrays.

Key assumption: every JSON document specperf writes must hold finite values only, so a missing or
undefined number is `null`, never `NaN`.
"""
from __future__ import annotations

import math


def finite(obj):
    """Return a copy of `obj` (dicts, lists, tuples, numpy values) with non-finite floats as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # numpy scalar or 0-d array
        return finite(obj.item()) if getattr(obj, "ndim", 0) == 0 else finite(obj.tolist())
    if hasattr(obj, "tolist"):
        return finite(obj.tolist())
    if callable(getattr(obj, "describe", None)):  # provenance (perfmodel.latency.source): its text
        return obj.describe()
    return obj
