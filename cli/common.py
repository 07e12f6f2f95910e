"""Shared CLI helpers: list parsing, one-line errors with exit code 2, finite-only JSON output.

Imports only the standard library and typer so that every command starts fast.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys

import typer

from specperf.perfmodel.specs.errors import InputError

EXIT_BAD_INPUT = 2
MAX_LIST_VALUES = 4096  # values one parse_ints / parse_floats list may hold (memory bound)
# optional modules -> the extra of pyproject.toml's [project.optional-dependencies] that installs them
EXTRAS = {"plotly": "plot", "kaleido": "plot", "scipy": "calibrate", "torch": "profile", "pandas": "data"}


class UsageError(InputError):
    """Bad user input detected in the CLI layer (one line; `value` and `allowed` as data)."""


def fail(message: str, json_out: bool = False, value=None, allowed=None) -> None:
    """Print one clear line on stderr (and with --json the error document on stdout); exit 2."""
    line = " ".join(str(message).split()) or "bad input"
    if json_out:
        sys.stdout.write(json.dumps(finite({"error": line, "value": _plain(value), "allowed": allowed})) + "\n")
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _plain(v):
    return v if v is None or isinstance(v, (int, float, str, bool)) else str(v)


def handle_errors(fn):
    """The validation layer's exit: any bad input (InputError, a ValueError from a reader, an
    unreadable or non-text file, a number too large) becomes one line + exit 2, never a traceback.
    Set SPECPERF_DEBUG=1 to see the traceback instead."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        js = bool(kwargs.get("json_out"))
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except Exception as e:  # noqa: BLE001 — classified below; unknown errors re-raised
            if os.environ.get("SPECPERF_DEBUG"):
                raise
            if isinstance(e, InputError):
                fail(str(e), js, e.value, e.allowed)
            if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in EXTRAS:
                top = e.name.split(".")[0]
                fail(f"this command needs {top}, which is not installed: pip install 'specperf[{EXTRAS[top]}]'",
                     js, value=top, allowed=f"specperf[{EXTRAS[top]}]")
            if isinstance(e, UnicodeDecodeError):
                fail(f"file is not UTF-8 text ({e.reason} at byte {e.start})", js, allowed="a UTF-8 text file")
            if isinstance(e, OSError):
                name = getattr(e, "filename", None)
                fail(f"{e.strerror or e}: {name}" if name else str(e), js, value=name)
            if type(e).__name__ == "Error" and type(e).__module__ == "_csv":  # csv.Error: a line the csv module refuses
                fail(f"a CSV input is not readable ({e})", js, allowed="a CSV file")
            if isinstance(e, RecursionError):  # a document nested deeper than any parser recurses
                fail("an input is nested too deeply to parse (JSON or lists thousands of levels deep)", js,
                     allowed="a document of ordinary depth")
            if isinstance(e, (ValueError, OverflowError, KeyError, TypeError, MemoryError)):
                fail(f"{type(e).__name__}: {e}" if isinstance(e, (KeyError, TypeError)) else str(e), js)
            raise
    return wrapper


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a --dtype name (fp16, bf16, fp32 and their long forms)."""
    from specperf.perfmodel.latency.table import DTYPE_BYTES

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
                a, b, st = int(lo), int(hi), int(step) if step else 1
                if st > 0 and b >= a and (b - a) // st + 1 + len(out) > MAX_LIST_VALUES:  # before building it
                    raise UsageError(f"{what}={text!r} is not allowed; at most {MAX_LIST_VALUES} values",
                                     value=text, allowed=f"at most {MAX_LIST_VALUES} values")
                out.extend(range(a, b + 1, st))
            else:
                out.append(int(part))
        except ValueError as e:
            if isinstance(e, UsageError):
                raise
            raise UsageError(f"{what}={text!r} is not allowed; give integers like 1,4,16 or 1..8") from None
    if not out:
        raise UsageError(f"{what}={text!r} is empty; give at least one integer")
    for v in out:
        if v < 0 or (v == 0 and not allow_zero):
            raise UsageError(f"{what}={v} is not allowed; {what} must be a positive integer")
    return out


def parse_floats(text: str, what: str) -> list[float]:
    """'0.6,0.8' → finite floats (NaN and ±inf are refused: no flag takes them), at most MAX_LIST_VALUES."""
    out = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            v = float(part)
        except ValueError:
            raise UsageError(f"{what}={part!r} is not a number", value=part, allowed="finite numbers") from None
        if not math.isfinite(v):
            raise UsageError(f"{what}={part} is not allowed; give finite numbers", value=part, allowed="finite numbers")
        out.append(v)
        if len(out) > MAX_LIST_VALUES:
            raise UsageError(f"{what}={text[:40]!r}… is not allowed; at most {MAX_LIST_VALUES} values",
                             value=text, allowed=f"at most {MAX_LIST_VALUES} values")
    if not out:
        raise UsageError(f"{what}={text!r} is empty")
    return out


def parse_names(text: str, what: str) -> list[str]:
    out = [p.strip() for p in _split_models(str(text)) if p.strip()]
    if not out:
        raise UsageError(f"{what}={text!r} is empty; give at least one name")
    return out


def _split_models(text: str) -> list[str]:
    """Split 'a,b:n_layers=4,d_model=2048,c' into models (perfmodel.specs.catalog.split_models)."""
    from specperf.perfmodel.specs.catalog import split_models

    return split_models(text)


def finite(obj):
    """Replace non-finite floats by None so JSON output holds finite values only."""
    from specperf.perfmodel.jsonsafe import finite as _finite

    return _finite(obj)


def print_json(doc) -> None:
    sys.stdout.write(json.dumps(finite(doc), indent=2, allow_nan=False) + "\n")
