"""The repository lock: one writer at a time (RELIABILITY invariant 8).

A kernel-held `flock` on `.repro/lock`, released by the kernel when its process dies (so a
kill -9 never leaves the repository locked); the holder's PID, host and start time are
written into the file for the message a waiting process prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from reprocli.core.atomic import storage_error
from reprocli.errors import LockedError

DEFAULT_TIMEOUT_S = 30.0


def _timeout() -> float:
    try:
        return float(os.environ.get("REPRO_LOCK_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


@contextlib.contextmanager
def hold(path: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock at `path`, waiting up to `timeout` seconds for it."""
    limit = _timeout() if timeout is None else timeout
    try:
        # O_NOFOLLOW: a lock path committed as a symlink must never truncate its target.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise storage_error(exc, "cannot open the repository lock", path) from exc
    try:
        deadline = time.monotonic() + limit
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    raise LockedError(
                        f"{path}: another repro process holds the repository lock"
                        + (f" ({holder})" if holder else ""),
                        hint="wait for it to finish; REPRO_LOCK_TIMEOUT sets how long to wait",
                    ) from None
                time.sleep(0.05)
        info = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}"
        with contextlib.suppress(OSError):  # the holder's note is for messages only
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
