"""Reader for vLLM's Prometheus `/metrics` text: speculative-decoding counters → AcceptanceData.

vLLM (v1 engine, vllm/v1/spec_decode/metrics.py, SpecDecodingProm) exports four counters, each
labelled with model_name and engine (prometheus_client adds the `_total` suffix):
  vllm:spec_decode_num_drafts_total                 drafts verified (iterations × sequences)
  vllm:spec_decode_num_draft_tokens_total           draft tokens proposed
  vllm:spec_decode_num_accepted_tokens_total        draft tokens accepted
  vllm:spec_decode_num_accepted_tokens_per_pos_total{position="i"}  drafts whose token i (0-based)
                                                    was accepted — i.e. drafts with ≥ i+1 accepted
So the per-position counter is unconditional; the conditional rate is α_i = c_i / c_{i-1} with
c_{-1} = drafts. Key assumption: every draft proposed γ = (number of positions) tokens; when
draft_tokens < γ·drafts (n-gram proposers propose fewer) later positions are biased low, and the
reader says so. Several scrapes in one file are cumulative snapshots: the last minus the first is used.

Counters restart from zero when the server restarts. A restart between two scrapes is detected by
any of: `process_start_time_seconds` changed, a counter's `_created` timestamp changed (prometheus
client exports both by default), a counter fell, or the set of positions changed (a new γ needs a
new server). Then only the scrapes after the last restart are used (a single scrape after it counts
from the restart), never a difference across it.

A `--baseline` scrape is ordered against the trace by evidence, not by the order given: of two
scrapes of one server (the same `process_start_time_seconds` and `_created` where present), the one
with the larger counters is the later one. Live endpoints are read under a whole-request deadline
and a size limit (a server that drips one byte at a time or never ends its body is cut off).
"""
from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

from .data import AcceptanceData, TraceError, check_gamma, from_position_counts, parse_count

PREFIX = "vllm:spec_decode_"
DRAFTS, DRAFT_TOKENS = PREFIX + "num_drafts", PREFIX + "num_draft_tokens"
ACCEPTED, PER_POS = PREFIX + "num_accepted_tokens", PREFIX + "num_accepted_tokens_per_pos"
COUNTERS = (DRAFTS, DRAFT_TOKENS, ACCEPTED, PER_POS)
PROCESS_START = "process_start_time_seconds"
CREATED = "_created"  # prometheus_client's creation-time sample of a counter: NAME_created
POOLED_LABELS = ("engine",)  # data-parallel engines of one model: counts add up
_POSITION = re.compile(r"^[0-9]{1,6}$")  # ASCII digits only ('²'.isdigit() is True, int('²') fails)
# A vLLM /metrics page is tens of KB (a few hundred series); 16 MiB is far beyond any real one.
MAX_METRICS_BYTES = 16 * 2 ** 20
# Whole-request deadline of one scrape (connect + all reads); each socket wait is at most
# READ_TIMEOUT_S, so a request ends within DEADLINE_S + READ_TIMEOUT_S however the server drips.
DEADLINE_S, READ_TIMEOUT_S = 20.0, 5.0

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?"
                     r"\s+(?P<value>\S+)(?:\s+(?P<ts>-?[0-9]+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def looks_like_prometheus(text: str) -> bool:
    for raw in text.splitlines():
        s = raw.strip()
        if not s:
            continue
        if s.startswith("# HELP ") or s.startswith("# TYPE "):
            return True
        if s.startswith("#"):
            continue
        m = _SAMPLE.match(s)
        return bool(m) and "," not in s.split("{")[0] and _is_number(m.group("value"))
    return False


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _labels(text: str | None, source, line) -> tuple:
    if not text or not text.strip():
        return ()
    out, pos = [], 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise TraceError(source, f"cannot parse labels {{{text}}} (expected name=\"value\" pairs)", line)
        out.append((m.group(1), m.group(2)))
        pos = m.end()
        if not text[pos:].strip():
            break
    return tuple(sorted(out))


def parse_scrapes(text: str, source) -> list[dict]:
    """Samples of the text exposition format: a list of scrapes, each {(name, labels): (value, line)}.

    A series seen again starts a new scrape (several /metrics dumps appended to one file).
    """
    scrapes: list[dict] = [{}]
    for ln, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        m = _SAMPLE.match(s)
        if not m or not _is_number(m.group("value")):
            raise TraceError(source, f"not a Prometheus sample line: {s[:60]!r}", ln)
        name = m.group("name")
        if name.endswith("_total"):
            name = name[: -len("_total")]
        elif name.endswith(CREATED) and name[: -len(CREATED)] in COUNTERS:
            name = name[: -len(CREATED)] + CREATED  # kept as a restart marker
        if name not in COUNTERS and name != PROCESS_START and not name.endswith(CREATED):
            continue
        key = (name, _labels(m.group("labels"), source, ln))
        if key in scrapes[-1]:
            scrapes.append({})
        scrapes[-1][key] = (m.group("value"), ln)
    return scrapes


def _group(labels: tuple) -> tuple:
    return tuple((k, v) for k, v in labels if k not in POOLED_LABELS + ("position",))


