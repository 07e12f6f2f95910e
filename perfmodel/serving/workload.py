"""Serving workloads: requests arriving as a Poisson process at a given rate (open loop) or from N
concurrent users who each send their next request when the last one finishes (closed loop), with
prompt and output lengths drawn from a fixed value, a uniform range, or a trace of measured
requests (CSV or JSONL with prompt_tokens and output_tokens per row).

Key assumption: lengths are independent of arrival times and of each other; Poisson arrivals are
drawn as standard exponential gaps divided by the rate, so a rate change rescales one sample path
(the time-scaling identity the report uses for intervals). Everything is bounded and validated.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specperf.perfmodel.specs.errors import InputError
from specperf.perfmodel.specs.safeio import loads_json, read_text

MAX_REQUESTS = 100_000  # one simulation's requests (the event loop runs in Python: seconds, not hours)
MAX_LENGTH = 1_048_576  # tokens in one prompt or output (no engine serves longer contexts)
MAX_TRACE_BYTES = 50 * 2 ** 20  # a trace file larger than this is refused before reading
MAX_RATE_PER_S = 1e5  # requests/s (far beyond any single engine)
MAX_USERS = 65536  # concurrent users (the batch bound of cli/options.BOUNDS)


def _bad(flag: str, value, allowed: str) -> InputError:
    shown = value if isinstance(value, (int, float)) else repr(value)
    return InputError(f"{flag}={shown} is not allowed; {allowed}", value=value, allowed=allowed)


@dataclass(frozen=True)
class LengthDist:
    """Token lengths: uniform integers in lo..hi (lo = hi: fixed), or the values of a trace."""
    lo: int = 1
    hi: int = 1
    values: tuple[int, ...] = ()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.values:
            return np.asarray(self.values, dtype=int)[rng.integers(0, len(self.values), n)]
        return rng.integers(self.lo, self.hi + 1, n)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else (self.lo + self.hi) / 2

    @property
    def max(self) -> int:
        return max(self.values) if self.values else self.hi

    def describe(self) -> str:
        if self.values:
            return f"trace ({len(self.values)} values, mean {self.mean:.0f})"
        return str(self.lo) if self.lo == self.hi else f"uniform {self.lo}..{self.hi}"


def parse_length(text, flag: str, lo_allowed: int = 1) -> LengthDist:
    """'128' → fixed; '64..256' → uniform integers."""
    allowed = f"N or LO..HI with integers in {lo_allowed}..{MAX_LENGTH}"
    s = str(text).strip()
    try:
        a, sep, b = s.partition("..")
        lo, hi = int(a), int(b) if sep else int(a)
    except ValueError:
        raise _bad(flag, text, allowed) from None
    if not lo_allowed <= lo <= hi <= MAX_LENGTH:
        raise _bad(flag, text, allowed)
    return LengthDist(lo, hi)


@dataclass(frozen=True)
class Workload:
    """`rate_per_s` (Poisson) or `users` (closed loop), `n_requests` requests, length distributions."""
    prompt: LengthDist
    output: LengthDist
    n_requests: int = 500
    rate_per_s: float | None = None
    users: int | None = None
    seed: int = 0

    def __post_init__(self):
        if (self.rate_per_s is None) == (self.users is None):
            raise InputError("give a request rate or a number of concurrent users, not both or neither")
        if self.rate_per_s is not None and not (0 < self.rate_per_s <= MAX_RATE_PER_S):
            raise _bad("rate", self.rate_per_s, f"requests/s in (0, {MAX_RATE_PER_S:g}]")
        if self.users is not None and not 1 <= self.users <= MAX_USERS:
            raise _bad("users", self.users, f"an integer in 1..{MAX_USERS}")
        if not 1 <= self.n_requests <= MAX_REQUESTS:
            raise _bad("requests", self.n_requests, f"an integer in 1..{MAX_REQUESTS}")

    def with_load(self, rate_per_s: float | None = None, users: int | None = None) -> "Workload":
        return Workload(self.prompt, self.output, self.n_requests, rate_per_s, users, self.seed)

    def requests(self) -> dict:
        """{'arrival_s' (NaN in a closed loop: set when a user's previous request ends),
        'prompt_tokens', 'output_tokens'} as arrays of n_requests."""
        rng = np.random.default_rng(self.seed)
        gaps = rng.standard_exponential(self.n_requests)
        prompt = self.prompt.sample(rng, self.n_requests)
        output = self.output.sample(rng, self.n_requests)
        if self.rate_per_s is not None:
            arrival = np.concatenate([[0.0], np.cumsum(gaps[:-1])]) / self.rate_per_s
        else:
            arrival = np.full(self.n_requests, np.nan)
            arrival[:min(self.users, self.n_requests)] = 0.0
        return {"arrival_s": arrival, "prompt_tokens": prompt.astype(int), "output_tokens": output.astype(int)}

    def describe(self) -> str:
        load = f"Poisson {self.rate_per_s:g} req/s" if self.rate_per_s is not None else f"{self.users} users"
        return (f"{load}, {self.n_requests} requests, prompt {self.prompt.describe()} tokens, "
                f"output {self.output.describe()} tokens")


def read_trace(path: str, flag: str = "trace") -> tuple[LengthDist, LengthDist]:
    """Prompt and output lengths from a CSV (header with prompt_tokens, output_tokens) or JSONL
    (one object per line with those keys) trace; bounded in size, rows validated."""
    p = Path(path)
    if not p.is_file():
        raise _bad(flag, str(path), "an existing CSV or JSONL file with prompt_tokens and output_tokens")
    if p.stat().st_size > MAX_TRACE_BYTES:
        raise _bad(flag, str(path), f"a file of at most {MAX_TRACE_BYTES // 2 ** 20} MiB")
    text = read_text(p, f"--{flag}", MAX_TRACE_BYTES)  # bounded, regular files only, UTF-8
    rows: list = []
    if p.suffix.lower() in (".jsonl", ".json"):
        for i, line in enumerate(filter(None, (ln.strip() for ln in text.splitlines()))):
            try:
                rows.append(loads_json(line, f"--{flag} {path}:{i + 1}"))
            except json.JSONDecodeError:  # too deep or too long a number: a SpecError from loads_json
                raise _bad(flag, f"{path}:{i + 1}", "one JSON object per line") from None
    else:
        try:
            rows = list(csv.DictReader(text.splitlines()))
        except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit
            raise _bad(flag, str(path), f"a readable CSV file ({e})") from None
    if not 1 <= len(rows) <= MAX_REQUESTS:
        raise _bad(flag, f"{path} ({len(rows)} rows)", f"1..{MAX_REQUESTS} requests")
    out = {"prompt_tokens": [], "output_tokens": []}
    for i, r in enumerate(rows):
        for k, lo in (("prompt_tokens", 1), ("output_tokens", 1)):
            v = r.get(k) if isinstance(r, dict) else None
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = float("nan")
            if not (x == x and x.is_integer() and lo <= x <= MAX_LENGTH):
                raise _bad(flag, f"{path} row {i + 1} {k}={v!r}", f"integers in {lo}..{MAX_LENGTH} in every row")
            out[k].append(int(x))
    return LengthDist(values=tuple(out["prompt_tokens"])), LengthDist(values=tuple(out["output_tokens"]))
