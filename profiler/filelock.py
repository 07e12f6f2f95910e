"""An exclusive lock on an output file (`OUT.lock` holding the owner's pid), so two profiling runs
never write one table: the second refuses cleanly. A lock left by a process that no longer exists
(killed with SIGKILL, a crashed machine) is stale and taken over. Standard library only.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


class LockedError(RuntimeError):
    """Another live process holds the lock; the message names the file and the pid."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def locked(path: str | Path):
    """Hold `path`.lock while the block runs; LockedError when a live process holds it."""
    lock = Path(str(path) + ".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid > 0 and _alive(pid):
                raise LockedError(f"{str(path)!r} is being written by another run (pid {pid}); wait for it to "
                                  f"finish, or remove {str(lock)!r} if that process is not specperf") from None
            lock.unlink(missing_ok=True)  # stale: its owner is gone
    else:
        raise LockedError(f"could not take the lock {str(lock)!r}")
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield lock
    finally:
        lock.unlink(missing_ok=True)
