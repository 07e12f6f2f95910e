"""The one error type of bad model, GPU or input descriptions (the CLI turns it into exit code 2).

Key assumption: every message is one line naming the bad value and what is allowed."""


class SpecError(ValueError):
    """Bad model description; the message is one line naming the value and what is allowed."""
