"""Placing cached objects in the workspace by the first link type that works (DESIGN §4).

`reflink` clones (FICLONE); `copy` hashes while it copies, so corrupt cache bytes are never
materialised; `hardlink` and `symlink` share the read-only cache file. Every placement
writes a temp file and renames it over the destination: never an in-place truncate, so a
file hardlinked elsewhere is detached rather than rewritten (RELIABILITY F5).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from reprocli.core import atomic
from reprocli.core.config import LinkType
from reprocli.core.hashing import SMALL_FILE, ObjectId, chunk_size_for, oid_of_bytes, read_small
from reprocli.core.objects import ObjectStore, copy_hashing
from reprocli.errors import CorruptObjectError, StorageError

FICLONE = 0x40049409
_UNSUPPORTED = {
    errno.EOPNOTSUPP,
    errno.ENOTTY,
    errno.EXDEV,
    errno.EINVAL,
    errno.ENOSYS,
    errno.EPERM,
}


class Linker:
    """Materialises objects; remembers which link types failed on this filesystem."""

    def __init__(self, store: ObjectStore, types: tuple[LinkType, ...], tmp_dir: Path) -> None:
        self.store = store
        self.types = list(types)
        self.tmp_dir = tmp_dir
        self.used: set[LinkType] = set()
        self.umask = _current_umask()
        self._tmp = f"{tmp_dir}{os.sep}"
        self._tmp_device = os.stat(tmp_dir).st_dev
        self._same_device: dict[str, bool] = {}

    def place(
        self, oid: ObjectId, dest: Path | str, *, executable: bool, dir_fd: int | None = None
    ) -> None:
        """Put object `oid` at `dest` (replacing whatever is there) with the given exec bit.

        With `dir_fd`, the file is written into that open folder under `dest`'s base name
        (`dest` then only names it in messages): no path is resolved again, so a folder
        swapped for a symlink meanwhile is never followed (see core/folders.py).
        """
        source = self.store.os_path(oid)
        _check_regular(source, oid)
        mode = (0o777 if executable else 0o666) & ~self.umask
        final = os.path.basename(dest) if dir_fd is not None else dest
        for kind in list(self.types):
            if executable and kind in ("hardlink", "symlink"):
                # The shared cache file is read-only and not executable: an executable
                # file gets its own copy so that its exec bit survives.
                kind = "copy"
            tmp, tmp_fd = self._temp_for(dest, dir_fd)
            try:
                done = self._try(kind, source, tmp, oid, mode, tmp_fd)
            except CorruptObjectError:
                _discard(tmp, tmp_fd)
                raise CorruptObjectError(
                    f"cache object {oid} for {dest} is corrupt; it was not checked out",
                    hint="run `repro fsck --repair`, then `repro pull` or `repro add` it again",
                ) from None
            except FileNotFoundError as exc:
                _discard(tmp, tmp_fd)
                if not os.path.exists(source):
                    raise
                raise atomic.storage_error(exc, "cannot write", dest) from exc
            except OSError as exc:
                _discard(tmp, tmp_fd)
                raise atomic.storage_error(exc, "cannot write", dest) from exc
            if not done:
                _discard(tmp, tmp_fd)
                self.types.remove(kind)
                continue
            try:
                os.replace(tmp, final, src_dir_fd=tmp_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                _discard(tmp, tmp_fd)
                folder = self._folder_key(dest, dir_fd)
                if exc.errno == errno.EXDEV and self._same_device.get(folder):
                    # Same device, another mount (a bind mount): stage beside the file instead.
                    self._same_device[folder] = False
                    self.place(oid, dest, executable=executable, dir_fd=dir_fd)
                    return
                raise atomic.storage_error(exc, "cannot write", dest) from exc
            self.used.add(kind)
            return
        raise StorageError(f"cannot check out {dest}: no configured link type works here")

    @staticmethod
    def _folder_key(dest: Path | str, dir_fd: int | None) -> str:
        if dir_fd is None:
            return os.path.dirname(dest)
        st = os.fstat(dir_fd)
        return f"fd:{st.st_dev}:{st.st_ino}"

    def _temp_for(self, dest: Path | str, dir_fd: int | None) -> tuple[str, int | None]:
        """A temp name in .repro/tmp when that is on the destination's filesystem (the rename
        must be atomic), else beside the destination (relative to `dir_fd` when given)."""
        folder = self._folder_key(dest, dir_fd)
        same = self._same_device.get(folder)
        if same is None:
            device = os.stat(folder).st_dev if dir_fd is None else os.fstat(dir_fd).st_dev
            same = self._same_device[folder] = device == self._tmp_device
        if same:
            return self._tmp + atomic.temp_name(), None
        if dir_fd is not None:
            return atomic.temp_name(), dir_fd
        return os.path.join(folder, atomic.temp_name()), None

    def _try(
        self, kind: LinkType, source: str, tmp: str, oid: ObjectId, mode: int, tmp_fd: int | None
    ) -> bool:
        if kind == "copy":
            _copy_verified(source, tmp, oid, mode, tmp_fd)
            return True
        if kind == "reflink":
            return _reflink(source, tmp, mode, tmp_fd)
        size = os.stat(source).st_size
        if kind == "hardlink":
            if size == 0:  # never hardlink empty files: one inode shared by every empty file
                _copy_verified(source, tmp, oid, mode, tmp_fd)
                return True
            try:
                os.link(source, tmp, dst_dir_fd=tmp_fd, follow_symlinks=False)
            except OSError as exc:
                if exc.errno == errno.EMLINK:
                    _copy_verified(source, tmp, oid, mode, tmp_fd)
                    return True
                if exc.errno in _UNSUPPORTED:
                    return False
                raise
            return True
        os.symlink(os.path.abspath(source), tmp, dir_fd=tmp_fd)
        return True


def _check_regular(source: str, oid: ObjectId) -> None:
    """Refuse a cache entry that is not a regular file: a link planted in the cache would
    otherwise be hardlinked, symlinked or cloned into the workspace unchecked."""
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        return  # reported as a missing object where it is opened
    if not stat.S_ISREG(st.st_mode):
        raise CorruptObjectError(
            f"cache object {oid} is not a regular file (a symlink?); it was not checked out",
            hint="run `repro fsck --repair`, then `repro pull` it again",
        )


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _discard(tmp: str, tmp_fd: int | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=tmp_fd)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


_SOURCE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def _copy_verified(source: str, tmp: str, oid: ObjectId, mode: int, tmp_fd: int | None) -> None:
    src = os.open(source, _SOURCE)
    try:
        dst = os.open(tmp, _CREATE, mode, dir_fd=tmp_fd)
        try:
            size = os.fstat(src).st_size
            if size <= SMALL_FILE:
                data = read_small(src, size)
                if oid_of_bytes(data) != oid:
                    raise CorruptObjectError(f"cache object {oid} is corrupt")
                view = memoryview(data)
                while view:
                    view = view[os.write(dst, view) :]
            else:
                copy_hashing(src, dst, chunk_size_for(size), expected=oid)
            # os.open applied `mode` less the umask, which `mode` already excludes
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _reflink(source: str, tmp: str, mode: int, tmp_fd: int | None) -> bool:
    src = os.open(source, _SOURCE)
    try:
        dst = os.open(tmp, _CREATE, mode, dir_fd=tmp_fd)
        try:
            try:
                fcntl.ioctl(dst, FICLONE, src)
            except OSError as exc:
                if exc.errno in _UNSUPPORTED:
                    return False
                raise
            os.fchmod(dst, mode)
            return True
        finally:
            os.close(dst)
    finally:
        os.close(src)