def read_vllm_metrics(text: str, source, select: dict | None = None) -> AcceptanceData:
    scrapes = parse_scrapes(text, source)
    if not any(k[0] in COUNTERS for k in scrapes[0]):
        raise TraceError(source, "metrics dump has no speculative-decoding counters "
                                 f"(expected {DRAFTS}_total, {PER_POS}_total{{position=...}}); "
                                 "was vLLM started with --speculative-config?")
    select = dict(select or {})
    keys = [k for k in scrapes[-1] if k[0] in COUNTERS and all(dict(k[1]).get(a) == b for a, b in select.items())]
    groups = sorted({_group(lab) for _, lab in keys})
    if not groups:
        raise TraceError(source, f"no speculative-decoding series match labels {select}")
    if len(groups) > 1:
        shown = "; ".join(",".join(f'{k}="{v}"' for k, v in g) or "(no labels)" for g in groups)
        raise TraceError(source, f"metrics dump holds several speculative-decoding series ({shown}); "
                                 "choose one with --label NAME=VALUE")
    group = groups[0]

    def totals(scrape: dict) -> dict:
        """Sum over engines: {(name, position): (count, last line)}."""
        out: dict = {}
        for (name, lab), (val, ln) in scrape.items():
            if name not in COUNTERS or _group(lab) != group or not all(dict(lab).get(a) == b for a, b in select.items()):
                continue
            pos = dict(lab).get("position")
            what = f"{name}_total" + (f'{{position="{pos}"}}' if pos is not None else "")
            v = parse_count(val, source, ln, what)
            if name == PER_POS and (pos is None or not _POSITION.match(pos)):
                raise TraceError(source, f"{name}_total needs an integer position label, got {pos!r}", ln)
            k = (name, int(pos) if pos is not None else None)
            prev = out.get(k, (0, ln))
            out[k] = (prev[0] + v, ln)
        return out

    sums = [totals(sc) for sc in scrapes]
    notes = []
    start = 0
    for i in range(1, len(scrapes)):
        why = restart_evidence(scrapes[i - 1], scrapes[i], sums[i - 1], sums[i])
        if why:
            start = i
            notes.append(f"server restarted between scrapes {i} and {i + 1} ({why}): counters reset, so "
                         "counts before the restart are not used")
    last = sums[-1]
    if len(scrapes) - start > 1:
        first = sums[start]
        last = {k: (v - first.get(k, (0, ln))[0], ln) for k, (v, ln) in last.items()}
        notes.append(f"{len(scrapes) - start} scrapes{' since the restart' if start else ''}: "
                     "used last minus first")
    elif start:
        notes.append("one scrape since the restart: used its counts (since the restart)")
    if (DRAFTS, None) not in last:
        raise TraceError(source, f"metrics dump lacks {DRAFTS}_total (it has other spec-decode counters)")
    n_drafts, ln_d = last[(DRAFTS, None)]
    if n_drafts == 0:
        raise TraceError(source, f"{DRAFTS}_total is 0 (no drafts between the scrapes)", ln_d)
    positions = sorted(p for (n, p) in last if n == PER_POS)
    extra = {"labels": dict(group), "scrapes": len(scrapes), "scrapes_used": len(scrapes) - start,
             "restarts": sum(1 for n in notes if n.startswith("server restarted")), "n_drafts": n_drafts}
    tokens = last.get((DRAFT_TOKENS, None), (None, None))[0]
    accepted = last.get((ACCEPTED, None), (None, None))[0]
    if not positions:
        if tokens is None or accepted is None:
            raise TraceError(source, f"metrics dump has neither {PER_POS}_total nor both "
                                     f"{DRAFT_TOKENS}_total and {ACCEPTED}_total")
        gamma = tokens / n_drafts
        if not float(gamma).is_integer():
            raise TraceError(source, f"draft_tokens/drafts = {gamma:.3f} is not an integer lookahead; "
                                     "give the per-position counters or a mean-length file with gamma")
        if accepted > tokens:
            raise TraceError(source, f"accepted tokens {accepted} exceed draft tokens {tokens}",
                             last[(ACCEPTED, None)][1])
        check_gamma(int(gamma), source, what=f"{DRAFT_TOKENS}_total/{DRAFTS}_total")
        notes.append("no per-position counters: only an i.i.d. α is identifiable")
        return AcceptanceData(source=str(source), format="vllm-metrics", n_drafts=int(n_drafts),
                              gammas=(int(gamma),), mean_accepted=accepted / n_drafts,
                              notes=tuple(notes), extra=extra)
    if positions != list(range(len(positions))):
        raise TraceError(source, f"{PER_POS}_total positions {positions} are not 0..{len(positions) - 1}")
    c = [last[(PER_POS, p)][0] for p in positions]
    prev, prev_what = n_drafts, f"{DRAFTS}_total={n_drafts}"
    for p, v in enumerate(c):
        if v > prev:
            raise TraceError(source, f'{PER_POS}_total{{position="{p}"}}={v} exceeds {prev_what}: '
                                     "per-position counts cannot increase with position",
                             last[(PER_POS, p)][1])
        prev, prev_what = v, f'position {p} count {v}'
    gamma = len(c)
    if accepted is not None and accepted != sum(c):
        notes.append(f"{ACCEPTED}_total={accepted} differs from the per-position sum {sum(c)}")
    if tokens is not None:
        if tokens > gamma * n_drafts:
            raise TraceError(source, f"{DRAFT_TOKENS}_total={tokens} exceeds γ·drafts = {gamma}·{n_drafts}",
                             last[(DRAFT_TOKENS, None)][1])
        if tokens < gamma * n_drafts:
            notes.append(f"drafts averaged {tokens / n_drafts:.2f} < γ={gamma} tokens (short proposals): "
                         "later-position rates count short drafts as rejections and are biased low")
        extra["draft_tokens"] = tokens
    return from_position_counts(source, "vllm-metrics", int(n_drafts), c, notes=notes, extra=extra)



