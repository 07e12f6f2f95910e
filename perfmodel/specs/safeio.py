"""Safe file I/O: the one writer every specperf output goes through, and bounded readers.

Writing: the bytes go to a temporary file created exclusively (O_CREAT | O_EXCL | O_NOFOLLOW) in
the target's own folder, are fsync'ed, and replace the target with `os.replace`, so a reader (or a
concurrent writer) sees the old file or the new one, never a truncated mix; a failed write (disk
full, EFBIG, interrupt) leaves the old file untouched and no temporary behind. A target that is a
symbolic link is refused unless following is asked for (`follow_symlinks=True`, or the environment
SPECPERF_FOLLOW_SYMLINKS=1 that `specperf --follow-symlinks` sets), and then the link's target is
replaced, in its folder. A target that exists but is not a regular file (a device such as
/dev/null, a FIFO, a directory) is refused: replacing it would destroy it.

Reading: `read_bytes` refuses non-regular files (/dev/zero, FIFOs) and files over a size limit
before reading them whole; `loads_json` turns nesting too deep for the parser into one line.

Key assumption: the target's folder is on one filesystem (os.replace is atomic there, POSIX rename).
Every error is a SpecError: one line naming the flag, the path and the reason (errno text).
"""
from __future__ import annotations

import io
import json
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path

from specperf.perfmodel.specs.errors import SpecError

FOLLOW_ENV = "SPECPERF_FOLLOW_SYMLINKS"
# Largest JSON document specperf reads (config.json, acceptance, calibration, metadata): the largest
# real config.json files are tens of KB, a whole LatencyTable's metadata well under 1 MB.
MAX_JSON_BYTES = 16 * 2 ** 20
# Largest table or trace specperf reads (profiles, traces, metrics dumps): the shipped H200 profile
# is about 2 MB; 256 MiB leaves room for long traces while keeping a parse within the 4 GiB budget.
MAX_TABLE_BYTES = 256 * 2 ** 20


def _following() -> bool:
    return os.environ.get(FOLLOW_ENV, "") not in ("", "0")


def _fail(flag: str, path, why: str) -> SpecError:
    return SpecError(f"{flag} {str(path)!r} cannot be written: {why}", value=str(path),
                     allowed="a regular file path in an existing, writable folder")


def target_path(path: str | Path, flag: str = "--out", follow_symlinks: bool | None = None) -> Path:
    """The file a write to `path` will replace (the link's target when following), checked before
    any work: not a directory, a device or a FIFO; its folder exists; a link only when following."""
    p = Path(path)
    follow = _following() if follow_symlinks is None else follow_symlinks
    if os.path.islink(p):
        if not follow:
            raise _fail(flag, p, "it is a symbolic link (specperf does not write through links; pass "
                                 "--follow-symlinks to replace the file it points to)")
        p = Path(os.path.realpath(p))
    parent = p.parent if str(p.parent) else Path(".")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _fail(flag, p, e.strerror or str(e)) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _fail(flag, p, "it is a directory; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise _fail(flag, p, "it exists and is not a regular file (a device, FIFO or socket)")
    if not parent.is_dir():
        raise _fail(flag, p, f"folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(flag, p, f"folder {str(parent)!r} is not writable (permission denied)")
    return p


def _open_temp(p: Path) -> tuple[int, Path]:
    parent = p.parent if str(p.parent) else Path(".")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(16):  # a clash of 48 random bits is a planted file, not chance
        tmp = parent / f".{p.name[:200]}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp  # the umask applies, as for any new file
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {str(p)!r}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open folders; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | Path, flag: str = "--out", *, binary: bool = False, newline: str | None = None,
                follow_symlinks: bool | None = None):
    """A file object whose contents replace `path` atomically when the block ends without error;
    on any error the temporary is removed and `path` is untouched (OSError → one-line SpecError)."""
    p = target_path(path, flag, follow_symlinks)
    try:
        fd, tmp = _open_temp(p)
    except OSError as e:
        raise _fail(flag, p, e.strerror or str(e)) from None
    try:
        old = os.stat(p).st_mode if p.exists() else None
        if old is not None:
            os.fchmod(fd, stat.S_IMODE(old))  # the replacement keeps the old file's permissions
        f = os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": newline}))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise _fail(flag, p, f"{e.strerror or e} (the previous file, if any, is unchanged)") from None
        raise
    _fsync_dir(p.parent if str(p.parent) else Path("."))


def atomic_write(path: str | Path, data: str | bytes, flag: str = "--out", *,
                 follow_symlinks: bool | None = None) -> Path:
    """Replace `path` with `data` (str → UTF-8) atomically; returns the path written."""
    binary = isinstance(data, (bytes, bytearray))
    with atomic_open(path, flag, binary=binary, newline="" if not binary else None,
                     follow_symlinks=follow_symlinks) as f:
        f.write(data)
    p = Path(path)
    return Path(os.path.realpath(p)) if os.path.islink(p) else p


def write_json(path: str | Path, doc, flag: str = "--out", *, follow_symlinks: bool | None = None) -> Path:
    """`doc` as indented JSON with finite numbers only (ValueError on NaN), atomically."""
    return atomic_write(path, json.dumps(doc, indent=2, allow_nan=False) + "\n", flag,
                        follow_symlinks=follow_symlinks)


# ---- bounded reads -------------------------------------------------------------------------------
def read_bytes(path: str | Path, what: str, limit: int = MAX_TABLE_BYTES) -> bytes:
    """The whole of a regular file of at most `limit` bytes; one-line SpecError otherwise."""
    p = Path(path)
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise SpecError(f"{what} {str(p)!r} is a directory; give a file")
            if not stat.S_ISREG(st.st_mode):
                raise SpecError(f"{what} {str(p)!r} is not a regular file (a device, FIFO or socket)")
            if st.st_size > limit:
                raise SpecError(f"{what} {str(p)!r} is {st.st_size} bytes; at most {limit} bytes are read")
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise SpecError(f"{what} {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise SpecError(f"{what} {str(p)!r} is a directory; give a file") from None
    except OSError as e:
        raise SpecError(f"{what} {str(p)!r} cannot be read: {e.strerror or e}") from None
    except SpecError:
        raise
    except ValueError:  # a path holding NUL
        raise SpecError(f"{what} {str(p)!r} is not a file path (it holds a NUL character)") from None
    if len(data) > limit:  # grew while being read
        raise SpecError(f"{what} {str(p)!r} is over {limit} bytes; at most {limit} bytes are read")
    return data


def read_text(path: str | Path, what: str, limit: int = MAX_TABLE_BYTES) -> str:
    """`read_bytes` decoded as UTF-8 (a BOM is dropped); one line when it is not UTF-8."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(f"{what} {str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def text_stream(path: str | Path, what: str, limit: int = MAX_TABLE_BYTES) -> io.StringIO:
    """A text stream over a bounded read, line endings kept as they are (what csv readers need)."""
    return io.StringIO(read_text(path, what, limit), newline="")


def loads_json(text: str | bytes, what: str):
    """json.loads with nesting too deep for the parser (RecursionError) and an integer longer than
    Python converts (a plain ValueError, not a JSONDecodeError) as one-line SpecErrors; a
    JSONDecodeError is passed on for the caller to name the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise SpecError(f"{what} is nested too deeply to be a specperf or Hugging Face document") from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion ..."
        raise SpecError(f"{what} holds a number too long to read ({str(e).split(';')[0]})") from None
