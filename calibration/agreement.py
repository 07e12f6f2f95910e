"""Agreement records: per prompt and per generated token, whether the draft's proposal would be
accepted by the target, recorded once with teacher forcing and replayed at any γ or token tree
(calibration.replay). Written as a tidy CSV plus a JSON sidecar (`<file>.meta.json`), atomically.

Columns: prompt (id), domain (label), position (0-based index of the generated token), greedy_match
(1 if the draft's top token is the target's token), draft_rank (rank of the target's token in the
draft's distribution, 0 = its top token; −1 beyond the sidecar's max_rank), accept_prob (Σ_v min(p_v,
q_v) of target p and draft q at the sidecar's temperature; empty where not recorded).

Key assumption: the continuation the draft is forced along is the target's own (greedy, or one
sample at the temperature): with greedy verification every accepted prefix *is* the target's greedy
text, so a greedy record replays speculative decoding exactly; a sampled record gives each
position's acceptance probability given one sampled prefix (the rejected position's resampled token
is not followed), so its replay is an expectation over that one path.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specperf.perfmodel.specs.safeio import MAX_JSON_BYTES, atomic_write, loads_json, read_text

from .data import TraceError

SCHEMA = "specperf.agreement/1"
COLUMNS = ("prompt", "domain", "position", "greedy_match", "draft_rank", "accept_prob")
MAX_ROWS = 20_000_000  # a record larger than this is not a prompt set (memory bound, ~1 GB of columns)
MAX_RANK = 2 ** 31  # a draft rank is an index into a vocabulary


@dataclass(frozen=True)
class AgreementRecord:
    """Rows sorted by prompt (in order of first appearance), then position 0..N_p−1."""
    prompt: np.ndarray  # str, per row
    domain: np.ndarray  # str, per row
    position: np.ndarray  # int64
    greedy_match: np.ndarray  # int8, 0/1
    draft_rank: np.ndarray  # int64, −1 = beyond max_rank
    accept_prob: np.ndarray  # float64, NaN = not recorded
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def continuation(self) -> str:
        return str(self.meta.get("continuation", "greedy"))

    def spans(self) -> list[tuple[str, str, slice]]:
        """(prompt, domain, row slice) per prompt, in record order."""
        if self.prompt.size == 0:
            return []
        cut = np.flatnonzero(self.prompt[1:] != self.prompt[:-1]) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [self.prompt.size]])
        return [(str(self.prompt[a]), str(self.domain[a]), slice(int(a), int(b))) for a, b in zip(starts, ends)]

    def acceptance(self, kind: str = "auto") -> list[np.ndarray]:
        """Per prompt, each token's acceptance probability: greedy → greedy_match, sampling → accept_prob."""
        kind = self.kind(kind)
        col = self.greedy_match.astype(float) if kind == "greedy" else self.accept_prob
        return [col[s] for _, _, s in self.spans()]

    def kind(self, kind: str = "auto") -> str:
        """greedy | sampling, checked against how the record was made."""
        if kind == "auto":
            return "greedy" if self.continuation == "greedy" else "sampling"
        if kind not in ("greedy", "sampling"):
            raise TraceError(self.meta.get("path", "record"), f"kind={kind!r} is not allowed; use auto, greedy or sampling")
        if kind == "greedy" and self.continuation != "greedy":
            raise TraceError(self.meta.get("path", "record"), "greedy replay needs a record forced along the "
                             f"target's greedy continuation; this one is continuation={self.continuation!r}")
        if kind == "sampling" and np.isnan(self.accept_prob).any():
            raise TraceError(self.meta.get("path", "record"), "sampling replay needs accept_prob on every row")
        return kind