def _same_server(a: dict, b: dict) -> bool:
    """No restart marker differs between two scrapes (process start time, counters' _created)."""
    for key, (val, _) in b.items():
        if (key[0] == PROCESS_START or key[0].endswith(CREATED)) and key in a and float(a[key][0]) != float(val):
            return False
    return True


def order_baseline(baseline_text: str, text: str, source) -> tuple[str, str | None]:
    """The two texts in time order, baseline first unless the evidence says it is the later scrape
    (same server, and its counters are ≥ the trace's with at least one larger); then a note."""
    given = baseline_text.rstrip("\n") + "\n" + text
    try:
        b, t = parse_scrapes(baseline_text, source)[-1], parse_scrapes(text, source)[0]
    except TraceError:
        return given, None  # the reader reports the bad line
    shared = [k for k in b if k[0] in COUNTERS and k in t]
    if not shared or not _same_server(b, t):
        return given, None
    vb, vt = {k: float(b[k][0]) for k in shared}, {k: float(t[k][0]) for k in shared}
    if all(vb[k] >= vt[k] for k in shared) and any(vb[k] > vt[k] for k in shared):
        return (text.rstrip("\n") + "\n" + baseline_text,
                "the --baseline scrape is the later one (same server, larger counters): counted from the "
                "trace's scrape to the baseline's")
    return given, None


def restart_evidence(before: dict, after: dict, sums_before: dict, sums_after: dict) -> str | None:
    """Why the server must have restarted between two consecutive scrapes, or None."""
    p0, p1 = before.get((PROCESS_START, ())), after.get((PROCESS_START, ()))
    if p0 and p1 and float(p0[0]) != float(p1[0]):
        return f"{PROCESS_START} changed from {p0[0]} to {p1[0]}"
    for key, (val, _) in after.items():
        if key[0].endswith(CREATED) and key in before and float(before[key][0]) != float(val):
            return f"{key[0]} changed from {before[key][0]} to {val}"
    pos0 = sorted(p for n, p in sums_before if n == PER_POS)
    pos1 = sorted(p for n, p in sums_after if n == PER_POS)
    if pos0 != pos1:
        return f"per-position counters changed from {len(pos0)} to {len(pos1)} positions"
    for k, (v, ln) in sums_after.items():
        v0 = sums_before.get(k, (0, ln))[0]
        if v < v0:
            return f"{k[0]}_total fell from {v0} to {v}"
    return None


def is_url(path) -> bool:
    return str(path).startswith(("http://", "https://"))


def fetch_metrics(url: str, deadline_s: float | None = None, limit_bytes: int | None = None) -> str:
    """GET a live Prometheus endpoint (vLLM: http://HOST:PORT/metrics) and return its text, within a
    whole-request deadline and a size limit (default DEADLINE_S, MAX_METRICS_BYTES; one-line
    TraceError when either is exceeded)."""
    deadline_s = DEADLINE_S if deadline_s is None else deadline_s
    limit_bytes = MAX_METRICS_BYTES if limit_bytes is None else limit_bytes
    end = time.monotonic() + deadline_s
    chunks, n = [], 0
    try:
        with urllib.request.urlopen(url, timeout=min(READ_TIMEOUT_S, deadline_s)) as r:
            while True:
                chunk = r.read1(65536)  # what has arrived (≤ one socket wait), not 64 KiB at any cost
                if not chunk:
                    break
                chunks.append(chunk)
                n += len(chunk)
                if n > limit_bytes:
                    raise TraceError(url, f"the endpoint sent more than {limit_bytes} bytes; a /metrics page is "
                                          "tens of KB (is this the server's /metrics path?)")
                if time.monotonic() > end:
                    raise TraceError(url, f"the endpoint did not finish its answer within {deadline_s:.0f} s "
                                          f"({n} bytes so far)")
        body = b"".join(chunks)
    except TraceError:
        raise
    except urllib.error.HTTPError as e:
        raise TraceError(url, f"HTTP {e.code} {e.reason} (is this the server's /metrics path?)") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        why = getattr(e, "reason", None) or e
        raise TraceError(url, f"cannot read the endpoint: {why} (is the server running and the port right?)") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise TraceError(url, "the endpoint did not answer with UTF-8 text") from None
