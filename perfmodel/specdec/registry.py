"""The speculation methods by name: the one list the command line, predict, optimize and the
exports read (`--method draft|eagle|…`). Adding a method = its module
(implementing perfmodel.specdec.methods.SpeculationMethod) + one line here.

Key assumption: a name maps to one factory taking keyword arguments (draft=… for the draft model).
"""
from __future__ import annotations

from functools import partial

from specperf.perfmodel.specdec.draft_model import DraftModel
from specperf.perfmodel.specdec.heads import MedusaHeads, head_method
from specperf.perfmodel.specdec.methods import SpeculationMethod
from specperf.perfmodel.specdec.mlp_speculator import MLPSpeculator
from specperf.perfmodel.specdec.ngram import NgramLookup
from specperf.perfmodel.specs.models import SpecError

METHODS = {"draft_model": DraftModel, "eagle": partial(head_method, "eagle"), "eagle3": partial(head_method, "eagle3"),
           "mtp": partial(head_method, "mtp"), "medusa": MedusaHeads, "ngram": NgramLookup,
           "mlp_speculator": MLPSpeculator}
ALIASES = {"draft": "draft_model"}  # --method draft (the short form on the command line)
NAMES = ("draft", *list(METHODS)[1:])  # as the command line spells them


def check_method(name: str) -> str:
    """The registry key of `name`, or one clear error naming the allowed values."""
    key = ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in METHODS:
        raise SpecError(f"method={name!r} is not allowed; use one of {', '.join(NAMES)}",
                        value=name, allowed=", ".join(NAMES))
    return key


def make_method(name: str, **kw) -> SpeculationMethod:
    """The method `name` (METHODS or ALIASES) built with its keyword arguments."""
    return METHODS[check_method(name)](**kw)