def make_record(prompts, domains, greedy_match, draft_rank, accept_prob=None, meta=None) -> AgreementRecord:
    """A record from per-prompt lists of per-token arrays (all the same length within a prompt)."""
    cols = {k: [] for k in COLUMNS}
    for i, (p, d, g) in enumerate(zip(prompts, domains, greedy_match)):
        n = len(g)
        r = draft_rank[i]
        q = accept_prob[i] if accept_prob is not None else np.full(n, np.nan)
        if len(r) != n or len(q) != n:
            raise ValueError(f"prompt {p!r}: columns differ in length")
        cols["prompt"] += [str(p)] * n
        cols["domain"] += [str(d)] * n
        cols["position"].append(np.arange(n))
        cols["greedy_match"].append(np.asarray(g, dtype=np.int8))
        cols["draft_rank"].append(np.asarray(r, dtype=np.int64))
        cols["accept_prob"].append(np.asarray(q, dtype=float))
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    rec = AgreementRecord(np.array(cols["prompt"], dtype=object), np.array(cols["domain"], dtype=object),
                          cat(cols["position"], np.int64), cat(cols["greedy_match"], np.int8),
                          cat(cols["draft_rank"], np.int64), cat(cols["accept_prob"], float),
                          dict(meta or {}, schema=SCHEMA))
    _check(rec, "record")
    return rec


def write_record(rec: AgreementRecord, path, flag: str = "--record") -> Path:
    """CSV + `<path>.meta.json`, each replaced atomically (the sidecar last: a reader never sees a
    new sidecar beside an old table)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for p, d, x, g, r, q in zip(rec.prompt, rec.domain, rec.position, rec.greedy_match, rec.draft_rank, rec.accept_prob):
        w.writerow([p, d, int(x), int(g), int(r), "" if math.isnan(q) else f"{q:.6g}"])
    out = atomic_write(path, buf.getvalue(), flag)
    meta = {k: v for k, v in rec.meta.items() if k != "path"}
    meta.update(schema=SCHEMA, rows=int(rec.prompt.size), prompts=len(rec.spans()),
                domains=sorted(set(map(str, rec.domain))))
    atomic_write(str(path) + ".meta.json", json.dumps(meta, indent=2, allow_nan=False) + "\n", flag)
    return out


def read_record(path) -> AgreementRecord:
    """Read and validate a record; any defect is one TraceError naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(p, "agreement record does not exist" if not p.exists() else "is not a file")
    side = Path(str(p) + ".meta.json")
    if not side.is_file():
        raise TraceError(p, f"has no sidecar {side.name} (an agreement record is the CSV plus its .meta.json)")
    try:  # bounded, regular files only (a FIFO or /dev/zero is refused, not read)
        meta = loads_json(read_text(side, "agreement sidecar", MAX_JSON_BYTES), f"agreement sidecar {side}")
        text = read_text(p, "agreement record")
    except json.JSONDecodeError as e:  # a SpecError from the bounded reads names the file itself
        raise TraceError(side, f"is not readable ({e})") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise TraceError(side, f"schema is {meta.get('schema') if isinstance(meta, dict) else None!r}, expected {SCHEMA!r}")
    try:
        cols = _columns(text, p)
    except csv.Error as e:  # e.g. a bare carriage return inside a field, a field over 128 KiB
        raise TraceError(p, f"is not a readable CSV file ({e})") from None
    rec = AgreementRecord(np.array(cols["prompt"], dtype=object), np.array(cols["domain"], dtype=object),
                          np.array(cols["position"], dtype=np.int64), np.array(cols["greedy_match"], dtype=np.int8),
                          np.array(cols["draft_rank"], dtype=np.int64), np.array(cols["accept_prob"], dtype=float),
                          dict(meta, path=str(p)))
    _check(rec, p)
    return rec


