"""Where a profile was measured: the device's catalog name, driver, torch/CUDA versions, date; and the
roofline work (FLOPs, bytes) of one measured point, to print achieved fractions of the datasheet.

Key assumption: a device's marketing name identifies its catalog entry (an "H100 80GB HBM3" is the
SXM part, an "H100 PCIe" the PCIe part); unknown devices keep their own name.
"""
from __future__ import annotations

import datetime as _dt
import platform
import re
import subprocess

import torch

from specperf import perfmodel
from specperf.perfmodel.specs.hardware import HardwareProfile
from specperf.perfmodel.specs.models import ModelSpec

from . import attention, compiled
from .blocks import shard_sizes


def device_name(device) -> str:
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.get_device_name(d)
    return f"cpu ({platform.processor() or platform.machine()})"


def catalog_gpu(name: str) -> str:
    """Catalog key for a device name ('NVIDIA H100 80GB HBM3' → 'h100-sxm'); 'cpu' for CPUs."""
    n = name.lower()
    rules = [("h200", "h200"), ("h100 pcie", "h100-pcie"), ("h100", "h100-sxm"),
             ("a100-sxm4-40gb", "a100-sxm-40gb"), ("a100", "a100-sxm-80gb"), ("l40s", "l40s"),
             ("a10g", "a10g"), ("4090", "rtx-4090"), ("mi300x", "mi300x"), ("b200", "b200")]
    if n.startswith("cpu"):
        return "cpu"
    for needle, key in rules:
        if needle in n:
            return key
    return re.sub(r"[^a-z0-9]+", "-", n).strip("-")


def driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


# layers take the forward's positions and RoPE cos/sin from a Step built once per forward (timed with
# the head, profiler.blocks); tables without this key were timed with each layer building its own
LAYER_LAYOUT = "per-forward-step"


def metadata(device, dtype: str, command: str = "") -> dict:
    name = device_name(device)
    cuda = torch.device(device).type == "cuda"
    return {"gpu": catalog_gpu(name), "gpu_name": name, "driver": driver_version() if cuda else "",
            "torch": torch.__version__, "cuda": (torch.version.cuda or "") if cuda else "",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "specperf_version": perfmodel.__version__, "dtype": dtype, "command": command,
            "kernels": attention.kernels(), "compile_attention": compiled.attention_mode(),
            "layer_layout": LAYER_LAYOUT,
            "timing": "CUDA events; sample = mean of back-to-back calls; median/p10/p90 over >= 20 "
                      "samples until the median moves < 1 %; graph mode = replays of one captured graph; "
                      "layers timed as a stack of distinct copies (>= 256 MiB of weights) so that "
                      "L2 holds no layer's weights between its calls, as in a whole model; overhead = "
                      "wall clock from an idle device to the host having the accepted counts"}


def layer_work(spec: ModelSpec, batch: int, new_tokens: int, context: int, tp: int = 1):
    """(FLOPs, HBM bytes) of one (sharded) layer forward: weights once, KV cache once, matmuls."""
    H, KV, ff = shard_sizes(spec, tp)
    hd, d, by = spec.head_dim, spec.d_model, spec.dtype_bytes
    T, L = batch * new_tokens, context + new_tokens
    n_up = 2 if spec.gated_mlp else 1
    mat = d * (H + 2 * KV) * hd + d * H * hd + (n_up + 1) * d * ff
    flops = 2 * T * mat + 4 * T * L * H * hd
    nbytes = by * (mat + batch * L * 2 * KV * hd + 4 * T * d)
    return flops, nbytes


def head_work(spec: ModelSpec, batch: int, new_tokens: int, tp: int = 1):
    e, T = spec.embed_dim or spec.d_model, batch * new_tokens
    rows = -(-spec.vocab // tp)
    return 2 * T * e * rows, spec.dtype_bytes * (e * rows + T * rows + 2 * T * spec.d_model)


def roofline(hw: HardwareProfile | None, flops: float, nbytes: float, seconds: float) -> str:
    if hw is None or not seconds > 0:
        return ""
    return (f"HBM {nbytes / seconds / hw.hbm_bytes_per_s:6.1%}  "
            f"FLOP {flops / seconds / hw.peak_flops_per_s:6.1%}")
