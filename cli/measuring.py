"""Options shared by the measuring commands (profile, profile --operators, validate, calibrate
agreement): --mode, --dtype and --device parsed and checked once (one line, exit 2 on bad input).
A module of its own so that those commands import it rather than each other."""
from __future__ import annotations

from . import options as o
from .common import UsageError


def parse_modes(mode: str) -> tuple:
    """--mode of a measuring command: graph, eager, both or graph,eager → the modes (shared rule)."""
    return o.modes(mode)


def check_dtype(dtype: str) -> tuple[str, int]:
    """--dtype of a measuring command → (fp16 | bf16 | fp32, bytes per element)."""
    name = dtype.lower()
    if name not in ("fp16", "bf16", "fp32"):
        raise UsageError(f"dtype={dtype!r} is not allowed; use fp16, bf16 or fp32")
    return name, 4 if name == "fp32" else 2


def check_device(device: str) -> str:
    if device not in ("cuda", "cpu") and not device.startswith("cuda:"):
        raise UsageError(f"device={device!r} is not allowed; use cuda, cuda:N or cpu")
    return device


def use_device(device: str) -> None:
    """Make cuda[:N] the current CUDA device (nothing to do for cpu); refuse one this host lacks."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"device={device!r} but no CUDA device is available; use --device cpu")
    idx = torch.device(device).index or 0
    if idx >= torch.cuda.device_count():
        raise UsageError(f"device={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    torch.cuda.set_device(idx)
