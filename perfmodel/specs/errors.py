"""The one error type of bad input anywhere in specperf (the CLI turns it into exit code 2 and, with
`--json`, a document {"error", "value", "allowed"}); SpecError is its name for model, GPU and input
descriptions.

Key assumptions: every message is one line naming the bad value and what is allowed; when a raise
site gives no explicit `value`/`allowed`, they are read from the house form `NAME=VALUE is not
allowed; ALLOWED` (best effort, display only).
"""
from __future__ import annotations

import re

_CANONICAL = re.compile(r"^(?:[^:]*: )?(?P<name>[\w\-. ]+)=(?P<value>.+?) (?:is not allowed|is empty)[;:,]?\s*(?P<allowed>.*)$")


class InputError(ValueError):
    """Bad user input: `str(e)` is one line; `.value` and `.allowed` are what a JSON error carries."""

    def __init__(self, message: str, *, value=None, allowed=None):
        if len(str(message).splitlines()) > 1:  # a value that holds a line break must not break the line
            message = " ".join(str(message).splitlines())
        super().__init__(message)
        if value is None and allowed is None:
            m = _CANONICAL.match(message)
            if m:
                value, allowed = m.group("value"), m.group("allowed") or None
        self.value = value
        self.allowed = allowed

    def to_dict(self) -> dict:
        return {"error": str(self), "value": self.value, "allowed": self.allowed}


class SpecError(InputError):
    """Bad model description; the message is one line naming the value and what is allowed."""
