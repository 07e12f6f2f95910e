"""Trace readers: per-iteration CSV/JSONL, accepted-count histograms (gpt-fast's accept_counts),
mean accepted length with γ (SGLang, papers), per-request engine responses (vLLM, SGLang, llama.cpp:
calibration.engine_requests), and vLLM /metrics (calibration.prometheus) from a file
or a live http(s) URL, optionally minus a baseline scrape; format auto-detection. Every reader returns AcceptanceData.

Key assumption: an iteration's accepted count is the leading run of accepted draft tokens (tokens
after the first rejection are discarded even when they match), so position-level booleans are
reduced to that run. Conventions: positions in files are 0-based (as vLLM's `position` label);
`mean_acceptance_length` includes the bonus token (= tokens per iteration), `mean_accepted_tokens`
does not.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path

from specperf.perfmodel.specs.safeio import loads_json, read_text
from specperf.perfmodel.specs.errors import SpecError

from .data import FORMATS, AcceptanceData, TraceError, check_gamma, from_iterations, parse_count
from .engine_requests import REQUEST_FORMATS, detect_request_format, read_requests
from .iterations import read_iterations_lines
from .prometheus import fetch_metrics, is_url, looks_like_prometheus, order_baseline, read_vllm_metrics

_POS_COL = re.compile(r"^(?:pos|position|accept)_(\d+)$")
MEAN_KEYS_WITH_BONUS = ("mean_acceptance_length", "accept_length", "avg_spec_accept_length",
                        "tokens_per_iteration", "mean_tokens_per_iteration")
MEAN_KEYS_NO_BONUS = ("mean_accepted_tokens", "mean_accepted")
N_KEYS = ("n_drafts", "num_drafts", "n_iterations")
STREAM_ABOVE_BYTES = 4 * 2 ** 20  # larger per-iteration traces are streamed from the file
MAX_STREAM_BYTES = 2 ** 30  # the largest streamed trace (about a minute to read); larger ones are refused


def _no_deep_nesting(fn):
    """A trace nested deeper than the JSON parser recurses, or a CSV line the csv module refuses (a
    field over its 128 KiB limit), is one TraceError line, not a RecursionError or csv.Error."""
    def wrapper(path, *a, **kw):
        try:
            return fn(path, *a, **kw)
        except RecursionError:
            raise TraceError(path, "is nested too deeply to be a trace (JSON thousands of levels deep)") from None
        except csv.Error as e:
            raise TraceError(path, f"is not a readable CSV file ({e})") from None
    wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
    return wrapper


@_no_deep_nesting
def read_trace(path, fmt: str = "auto", select: dict | None = None, baseline=None) -> AcceptanceData:
    """Read a trace file, or a live vLLM /metrics URL; `baseline`: an earlier scrape (file or URL) of the
    same endpoint whose counts are subtracted (a server restart in between is detected, not subtracted)."""
    p = str(path) if is_url(path) else Path(path)
    fmt = (fmt or "auto").strip().lower()
    if fmt not in FORMATS + ("auto",):
        raise TraceError(p, f"format={fmt!r} is not known; use auto, {', '.join(FORMATS)}")
    if isinstance(p, Path) and p.is_file() and p.stat().st_size > MAX_STREAM_BYTES:
        raise TraceError(p, f"is {p.stat().st_size} bytes; at most {MAX_STREAM_BYTES} bytes are read (a trace "
                            "that long takes minutes; thin it or give counts)")
    if isinstance(p, Path) and p.is_file() and p.stat().st_size > STREAM_ABOVE_BYTES and fmt in ("auto", "iterations"):
        try:
            with p.open(encoding="utf-8-sig", newline="") as f:  # big: detect on the head, then stream
                if fmt == "iterations" or detect_format(f.read(65536), p) == "iterations":
                    f.seek(0)
                    return read_iterations_lines(f, p)
        except UnicodeDecodeError:
            raise TraceError(p, "is not a text file (not UTF-8)") from None
    text = _read_text(p)
    if fmt == "auto":
        fmt = detect_format(text, p)
    if baseline is not None and fmt != "vllm-metrics":
        raise TraceError(baseline, f"a baseline applies to vLLM /metrics scrapes only, not to format {fmt}")
    if fmt == "vllm-metrics":
        note = None
        if baseline is not None:  # time order from the counters, not from the order given
            b = str(baseline) if is_url(baseline) else Path(baseline)
            text, note = order_baseline(_read_text(b), text, p)
        data = read_vllm_metrics(text, p, select)
        return dataclasses.replace(data, notes=tuple(data.notes) + (note,)) if note else data
    if fmt in REQUEST_FORMATS:
        return read_requests(text, p, fmt)
    if fmt == "histogram":
        return read_histogram(text, p)
    if fmt == "mean-length":
        return read_mean_length(text, p)
    return read_iterations(text, p)


def _read_text(p) -> str:
    if isinstance(p, str):
        text = fetch_metrics(p)
    elif not p.exists():
        raise TraceError(p, "file does not exist")
    elif p.is_dir():
        raise TraceError(p, "is a directory, not a trace file")
    else:
        try:  # bounded, regular files only; a spreadsheet BOM is accepted
            text = read_text(p, "trace file")
        except SpecError as e:
            raise TraceError(p, "is not a text file (not UTF-8)" if "UTF-8" in str(e)
                             else str(e).split(f"{str(p)!r} ", 1)[-1]) from None
    if not text.strip():
        raise TraceError(p, "file is empty" if not isinstance(p, str) else "the endpoint answered nothing")
    return text


def detect_format(text: str, source) -> str:
    s = text.lstrip()
    if s[:1] in "{[" and (req := detect_request_format(s)):
        return req
    mean_keys = MEAN_KEYS_WITH_BONUS + MEAN_KEYS_NO_BONUS
    if s.startswith("{") or s.startswith("["):
        try:
            doc = loads_json(s, str(source))
        except json.JSONDecodeError:
            return "histogram" if "accept_counts" in text else "iterations"  # else JSON lines
        keys = set(doc) if isinstance(doc, dict) else set()
        if "accept_counts" in keys or (isinstance(doc, list) and doc and not isinstance(doc[0], dict)):
            return "histogram"
        if keys & set(mean_keys):
            return "mean-length"
        return "iterations"
    if "vllm:spec_decode" in text:
        return "vllm-metrics"
    if "accept_counts" in text:
        return "histogram"
    if "Acceptance probs" in text:
        raise TraceError(source, "gpt-fast's 'Acceptance probs' line holds frequencies, not counts; "
                                 "give its accept_counts list (or --format mean-length with n_drafts)")
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    low = first.lower()
    if "," not in low and any(k in text.lower() for k in mean_keys):
        return "mean-length"
    if looks_like_prometheus(text):
        return "vllm-metrics"
    if "," in first and ("accepted" in low or "gamma" in low or _POS_COL.search(low.replace(",", " "))):
        return "iterations"
    raise TraceError(source, f"cannot tell the trace format (first line {first[:50]!r}); "
                             f"give --format {'|'.join(FORMATS)}")


# ---- per-iteration CSV / JSONL: calibration.iterations (streaming) ------------------------------
def read_iterations(text: str, source) -> AcceptanceData:
    return read_iterations_lines(text.splitlines(), source)


# ---- histogram (gpt-fast accept_counts) -------------------------------------------------------
def _balanced_list(text: str, start: int, source, line) -> list:
    i = text.find("[", start)
    if i < 0:
        raise TraceError(source, "accept_counts is not followed by a [list]", line)
    depth = 0
    for j in range(i, len(text)):
        depth += {"[": 1, "]": -1}.get(text[j], 0)
        if depth == 0:
            try:
                return loads_json(text[i:j + 1], f"{source}:{line}")
            except json.JSONDecodeError:
                raise TraceError(source, f"accept_counts list {text[i:j + 1][:50]!r} is not a list of numbers",
                                 line) from None
    raise TraceError(source, "accept_counts list is not closed", line)


def read_histogram(text: str, source) -> AcceptanceData:
    """accept_counts[a] = iterations that accepted a draft tokens, a = 0..γ (gpt-fast generate.py)."""
    s = text.lstrip()
    line = None
    gamma = None
    try:
        doc = loads_json(s, str(source)) if s.startswith("{") or s.startswith("[") else None
    except json.JSONDecodeError:
        doc = None  # e.g. a Python dict repr: fall back to finding the list in the text
    if doc is not None:
        if isinstance(doc, dict):
            if "accept_counts" not in doc:
                raise TraceError(source, "JSON histogram lacks 'accept_counts'")
            gamma = doc.get("gamma")
            doc = doc["accept_counts"]
    else:
        k = text.find("accept_counts")
        if k < 0:
            raise TraceError(source, "no accept_counts list found")
        line = text.count("\n", 0, k) + 1
        doc = _balanced_list(text, k, source, line)
    if not isinstance(doc, list):  # a scalar, string or object is not a histogram
        raise TraceError(source, f"accept_counts={str(doc)[:40]!r} is not allowed; give a list of counts "
                                 "(a = 0..γ) or a list of such lists", line)
    rows = doc if doc and all(isinstance(r, list) for r in doc) else [doc]
    if not rows or not rows[0]:
        raise TraceError(source, "accept_counts is empty", line)
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise TraceError(source, "accept_counts lists differ in length (several γ in one histogram)", line)
    counts = [sum(parse_count(v, source, line, f"accept_counts[{a}]") for v in col)
              for a, col in enumerate(zip(*rows))]
    g = width - 1
    if g < 1:
        raise TraceError(source, "accept_counts needs γ+1 ≥ 2 entries (a = 0..γ)", line)
    if gamma is not None and parse_count(gamma, source, line, "gamma") != g:
        raise TraceError(source, f"gamma={gamma} but accept_counts has {width} entries (γ+1 expected)", line)
    return from_iterations(source, "histogram", [g] * (g + 1), list(range(g + 1)),
                           counts)


# ---- mean accepted length ------------------------------------------------------------------
def read_mean_length(text: str, source) -> AcceptanceData:
    s = text.strip()
    lines = {}
    if s.startswith("{"):
        try:
            doc = loads_json(s, str(source))
        except json.JSONDecodeError as e:
            raise TraceError(source, f"is not valid JSON ({e.msg})", e.lineno) from None
    else:
        doc = {}
        for ln, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            m = re.match(r"^\s*([A-Za-z_]+)\s*[:=]\s*(\S+)\s*$", raw)
            if not m:
                raise TraceError(source, f"expected 'key: value', got {raw.strip()[:50]!r}", ln)
            doc[m.group(1).lower()], lines[m.group(1).lower()] = m.group(2), ln
    if "gamma" not in doc:
        raise TraceError(source, "mean-length input needs 'gamma' (the lookahead the mean was measured at)")
    g = check_gamma(parse_count(doc["gamma"], source, lines.get("gamma"), "gamma"), source, lines.get("gamma"))
    with_bonus = [k for k in MEAN_KEYS_WITH_BONUS if k in doc]
    no_bonus = [k for k in MEAN_KEYS_NO_BONUS if k in doc]
    if len(with_bonus) + len(no_bonus) != 1:
        raise TraceError(source, f"give exactly one of {', '.join(MEAN_KEYS_NO_BONUS)} (without the bonus "
                                 f"token) or {', '.join(MEAN_KEYS_WITH_BONUS)} (with it)")
    key = (with_bonus or no_bonus)[0]
    try:
        m = float(doc[key]) - (1.0 if with_bonus else 0.0)
    except (TypeError, ValueError):
        raise TraceError(source, f"{key}={doc[key]!r} is not a number", lines.get(key)) from None
    if not (0.0 <= m <= g):
        lo, hi = (1, g + 1) if with_bonus else (0, g)
        raise TraceError(source, f"{key}={doc[key]!r} is outside [{lo}, {hi}] for gamma={g}", lines.get(key))
    nk = next((k for k in N_KEYS if k in doc), None)
    n = parse_count(doc[nk], source, lines.get(nk), nk) if nk else None
    if n == 0:
        raise TraceError(source, f"{nk}=0: no drafts", lines.get(nk))
    notes = ["only a mean accepted length: just an i.i.d. α is identifiable (per-position decay is not)"]
    if n is None:
        notes.append(f"no {'/'.join(N_KEYS)} given: no confidence interval")
    return AcceptanceData(source=str(source), format="mean-length", n_drafts=n, gammas=(g,),
                          mean_accepted=m, notes=tuple(notes), extra={"input_key": key})
