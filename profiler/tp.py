"""Megatron-style tensor-parallel decoder layer, LM head and whole model across processes, and the
launcher that starts one process per rank.

Each of `tp` ranks runs profiler.blocks' DecoderLayer at tp (1/tp of the attention heads: fused
q/k/v split by columns, output projection split by rows; 1/tp of the MLP columns: gate/up or fc1 by
columns, down or fc2 by rows) and sums the two row-parallel outputs across ranks with
`torch.distributed.all_reduce` — two all-reduces of batch·new_tokens·d_model elements per layer
(Shoeybi et al. 2019, "Megatron-LM", Sec. 3). Row-parallel biases are added on rank 0 only, so the
sum carries them once. The LM head is split over the (padded) vocabulary and its logits are
all-gathered. Key assumption: no compute/communication overlap, so a TP layer's time is its
shard's compute plus its two all-reduces. NCCL on GPUs, gloo on CPUs (tests); NVLink multicast
stays off in every process (NVLS_OFF_ENV set before spawning and again in each worker).
"""
from __future__ import annotations

import os
import socket
import tempfile
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from specperf.perfmodel.specs.models import ModelSpec, SpecError

from .blocks import DecoderLayer, DecoderModel, Head, _norm, shard_sizes

# NVLink multicast (NVLS) can put a shared host's GPUs out of service: keep it off everywhere
# (this workplace's device README / KINDS.md; issue 8).
NVLS_OFF_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                "NVSHMEM_DISABLE_NVLS": "1"}
# torch 2.13 renames all_gather_into_tensor (all_gather_single); the GPU machines run torch 2.11
warnings.filterwarnings("ignore", message=".*all_gather_into_tensor.*deprecated")


def nvls_off() -> None:
    os.environ.update(NVLS_OFF_ENV)


@dataclass(frozen=True)
class ShardPlan:
    """Which slice of query heads, KV heads, MLP columns and vocabulary rank `rank` holds."""
    tp: int
    rank: int
    heads: int
    head0: int
    kv_heads: int  # one replicated KV head per rank when tp > n_kv_heads
    kv0: int
    ff: int
    ff0: int
    vocab: int  # ceil(vocab / tp): Megatron pads the vocabulary to a multiple of tp
    vocab0: int


