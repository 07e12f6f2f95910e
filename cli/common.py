"""Shared CLI helpers: list parsing, one-line errors with exit code 2, finite-only JSON output.

Imports only the standard library and typer so that every command starts fast.
"""
from __future__ import annotations

import functools
import json
import sys

import typer

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """Bad user input detected in the CLI layer."""


def fail(message: str) -> None:
    """Print one clear line and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def bad_input_errors() -> tuple:
    from perfmodel.specs.models import SpecError

    return (SpecError, UsageError)


def handle_errors(fn):
    """Turn library input errors into one line + exit 2 (never a traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except bad_input_errors() as e:
            fail(str(e))
        except MemoryError as e:
            fail(f"out of memory: {e}")
        except OSError as e:
            fail(f"{e.strerror or e}: {e.filename}" if getattr(e, "filename", None) else str(e))
    return wrapper


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a --dtype name (fp16, bf16, fp32 and their long forms)."""
    from perfmodel.latency.table import DTYPE_BYTES

    if dtype.lower() not in DTYPE_BYTES:
        raise UsageError(f"dtype={dtype!r} is not allowed; use fp16, bf16 or fp32")
    return DTYPE_BYTES[dtype.lower()]


def parse_ints(text: str, what: str, allow_zero: bool = False) -> list[int]:
    """'1,4,16' or '1..8' or '1..32:4' (step) → list of ints; each must be > 0 (or ≥ 0)."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if ".." in part:
                lo, _, rest = part.partition("..")
                hi, _, step = rest.partition(":")
                out.extend(range(int(lo), int(hi) + 1, int(step) if step else 1))
            else:
                out.append(int(part))
        except ValueError:
            raise UsageError(f"{what}={text!r} is not allowed; give integers like 1,4,16 or 1..8") from None
    if not out:
        raise UsageError(f"{what}={text!r} is empty; give at least one integer")
    for v in out:
        if v < 0 or (v == 0 and not allow_zero):
            raise UsageError(f"{what}={v} is not allowed; {what} must be a positive integer")
    return out


def parse_floats(text: str, what: str) -> list[float]:
    out = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            out.append(float(part))
        except ValueError:
            raise UsageError(f"{what}={part!r} is not a number") from None
    if not out:
        raise UsageError(f"{what}={text!r} is empty")
    return out


def parse_names(text: str, what: str) -> list[str]:
    out = [p.strip() for p in _split_models(str(text)) if p.strip()]
    if not out:
        raise UsageError(f"{what}={text!r} is empty; give at least one name")
    return out


def _split_models(text: str) -> list[str]:
    """Split 'a,b:n_layers=4,d_model=2048,c' into models: a comma followed by `field=` stays."""
    parts, cur = [], ""
    for tok in text.split(","):
        if cur and "=" in tok.split(":")[0] and ":" not in tok:
            cur += "," + tok
        else:
            if cur:
                parts.append(cur)
            cur = tok
    if cur:
        parts.append(cur)
    return parts


def finite(obj):
    """Replace non-finite floats by None so JSON output holds finite values only."""
    from perfmodel.jsonsafe import finite as _finite

    return _finite(obj)


def print_json(doc) -> None:
    sys.stdout.write(json.dumps(finite(doc), indent=2, allow_nan=False) + "\n")
