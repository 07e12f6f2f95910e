"""α-model files: (draft, α) pairs as JSON or CSV, or coefficients a user already fitted, read into
the plain document perfmodel.specdec.alpha_model fits or loads (no model code here, so no import
cycle). Key assumption: a pair's `alpha_ci` is a 95 % interval.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from specperf.perfmodel.specs.models import SpecError


def read_alpha_document(path: str | Path) -> dict:
    """An α-model file: JSON {"pairs": [{"draft", "alpha", "alpha_ci"?}], "source"?} or a bare list
    of pairs, or {"coefficients": {...}} (a fitted model); CSV with columns draft,alpha[,alpha_lo,alpha_hi]."""
    p = Path(path)
    from specperf.perfmodel.specs.safeio import MAX_JSON_BYTES, loads_json, read_text  # bounded, regular files only

    text = read_text(p, "alpha-model file", MAX_JSON_BYTES)
    if p.suffix.lower() == ".csv":
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline=None)))  # universal newlines
        except csv.Error as e:
            raise SpecError(f"alpha-model file {str(p)!r} is not a readable CSV file ({e})") from None
        if not rows or not {"draft", "alpha"} <= set(rows[0]):
            raise SpecError(f"alpha-model file {str(p)!r}: CSV needs columns draft,alpha")
        pairs = []
        for i, r in enumerate(rows, start=2):
            try:
                d = {"draft": r["draft"].strip(), "alpha": float(r["alpha"])}
                if r.get("alpha_lo") and r.get("alpha_hi"):
                    d["alpha_ci"] = [float(r["alpha_lo"]), float(r["alpha_hi"])]
            except (TypeError, ValueError):
                raise SpecError(f"alpha-model file {str(p)!r} line {i}: alpha is not a number") from None
            pairs.append(d)
        return _checked({"pairs": pairs, "source": str(p)}, p)
    try:
        doc = loads_json(text, f"alpha-model file {str(p)!r}")
    except json.JSONDecodeError as e:
        raise SpecError(f"alpha-model file {str(p)!r} is not valid JSON ({e})") from None
    if isinstance(doc, list):
        doc = {"pairs": doc}
    if not isinstance(doc, dict) or not ("pairs" in doc or "coefficients" in doc):
        raise SpecError(f"alpha-model file {str(p)!r} needs 'pairs' (a list of {{draft, alpha}}) "
                        "or 'coefficients'")
    doc.setdefault("source", str(p))
    return _checked(doc, p)


def _checked(doc: dict, p: Path) -> dict:
    """Every pair names a draft and an α in [0, 1), its alpha_ci (if any) an ordered interval."""
    for i, r in enumerate(doc.get("pairs") or []):
        if not isinstance(r, dict) or "draft" not in r or "alpha" not in r:
            raise SpecError(f"alpha-model file {str(p)!r}: pair {i} needs 'draft' and 'alpha'")
        from specperf.perfmodel.specdec.acceptance import check_alpha, check_interval

        if isinstance(r["alpha"], bool):
            raise SpecError(f"alpha-model file {str(p)!r}: pair {i} alpha={r['alpha']!r} is not allowed; α must be in [0, 1)")
        try:  # a number in [0, 1) (NaN, 1.5 or 1e308 would be carried into every fit)
            r["alpha"] = check_alpha(r["alpha"], f"alpha-model file {str(p)!r}: pair {i} alpha")
        except (TypeError, ValueError) as e:
            if isinstance(e, SpecError):
                raise
            raise SpecError(f"alpha-model file {str(p)!r}: pair {i} alpha={r['alpha']!r} is not allowed; "
                            "α must be a number in [0, 1)") from None
        if r.get("alpha_ci") is not None:  # ordered, in [0, 1]: an inverted one is refused, not squared away
            r["alpha_ci"] = list(check_interval(r["alpha_ci"], f"alpha-model file {str(p)!r}: pair {i} alpha_ci"))
    return doc
