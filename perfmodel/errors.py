"""One error type for bad input anywhere in specperf: a one-line message naming the value and
what is allowed, with the value and the allowed range also carried as data (for `--json` errors).

Key assumption: messages follow the house form `NAME=VALUE is not allowed; ALLOWED`; when a raise
site gives no explicit `value`/`allowed`, they are read from that form (best effort, display only).
"""
from __future__ import annotations

import re

_CANONICAL = re.compile(r"^(?:[^:]*: )?(?P<name>[\w\-. ]+)=(?P<value>.+?) (?:is not allowed|is empty)[;:,]?\s*(?P<allowed>.*)$")


class InputError(ValueError):
    """Bad user input: `str(e)` is one line; `.value` and `.allowed` are what a JSON error carries."""

    def __init__(self, message: str, *, value=None, allowed=None):
        super().__init__(message)
        if value is None and allowed is None:
            m = _CANONICAL.match(message)
            if m:
                value, allowed = m.group("value"), m.group("allowed") or None
        self.value = value
        self.allowed = allowed

    def to_dict(self) -> dict:
        return {"error": str(self), "value": self.value, "allowed": self.allowed}
