"""Per-request acceptance from engine responses (JSON lines, one response per line, or a JSON list),
each request kept as the cluster of its iterations:

- vllm-requests: vLLM's `metrics.speculative_decoding` (server flag --per-request-spec-decode-metrics
  summary|detailed): `acceptance_histogram[j]` = verify steps that accepted exactly j drafts (dense,
  length num_spec_tokens + 1), `num_spec_steps`, `num_accepted_draft_tokens`, `num_draft_tokens`,
  `num_spec_tokens`; at `detailed` also `per_step_accepted` / `per_step_drafted`.
- sglang-requests: SGLang's /generate `meta_info`: `spec_verify_ct` (verify steps) and
  `spec_accept_length` (tokens per step, bonus included); the lookahead is not in the response, so
  each line carries `gamma` (or meta_info `spec_num_proposed_drafts` = γ × steps).
- llamacpp-requests: llama.cpp server's `timings`: `draft_n` (drafted), `draft_n_accepted`,
  `predicted_n`; verify steps = predicted_n − draft_n_accepted − 1 (the first token comes from the
  prompt), and γ = draft_n / steps must be one integer (fixed-length drafts).

Key assumptions: a vLLM summary is usable only when every step proposed num_spec_tokens drafts
(num_draft_tokens = k × steps; otherwise the `detailed` arrays are needed); SGLang and llama.cpp give
a mean per request, which identifies only an i.i.d. α (per-position rates are not identifiable).
"""
from __future__ import annotations

import json

import numpy as np

from specperf.perfmodel.specs.safeio import loads_json

from .data import AcceptanceData, TraceError, check_gamma, from_iterations, parse_count

REQUEST_FORMATS = ("vllm-requests", "sglang-requests", "llamacpp-requests")
MAX_REQUESTS = 1_000_000  # responses in one file


def _responses(text: str, source) -> list[tuple[int, dict]]:
    s = text.strip()
    if s.startswith("["):
        try:
            doc = loads_json(s, str(source))
        except json.JSONDecodeError as e:
            raise TraceError(source, f"is not valid JSON ({e.msg})", e.lineno) from None
        rows = list(enumerate(doc, start=1))
    else:
        rows = []
        for ln, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    rows.append((ln, loads_json(raw, f"{source}:{ln}")))
                except json.JSONDecodeError as e:
                    raise TraceError(source, f"not a JSON object ({e.msg})", ln) from None
    if not rows:
        raise TraceError(source, "holds no responses")
    if len(rows) > MAX_REQUESTS:
        raise TraceError(source, f"holds more than {MAX_REQUESTS} responses")
    for ln, r in rows:
        if not isinstance(r, dict):
            raise TraceError(source, "each response must be a JSON object", ln)
    return rows


def _count(d: dict, key: str, source, ln) -> int:
    if key not in d:
        raise TraceError(source, f"response lacks {key!r}", ln)
    return parse_count(d[key], source, ln, key)


def detect_request_format(text: str) -> str | None:
    head = text[:65536]
    if '"acceptance_histogram"' in head and '"num_spec_tokens"' in head:
        return "vllm-requests"
    if '"spec_verify_ct"' in head:
        return "sglang-requests"
    if '"draft_n_accepted"' in head:
        return "llamacpp-requests"
    return None


def read_requests(text: str, source, fmt: str) -> AcceptanceData:
    rows = _responses(text, source)
    return {"vllm-requests": _vllm, "sglang-requests": _sglang, "llamacpp-requests": _llamacpp}[fmt](rows, source)


def _vllm(rows, source) -> AcceptanceData:
    req, gam, acc, cnt = [], [], [], []
    for ln, r in rows:
        sd = (r.get("metrics") or {}).get("speculative_decoding") if "acceptance_histogram" not in r else r
        if not isinstance(sd, dict):
            raise TraceError(source, "response has no metrics.speculative_decoding (start vLLM with "
                                     "--per-request-spec-decode-metrics summary|detailed; null when n > 1)", ln)
        rid = str(r.get("id", ln))
        k = _count(sd, "num_spec_tokens", source, ln)
        h = sd.get("acceptance_histogram")
        if not isinstance(h, list) or len(h) != k + 1:
            raise TraceError(source, f"acceptance_histogram must be a list of num_spec_tokens + 1 = {k + 1} counts", ln)
        h = [parse_count(v, source, ln, f"acceptance_histogram[{j}]") for j, v in enumerate(h)]
        steps, a_tot, d_tot = (_count(sd, x, source, ln) for x in ("num_spec_steps", "num_accepted_draft_tokens", "num_draft_tokens"))
        if sum(h) != steps or sum(j * c for j, c in enumerate(h)) != a_tot:
            raise TraceError(source, f"acceptance_histogram {h} disagrees with num_spec_steps={steps} / "
                                     f"num_accepted_draft_tokens={a_tot}", ln)
        pa, pd = sd.get("per_step_accepted"), sd.get("per_step_drafted")
        if pa is not None or pd is not None:
            if not isinstance(pa, list) or not isinstance(pd, list) or len(pa) != len(pd) or len(pa) != steps:
                raise TraceError(source, "per_step_accepted and per_step_drafted must be lists of num_spec_steps counts", ln)
            for j, (a, g) in enumerate(zip(pa, pd)):
                a, g = parse_count(a, source, ln, "per_step_accepted"), parse_count(g, source, ln, "per_step_drafted")
                if g < 1 or a > g:
                    if g == 0:
                        continue  # no draft proposed this step: not a speculative iteration
                    raise TraceError(source, f"step {j}: accepted {a} > drafted {g}", ln)
                req.append(rid), gam.append(g), acc.append(a), cnt.append(1)
            continue
        if d_tot != k * steps:
            raise TraceError(source, f"num_draft_tokens={d_tot} ≠ num_spec_tokens × num_spec_steps = {k * steps}: "
                                     "some steps proposed fewer drafts; restart vLLM with "
                                     "--per-request-spec-decode-metrics detailed for per-step counts", ln)
        for j, c in enumerate(h):
            if c:
                req.append(rid), gam.append(k), acc.append(j), cnt.append(c)
    if not req:
        raise TraceError(source, "no speculative verify steps in any response")
    return _clustered(source, "vllm-requests", req, gam, acc, cnt)