def shard_plan(spec: ModelSpec, tp: int, rank: int = 0) -> ShardPlan:
    H, KV, ff = shard_sizes(spec, tp)  # validates tp against heads / KV heads
    if spec.d_ff % tp:
        raise SpecError(f"tp={tp} does not divide {spec.name}'s d_ff={spec.d_ff}")
    if not 0 <= rank < tp:
        raise SpecError(f"rank={rank} is not allowed; 0 ≤ rank < tp={tp}")
    kv0 = rank * KV if spec.n_kv_heads % tp == 0 else rank // (tp // spec.n_kv_heads)
    v = -(-spec.vocab // tp)
    return ShardPlan(tp, rank, H, rank * H, KV, kv0, ff, rank * ff, v, rank * v)


class TPDecoderLayer(DecoderLayer):
    """One rank's shard of a decoder layer; `allreduce=False` times its compute alone."""

    def __init__(self, spec: ModelSpec, max_batch: int, max_context: int, dtype, device, tp: int,
                 rank: int = 0, group=None, seed: int = 0):
        super().__init__(spec, max_batch, max_context, dtype, device, tp, seed=seed + 7919 * rank)
        self.rank, self.group, self.allreduce = rank, group, True
        if rank:  # row-parallel biases: added once (rank 0) so that the sum carries them once
            self.b_o = None
            self.b_down = None

    def _sum(self, t):
        if self.allreduce and self.tp > 1:
            dist.all_reduce(t, group=self.group)
        return t

    def forward(self, x, pos, kv_len=None, mask=None, step=None):
        s = self.spec
        x = x + self._sum(self.attention(_norm(s, x, self.norm1_w, self.norm1_b), pos, kv_len, mask, step))
        return x + self._sum(self.mlp(_norm(s, x, self.norm2_w, self.norm2_b)))


class TPHead(Head):
    """Replicated embedding, final norm, vocabulary-parallel LM head; logits all-gathered to
    [tp, b, n, vocab/tp] (rank-major shards)."""

    def __init__(self, spec: ModelSpec, max_context: int, dtype, device, tp: int, rank: int = 0,
                 group=None, seed: int = 1):
        super().__init__(spec, max_context, dtype, device, tp, seed=seed)
        self.tp, self.rank, self.group = tp, rank, group

    def logits(self, x):
        local = super().logits(x)
        if self.tp == 1:
            return local[None]
        b = local.shape[0]
        out = torch.empty((self.tp * b,) + tuple(local.shape[1:]), device=local.device, dtype=local.dtype)
        dist.all_gather_into_tensor(out, local.contiguous(), group=self.group)
        return out.view((self.tp, b) + tuple(local.shape[1:]))


class TPModel(torch.nn.Module):
    """A whole TP model on one rank: embedding, n_layers TP layers (own weights and caches), head."""

    def __init__(self, spec: ModelSpec, *, max_batch: int, max_context: int, dtype, device, tp: int,
                 rank: int = 0, group=None, n_layers: int | None = None, seed: int = 0):
        super().__init__()
        self.spec, self.max_context = spec, max_context
        self.head = TPHead(spec, max_context, dtype, device, tp, rank, group, seed=seed + 1_000_003)
        self.layers = torch.nn.ModuleList(
            TPDecoderLayer(spec, max_batch, max_context, dtype, device, tp, rank, group, seed=seed + i)
            for i in range(spec.n_layers if n_layers is None else n_layers))

    forward = DecoderModel.forward  # the same composition; only the layers and the head are TP


def tp_model_bytes(spec: ModelSpec, tp: int, max_batch: int, max_context: int) -> int:
    """Weights + KV caches + head of one rank of a whole TP model (to skip points that cannot fit)."""
    from .blocks import cache_bytes, stack_bytes

    e = spec.embed_dim or spec.d_model
    head = spec.dtype_bytes * e * (spec.vocab + -(-spec.vocab // tp))
    return spec.n_layers * (stack_bytes(spec, tp) + cache_bytes(spec, max_batch, max_context, tp)) + head


# ---- weights from a full (unsharded) layer: the sharding maths, tested on CPU ------------------
def shard_layer_state(full: dict, spec: ModelSpec, plan: ShardPlan) -> dict:
    """Slice an unsharded DecoderLayer's parameters (state_dict names) into one rank's shards."""
    hd = spec.head_dim
    d, kvd = spec.d_model, spec.kv_dim
    q = slice(plan.head0 * hd, (plan.head0 + plan.heads) * hd)
    k = slice(d + plan.kv0 * hd, d + (plan.kv0 + plan.kv_heads) * hd)
    v = slice(d + kvd + plan.kv0 * hd, d + kvd + (plan.kv0 + plan.kv_heads) * hd)
    f = [slice(plan.ff0, plan.ff0 + plan.ff)]
    if spec.gated_mlp:  # w_up rows are gate ‖ up
        f.append(slice(spec.d_ff + plan.ff0, spec.d_ff + plan.ff0 + plan.ff))
    out = {}
    for name, t in full.items():
        if name in ("w_qkv", "b_qkv"):
            t = torch.cat([t[q], t[k], t[v]])
        elif name == "w_o":
            t = t[:, q]
        elif name in ("w_up", "b_up"):
            t = torch.cat([t[s] for s in f])
        elif name == "w_down":
            t = t[:, f[0]]
        elif name in ("b_o", "b_down") and plan.rank:
            continue
        out[name] = t.contiguous()
    return out


def load_state(module, state: dict) -> None:
    for name, t in state.items():
        getattr(module, name).data.copy_(t)


# ---- launcher -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, backend: str, port: int, fn, args: tuple) -> None:
    nvls_off()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    kw = {}
    if backend == "nccl":
        torch.cuda.set_device(rank)
        kw["device_id"] = torch.device("cuda", rank)
    else:
        torch.set_num_threads(1)
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=300), **kw)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def pick_backend(world: int, device: str = "cuda") -> str:
    if device.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n < world:
            raise SpecError(f"tp={world} needs {world} GPUs in one host; this machine has {n} "
                            "(use --device cpu for the gloo path)")
        return "nccl"
    return "gloo"


def launch(fn, world: int, args: tuple = (), backend: str = "gloo") -> None:
    """Run fn(rank, world, *args) in `world` processes (torch.multiprocessing spawn); fn must be
    importable at module level. NVLS_OFF_ENV is set here so every worker inherits it."""
    import torch.multiprocessing as mp

    nvls_off()
    mp.spawn(_entry, args=(world, backend, free_port(), fn, args), nprocs=world, join=True)


# ---- self-check: sharded == unsharded (tests on CPU with gloo; also runs on GPUs) ----------------
def _check_one(spec: ModelSpec, rank: int, world: int, cases) -> list[float]:
    errs = []
    ref = DecoderLayer(spec, 4, 64, "fp32", "cpu", 1, seed=11)
    full = {k: v.detach().clone() for k, v in ref.named_parameters()}
    plan = shard_plan(spec, world, rank)
    for batch, n, ctx in cases:
        g = torch.Generator().manual_seed(1000 * batch + 10 * n + ctx)
        hist = torch.randn(batch, ctx, spec.d_model, generator=g)
        x = torch.randn(batch, n, spec.d_model, generator=g)
        outs = []
        for layer in (TPDecoderLayer(spec, 4, 64, "fp32", "cpu", world, rank, seed=5),
                      DecoderLayer(spec, 4, 64, "fp32", "cpu", 1, seed=5)):
            load_state(layer, shard_layer_state(full, spec, plan) if layer.tp > 1 else full)
            if ctx:  # causal prefill fills the cache identically in both
                layer(hist, torch.zeros(batch, dtype=torch.long))
            outs.append(layer(x, torch.full((batch,), ctx, dtype=torch.long)))
        errs.append(float((outs[0] - outs[1]).norm() / outs[1].norm()))
    # head: vocabulary-parallel logits, gathered, == unsharded logits
    href = Head(spec, 64, "fp32", "cpu", 1, seed=3)
    head = TPHead(spec, 64, "fp32", "cpu", world, rank, seed=4)
    padded = torch.zeros(plan.vocab * world, href.head_w.shape[1])
    padded[:spec.vocab] = href.head_w.detach()
    state = {k: v.detach() for k, v in href.named_parameters() if k != "head_w"}
    state["head_w"] = padded[plan.vocab0:plan.vocab0 + plan.vocab]
    load_state(head, state)
    toks = torch.arange(6).view(2, 3) % spec.vocab
    pos = torch.tensor([0, 4])
    got = head(toks, pos).permute(1, 2, 0, 3).reshape(2, 3, -1)[..., :spec.vocab]
    want = href(toks, pos)
    errs.append(float((got - want).norm() / want.norm()))
    return errs


def _check_worker(rank: int, world: int, specs, cases, out_path: str) -> None:
    errs = {spec.name: _check_one(spec, rank, world, cases) for spec in specs}
    if rank == 0:
        torch.save(errs, out_path)


def check_sharding(specs, tp: int, cases=((1, 1, 0), (2, 3, 5), (3, 1, 7))) -> dict:
    """{model: [‖TP − unsharded‖/‖unsharded‖ per (batch, new_tokens, context) case, then the LM
    head]} — fp32 on CPU processes with gloo, one launch for all specs."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "errs.pt")
        launch(_check_worker, tp, (tuple(specs), tuple(cases), out), backend="gloo")
        return torch.load(out)


__all__ = ["NVLS_OFF_ENV", "ShardPlan", "shard_plan", "TPDecoderLayer", "TPHead", "TPModel",
           "tp_model_bytes", "shard_layer_state", "launch", "pick_backend", "check_sharding"]
