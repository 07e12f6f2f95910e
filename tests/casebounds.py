"""Per-case time and memory bounds of the bad-input matrix (issue 25), enforced, not just observed.

`bounded()` runs one case (in this process, as the CliRunner does) under
- a wall-clock alarm: SIGALRM after LIMIT_S raises Overtime, a BaseException, so no `except
  Exception` in the command can swallow it and the case fails where it hangs;
- an address-space ceiling of the current size + LIMIT_BYTES (RLIMIT_AS, soft limit only, restored
  after): an allocation past it fails at once instead of swapping the CI box — the case then
  fails because its message is numpy's "Unable to allocate", which the test refuses;
- a peak-memory reading of that case alone: the kernel's high-water mark of resident memory
  (VmHWM) is reset before the case (/proc/self/clear_refs, Linux ≥ 4.0) and read after it, so
  `peak_bytes` is the process's largest resident size while the case ran (the test process's own
  few hundred MB included: the bound is conservative). Where the reset is not possible the
  process-lifetime peak (ru_maxrss) is reported, which only over-states.
"""
from __future__ import annotations

import resource
import signal
import time
from contextlib import contextmanager

LIMIT_S = 60
LIMIT_BYTES = 4 * 2 ** 30


class Overtime(BaseException):
    """A case ran past LIMIT_S."""


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the resident-set high-water mark
        return True
    except OSError:
        return False


@contextmanager
def bounded(limit_s: float = LIMIT_S, limit_bytes: int = LIMIT_BYTES):
    """Yield a dict that holds, after the block, wall_s and peak_bytes of the block."""
    out: dict = {}
    reset = _reset_peak()
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    vm = _status_bytes("VmSize")
    if vm is not None:
        soft = vm + limit_bytes
        if old_as[1] != resource.RLIM_INFINITY:
            soft = min(soft, old_as[1])
        resource.setrlimit(resource.RLIMIT_AS, (soft, old_as[1]))

    def _alarm(signum, frame):
        raise Overtime(f"the case ran past {limit_s} s")

    old_handler = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    t0 = time.monotonic()
    try:
        yield out
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, old_as)
        out["wall_s"] = time.monotonic() - t0
        hwm = _status_bytes("VmHWM") if reset else None
        out["peak_bytes"] = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
