"""Execution modes — the one definition: how a forward is launched (eager PyTorch, one CUDA graph,
torch.compile's fused kernels under CUDA graphs), the order every command lists them in, the named
sets `--mode` accepts, and the one fall-back rule: where a source has no compiled-mode data, graph
mode's latency answers compiled mode (said so, with no error band claimed).

Key assumption: compiled mode differs from graph mode only in the kernels inside the graph (the
launch path is the same CUDA graph), so graph-mode latency is the nearest stand-in for it.
"""
from __future__ import annotations

from enum import Enum

from specperf.perfmodel.specs.errors import SpecError


class Mode(str, Enum):
    """A mode compares equal to its name ('graph' == Mode.GRAPH), so rows and flags keep strings."""
    GRAPH = "graph"  # CUDA graphs (vLLM / SGLang default for decode)
    EAGER = "eager"  # every kernel launched from Python
    COMPILED = "compiled"  # torch.compile (inductor) kernels captured in CUDA graphs

    def __str__(self) -> str:
        return self.value


MODES: tuple[str, ...] = tuple(m.value for m in Mode)  # the order every command lists modes in
MEASURED_MODES: tuple[str, ...] = (Mode.GRAPH.value, Mode.EAGER.value)  # every shipped table has both
MODE_SETS = {"both": MEASURED_MODES, "all": MODES}  # the named sets --mode accepts
STAND_IN = Mode.GRAPH.value  # answers compiled mode where a source has no compiled data


def check_mode(mode) -> str:
    """`mode` as its name; a one-line SpecError naming the allowed modes otherwise."""
    if mode not in MODES:
        raise SpecError(f"mode={mode!r} is not allowed; use {', '.join(MODES)}", value=mode,
                        allowed=", ".join(MODES))
    return str(Mode(mode))


def answered_as(mode: str, has_compiled: bool) -> str:
    """The mode whose data answers `mode` for a source that has (`has_compiled`) compiled data or not:
    the one place the compiled → graph fall-back is decided."""
    return STAND_IN if mode == Mode.COMPILED and not has_compiled else mode


def is_stand_in(mode: str, has_compiled: bool) -> bool:
    return answered_as(mode, has_compiled) != mode


__all__ = ["MEASURED_MODES", "MODES", "MODE_SETS", "Mode", "STAND_IN", "answered_as", "check_mode", "is_stand_in"]
