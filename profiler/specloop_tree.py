"""Own speculative-decoding loop with an EAGLE-style head, as a chain or as a token tree (issue 28),
batch 1, greedy, eager mode, on profiler.blocks' decoder layers (random target weights).

The head (EAGLE-1 style): fc(concat(embedding(x_t), f_{t-1})) 2d → d, one decoder layer at the
target's shape with its own KV cache, the target's final norm and LM head (shared). f = the target's
last hidden state (before the final norm). One iteration at cached length p, last emitted token x_p:
  step 1 (catch-up): the head over the γ+1 (padded) positions the last verification settled, which
    yields the first proposals; steps 2..: one head forward per chain token / per tree level;
  verification: the target over [x_p, proposals] at once — a causal chain, or the tree under its
    tree mask (RoPE position = p + depth, cache slot = p + node index); the accepted path's KV and
    features are compacted to consecutive slots afterwards, every iteration (as engines do).
Chains and trees keep their proposals on the device and sync once per iteration (the target's tokens
and the proposals together, as an engine learns how far to roll back). A tree iteration also does
work around its forwards that a chain does not: per level a top-k over its parents' logits, gathers
and scatters of tokens, features and logits, a tree mask; then the tree's verification mask, the
accepted path's search and the compaction. In eager mode each of those ops costs host time (the
H100 run _gpu/r1 missed 1.0-1.45 ms of it per iteration, trees of 6-24 tokens), so
`time_tree_bookkeeping` times it alone, the forwards answered by StubForwards. Rank bookkeeping
(`record_ranks`) is for the calibration run, not timed runs. Greedy acceptance keeps the target's
own greedy output (tests check it token for token). Key assumption: this is the cost structure
perfmodel.specdec.heads / tree_method model — catch-up over γ+1 positions, one step per chain token
or tree level, one verification over γ+1 tokens, plus (trees) the bookkeeping measured alone.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from .blocks import DecoderLayer, DecoderModel, _norm


def block(layer: DecoderLayer, x, rope_pos, slots, mask):
    """One decoder layer over x [1, n, d] with explicit RoPE positions and cache slots [n] and a
    boolean mask [1, 1, n, L] over cache slots (L = mask's last dim)."""
    n, hd, H, KV = x.shape[1], layer.head_dim, layer.n_heads, layer.n_kv_heads
    h = _norm(layer.spec, x, layer.norm1_w, layer.norm1_b)
    q, k, v = F.linear(h, layer.w_qkv, layer.b_qkv).split([H * hd, KV * hd, KV * hd], dim=-1)
    q, k, v = q.view(1, n, H, hd), k.view(1, n, KV, hd), v.view(1, n, KV, hd)
    cos, sin = layer.rope_cos[rope_pos][None, :, None, :], layer.rope_sin[rope_pos][None, :, None, :]
    rot = lambda t: torch.cat([-t[..., hd // 2:], t[..., :hd // 2]], dim=-1)  # noqa: E731
    q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
    layer.cache_k[0, :, slots] = k[0].transpose(0, 1)
    layer.cache_v[0, :, slots] = v[0].transpose(0, 1)
    L = mask.shape[-1]
    keys, vals = layer.cache_k[:1, :, :L], layer.cache_v[:1, :, :L]
    if H != KV:
        keys, vals = keys.repeat_interleave(H // KV, dim=1), vals.repeat_interleave(H // KV, dim=1)
    o = F.scaled_dot_product_attention(q.transpose(1, 2), keys, vals, attn_mask=mask)
    x = x + F.linear(o.transpose(1, 2).reshape(1, n, H * hd), layer.w_o, layer.b_o)
    return x + layer.mlp(_norm(layer.spec, x, layer.norm2_w, layer.norm2_b))


def target_forward(model: DecoderModel, tokens, rope_pos, slots, mask):
    """(logits [1, n, V], features [1, n, d]) of the target over `tokens` [1, n]."""
    x = model.head.embed(tokens, torch.zeros(1, dtype=torch.long, device=tokens.device))
    for layer in model.layers:
        x = block(layer, x, rope_pos, slots, mask)
    return model.head.logits(x), x


def causal(slots_q, L: int, device):
    """Mask [1, 1, n, L]: query i sees cache slots ≤ slots_q[i]."""
    return (torch.arange(L, device=device)[None, :] <= slots_q[:, None])[None, None]


class EagleHead(torch.nn.Module):
    def __init__(self, target: DecoderModel, max_context: int, dtype="fp16", device="cpu", seed: int = 7):
        super().__init__()
        spec = target.spec
        self.target = target
        self.layer = DecoderLayer(spec.replace(n_layers=1), 1, max_context, dtype, device, seed=seed)
        d = spec.d_model
        g = torch.Generator(device=device).manual_seed(seed)
        w = torch.randn(d, 2 * d, generator=g, device=device) * (2 * d) ** -0.5
        self.fc = torch.nn.Parameter(w.to(self.layer.w_qkv.dtype))

    def forward(self, tokens, feats, rope_pos, slots, mask):
        """(logits, hidden) of the head: input = fc(embedding ⊕ feature)."""
        e = self.target.head.embed(tokens, torch.zeros(1, dtype=torch.long, device=tokens.device))
        x = block(self.layer, F.linear(torch.cat([e, feats], dim=-1), self.fc), rope_pos, slots, mask)
        return self.target.head.logits(x), x


class StubForwards:
    """Stand-ins for the head's and the target's forwards returning preallocated random outputs of the
    right shapes: with them, a timed iteration measures the loop's own work around its forwards
    (top-k per level, tree masks, gathers and scatters, accept/reject, compaction, the host sync)."""

    def __init__(self, vocab: int, d: int, n_max: int, dtype, device, seed: int = 0):
        g = torch.Generator(device=device).manual_seed(seed)
        self.lg = torch.randn(1, n_max, vocab, generator=g, device=device).to(dtype)
        self.hid = torch.randn(1, n_max, d, generator=g, device=device).to(dtype)

    def head(self, tokens, feats, rope_pos, slots, mask):
        return self.lg[:, :tokens.shape[1]], self.hid[:, :tokens.shape[1]]

    def target(self, tokens, rope_pos, slots, mask):
        return self.lg[:, :tokens.shape[1]], self.hid[:, :tokens.shape[1]]


def time_tree_bookkeeping(target: DecoderModel, head: EagleHead, tree, p: int, time_fn, reps: int) -> float:
    """Seconds of one tree iteration's own work at cached length p — everything `_tree_iteration` does
    but the head's and the target's forwards (StubForwards answer them) — timed by `time_fn(fn, reps)`.
    The target's KV slots ≥ p are overwritten (compaction), as a run would."""
    loop = HeadLoop(target, head, tree=tree, record_ranks=False)
    dev, V, d = head.fc.device, target.spec.vocab, target.spec.d_model
    stub = StubForwards(V, d, tree.size + 1, head.fc.dtype, dev)
    loop.head_fw, loop.target_fw = stub.head, stub.target
    toks = torch.randint(0, V, (1, loop.L), device=dev)
    F_ = torch.zeros(1, loop.L, d, dtype=head.fc.dtype, device=dev)
    with torch.no_grad():
        return time_fn(lambda: loop.tree_step(toks, F_, p, stub.lg[0, 0], stub.hid[:, :1]), reps)


def greedy_reference(target: DecoderModel, prompt, n_new: int):
    """The target's own greedy continuation (one token per forward): what every loop must emit."""
    dev = prompt.device
    P = prompt.shape[1]
    L = target.max_context
    s = torch.arange(P, device=dev)
    logits, _ = target_forward(target, prompt, s, s, causal(s, L, dev))
    out = [int(logits[0, -1].argmax())]
    for i in range(n_new - 1):
        t = torch.tensor([[out[-1]]], device=dev)
        s = torch.tensor([P + i], device=dev)
        logits, _ = target_forward(target, t, s, s, causal(s, L, dev))
        out.append(int(logits[0, -1].argmax()))
    return out


class HeadLoop:
    """Speculative decoding with an EagleHead, batch 1: `tree` None → a chain of γ proposals; else a
    perfmodel.specdec.trees.Tree drafted level by level (each node's rank = its parent's top-k index)."""

    def __init__(self, target: DecoderModel, head: EagleHead, gamma: int = 4, tree=None, record_ranks: bool = True):
        self.t, self.h, self.gamma, self.tree = target, head, gamma, tree
        self.depth = tree.levels if tree is not None else gamma
        self.L = target.max_context
        self.record_ranks = record_ranks  # rank bookkeeping (top-8 + a sync per depth); off in timed runs
        # the forwards the loop calls (StubForwards replaces them to time the loop's own work alone)
        self.head_fw = head
        self.target_fw = lambda tokens, rope_pos, slots, mask: target_forward(target, tokens, rope_pos, slots, mask)
        self._slots = torch.arange(self.L, device=head.fc.device)  # cache slots, for causal masks
        self._kv = None
        if tree is not None:  # the target's K/V caches as views of one tensor: compaction is one gather + one copy
            self._kv = torch.stack([c for layer in target.layers for c in (layer.cache_k, layer.cache_v)])
            for i, layer in enumerate(target.layers):
                layer.cache_k, layer.cache_v = self._kv[2 * i], self._kv[2 * i + 1]
        self.rank_hits = np.zeros((self.depth, 8))  # [depth, rank of the target's token in the head's top-8]
        self.rank_seen = np.zeros(self.depth)

    @torch.no_grad()
    def generate(self, prompt, n_new: int, time_it: bool = False):
        dev = prompt.device
        P = prompt.shape[1]
        s = torch.arange(P, device=dev)
        logits, feats = target_forward(self.t, prompt, s, s, causal(s, self.L, dev))
        F_ = torch.zeros(1, self.L, feats.shape[-1], dtype=feats.dtype, device=dev)  # target features by position
        F_[:, :P] = feats
        toks = torch.zeros(1, self.L, dtype=torch.long, device=dev)
        toks[0, :P] = prompt[0]
        p = P  # next position; x_p = last emitted, not yet in the target cache
        toks[0, p] = logits[0, -1].argmax()
        out, iters, per_iter = [int(toks[0, p])], 0, []
        settle_from = 1  # the head has seen no position yet: its first catch-up covers 1..p
        t0 = time.perf_counter()
        while len(out) < n_new and p + self.depth + 2 < self.L:
            if time_it and dev.type == "cuda":
                torch.cuda.synchronize()
            ti = time.perf_counter()
            emitted = self._iteration(toks, F_, p, settle_from)
            if time_it and dev.type == "cuda":
                torch.cuda.synchronize()
            per_iter.append(time.perf_counter() - ti)
            settle_from = p + 1
            p += len(emitted)
            out += emitted
            iters += 1
        return {"tokens": out[:n_new], "iterations": iters, "iteration_s": per_iter,
                "wall_s": time.perf_counter() - t0, "emitted": len(out)}

    def _catchup(self, toks, F_, start: int, p: int):
        """Head over positions start..p (x_t, f_{t-1}), padded to depth+1 positions; the output at p."""
        dev = toks.device
        n = min(max(p - start + 1, self.depth + 1), p)  # positions 1..p exist (f_{t-1} needs t ≥ 1)
        pos = torch.arange(p - n + 1, p + 1, device=dev)
        lg, hid = self.head_fw(toks[:, pos], F_[:, pos - 1], pos, pos, causal(pos, self.L, dev))
        return lg[0, -1], hid[:, -1:]

    def _iteration(self, toks, F_, p: int, settle_from: int):
        dev = toks.device
        lg, hid = self._catchup(toks, F_, settle_from, p)
        if self.tree is None:  # proposals stay on the device: one host sync per iteration (as engines)
            g = self.gamma
            pos = self._slots[p:p + g + 1]
            d, hs = [], hid
            for k in range(g):
                d.append(lg.argmax().view(1, 1))
                if self.record_ranks:
                    self._note_rank(k, lg)
                if k + 1 < g:
                    q = pos[k + 1:k + 2]
                    lg2, hs = self.head_fw(d[-1], hs, q, q, (self._slots[None, :] <= q[:, None])[None, None])
                    lg = lg2[0, -1]
            cand = torch.cat([toks[:, p:p + 1]] + d, dim=1)
            tl, tf = self.target_fw(cand, pos, pos, (self._slots[None, :] <= pos[:, None])[None, None])
            y_dev = tl[0].argmax(-1)
            both = torch.cat([y_dev, cand[0, 1:]]).tolist()  # the one sync: the target's tokens and the proposals
            y, dl = both[:g + 1], both[g + 1:]
            a = 0
            while a < g and dl[a] == y[a]:
                a += 1
            if self.record_ranks:
                self._note_truth(y, lg_chain=None)
            emitted = dl[:a] + [y[a]]
            F_[:, p:p + a + 1] = tf[:, :a + 1]
            toks[0, p + 1:p + a + 2] = torch.cat([cand[0, 1:a + 1], y_dev[a:a + 1]])
            return emitted
        return self._tree_iteration(toks, F_, p, lg, hid)

    def _tree_iteration(self, toks, F_, p: int, root_logits, root_hidden):
        tr, dev = self.tree, toks.device
        depth, N = tr.depth, tr.size
        if not hasattr(self, "_levels"):  # the tree is fixed: its levels, index tensors and ancestor mask once
            lv = [[i for i in range(N) if depth[i] == lvl] for lvl in range(1, tr.levels + 1)]
            t = lambda v: torch.tensor(v, device=dev)  # noqa: E731
            self._levels = [(t(nodes), t([tr.parent[i] + 1 for i in nodes]), t([[tr.rank[i]] for i in nodes]))
                            for nodes in lv]  # (node ids, parent rows: 0 = root, ranks)
            self._anc = torch.as_tensor(tr.mask(), device=dev)
            self._kmax = max(tr.rank) + 1
            self._rope = t([0] + list(depth))
        V = root_logits.shape[-1]
        lgt = torch.empty(N + 1, V, dtype=root_logits.dtype, device=dev)  # row 0: the root; row 1 + i: node i
        lgt[0] = root_logits
        hid = torch.empty(1, N + 1, root_hidden.shape[-1], dtype=root_hidden.dtype, device=dev)
        hid[:, :1] = root_hidden
        tok = torch.empty(N, dtype=torch.long, device=dev)
        for lvl, (idx, prow, rk) in enumerate(self._levels, start=1):  # on the device: no sync while drafting
            top = torch.topk(lgt[prow], min(self._kmax, V), dim=-1).indices
            tok[idx] = top.gather(1, rk)[:, 0]  # the node's token: its rank among its parent's candidates
            if lvl == tr.levels:
                break
            mask = torch.zeros(1, 1, idx.numel(), self.L, dtype=torch.bool, device=dev)
            mask[..., :p + 1] = True
            mask[0, 0, :, p + 1:p + 1 + N] = self._anc[idx]
            lg, hs = self.head_fw(tok[idx][None], hid[:, prow], p + lvl + 0 * idx, p + 1 + idx, mask)
            hid[:, idx + 1] = hs
            lgt[idx + 1] = lg[0]
        cand = torch.cat([toks[0, p:p + 1], tok])[None]
        rope = p + self._rope
        slots = self._slots[p:p + N + 1]
        mask = torch.zeros(1, 1, N + 1, self.L, dtype=torch.bool, device=dev)
        mask[..., :p + 1] = True
        mask[0, 0, 1:, p + 1:p + N + 1] = self._anc
        tl, tf = self.target_fw(cand, rope, slots, mask)
        both = torch.cat([tl[0].argmax(-1), tok]).tolist()  # the one sync of the iteration
        y, token = both[:N + 1], both[N + 1:]  # y[0]: after the root; y[1 + i]: after node i
        path, cur = [], -1
        while True:
            kids = [i for i in range(N) if tr.parent[i] == cur]
            want = y[0] if cur < 0 else y[1 + cur]
            nxt = next((i for i in kids if token[i] == want), None)
            if nxt is None:
                break
            path.append(nxt)
            cur = nxt
        bonus = y[0] if cur < 0 else y[1 + cur]
        emitted = [token[i] for i in path] + [bonus]
        keep_l = [0] + [1 + i for i in path]
        keep = torch.tensor(keep_l, device=dev)  # compact the accepted path's KV, every iteration (a constant cost)
        self._kv[:, 0, :, p:p + keep.numel()] = self._kv[:, 0, :, p + keep]  # advanced indexing reads a copy first
        F_[:, p:p + keep.numel()] = tf[:, keep]
        toks[0, p + 1:p + len(emitted) + 1] = torch.tensor(emitted, device=dev)
        return emitted

    def tree_step(self, toks, F_, p: int, root_logits, root_hidden):
        """One tree iteration after the catch-up (what `time_tree_bookkeeping` times with stub forwards)."""
        return self._tree_iteration(toks, F_, p, root_logits, root_hidden)

    def _note_rank(self, k: int, lg):
        self._last_lg = getattr(self, "_last_lg", {})
        self._last_lg[k] = lg

    def _note_truth(self, y, lg_chain=None):
        """Rank of the target's token in the head's top-8 at every chain depth reached (for trees)."""
        for k, lg in sorted(getattr(self, "_last_lg", {}).items()):
            top = torch.topk(lg, 8).indices.tolist()
            self.rank_seen[k] += 1
            if y[k] in top:
                self.rank_hits[k, top.index(y[k])] += 1
            if y[k] != top[0]:
                break  # deeper proposals follow a rejected token
        self._last_lg = {}

    def rank_acceptance(self) -> np.ndarray:
        """p[d][k] estimated from chain runs: P(the target's token is the head's rank-k candidate)."""
        return self.rank_hits / np.maximum(self.rank_seen, 1)[:, None]