def _clustered(source, fmt, req, gam, acc, cnt) -> AcceptanceData:
    d = from_iterations(source, fmt, gam, acc, cnt)
    extra = dict(d.extra, iterations={"request": req, "gamma": gam, "accepted": acc, "count": cnt},
                 requests=len(set(req)))
    return AcceptanceData(d.source, fmt, d.n_drafts, d.gammas, d.reached, d.accepted, d.histogram, notes=d.notes, extra=extra)


def _mean_requests(source, fmt, ids, gamma, accepted, steps, note) -> AcceptanceData:
    N, S = np.asarray(steps, dtype=float), np.asarray(accepted, dtype=float)
    check_gamma(int(gamma), source)
    if N.sum() == 0:
        raise TraceError(source, "no speculative verify steps in any response")
    return AcceptanceData(source=str(source), format=fmt, n_drafts=int(N.sum()), gammas=(int(gamma),),
                          mean_accepted=float(S.sum() / N.sum()),
                          notes=("a mean accepted length per request: only an i.i.d. α is identifiable", note),
                          extra={"requests": len(ids), "per_request": {"request": list(ids), "accepted": S.tolist(),
                                                                     "iterations": N.tolist()}})


def _sglang(rows, source) -> AcceptanceData:
    ids, S, N, gammas = [], [], [], set()
    for ln, r in rows:
        m = r.get("meta_info")
        if not isinstance(m, dict):
            raise TraceError(source, "response lacks meta_info (SGLang /generate)", ln)
        n = _count(m, "spec_verify_ct", source, ln)
        try:
            L = float(m.get("spec_accept_length"))
        except (TypeError, ValueError):
            raise TraceError(source, f"spec_accept_length={m.get('spec_accept_length')!r} is not a number", ln) from None
        if "gamma" in r:
            g = parse_count(r["gamma"], source, ln, "gamma")
        elif "spec_num_proposed_drafts" in m and n:
            p = parse_count(m["spec_num_proposed_drafts"], source, ln, "spec_num_proposed_drafts")
            if p % n:
                raise TraceError(source, f"spec_num_proposed_drafts={p} is not a multiple of spec_verify_ct={n}", ln)
            g = p // n
        else:
            raise TraceError(source, "SGLang responses name no lookahead: add \"gamma\": K to each line "
                                     "(the chain length the server drafts)", ln)
        if g < 1 or L != L or abs(L) == float("inf") or (n and not 1.0 <= L <= g + 1):  # NaN·0 would poison the sum
            raise TraceError(source, f"spec_accept_length={L} is outside [1, γ+1] for gamma={g}", ln)
        gammas.add(g)
        ids.append(str(m.get("id", r.get("id", ln)))), S.append((L - 1.0) * n), N.append(n)
    if len(gammas) != 1:
        raise TraceError(source, f"responses use different lookaheads {sorted(gammas)}; give one γ per file")
    return _mean_requests(source, "sglang-requests", ids, gammas.pop(), S, N,
                          "accepted per request = (spec_accept_length − 1) × spec_verify_ct")


def _llamacpp(rows, source) -> AcceptanceData:
    ids, S, N, gammas = [], [], [], set()
    for ln, r in rows:
        t = r.get("timings")
        if not isinstance(t, dict):
            raise TraceError(source, "response lacks timings (llama.cpp server /completion)", ln)
        D, A, P = (_count(t, k, source, ln) for k in ("draft_n", "draft_n_accepted", "predicted_n"))
        n = P - A - 1
        if A > D or n < 0:
            raise TraceError(source, f"draft_n_accepted={A} > draft_n={D} or > predicted_n − 1 = {P - 1}", ln)
        if D == 0:
            continue
        if n == 0 or D % n:
            raise TraceError(source, f"draft_n={D} is not γ × steps (steps = predicted_n − draft_n_accepted − 1 = {n}): "
                                     "drafts varied in length; run llama.cpp with --draft-min = --draft-max", ln)
        gammas.add(D // n)
        ids.append(str(r.get("id_slot_request", r.get("id", ln)))), S.append(A), N.append(n)
    if not ids:
        raise TraceError(source, "no response drafted any token (draft_n = 0 everywhere)")
    if len(gammas) != 1:
        raise TraceError(source, f"responses imply different lookaheads {sorted(gammas)}; give one γ per file")
    return _mean_requests(source, "llamacpp-requests", ids, gammas.pop(), S, N,
                          "verify steps per request = predicted_n − draft_n_accepted − 1")
