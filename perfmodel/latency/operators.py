"""Operator-composed latency: any dense llama / mistral / qwen2 / opt layer (GQA, TP shards, biases,
gated or plain MLP) and LM head rebuilt from measured operator tables (`specperf profile
--operators`), with the same interface as AnalyticalLatency (`forward`, `overhead_s`).

A layer is the operators profiler/blocks.py runs, sized from the spec: two norms, the fused QKV
GEMM (+bias), RoPE on q and k, the KV-cache write (tables of layout `per-forward-step`: positions and
the cos/sin rows are built once per forward and priced with the head, as the engines do), attention (grouped when H > KV) over
kv_aligned(context + new tokens) keys (a table timed with profiler.attention's engine kernels,
metadata `kernels`: exactly context + new tokens keys, and grouped verification priced per query
head, as SDPA's native-GQA lower-right kernels run it: the measured `attention_verify` operator, in older tables composed from per-head attention), o-proj, gate/up GEMM, SiLU·mul or ReLU, down GEMM, two
residual adds. Under CUDA graphs the layer takes G = Σ operator times (each timed alone as a graph
of stacked copies) times a fitted glue factor plus a fitted constant (the bare sum falls short of
the layer: views, splits and inter-kernel gaps). In eager mode the host issues every kernel, so the layer takes the
larger of host_factor · H + const (H = Σ host launch costs, each operator's eager time at its
smallest size) and the graph-mode law. Compiled mode (torch.compile + CUDA graphs) keeps the matrix
GEMMs (cuBLAS) and fuses the elementwise operators, but (plain-kernel tables) copies the whole KV
cache for its in-place write (functionalisation; docs/accuracy.md; engine tables keep the write an
opaque in-place op, so that term is 0): Σ_k coef_k · term_k + const over (GEMM time, attention time, KV-cache passes, elementwise
time), fitted on measured compiled layers (operator_fit.fit_compiled). Glue is fitted (perfmodel.latency.operator_fit) on measured
whole-layer rows and stored in the table's metadata. Key assumption: operators compose additively
apart from that glue, and the host launch cost does not depend on operator size. numpy only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from specperf.perfmodel.latency.analytical import _check_mode, check_tp
from specperf.perfmodel.latency.base import ComponentTimes
from specperf.perfmodel.latency.source import NONE_TP1, Provenance
from specperf.perfmodel.latency.opgrid import OpGrid
from specperf.perfmodel.latency.operator_table import AXES, OperatorTable
from specperf.perfmodel.shipped import find_one
from specperf.perfmodel.specs.models import ModelSpec, SpecError

KV_ALIGN = 16  # as profiler.blocks: attention sees the cache rounded up to 16 keys
KIND = "operator"
MIN_FILLED = 0.2  # a variant (bias, GQA) needs this fraction of its base operator's rows to be used
DEFAULT_GLUE = {"graph": {"factor": 1.0, "const_s": 0.0},
                "eager": {"host_factor": 1.0, "const_s": 0.0, "graph_factor": 1.0, "graph_const_s": 0.0},
                "head_graph": {"factor": 1.0, "const_s": 0.0},
                "head_eager": {"host_factor": 1.0, "const_s": 0.0, "graph_factor": 1.0, "graph_const_s": 0.0}}
COMPILED_GLUE = ("compiled", "head_compiled")  # fitted on measured compiled rows; no default
COMPILED_TERMS = ("gemm", "attention", "kv_pass", "elem")  # regressors of the compiled glue (compiled_terms)


def work(op: str, *sizes, elem_bytes: int = 2):
    """(HBM bytes, FLOPs) an operator must at least move / compute, sizes as in AXES."""
    if op in ("gemm", "gemm_bias"):
        m, n, k = (np.asarray(x, dtype=float) for x in sizes)
        return elem_bytes * (n * k + m * k + m * n), 2.0 * m * n * k
    if op in ("attention", "attention_gqa"):
        bh, q, L, hd = (np.asarray(x, dtype=float) for x in sizes)
        return elem_bytes * 2 * bh * L * hd, 4.0 * bh * q * L * hd
    if op == "attention_verify":
        n, bkv, grp, L, hd = (np.asarray(x, dtype=float) for x in sizes)
        return elem_bytes * 2 * bkv * L * hd, 4.0 * bkv * grp * n * L * hd
    if op == "launch":
        return 0.0, 0.0
    m, w = (np.asarray(x, dtype=float) for x in sizes)
    return elem_bytes * 2 * m * w, 0.0  # read + write one activation (an underestimate: a floor)


def shipped_operator_table(gpu: str, dtype: str = "fp16") -> Path | None:
    """The operator table shipped for `gpu` in `dtype` (manifest role operators), or None."""
    return find_one("operators", gpu=gpu, dtype=dtype)


def operator_table_for(gpu: str, dtype: str = "fp16") -> tuple[Path, str] | None:
    """(table, the dtype it answers) for `gpu`: the `dtype` table, else the fp16 one; None if neither."""
    for d in dict.fromkeys((dtype, "fp16")):
        p = shipped_operator_table(gpu, d)
        if p is not None:
            return p, d
    return None


def shards(spec: ModelSpec, tp: int):
    """Per-rank (n_heads, n_kv_heads, d_ff), as profiler.blocks.shard_sizes (KV heads replicated below tp)."""
    kv = spec.n_kv_heads // tp if spec.n_kv_heads % tp == 0 else 1
    return spec.n_heads // tp, kv, -(-spec.d_ff // tp)


class OperatorLatency:
    """forward()/overhead_s() of any layer shape from one GPU's operator table (loaded lazily)."""

    def __init__(self, path, hw, dtype: str = "fp16", fallback=None, scale=None, host_path=None,
                 host_scale: float = 1.0):
        """`host_path`: an operator table whose eager rows give the host launch costs (eager time
        is host time: re-measured on the host that will run the model, a few seconds)."""
        self.path, self.hw, self.dtype = Path(path), hw, dtype
        self.host_path = Path(host_path) if host_path else None
        self.host_scale = float(host_scale)  # host slower (> 1) or faster than when launch costs were timed
        self.file = self.path.name
        self.name = f"operator-composed ({self.file})"
        self._fallback = fallback
        self._table = None
        self._kernels = None
        self._layout = None
        self._grids: dict = {}
        self._host: dict = {}
        self._prov: dict = {}
        self._index = None
        self.scale = scale  # optional (op, seconds, bytes, flops) -> seconds on another GPU (crossgpu.py)

    # ---- data ----------------------------------------------------------------------------------
    @property
    def table(self) -> OperatorTable:
        if self._table is None:
            self._table = OperatorTable.load(self.path)
        return self._table

    def _fitted_glue(self) -> dict:
        """The glue fitted for this dtype (else fp16's) in the table's metadata; {} when none."""
        g = self.table.meta.get("glue", {})
        return g.get(self.dtype) or g.get("fp16") or {}

    @property
    def glue(self) -> dict:
        g = self._fitted_glue()
        return {k: dict(DEFAULT_GLUE[k], **g.get(k, {})) for k in DEFAULT_GLUE}

    def compiled_glue(self) -> dict | None:
        """The compiled-mode glue {'compiled': …, 'head_compiled': …} or None when none was fitted."""
        g = self._fitted_glue()
        return {k: g[k] for k in COMPILED_GLUE} if all(k in g for k in COMPILED_GLUE) else None

    @property
    def fallback(self):
        if self._fallback is None:  # build_provider passes the GPU's measured provider instead
            from specperf.perfmodel.latency.analytical import AnalyticalLatency

            self._fallback = AnalyticalLatency(self.hw)
        return self._fallback

    def _rows(self, op, mode, rows=None):
        if rows is not None:
            return [r for r in rows if r["op"] == op and r["mode"] == mode and r["dtype"] == self.dtype]
        if self._index is None:  # one pass over the table: rows by (op, mode) of this dtype
            self._index = {}
            for r in self.table.ok_rows():
                if r["dtype"] == self.dtype:
                    self._index.setdefault((r["op"], r["mode"]), []).append(r)
        return self._index.get((op, mode), [])

    def grid(self, op: str, mode: str = "graph") -> OpGrid | None:
        k = (op, mode)
        if k not in self._grids:
            pts = np.array([[r[c] for c in AXES[op]] + [r["median_s"]] for r in self._rows(op, mode)], dtype=float)
            base = {"gemm_bias": "gemm", "attention_gqa": "attention"}.get(op, op)
            nodes = len(self._rows(base, mode)) if base != op else 0
            # a grid mostly made of holes (a sweep stopped early) would be mostly extrapolation: unused
            self._grids[k] = OpGrid.from_points(pts) if len(pts) and len(pts) >= MIN_FILLED * nodes else None
        return self._grids[k]

    @property
    def kernels(self) -> str:
        """The attention kernels the table was timed with (metadata `kernels`; older tables: 'plain').
        Read from the sidecar alone, so asking does not load the table."""
        if self._kernels is None:
            meta = self._table.meta if self._table is not None else OperatorTable.read_meta(self.path)
            self._kernels = meta.get("kernels", "plain")
        return self._kernels

    @property
    def per_forward_step(self) -> bool:
        """Layers were timed taking the forward's positions and RoPE rows from a Step built once per
        forward (profiler.blocks; metadata `layer_layout`), whose cost the head carries."""
        if self._layout is None:
            meta = self._table.meta if self._table is not None else OperatorTable.read_meta(self.path)
            self._layout = meta.get("layer_layout", "per-layer")
        return self._layout == "per-forward-step"

    @property
    def engine_kernels(self) -> bool:
        """Timed with profiler.attention's engine-grade kernels (`engine` or `packed`)."""
        return self.kernels in ("engine", "packed")

    def op_s(self, op: str, *sizes, mode: str = "graph"):
        if op == "attention_grouped":  # engine kernels, grouped queries: (batch×KV, group, n, L, hd)
            bkv, grp, n, L, hd = sizes
            many = np.asarray(n) > 1
            one = self.op_s("attention_gqa", bkv, grp * n, L, hd, mode=mode)  # decode: heads folded, as profiled
            if self.grid("attention_verify", mode) is not None:  # n > 1 measured (native GQA, lower-right)
                return np.where(many, self.op_s("attention_verify", np.maximum(n, 2), bkv, grp, L, hd, mode=mode), one)
            # older tables: n > 1 priced as H = KV·group separate heads (what causal flash costs)
            return np.where(many, self.op_s("attention", bkv * grp, n, L, hd, mode=mode), one)
        g = self.grid(op, mode)
        if g is None and op == "gemm_bias":  # bias not swept (yet): cuBLAS fuses it in the epilogue
            g = self.grid("gemm", mode)
        if g is None:
            raise KeyError(f"{self.file} has no {mode} rows of operator {op!r} ({self.dtype})")
        bw, peak = self.ceilings()
        nbytes, flops = work(op, *sizes)
        t = np.maximum(g(*sizes), np.maximum(nbytes / bw, flops / peak))
        return self.scale(op, t, nbytes, flops) if self.scale is not None else t

    def ceilings(self):
        """(bytes/s, FLOP/s): the best rates any graph row of this table achieved — a floor for
        every operator, so sizes beyond the grid (or in its unmeasured corners) are never cheaper
        than the card's measured streaming and matrix rates allow."""
        if "_ceil" not in self._host:
            bw = peak = 0.0
            for op in AXES:
                rows = self._rows(op, "graph")
                if rows:
                    t = np.array([r["median_s"] for r in rows])
                    by, fl = work(op, *(np.array([r[c] for r in rows], dtype=float) for c in AXES[op]))
                    bw = max(bw, float(np.max(np.asarray(by) / t)))
                    peak = max(peak, float(np.max(np.asarray(fl) / t)))
            self._host["_ceil"] = (bw or np.inf, peak or np.inf)
        return self._host["_ceil"]

    def host_s(self, op: str) -> float:
        """Host launch cost of one call of `op` in eager mode: its eager time at its smallest size."""
        if op == "attention_grouped":
            op = "attention_verify" if self._rows("attention_verify", "eager") else "attention_gqa"
        if op not in self._host:
            src = OperatorTable.load(self.host_path).ok_rows() if self.host_path else None
            rows = self._rows(op, "eager", src) or self._rows("launch", "eager", src)
            if not rows:
                raise KeyError(f"{self.file} has no eager rows ({self.dtype})")
            self._host[op] = self.host_scale * float(min(rows, key=lambda r: tuple(r[c] for c in AXES[r["op"]]))["median_s"])
        return self._host[op]

    # ---- composition ---------------------------------------------------------------------------
    def layer_ops(self, spec: ModelSpec, batch, new_tokens, context, tp=1):
        """[(op, sizes...)] of one (sharded) layer; sizes broadcast over batch/new_tokens/context."""
        b, n, c = (np.asarray(x, dtype=float) for x in (batch, new_tokens, context))
        H, KV, ff = shards(spec, tp)
        hd, d, M = spec.head_dim, spec.d_model, b * n
        grp = H // KV
        engine = self.engine_kernels
        L = (c + n) if engine else np.ceil((c + n) / KV_ALIGN) * KV_ALIGN  # engine: exactly the cached keys
        norm = "layernorm" if spec.norm == "layernorm" else "rmsnorm"
        qkv_bias = "gemm_bias" if spec.qkv_bias or spec.linear_bias else "gemm"
        lin = "gemm_bias" if spec.linear_bias else "gemm"
        n_up = 2 if spec.gated_mlp else 1
        ops = [(norm, M, d), (qkv_bias, M, (H + 2 * KV) * hd, d), ("kv_write", M, KV * hd)]
        if spec.qk_norm:  # Qwen3: RMSNorm over head_dim on every q and k head (profiler/blocks.py)
            ops += [("rmsnorm", M * H, hd), ("rmsnorm", M * KV, hd)]
        if not spec.learned_positions:
            ops += [("rope", M, H * hd), ("rope", M, KV * hd)]
        # `engine` verification runs each query head on its own; `packed` folds them as the grid does
        attn = (("attention_grouped", b * KV, grp, n, L, hd) if self.kernels == "engine" and grp > 1 else
                ("attention_gqa" if grp > 1 else "attention", b * KV, grp * n, L, hd))
        ops += [attn,
                (lin, M, d, H * hd), ("add", M, d), (norm, M, d), (lin, M, n_up * ff, d),
                ("silu_mul" if spec.gated_mlp else "relu", M, ff), (lin, M, d, ff), ("add", M, d)]
        return ops

    def head_ops(self, spec: ModelSpec, batch, new_tokens, tp=1):
        b, n = np.asarray(batch, dtype=float), np.asarray(new_tokens, dtype=float)
        M, d, e = b * n, spec.d_model, spec.embed_dim or spec.d_model
        norm = "layernorm" if spec.norm == "layernorm" else "rmsnorm"
        ops = [("embed", M, e)]
        if e != d:
            ops += [("gemm", M, d, e), ("gemm", M, e, d)]
        if spec.learned_positions:
            ops += [("embed", M, d), ("add", M, d)]
        if self.per_forward_step:  # the Step: positions = pos + arange(n), cos and sin rows gathered
            ops += [("launch", 1), ("add", M, 1)]
            if not spec.learned_positions:
                ops += [("embed", M, spec.head_dim), ("embed", M, spec.head_dim)]
        return ops + [(norm, M, d), ("gemm", M, -(-spec.vocab // tp), e)]

    def _sums(self, ops):
        seen: dict = {}  # a layer repeats some operators with the same sizes (two norms, two adds)
        for op, *sz in ops:
            key = (op,) + tuple(float(x) if np.ndim(x) == 0 else id(x) for x in sz)
            if key in seen:
                seen[key][1] += 1
            else:
                seen[key] = [self.op_s(op, *sz), 1]
        gpu = sum(t * k for t, k in seen.values())
        host = sum(self.host_s(op) for op, *_ in ops)
        return np.asarray(gpu, dtype=float), float(host)

    def compiled_terms(self, ops) -> dict:
        """The compiled-mode regressors of `ops` (seconds): GEMM and attention graph-mode times, one
        streaming pass over the attention's KV cache at the table's best rate (torch.compile copies the
        whole cache for the in-place KV write), and the elementwise operators' time (which it fuses)."""
        bw, _ = self.ceilings()
        t = {k: 0.0 for k in COMPILED_TERMS}
        for op, *sz in ops:
            if op.startswith("attention"):
                t["attention"] = t["attention"] + self.op_s(op, *sz)
                if not self.engine_kernels:  # engine: the KV write is an opaque in-place op, no cache copy
                    t["kv_pass"] = t["kv_pass"] + work(op, *sz)[0] / bw
            else:
                k = "gemm" if op.startswith("gemm") else "elem"
                t[k] = t[k] + self.op_s(op, *sz)
        return {k: np.asarray(v, dtype=float) for k, v in t.items()}

    def _compiled(self, ops, key):
        g = self.compiled_glue()[key]
        terms = self.compiled_terms(ops)
        return sum(g.get(f"{k}_factor", 0.0) * terms[k] for k in COMPILED_TERMS) + g["const_s"]

    def _glued(self, gpu, host, mode, key):
        g = self.glue[key if mode == "graph" else key.replace("graph", "eager")]
        if mode == "graph":
            return g["factor"] * gpu + g["const_s"]
        return np.maximum(g["host_factor"] * host + g["const_s"], g["graph_factor"] * gpu + g["graph_const_s"])

    def layer_s(self, spec, batch, new_tokens, context, tp=1, mode="graph"):
        ops = self.layer_ops(spec, batch, new_tokens, context, tp)
        if mode == "compiled":
            return self._compiled(ops, "compiled")
        gpu, host = self._sums(ops)
        return self._glued(gpu, host, mode, "graph")

    def lm_head_s(self, spec, batch, new_tokens, tp=1, mode="graph"):
        ops = self.head_ops(spec, batch, new_tokens, tp)
        if mode == "compiled":
            return self._compiled(ops, "head_compiled")
        gpu, host = self._sums(ops)
        return self._glued(gpu, host, mode, "head_graph")

    def forward(self, spec: ModelSpec, batch, new_tokens, context, tp=1, mode="graph") -> ComponentTimes:
        _check_mode(mode)
        if mode == "compiled" and self.compiled_glue() is None:  # no compiled glue fitted: the fallback answers
            if self.fallback is None:
                raise SpecError("the operator table has no compiled-mode glue (scripts/fit_operator_glue.py "
                                "--compiled-layers) and no fallback")
            return self.fallback.forward(spec, batch, new_tokens, context, tp, mode)
        tp = check_tp(spec, tp)
        shape = np.broadcast(np.asarray(batch), np.asarray(new_tokens), np.asarray(context)).shape
        layer = self.layer_s(spec, batch, new_tokens, context, tp, mode) + np.zeros(shape)
        head = self.lm_head_s(spec, batch, new_tokens, tp, mode) + np.zeros(shape)
        if tp > 1:
            fb = self.fallback.forward(spec, batch, new_tokens, context, tp, mode)
            ar, ar_src = fb.allreduce_s + np.zeros(shape), fb.sources["allreduce"]
        else:
            ar, ar_src = np.zeros(shape), NONE_TP1
        src = self._prov.get(mode) or self._prov.setdefault(mode, self.provenance(mode))
        return ComponentTimes(layer_s=layer, allreduce_s=ar, lm_head_s=head, n_layers=spec.n_layers,
                              sources={"layer": src, "lm_head": src, "allreduce": ar_src})

    def provenance(self, mode: str) -> Provenance:
        """kind 'operator', this table, and the 90 % error band measured on unseen whole models
        (scripts/shape_check.py → scripts/error_bands.py --operator-check) when there is one."""
        from specperf.perfmodel.latency.bands import band as kind_band

        band = kind_band("operator", mode)  # perfmodel/data/error_bands.json (scripts/error_bands.py)
        band = band if band is not None else self.table.meta.get("band", {}).get(mode)
        detail = f"{self.dtype}" + (f", 90 % band ±{band:.0%} on unseen shapes" if band else "")
        return Provenance.of("operator", self.file, detail=detail, band=band)

    def overhead_s(self, spec: ModelSpec, batch, gamma, mode="graph"):
        """Sampling/accept/sync outside forwards: not an operator-table quantity; the fallback's."""
        return self.fallback.overhead_s(spec, batch, gamma, mode)


def operator_provider(hw, dtype: str = "fp16", fallback=None) -> OperatorLatency | None:
    """The operator-composed provider of catalog GPU `hw` from its shipped table, or None."""
    found = operator_table_for(hw.name, dtype)
    return None if found is None else OperatorLatency(found[0], hw, found[1], fallback)


__all__ = ["OperatorLatency", "operator_provider", "operator_table_for", "shipped_operator_table", "shards", "work", "KIND"]
