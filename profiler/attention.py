"""Attention as engines run it, for the profiler's blocks, operator tables and loops: the fastest
correct scaled-dot-product-attention kernel for each shape, chosen by measuring, with native
grouped-query handling, no mask in one-token decode and a lower-right causal mask in verification.

Three kernel sets (`KERNELS`, chosen by `set_kernels` / SPECPERF_KERNELS, recorded in every table's
metadata):
- `engine` (default): for one new token the query heads that share a KV head are folded into the
  query axis (q [b, KV, H/KV, hd] against K/V [b, KV, L, hd], no mask) — what FlashAttention's
  decode path and FlashInfer's grouped decode do: K/V read once per KV head; or SDPA's own
  `enable_gqa`; for γ+1 new tokens, causal attention aligned to the lower right (query i sees keys
  ≤ L − n + i) through the flash kernel's causal mode, `causal_lower_right` or one broadcast
  boolean [n, L] mask, with native GQA (each query head is its own query block).
- `packed`: `engine`, plus two verification kernels that pack a KV head's query heads × new tokens
  into one query block, as FlashInfer and FlashAttention-3's pack-GQA do: one with a repeated
  [H/KV·n, L] mask, and a cascade (`split_flash`: the cached prefix mask-free, the last n keys
  causal, merged by log-sum-exp). Measured faster for grouped verification at batch ≥ 8 (H100,
  scripts/attention_bench.py), but no shipped table is timed with it. Among the candidates that are supported for the shape and
  agree with a float32 reference, the fastest (median of CUDA-event timings) is used; the choice is
  logged (`CHOICES`) for the table's metadata.
- `plain`: the earlier blocks' kernels — query heads folded with a repeated boolean mask of
  per-sequence positions — kept for comparison (`--kernels plain`).
Key assumption (engine, mask-free paths): every sequence of the batch holds exactly L − n cached
tokens before this forward (the profiler's uniform context); callers with per-sequence positions
(the speculative loop) pass an explicit mask and get the masked native-GQA path.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

KERNELS = ("engine", "packed", "plain")
CHOICE_REPEATS = 15  # timed calls per candidate after WARM calls; medians compared (CUDA events)
WARM = 3
GRAPH_CALLS = 4  # calls per captured graph when timing a candidate
REL_TOL = {torch.float16: 2e-2, torch.bfloat16: 4e-2, torch.float32: 1e-4}  # vs fp32 reference
# (relative Frobenius error; fp16/bf16 operands land between 1e-3 and 1e-2, see device METHOD.md)

_state = {"kernels": os.environ.get("SPECPERF_KERNELS", "engine")}
_CACHE: dict = {}
CAPTURE_ERRORS: list[str] = []  # first few reasons a candidate was timed without a CUDA graph
CHOICES: list[dict] = []  # one entry per chosen shape: sizes, backend, candidates' medians (s)


def set_kernels(name: str) -> None:
    if name not in KERNELS:
        raise ValueError(f"--kernels {name!r} is not allowed; use {' or '.join(KERNELS)}")
    _state["kernels"] = name


def kernels() -> str:
    k = _state["kernels"]
    if k not in KERNELS:
        raise ValueError(f"SPECPERF_KERNELS={k!r} is not allowed; use {' or '.join(KERNELS)}")
    return k


def engine() -> bool:
    """Engine-grade kernels (`engine` or `packed`): mask-free decode, lower-right causal verification."""
    return kernels() in ("engine", "packed")


def _sdpa_ctx(backend):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel([getattr(SDPBackend, backend)])


def _lower_right_mask(n: int, L: int, device):
    """[n, L] bool: query i (of the last n positions) sees keys j ≤ L − n + i."""
    return torch.arange(L, device=device)[None, :] <= (L - n + torch.arange(n, device=device))[:, None]


def _candidates(n: int, grp: int, cuda: bool, packed: bool | None = None) -> dict:
    """name → fn(q [b,H,n,hd], k, v [b,KV,L,hd]) -> o [b,H,n,hd] for this (n, group); `packed` adds the
    verification kernels that pack a KV head's query heads into one block (default: kernels() == 'packed')."""
    packed = kernels() == "packed" if packed is None else packed
    # on a GPU the math backend (materialised scores) is never the fastest: measured on an H100, 5-40x
    # the fused backends at every shape of scripts/attention_bench.py (evidence/engine_kernels/)
    backends = ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION") if cuda else ("MATH",)
    out = {}

    def fold(be):
        def fn(q, k, v):
            b, H, _, hd = q.shape
            KV = k.shape[1]
            qf = q.reshape(b, KV, H // KV, hd)  # n = 1: the group's heads become query rows
            with _sdpa_ctx(be):
                o = F.scaled_dot_product_attention(qf, k, v)
            return o.reshape(b, H, 1, hd)
        return fn

    def gqa(be, how):
        def fn(q, k, v):
            nq, L = q.shape[2], k.shape[2]
            kw = {"enable_gqa": grp > 1}
            if how == "mask":
                kw["attn_mask"] = _lower_right_mask(nq, L, q.device)
            elif how == "bias":
                from torch.nn.attention.bias import causal_lower_right
                kw["attn_mask"] = causal_lower_right(nq, L)
            with _sdpa_ctx(be):
                return F.scaled_dot_product_attention(q, k, v, **kw)
        return fn

    def foldmask(be):  # n > 1, grouped: the group's heads × new tokens as one query block per KV head
        def fn(q, k, v):
            b, H, nq, hd = q.shape
            KV, L = k.shape[1], k.shape[2]
            mask = _lower_right_mask(nq, L, q.device).repeat(H // KV, 1)  # rows (head in group, token)
            with _sdpa_ctx(be):
                o = F.scaled_dot_product_attention(q.reshape(b, KV, (H // KV) * nq, hd), k, v, attn_mask=mask)
            return o.reshape(b, H, nq, hd)
        return fn

    for be in backends:
        tag = be.split("_")[0].lower()
        if n == 1:
            out[f"fold-{tag}"] = fold(be)
            if grp > 1:
                out[f"gqa-{tag}"] = gqa(be, "none")
        else:
            out[f"bias-{tag}"] = gqa(be, "bias")
            out[f"mask-{tag}"] = gqa(be, "mask")
            if packed and grp > 1 and be != "FLASH_ATTENTION":  # flash takes no mask
                out[f"foldmask-{tag}"] = foldmask(be)
    if cuda and n > 1:
        def flash_causal(q, k, v):  # the flash kernel's causal mode is lower-right aligned
            return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, True, False)[0]
        out["causal-flash"] = flash_causal
        if packed:
            out["split-flash"] = split_flash
    return out


def _flash(q, k, v, causal: bool):
    o, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal, False)[:2]
    return o, lse


def split_flash(q, k, v):
    """Verification with grouped queries as a cascade (FlashInfer's prefix/suffix split): the cached
    prefix (L − n keys) is seen by every new token, so the group's H/KV heads × n tokens are folded
    into one mask-free query block per KV head (K/V read once); the last n keys take a small causal
    call; the two partial softmaxes merge by their log-sum-exp."""
    b, H, n, hd = q.shape
    KV, L = k.shape[1], k.shape[2]
    grp, P = H // KV, L - n
    if P <= 0:
        return _flash(q, k, v, True)[0]
    o1, l1 = _flash(q.reshape(b, KV, grp * n, hd), k[:, :, :P], v[:, :, :P], False)
    o2, l2 = _flash(q, k[:, :, P:], v[:, :, P:], True)
    l1 = l1.reshape(b, H, n, 1)
    l2 = l2.reshape(b, H, n, 1)
    m = torch.maximum(l1, l2)
    w1, w2 = torch.exp(l1 - m), torch.exp(l2 - m)
    o = (o1.reshape(b, H, n, hd).float() * w1 + o2.float() * w2) / (w1 + w2)
    return o.to(q.dtype)


def _reference(q, k, v):
    """float32 attention of the first sequence (every sequence is treated alike), K/V not repeated."""
    _, H, n, hd = q.shape
    KV, L = k.shape[1], k.shape[2]
    qg = q[:1].float().reshape(1, KV, H // KV, n, hd)
    s = torch.einsum("bkgnd,bkld->bkgnl", qg, k[:1].float()) * hd ** -0.5
    s = s.masked_fill(~_lower_right_mask(n, L, q.device), float("-inf"))
    o = torch.einsum("bkgnl,bkld->bkgnd", torch.softmax(s, dim=-1), v[:1].float())
    return o.reshape(1, H, n, hd)


def _median_s(fn, q, k, v) -> tuple[float, str]:
    """(median seconds per call, how timed): replays of a CUDA graph of GRAPH_CALLS calls (what a
    captured decode step pays) — 'graph'; where the candidate cannot be captured, runs of
    GRAPH_CALLS back-to-back calls between events ('events': launch costs included, so small
    kernels read slower than under a graph)."""
    for _ in range(WARM):
        fn(q, k, v)
    torch.cuda.synchronize()
    try:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(GRAPH_CALLS):
                fn(q, k, v)
        run, how = g.replay, "graph"
        run()
    except RuntimeError as e:
        torch.cuda.synchronize()
        if len(CAPTURE_ERRORS) < 3:  # why a candidate could not be captured: kept in the table's metadata
            CAPTURE_ERRORS.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")

        def run():
            for _ in range(GRAPH_CALLS):
                fn(q, k, v)
        how = "events"
    evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
           for _ in range(CHOICE_REPEATS)]
    for a, b in evs:
        a.record()
        run()
        b.record()
    torch.cuda.synchronize()
    ts = sorted(a.elapsed_time(b) * 1e-3 / GRAPH_CALLS for a, b in evs)
    return ts[len(ts) // 2], how


def choose(q, k, v) -> str:
    """The backend used for this shape (measured once per shape and dtype, then cached)."""
    return _entry(q, k, v)[0]


def _entry(q, k, v):
    """(name, fn) of the chosen candidate for this shape, dtype, device and kernel set."""
    b, H, n, hd = q.shape
    KV, L = k.shape[1], k.shape[2]
    key = (b, H, KV, n, L, hd, q.dtype, q.device.type, kernels())
    if key in _CACHE:
        return _CACHE[key]
    cuda = q.device.type == "cuda"
    if cuda and torch.cuda.is_current_stream_capturing():
        raise RuntimeError(f"attention backend for {key[:6]} must be chosen before CUDA-graph capture")
    cands = _candidates(n, H // KV, cuda)
    ref = _reference(q, k, v)
    tol = REL_TOL.get(q.dtype, 2e-2)
    timed, how = {}, {}
    for name, fn in cands.items():
        try:
            o = fn(q, k, v)[:1]
            err = float((o.float() - ref).norm() / ref.norm().clamp_min(1e-30))
            if not err <= tol:  # NaN fails too
                continue
            timed[name], how[name] = _median_s(fn, q, k, v) if cuda else (0.0, "none")
        except (RuntimeError, ValueError, TypeError, NotImplementedError):
            continue  # not supported for this shape, dtype or GPU
    if not timed:
        raise RuntimeError(f"no attention backend computed {key[:6]} correctly")
    best = min(timed, key=timed.get) if cuda else ("fold-math" if n == 1 else "mask-math")  # CPU: no timing
    if best not in timed:
        best = next(iter(timed))
    _CACHE[key] = (best, cands[best])
    CHOICES.append({"batch": b, "heads": H, "kv_heads": KV, "new_tokens": n, "kv_len": L,
                    "head_dim": hd, "dtype": str(q.dtype).replace("torch.", ""), "backend": best,
                    "candidates_s": {k2: round(v2, 9) for k2, v2 in timed.items()},
                    "timed_by": "graph" if set(how.values()) == {"graph"} else ",".join(sorted(set(how.values())))})
    return _CACHE[key]


def engine_sdpa(q, k, v):
    """Attention of q [b, H, n, hd] over exactly the L = k.shape[2] cached keys (all sequences at the
    same length), lower-right causal for n > 1, through the chosen backend; returns [b, H, n, hd]."""
    return _entry(q, k, v)[1](q, k, v)


def masked_sdpa(q, k, v, mask):
    """Per-sequence positions: one boolean mask [b, 1, n, L] broadcast over heads, native GQA."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


def kv_bytes(b: int, kv_heads: int, L: int, head_dim: int, elem_bytes: int) -> int:
    """K and V bytes one attention call must read at least once."""
    return 2 * b * kv_heads * L * head_dim * elem_bytes


def copy_bandwidth(device, nbytes: int = 2 ** 30, repeats: int = 10) -> float:
    """Measured device-to-device copy rate (bytes read + written per second), median of `repeats`."""
    if torch.device(device).type != "cuda":
        return float("nan")
    a = torch.empty(nbytes // 2, dtype=torch.uint8, device=device).random_()
    bb = torch.empty_like(a)
    times = []
    for _ in range(repeats + 2):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        bb.copy_(a)
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    t = sorted(times[2:])[len(times[2:]) // 2]
    del a, bb
    return 2 * (nbytes // 2) / t


def record_choices(meta: dict) -> None:
    """Merge this process's backend choices into a table's metadata (one entry per shape)."""
    def key(c):
        return tuple(sorted((k, v) for k, v in c.items() if k not in ("backend", "candidates_s", "timed_by")))
    seen = {key(c) for c in meta.get("attention_choices", [])}
    new = [c for c in CHOICES if key(c) not in seen]
    if new or "attention_choices" in meta:
        meta["attention_choices"] = list(meta.get("attention_choices", [])) + new
    if CAPTURE_ERRORS:
        meta["attention_capture_errors"] = list(dict.fromkeys(list(meta.get("attention_capture_errors", []))
                                                              + CAPTURE_ERRORS))[:5]


__all__ = ["KERNELS", "set_kernels", "kernels", "engine", "engine_sdpa", "masked_sdpa", "choose",
           "kv_bytes", "copy_bandwidth", "record_choices", "CHOICES"]
