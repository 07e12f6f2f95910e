"""A real speculative-decoding loop over two decoder models with static KV caches, eager, under
CUDA graphs, or compiled (torch.compile'd layers captured in CUDA graphs, profiler.compiled), with acceptance from the synthetic oracle or from real greedy verification.

One iteration, for a batch whose sequences each hold `pos[s]` tokens in both caches and one
emitted token `last[s]` not yet cached: γ draft forwards of one token each (argmax feeds the next
step), one target forward over [last, d_1..d_γ], argmax over the target's γ+1 logits, accept/reject
per sequence (oracle: leading run of Bernoulli(α_i); greedy: leading run of d_i == target argmax),
the correction/bonus token becomes `last`, `pos += accepted + 1` (stale cache slots beyond it are
the rollback: masked, then overwritten), and one host sync copies the emitted tokens out. Every
sequence does γ draft steps, so the batch paces the iteration. Key assumption: the draft step and
the verify forward are what a CUDA-graph engine captures; argmax of the target, accept/reject and
the sync run eagerly each iteration, as in vLLM. `steady=True` rolls every sequence back to the
start context before each iteration, so each timed iteration sees exactly `context` cached tokens
(the point the model predicts); attention then reads a static kv_len = context + γ + 1.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from specperf.perfmodel.specs.models import SpecError

from .oracle import AcceptanceOracle


LOOP_MODES = ("eager", "graph", "compiled")


def _fwd(model):
    return model.forward if hasattr(model, "forward") else model


def _compiled_fwd(model):
    """Compiled mode: a DecoderModel's forward with its layers through torch.compile (profiler.compiled,
    the same compiled functions the profiler times), captured in CUDA graphs like graph mode."""
    from . import compiled

    if not hasattr(model, "layers") or not hasattr(model, "head"):
        raise SpecError("mode=compiled needs profiler.blocks.DecoderModel models (layers + head)")
    return compiled.model_fn(model)


def _capture(fn, pool, before=None):
    """Warm up `fn` on a side stream, then capture one call of it as a CUDA graph; `before()`
    restores the state `fn` mutates (step counters, positions) ahead of every call."""
    before = before or (lambda: None)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            before()
            fn()
    torch.cuda.current_stream().wait_stream(s)
    before()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, pool=pool):
        fn()
    before()
    return g


@dataclass
class IterationLog:
    """What `run` measured: wall seconds and tokens emitted per sequence, per iteration."""
    iteration_s: np.ndarray  # [iterations]
    tokens: np.ndarray  # [iterations, batch] tokens emitted (accepted + 1)
    output: list  # per sequence, the emitted token ids in order

    @property
    def total_tokens(self) -> int:
        return int(self.tokens.sum())


class SpecLoop:
    """Speculative decoding of `batch` sequences with lookahead `gamma` (γ = 0: target alone)."""

    def __init__(self, draft, target, batch: int, gamma: int, *, mode: str = "eager",
                 oracle: AcceptanceOracle | None = None, device="cpu", steady: bool = False,
                 context: int = 0, catchup: bool | None = None):
        if mode not in LOOP_MODES:
            raise SpecError(f"mode={mode!r} is not allowed; use {', '.join(LOOP_MODES)}")
        if batch <= 0 or gamma < 0:
            raise SpecError(f"batch={batch}, gamma={gamma}: batch must be > 0 and γ ≥ 0")
        self.dev = torch.device(device)
        if mode != "eager" and self.dev.type != "cuda":
            raise SpecError(f"mode={mode} needs a CUDA device (CUDA graphs); use mode=eager on CPU")
        if gamma > 0 and draft is None:
            raise SpecError("γ > 0 needs a draft model")
        # prefill (reset with a prompt) always runs the plain forward: engines compile decode, and
        # compiling the prompt's shape would cost a compile for nothing the loop times
        self._prefill_draft = _fwd(draft) if draft is not None else None
        self._prefill_target = _fwd(target)
        step = _compiled_fwd if mode == "compiled" else _fwd
        self.draft, self.target = (step(draft) if draft is not None else None), step(target)
        self.b, self.g, self.mode, self.oracle, self.steady = batch, gamma, mode, oracle, steady
        self.context = int(context)
        # greedy runs must keep the draft cache exact: its first step re-feeds the previous token
        self.catchup = (oracle is None and gamma > 0) if catchup is None else bool(catchup)
        self.kv_verify = self.context + gamma + 1 if steady else None
        self.kv_draft = self.context + gamma + 1 if steady else None
        L = torch.long
        z = lambda *s: torch.zeros(s, dtype=L, device=self.dev)  # noqa: E731
        self.pos, self.last, self.prev = z(batch), z(batch), z(batch)
        self.d_tok, self.d_pos, self.step = z(batch, 1), z(batch), z(batch, 1)
        self.c_tok = z(batch, 2)
        self.drafts = z(batch, max(gamma, 1))
        self.v_tok, self.v_pos = z(batch, gamma + 1), z(batch)
        self.v_logits = None
        self._graphs: dict = {}

    # ---- the captured pieces ---------------------------------------------------------------------
    def _draft_body(self, logits):
        nxt = logits[:, -1].argmax(dim=-1, keepdim=True)
        self.d_tok.copy_(nxt)
        self.drafts.scatter_(1, self.step, nxt)
        self.step.add_(1)

    def _draft_step(self):
        self._draft_body(self.draft(self.d_tok, self.d_pos, self.kv_draft))
        self.d_pos.add_(1)

    def _catchup_step(self):  # 2 tokens [prev, last] at pos-1: rewrites prev's KV, proposes d_1
        self._draft_body(self.draft(self.c_tok, self.d_pos, self.kv_draft))
        self.d_pos.add_(2)

    def _verify(self):
        self.v_logits = self.target(self.v_tok, self.v_pos, self.kv_verify)

    def prepare(self) -> None:
        """Capture the CUDA graphs (graph and compiled mode; the first capture's warm-up compiles);
        call before `reset`, since warm-up writes caches."""
        if self.mode == "eager" or self._graphs:
            return
        with torch.inference_mode():
            self._capture_all(torch.cuda.graph_pool_handle())
        torch.cuda.synchronize()

    def _capture_all(self, pool) -> None:
        def at(p):
            def before():
                self.step.zero_()
                self.d_pos.fill_(p)
            return before

        self.v_pos.fill_(self.context)
        if self.g > 0:
            self._graphs["draft"] = _capture(self._draft_step, pool, at(self.context))
            if self.catchup:
                self._graphs["catchup"] = _capture(self._catchup_step, pool, at(max(self.context - 1, 0)))
        self._graphs["verify"] = _capture(self._verify, pool)

    def _call(self, name, fn):
        g = self._graphs.get(name)
        g.replay() if g is not None else fn()

    # ---- state -----------------------------------------------------------------------------------
    def reset(self, context: int | None = None, prompt=None) -> None:
        """Start every sequence at `context` cached tokens. With `prompt` [b, context+1] (token ids)
        both caches are prefilled with prompt[:, :context] and prompt[:, context] is `last`;
        otherwise the caches keep whatever they hold (random) and `last` is token 0."""
        c = self.context if context is None else int(context)
        self.pos.fill_(c)
        if prompt is None:
            self.last.zero_()
            self.prev.zero_()
            return
        p = torch.as_tensor(prompt, dtype=torch.long, device=self.dev)
        if p.shape != (self.b, c + 1) or c < 1:
            raise SpecError(f"prompt shape {tuple(p.shape)} must be (batch={self.b}, context+1={c + 1}), context ≥ 1")
        zero = torch.zeros(self.b, dtype=torch.long, device=self.dev)
        with torch.inference_mode():
            self._prefill_target(p[:, :c], zero, None)
            if self._prefill_draft is not None:
                self._prefill_draft(p[:, :c], zero, None)
        self.last.copy_(p[:, c])
        self.prev.copy_(p[:, c - 1])

    # ---- one iteration -----------------------------------------------------------------------------
    def iterate(self) -> torch.Tensor:
        """One iteration; returns the host copy [b, 1 + γ + 1]: accepted count, drafts, last token."""
        b, g = self.b, self.g
        if self.steady:
            self.pos.fill_(self.context)
        if g > 0:
            self.step.zero_()
            if self.catchup:
                self.c_tok[:, 0].copy_(self.prev)
                self.c_tok[:, 1].copy_(self.last)
                torch.sub(self.pos, 1, out=self.d_pos)
                self._call("catchup", self._catchup_step)
                first = 1
            else:
                self.d_tok[:, 0].copy_(self.last)
                self.d_pos.copy_(self.pos)
                first = 0
            for _ in range(first, g):
                self._call("draft", self._draft_step)
            self.v_tok[:, 1:].copy_(self.drafts[:, :g])
        self.v_tok[:, 0].copy_(self.last)
        self.v_pos.copy_(self.pos)
        self._call("verify", self._verify)
        t_arg = self.v_logits.argmax(dim=-1)  # [b, γ+1]: greedy target tokens
        if g == 0:
            n = torch.zeros(b, dtype=torch.long, device=self.dev)
        elif self.oracle is not None:
            n = self.oracle.accepted(b, g)
        else:
            n = (self.drafts[:, :g] == t_arg[:, :g]).to(torch.long).cumprod(dim=1).sum(dim=1)
        new_last = t_arg.gather(1, n[:, None])[:, 0]
        if g > 0:
            before = self.drafts[:, :g].gather(1, (n - 1).clamp(min=0)[:, None])[:, 0]
            self.prev.copy_(torch.where(n > 0, before, self.last))
        else:
            self.prev.copy_(self.last)
        self.last.copy_(new_last)
        self.pos.add_(n + 1)
        parts = [n[:, None]] + ([self.drafts[:, :g]] if g > 0 else []) + [new_last[:, None]]
        return torch.cat(parts, dim=1).cpu()  # the one host sync of the iteration

    def run(self, iterations: int, collect_output: bool = False) -> IterationLog:
        """`iterations` timed iterations (wall clock across each iteration's host sync)."""
        if not self.steady:
            need = int(self.pos.max()) + iterations * (self.g + 1) + 2
            lim = getattr(getattr(self._prefill_target, "__self__", None), "max_context", None)
            if lim is not None and need > lim:
                raise SpecError(f"{iterations} iterations at γ={self.g} need {need} cache slots; "
                                f"the model holds max_context={lim}")
        times = np.empty(iterations)
        toks = np.empty((iterations, self.b), dtype=np.int64)
        out: list = [[] for _ in range(self.b)]
        with torch.inference_mode():
            for i in range(iterations):
                t0 = time.perf_counter()
                h = self.iterate()
                times[i] = time.perf_counter() - t0
                n = h[:, 0].numpy()
                toks[i] = n + 1
                if collect_output:
                    for s in range(self.b):
                        k = int(n[s])
                        out[s].extend(h[s, 1:1 + k].tolist() + [int(h[s, -1])])
        return IterationLog(iteration_s=times, tokens=toks, output=out)


def greedy_reference(target, prompt, new_tokens: int) -> list:
    """Plain autoregressive greedy decoding with the target alone (the output speculative
    decoding with greedy verification must reproduce exactly)."""
    fwd = _fwd(target)
    p = torch.as_tensor(prompt, dtype=torch.long)
    b, c1 = p.shape
    dev = next(iter(target.parameters())).device if hasattr(target, "parameters") else p.device
    p = p.to(dev)
    out = [[] for _ in range(b)]
    with torch.inference_mode():
        logits = fwd(p, torch.zeros(b, dtype=torch.long, device=dev), None)
        tok = logits[:, -1].argmax(-1)
        pos = torch.full((b,), c1, dtype=torch.long, device=dev)
        for _ in range(new_tokens):
            for s in range(b):
                out[s].append(int(tok[s]))
            logits = fwd(tok[:, None], pos, None)
            tok = logits[:, -1].argmax(-1)
            pos += 1
    return out