def _columns(text: str, p) -> dict:
    rows = csv.reader(io.StringIO(text, newline=None))  # universal newlines, as a text-mode file
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise TraceError(p, f"header must be {','.join(COLUMNS)}", 1)
    cols = {k: [] for k in COLUMNS}
    for ln, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(COLUMNS):
            raise TraceError(p, f"has {len(row)} cells, the header has {len(COLUMNS)}", ln)
        if ln > MAX_ROWS:
            raise TraceError(p, f"holds more than {MAX_ROWS} rows")
        try:
            x, g, r = int(row[2]), int(row[3]), int(row[4])
            q = float(row[5]) if row[5].strip() else math.nan
        except ValueError:
            raise TraceError(p, f"position/greedy_match/draft_rank must be integers and accept_prob a number: {row[2:]}", ln) from None
        if not 0 <= x < MAX_ROWS or g not in (0, 1) or not -1 <= r < MAX_RANK or not (math.isnan(q) or 0.0 <= q <= 1.0):
            raise TraceError(p, f"position={row[2]!r} must be in 0..{MAX_ROWS - 1}, greedy_match={row[3]!r} 0/1, "
                                f"draft_rank={row[4]!r} in −1..{MAX_RANK - 1}, accept_prob={row[5]!r} in [0, 1] or empty", ln)
        if r >= 0 and (r == 0) != (g == 1):
            raise TraceError(p, f"greedy_match={g} contradicts draft_rank={r} (rank 0 is the draft's top token)", ln)
        for k, v in zip(COLUMNS, (row[0], row[1], x, g, r, q)):
            cols[k].append(v)
    return cols


def _check(rec: AgreementRecord, where) -> None:
    if rec.prompt.size == 0:
        raise TraceError(where, "agreement record holds no tokens")
    seen = set()
    for name, dom, s in rec.spans():
        if name in seen:
            raise TraceError(where, f"prompt {name!r} appears in two separate blocks; rows must be grouped by prompt")
        seen.add(name)
        if not np.array_equal(rec.position[s], np.arange(s.stop - s.start)):
            raise TraceError(where, f"prompt {name!r}: positions must run 0, 1, 2, … without gaps")
        if len(set(rec.domain[s])) != 1:
            raise TraceError(where, f"prompt {name!r} carries more than one domain label")


MAX_PROMPTS = 100_000  # prompt-set size bound (each prompt is one forward of both models)
MAX_PROMPT_TOKENS = 32_768  # tokens in one prompt


def read_prompts(path, vocab: int | None = None) -> list[tuple[str, str, list[int]]]:
    """A prompt set: JSON lines {"id": str, "domain": str, "tokens": [int, …]} (≥ 2 tokens, ids
    unique, tokens in [0, vocab) when vocab is given)."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(p, "prompt file does not exist" if not p.exists() else "is not a file")
    lines = read_text(p, "prompt file").splitlines()  # bounded, regular files only (SpecError names the file)
    out, seen = [], set()
    for ln, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            d = loads_json(raw, f"{p}:{ln}")
        except json.JSONDecodeError as e:
            raise TraceError(p, f"not a JSON object ({e.msg})", ln) from None
        except RecursionError:
            raise TraceError(p, "is nested too deeply to be a prompt (JSON thousands of levels deep)", ln) from None
        if not isinstance(d, dict) or not {"id", "tokens"} <= set(d):
            raise TraceError(p, "each line needs 'id' and 'tokens' (and optionally 'domain')", ln)
        toks = d["tokens"]
        if not isinstance(toks, list) or not 2 <= len(toks) <= MAX_PROMPT_TOKENS or \
                not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in toks):
            raise TraceError(p, f"tokens must be a list of 2..{MAX_PROMPT_TOKENS} non-negative integers", ln)
        if vocab is not None and max(toks) >= vocab:
            raise TraceError(p, f"token {max(toks)} is outside the model's vocabulary (0..{vocab - 1})", ln)
        pid, dom = str(d["id"]), str(d.get("domain", "all"))
        if pid in seen or "\n" in pid or "\n" in dom:
            raise TraceError(p, f"prompt id {pid!r} repeats or holds a newline", ln)
        seen.add(pid)
        out.append((pid, dom, toks))
        if len(out) > MAX_PROMPTS:
            raise TraceError(p, f"holds more than {MAX_PROMPTS} prompts")
    if not out:
        raise TraceError(p, "holds no prompts")
    return out
