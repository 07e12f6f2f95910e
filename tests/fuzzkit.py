"""A seeded, dependency-free fuzzer for specperf's parsers (issue 25): mutations of real input files
drawn from one numpy Generator, so a failing example is reproduced by its seed and index alone.

Each example is a seed file with 1–4 mutations — a number replaced by a hostile token (NaN, inf,
−1, 1e30, 2^53+1, non-ASCII digits, JSON brackets …) or by a random integer or float of any sign
and size, a line dropped, duplicated, swapped or cut, a byte flipped, a hostile token spliced in, a
slice deleted, a JSON key swapped for another, a 140 KB field spliced in — or, one time in ten, random bytes or printable
text. `run` calls a parser on each example: the parser may accept (then `check` judges the answer:
a silently wrong value is a failure) or raise the project's one bad-input type (InputError);
anything else is a crash. It returns the failures (index, input, what went wrong) and how many
examples were accepted, so a test can also insist that the fuzz reaches the success paths.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from specperf.perfmodel.specs.errors import InputError

HOSTILE = ["0", "-0", "-1", "1", "2", "0.5", "1.5", "-1e-9", "1e30", "1e308", "1e400", "1e-300", "nan", "NaN",
           "inf", "-inf", "Infinity", "", " ", "x", "99999999999999999999", "9007199254740993", "4294967296",
           "\x00", "\ufeff", ",", '"', "'", "\\", "[]", "{}", "[", "]", "{", "}", "null", "true", "false",
           "²", "١", "0x1", "1_000", "\n", "#", "=", ":", '"1"', "[1]", "[[0.5]]", '{"a": 1}', "-", "+1", ".5",
           "1e", "0.9999999999999999", "1.0000000000000002", 'position="x"', "_total", "}{", "\t", "\r"]
_HOSTILE_B = [h.encode("utf-8") for h in HOSTILE]
_NUM = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_KEY = re.compile(rb'"[A-Za-z_][A-Za-z0-9_]*"\s*:')


def _random_number(rng: np.random.Generator) -> bytes:
    k = int(rng.integers(0, 4))
    if k == 0:
        return str(int(rng.integers(-5, 20))).encode()
    if k == 1:
        return str(int(rng.integers(-2 ** 62, 2 ** 62))).encode()
    if k == 2:
        return repr(float(rng.normal() * 10.0 ** int(rng.integers(-5, 6)))).encode()
    return repr(float(rng.random())).encode()


def _lines_op(data: bytes, rng: np.random.Generator, op: int) -> bytes:
    lines = data.split(b"\n")
    if not lines:
        return data
    i = int(rng.integers(0, len(lines)))
    if op == 0:
        lines.pop(i)
    elif op == 1:
        lines.insert(i, lines[i])
    elif op == 2:
        j = int(rng.integers(0, len(lines)))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = lines[i][: int(rng.integers(0, len(lines[i]) + 1))]
    return b"\n".join(lines)


def mutate(seed: bytes, rng: np.random.Generator) -> bytes:
    """One mutated example of `seed` (or, one time in ten, random bytes/text)."""
    r = rng.random()
    if r < 0.05:
        return rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
    if r < 0.10:
        return rng.integers(32, 127, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
    data = seed
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 12))
        if rng.random() < 0.01:  # one field past the csv module's 128 KiB limit (and a very long line for the rest)
            i = int(rng.integers(0, len(data) + 1))
            data = data[:i] + b"7" * 140_000 + data[i:]
            continue
        if op <= 3:  # a number → a hostile token or a random number (the commonest useful change)
            nums = list(_NUM.finditer(data))
            if nums:
                m = nums[int(rng.integers(0, len(nums)))]
                new = _HOSTILE_B[int(rng.integers(0, len(_HOSTILE_B)))] if op <= 1 else _random_number(rng)
                data = data[: m.start()] + new + data[m.end():]
                continue
            op = 4
        if op <= 7:
            data = _lines_op(data, rng, op - 4)
        elif op == 8 and data:  # flip a byte
            i = int(rng.integers(0, len(data)))
            data = data[:i] + bytes([int(rng.integers(0, 256))]) + data[i + 1:]
        elif op == 9:  # splice a hostile token in
            i = int(rng.integers(0, len(data) + 1))
            data = data[:i] + _HOSTILE_B[int(rng.integers(0, len(_HOSTILE_B)))] + data[i:]
        elif op == 10 and data:  # delete a slice
            i = int(rng.integers(0, len(data)))
            data = data[:i] + data[i + int(rng.integers(1, 40)):]
        else:  # a JSON key swapped for another key of the same file
            keys = list(_KEY.finditer(data))
            if len(keys) >= 2:
                a, b = (keys[int(k)] for k in rng.integers(0, len(keys), 2))
                data = data[: a.start()] + b.group(0) + data[a.end():]
    return data


@dataclass
class Report:
    name: str
    examples: int = 0
    accepted: int = 0
    seconds: float = 0.0
    failures: list = field(default_factory=list)  # (index, input bytes, what went wrong)

    def summary(self) -> str:
        head = f"{self.name}: {self.examples} examples, {self.accepted} accepted, {self.seconds:.1f} s"
        shown = "; ".join(f"#{i} {why} on {data[:160]!r}" for i, data, why in self.failures[:3])
        return head + (f", {len(self.failures)} FAILURES: {shown}" if self.failures else ", 0 failures")


def run(name: str, parse, seeds: list[bytes], n: int, seed: int, check=None) -> Report:
    """Feed `n` mutated examples of `seeds` to `parse(bytes)`; `check(answer)` returns a problem
    string (a silently wrong answer) or None."""
    rng = np.random.default_rng(seed)
    rep = Report(name, n)
    t0 = time.perf_counter()
    for i in range(n):
        data = mutate(seeds[i % len(seeds)], rng)
        try:
            out = parse(data)
        except InputError as e:
            if "\n" in str(e) or not str(e).strip():
                rep.failures.append((i, data, f"error message is not one line: {str(e)[:80]!r}"))
            continue
        except Exception as e:  # noqa: BLE001 — any other exception is the crash being looked for
            rep.failures.append((i, data, f"{type(e).__name__}: {str(e)[:120]}"))
            continue
        rep.accepted += 1
        problem = check(out) if check else None
        if problem:
            rep.failures.append((i, data, f"accepted but wrong: {problem}"))
    rep.seconds = time.perf_counter() - t0
    return rep


def text(data: bytes) -> str:
    """What a bounded UTF-8 reader would hand on (invalid bytes replaced: that reader refuses them)."""
    return data.decode("utf-8", "replace").lstrip("\ufeff")
