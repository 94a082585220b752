"""Atomic, durable publishing of files: temp file, write, flush, rename, directory sync.

Readers see the old file or the new one, never a mix (DESIGN §4 invariant 1). Temp names
start with TEMP_PREFIX and carry the writer's PID so the next command can remove leftovers
of a dead process; they can never match an object name.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import socket
import zlib
from pathlib import Path
from typing import Any

from reprocli.errors import StorageError

TEMP_PREFIX = ".repro-tmp-"


_serial = itertools.count()
_token: tuple[int, str] = (0, "")
# Temp names carry the host, so that a cache shared between machines never has one machine
# delete another's in-flight temp file because that PID is not running locally.
HOST = format(zlib.crc32(socket.gethostname().encode()), "08x")


def temp_name() -> str:
    """A fresh temp file name owned by this process: prefix, PID, host, random token, counter."""
    global _token
    pid = os.getpid()
    if _token[0] != pid:  # a new process (or a fork) draws a new token
        _token = (pid, secrets.token_hex(4))
    return f"{TEMP_PREFIX}{pid}-{HOST}-{_token[1]}{next(_serial)}"


def storage_error(exc: OSError, action: str, path: Path | str) -> StorageError:
    """Translate an OSError into one clear line naming the action and the file."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    return StorageError(f"{action} {path}: {reason.lower()}")


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc: Any = None


def sync_filesystem(path: Path) -> None:
    """Flush every dirty page of the filesystem holding `path`: one sync for a whole batch.

    This is what makes batched durability cheap (as Git's core.fsyncMethod=batch): objects
    are written without fsync, then one syncfs covers all of them before they are renamed.
    """
    global _libc
    if hasattr(os, "sync") and os.uname().sysname == "Linux":
        if _libc is None:
            import ctypes.util  # noqa: PLC0415 - 10 ms: only commands that write objects pay

            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if _libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd`: a short write (a nearly full disk) never passes
    for a whole one."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_bytes(
    dest: Path,
    data: bytes,
    *,
    tmp_dir: Path | None = None,
    mode: int = 0o644,
    exact_mode: bool = False,
) -> None:
    """Publish `data` at `dest`: temp file, write, fsync, rename, fsync of the directory.

    The temp file lives in `tmp_dir` when given (same filesystem), else beside `dest`. The
    umask applies to `mode` unless `exact_mode`: then the temp file gets `mode` as it is,
    before the rename (an executable is never published without its exec bits).
    """
    folder = dest.parent
    tmp = (tmp_dir or folder) / temp_name()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            if exact_mode:
                os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV or tmp_dir is None:
                raise
            os.unlink(tmp)
            write_bytes(dest, data, mode=mode, exact_mode=exact_mode)
            return
        fsync_dir(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise storage_error(exc, "cannot write", dest) from exc
    except BaseException:  # Ctrl-C mid-write: the temp file goes too
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def is_alive(pid: int) -> bool:
    """Whether a process with this PID exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_temp_folders: set[str] = set()
"""The temp folders this process cleaned on first use, hence may have written temps into."""


def remove_own_temps() -> int:
    """Delete the temp files this process left in its temp folders; return how many.

    For Ctrl-C: by the time the interrupt reaches the command line, every writer has unwound
    (thread pools joined), and what is left under this PID is half-done work.
    """
    mine = f"{TEMP_PREFIX}{os.getpid()}-{HOST}-"
    removed = 0
    for folder in sorted(_temp_folders):
        try:
            names = [n for n in os.listdir(folder) if n.startswith(mine)]
        except OSError:
            continue
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def remove_stale_temps(folder: Path) -> int:
    """Delete temp files in `folder` left by processes that no longer run; return how many.

    The folder is remembered for `remove_own_temps`."""
    _temp_folders.add(os.fspath(folder))
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        fields = entry.name[len(TEMP_PREFIX) :].split("-")
        pid = int(fields[0]) if fields[0].isdigit() else -1
        if len(fields) < 3 or fields[1] != HOST:
            continue  # another machine's (or an unknown) temp: not ours to judge
        if pid == os.getpid() or is_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed += 1
    return removed
