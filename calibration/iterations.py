"""Streaming reader of per-iteration acceptance traces (CSV with `gamma` + `accepted` or position
flags pos_0.., or JSON lines): one pass over the lines, memory bounded by the number of distinct
(γ, accepted, count) rows, not by the file — a 50 MB trace reads in seconds with little memory.

The cluster column — `request`, else `request_id`, `sequence`, `prompt` or `prompt_id` (the
miniature study's traces name their prompt `sequence`) — is carried per row so that every interval
is clustered by it. Key assumptions: as calibration.traces (an iteration's accepted count is the leading run of
accepted draft tokens); a row is validated once per distinct spelling and the result reused.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from typing import Iterable, Iterator

from specperf.perfmodel.specs.safeio import loads_json

from .data import AcceptanceData, TraceError, from_iterations, parse_count

POS_COL = re.compile(r"^(?:pos|position|accept)_(\d{1,6})$")
# the cluster column (iterations of one request/prompt are not independent): the first one present
CLUSTER_KEYS = ("request", "request_id", "sequence", "prompt", "prompt_id")


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for ln, raw in enumerate(lines, start=1):
        s = raw.strip()
        if s and not s.startswith("#"):
            yield ln, raw.rstrip("\r\n")


def _csv_line(raw: str, source, ln) -> list[str]:
    try:
        return next(csv.reader([raw]))
    except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit
        raise TraceError(source, f"is not a readable CSV line ({e})", ln) from None


def parse_iteration(source, ln, gamma, accepted, mask, count) -> tuple[int, int, int]:
    """(γ, accepted, weight) of one row, validated; a TraceError naming the line otherwise."""
    g = parse_count(gamma, source, ln, "gamma")
    if g < 1:
        raise TraceError(source, f"gamma={gamma!r} is not allowed; γ must be ≥ 1", ln)
    if g > 1024:
        raise TraceError(source, f"gamma={gamma!r} is not allowed; γ must be ≤ 1024", ln)
    run = None
    if mask is not None:
        if len(mask) < g:
            raise TraceError(source, f"gives {len(mask)} position flags for gamma={g}", ln)
        flags = [parse_count(m, source, ln, f"position {i} flag") for i, m in enumerate(mask[:g])]
        if any(f > 1 for f in flags):
            raise TraceError(source, f"position flags {list(mask[:g])} must be 0/1", ln)
        run = next((i for i, f in enumerate(flags) if not f), g)
    if accepted is None or (isinstance(accepted, str) and not accepted.strip()):
        if run is None:
            raise TraceError(source, "row has neither 'accepted' nor position flags", ln)
        a = run
    else:
        a = parse_count(accepted, source, ln, "accepted")
        if run is not None and a != run:
            raise TraceError(source, f"accepted={a} but the position flags start with a run of {run}", ln)
    if a > g:
        raise TraceError(source, f"accepted={a} > gamma={g}; an iteration accepts at most γ draft tokens", ln)
    w = 1 if count in (None, "") else parse_count(count, source, ln, "count")
    return g, a, w


class _Acc:
    """Running totals: weight per (γ, accepted) and min/max of batch and context."""

    def __init__(self, source):
        self.source, self.pairs, self.cache = source, Counter(), {}  # pairs: (request, γ, accepted) → weight
        self.with_request: bool | None = None
        self.ranges: dict = {}
        self.seen: dict = {"batch": {}, "context": {}}

    def add(self, ln, gamma, accepted, mask, count, batch, context, request=None):
        key = (gamma, accepted, mask, count)
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = parse_iteration(self.source, ln, gamma, accepted, mask, count)
        has = request not in (None, "")
        if self.with_request is None:
            self.with_request = has
        elif has != self.with_request:
            raise TraceError(self.source, "some rows name a 'request' and others do not; give it on every row or none", ln)
        self.pairs[(str(request) if has else None, *hit[:2])] += hit[2]
        for what, v in (("batch", batch), ("context", context)):
            if v in (None, "") or v in self.seen[what]:
                continue
            x = parse_count(v, self.source, ln, what)
            if what == "batch" and x < 1:
                raise TraceError(self.source, f"batch={v!r} must be ≥ 1", ln)
            self.seen[what][v] = x
            lo, hi = self.ranges.get(what, (x, x))
            self.ranges[what] = (min(lo, x), max(hi, x))

    def result(self) -> AcceptanceData:
        if not self.pairs:
            raise TraceError(self.source, "trace holds no iterations")
        req, gs, acc = (list(x) for x in zip(*self.pairs.keys()))
        w = list(self.pairs.values())
        extra = {k: [lo, hi] for k, (lo, hi) in self.ranges.items()}
        if self.with_request:  # per-request rows (weights summed within a request) for the cluster interval
            extra["iterations"] = {"request": req, "gamma": gs, "accepted": acc, "count": w}
        return from_iterations(self.source, "iterations", gs, acc, w, extra=extra)


def read_iterations_lines(lines: Iterable[str], source) -> AcceptanceData:
    """Per-iteration CSV or JSON lines from any iterable of lines (a file object streams)."""
    rows = _numbered(lines)
    first = next(rows, None)
    if first is None:
        raise TraceError(source, "trace holds no iterations (only comments)")
    acc = _Acc(source)
    if first[1].lstrip().startswith("{"):
        for ln, raw in _chain(first, rows):
            try:
                d = loads_json(raw, f"{source}:{ln}")
            except json.JSONDecodeError as e:
                raise TraceError(source, f"not a JSON object ({e.msg})", ln) from None
            if not isinstance(d, dict) or "gamma" not in d:
                raise TraceError(source, "JSON line lacks 'gamma'", ln)
            mask = d.get("accept_mask")
            if mask is not None and not isinstance(mask, (list, str)):
                raise TraceError(source, f"accept_mask={mask!r} must be a list of 0/1 flags", ln)
            acc.add(ln, *(_plain(d.get(k), source, ln, k) for k in ("gamma", "accepted")),
                    tuple(_plain(m, source, ln, "accept_mask") for m in mask) if mask is not None else None,
                    *(_plain(d.get(k), source, ln, k) for k in ("count", "batch", "context")),
                    _plain(next((d[k] for k in CLUSTER_KEYS if k in d), None), source, ln, "request"))
        return acc.result()
    hl, head = first
    header = [h.strip().lower() for h in _csv_line(head, source, hl)]
    if "gamma" not in header:
        raise TraceError(source, f"CSV header {head[:60]!r} lacks a 'gamma' column", hl)
    pos_cols = sorted((int(m.group(1)), j) for j, h in enumerate(header) if (m := POS_COL.match(h)))
    if pos_cols and [p for p, _ in pos_cols] != list(range(len(pos_cols))):
        raise TraceError(source, "position columns must be numbered 0, 1, 2, ...", hl)
    if "accepted" not in header and not pos_cols:
        raise TraceError(source, "CSV needs an 'accepted' column or position columns pos_0, pos_1, ...", hl)
    col = {h: j for j, h in enumerate(header)}
    idx = [col.get(k) for k in ("gamma", "accepted", "count", "batch", "context")]
    idx.append(next((col[k] for k in CLUSTER_KEYS if k in col), None))
    pj = [j for _, j in pos_cols]
    n = len(header)
    for ln, raw in rows:
        cells = raw.split(",") if '"' not in raw else _csv_line(raw, source, ln)
        if len(cells) != n:
            raise TraceError(source, f"has {len(cells)} cells, the header has {n}", ln)
        g, a, c, b, x, q = (cells[j].strip() if j is not None else None for j in idx)
        acc.add(ln, g, a, tuple(cells[j].strip() for j in pj) if pj else None, c, b, x, q)
    return acc.result()


def _chain(first, rest):
    yield first
    yield from rest


def _plain(v, source, ln, what):
    """A JSON value as a hashable scalar (str/number/None); lists and objects are refused."""
    if v is None or isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return v
    raise TraceError(source, f"{what}={v!r} is not a number", ln)
