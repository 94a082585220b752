"""Folders under a trusted root, opened one component at a time and never through a symlink.

Checkout writes many files at paths a repository chose. Checking those paths for symlinks once
and then writing by path leaves a window in which a folder can be swapped for a link to
anywhere (RELIABILITY G4). Every write, delete and chmod of a checkout therefore happens
relative to a folder descriptor opened with `O_NOFOLLOW` from the repository root down: a
folder swapped after the check is either the folder already open (the write lands in it,
wherever it was moved) or a link that `openat` refuses.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import OrderedDict
from pathlib import Path
from types import TracebackType

from reprocli.core.atomic import storage_error
from reprocli.errors import UnsafePathError

_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Folders:
    """Open folder descriptors under `root`, the most recently used few kept open."""

    def __init__(self, root: Path, *, keep: int = 32) -> None:
        self.root = root
        self._keep = keep
        self._fds: OrderedDict[str, int] = OrderedDict()

    def __enter__(self) -> Folders:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every descriptor."""
        while self._fds:
            os.close(self._fds.popitem()[1])

    def fd(self, rel: str, *, create: bool = False) -> int:
        """The descriptor of folder `rel` ("" is the root); with `create`, missing folders are
        made. Raise UnsafePathError when a component is a symlink or not a folder."""
        found = self._fds.get(rel)
        if found is not None:
            self._fds.move_to_end(rel)
            return found
        parent_rel, _, name = rel.rpartition("/")
        if not rel:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            fd = self._open_child(self.fd(parent_rel, create=create), name, rel, create=create)
        self._fds[rel] = fd
        if len(self._fds) > self._keep:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def _open_child(self, parent: int, name: str, rel: str, *, create: bool) -> int:
        for attempt in (1, 2):
            try:
                return os.open(name, _FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create or attempt == 2:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, dir_fd=parent)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError(
                        f"{self.root / rel}: is not a folder (a symlink?); "
                        "refusing to write through it"
                    ) from None
                raise storage_error(exc, "cannot open", self.root / rel) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def unlink(self, rel: str) -> None:
        """Delete the file or link `rel` (never what a link points to)."""
        folder, _, name = rel.rpartition("/")
        os.unlink(name, dir_fd=self.fd(folder))

    def rmdir_empty(self, rel: str) -> bool:
        """Remove folder `rel` if it is empty; return whether it was removed."""
        folder, _, name = rel.rpartition("/")
        self._forget(rel)
        try:
            os.rmdir(name, dir_fd=self.fd(folder))
        except OSError:
            return False
        return True

    def remove_tree(self, rel: str) -> None:
        """Delete the file, link or folder tree `rel` without following any link."""
        folder, _, name = rel.rpartition("/")
        self._forget(rel)
        parent = self.fd(folder)
        try:
            os.unlink(name, dir_fd=parent)
        except IsADirectoryError:
            import shutil  # noqa: PLC0415 - only a whole-tree replacement needs it

            shutil.rmtree(name, dir_fd=parent)

    def chmod_exec(self, rel: str, *, executable: bool) -> None:
        """Set or clear the exec bits of regular file `rel` (refusing a link)."""
        folder, _, name = rel.rpartition("/")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd(folder))
        try:
            mode = os.fstat(fd).st_mode
            os.fchmod(fd, mode | 0o111 if executable else mode & ~0o111)
        finally:
            os.close(fd)

    def _forget(self, rel: str) -> None:
        """Close the descriptors of `rel` and everything under it (about to be removed)."""
        for key in [k for k in self._fds if k == rel or k.startswith(rel + "/")]:
            os.close(self._fds.pop(key))
