"""The content-addressed object store: `objects/ab/cdef…` under a cache root (DESIGN §4).

Objects are written to temp files in `<root>/tmp`, made durable a batch at a time with one
filesystem sync, then renamed under their name: no reader ever sees half an object, and no
object is named before its bytes are on disk (invariant 1). Object files are read-only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import xxhash

from reprocli.core import atomic
from reprocli.core.hashing import (
    DIR_SUFFIX,
    OID_PATTERN,
    SMALL_FILE,
    ObjectId,
    chunk_size_for,
    oid_of_bytes,
    read_small,
)
from reprocli.errors import CorruptObjectError, MissingObjectError

OBJECT_MODE = 0o444
# Above this many objects, listing the fan-out folders beats one stat per object.
LIST_THRESHOLD = 2_000
BATCH_FILES = 50_000
BATCH_BYTES = 1 << 30


class Batch:
    """Objects written but not yet published; `flush` syncs once, then renames them all."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.pending: dict[ObjectId, str] = {}
        self.pending_bytes = 0

    def add(self, oid: ObjectId, tmp: str, size: int) -> None:
        """Queue a fully written temp file for publication under `oid`."""
        if oid in self.pending:
            os.unlink(tmp)
            return
        self.pending[oid] = tmp
        self.pending_bytes += size
        if len(self.pending) >= BATCH_FILES or self.pending_bytes >= BATCH_BYTES:
            self.flush()

    def knows(self, oid: ObjectId) -> bool:
        """Whether `oid` is in the store or waiting in this batch."""
        return oid in self.pending or self.store.keep(oid)

    def flush(self) -> None:
        """Sync the pending bytes once, rename every object into place, sync the names."""
        if not self.pending:
            return
        store = self.store
        try:
            atomic.sync_filesystem(store.tmp)
            for oid, tmp in self.pending.items():
                store.publish(oid, tmp)
            atomic.sync_filesystem(store.objects)
        except OSError as exc:
            self.discard()
            raise atomic.storage_error(exc, "cannot write to cache", store.root) from exc
        self.pending.clear()
        self.pending_bytes = 0

    def discard(self) -> None:
        """Delete the temp files of objects not yet published."""
        for tmp in self.pending.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self.pending.clear()
        self.pending_bytes = 0


class ObjectStore:
    """Objects named by their xxh3-128 id in a two-level fan-out under `root/objects`."""

    def __init__(self, root: Path, *, shared: bool = False) -> None:
        self.root = root
        self.shared = shared
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self._prefix = f"{self.objects}{os.sep}"
        self._tmp = f"{self.tmp}{os.sep}"
        self._dirs: set[str] = set()

    def path_of(self, oid: ObjectId) -> Path:
        """Where object `oid` lives (whether or not it is there)."""
        return self.objects / oid[:2] / oid[2:]

    def os_path(self, oid: ObjectId) -> str:
        """`path_of` as a plain string (cheaper in loops over many objects)."""
        return f"{self._prefix}{oid[:2]}/{oid[2:]}"

    def has(self, oid: ObjectId) -> bool:
        """Whether object `oid` is present (not whether it is intact: see `verify`)."""
        return os.path.exists(f"{self._prefix}{oid[:2]}/{oid[2:]}")

    def keep(self, oid: ObjectId) -> bool:
        """Whether `oid` is present; in a shared cache, also mark it as just used (its mtime),
        so that a gc running from another project sharing the cache spares it (grace period)."""
        path = f"{self._prefix}{oid[:2]}/{oid[2:]}"
        if not self.shared:
            return os.path.exists(path)
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            return os.path.exists(path)  # another user's object: present, left as it is
        return True

    def missing(self, oids: Iterable[ObjectId]) -> set[ObjectId]:
        """The subset of `oids` not present: one stat each for a few, folder listings for many."""
        wanted = set(oids)
        if len(wanted) <= LIST_THRESHOLD:
            return {oid for oid in wanted if not self.has(oid)}
        present: set[str] = set()
        for prefix in {oid[:2] for oid in wanted}:
            try:
                present.update(prefix + name for name in os.listdir(self._prefix + prefix))
            except FileNotFoundError:
                continue
        return wanted - present

    def prepare(self) -> None:
        """Create the store's folders and drop temp files of dead writers."""
        try:
            self.objects.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise atomic.storage_error(exc, "cannot create cache", self.root) from exc
        atomic.remove_stale_temps(self.tmp)

    @contextlib.contextmanager
    def batch(self) -> Iterator[Batch]:
        """Collect objects; publish them durably on success, discard the temps on failure."""
        self.prepare()
        batch = Batch(self)
        try:
            yield batch
        except BaseException:
            batch.discard()
            raise
        batch.flush()

    def publish(self, oid: ObjectId, tmp: str | Path) -> None:
        """Rename a durable temp file under `oid` unless an object of that name exists."""
        prefix = oid[:2]
        if prefix not in self._dirs:
            os.makedirs(self._prefix + prefix, exist_ok=True)
            self._dirs.add(prefix)
        final = f"{self._prefix}{prefix}/{oid[2:]}"
        if self.keep(oid):
            os.unlink(tmp)
        else:
            os.replace(tmp, final)

    def ingest(self, source: str | Path, batch: Batch, size_hint: int) -> tuple[ObjectId, int]:
        """Hash `source` and copy it into the batch unless present; return (oid, size).

        Small files are read once and written only when the object is new. Large files are
        hashed while they are copied (one read), all-zero chunks left as holes.
        """
        try:
            fd = os.open(source, os.O_RDONLY)
        except OSError as exc:
            raise atomic.storage_error(exc, "cannot read", source) from exc
        try:
            if size_hint <= SMALL_FILE:
                data = read_small(fd, size_hint)
                oid = oid_of_bytes(data)
                if not batch.knows(oid):
                    tmp = f"{self._tmp}{atomic.temp_name()}"
                    self._write_new(tmp, data)
                    batch.add(oid, tmp, len(data))
                return oid, len(data)
            return self._ingest_stream(fd, batch, size_hint)
        except OSError as exc:
            raise atomic.storage_error(exc, "cannot store", source) from exc
        finally:
            os.close(fd)

    def _write_new(self, tmp: str, data: bytes) -> None:
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        except BaseException:
            os.close(out)
            os.unlink(tmp)
            raise
        os.close(out)

    def _ingest_stream(self, fd: int, batch: Batch, size_hint: int) -> tuple[ObjectId, int]:
        tmp = f"{self._tmp}{atomic.temp_name()}"
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
        try:
            oid, total = copy_hashing(fd, out, chunk_size_for(size_hint))
        except BaseException:
            os.close(out)
            os.unlink(tmp)
            raise
        os.close(out)
        if batch.knows(oid):
            os.unlink(tmp)
        else:
            batch.add(oid, tmp, total)
        return oid, total

    def put_bytes(self, data: bytes, *, suffix: str = "") -> ObjectId:
        """Store a small object durably on its own (manifests); return its id."""
        oid = ObjectId(oid_of_bytes(data) + suffix)
        if self.keep(oid):
            return oid
        self.prepare()
        tmp = self.tmp / atomic.temp_name()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OBJECT_MODE)
            try:
                view = memoryview(data)
                while view:  # a short write (nearly full disk) must never pass for a whole one
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.publish(oid, tmp)
            atomic.fsync_dir(self.path_of(oid).parent)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise atomic.storage_error(exc, "cannot write to cache", self.root) from exc
        return oid

    def read_bytes(self, oid: ObjectId) -> bytes:
        """Read a small object whole and check that it hashes to its name."""
        path = self.path_of(oid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingObjectError(
                f"object {oid} is not in the cache", hint="fetch it with `repro pull`"
            ) from None
        except OSError as exc:
            raise atomic.storage_error(exc, "cannot read", path) from exc
        if oid_of_bytes(data) != oid.removesuffix(DIR_SUFFIX):
            raise CorruptObjectError(
                f"cache object {oid} is corrupt (its bytes do not match its name)",
                hint="run `repro fsck --repair`, then fetch it again",
            )
        return data

    def verify(self, oid: ObjectId) -> bool:
        """Re-hash object `oid`; True when present and intact."""
        path = self.path_of(oid)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            state = xxhash.xxh3_128()
            buf = bytearray(chunk_size_for(os.fstat(fd).st_size))
            view = memoryview(buf)
            while n := os.readv(fd, [buf]):
                state.update(view[:n])
        finally:
            os.close(fd)
        return bool(state.hexdigest() == oid.removesuffix(DIR_SUFFIX))

    def oddities(self) -> Iterator[str]:
        """Names in the object folders that look like objects but are not regular files."""
        try:
            prefixes = list(os.scandir(self.objects))
        except FileNotFoundError:
            return
        for prefix in prefixes:
            if len(prefix.name) != 2 or not prefix.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(prefix.path):
                name = prefix.name + entry.name
                if OID_PATTERN.fullmatch(name) and not entry.is_file(follow_symlinks=False):
                    yield name

    def iter_oids(self) -> Iterator[ObjectId]:
        """Every object name present, in no particular order (other files are ignored)."""
        try:
            prefixes = list(os.scandir(self.objects))
        except FileNotFoundError:
            return
        for prefix in prefixes:
            if len(prefix.name) != 2 or not prefix.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(prefix.path):
                oid = prefix.name + entry.name
                if OID_PATTERN.fullmatch(oid) and entry.is_file(follow_symlinks=False):
                    yield ObjectId(oid)


def copy_hashing(
    src: int, dst: int, chunk: int, expected: str | None = None
) -> tuple[ObjectId, int]:
    """Copy `src` to `dst` while hashing; all-zero chunks become holes. Return (oid, size).

    With `expected`, raise CorruptObjectError when the bytes do not hash to it.
    """
    state = xxhash.xxh3_128()
    buf = bytearray(chunk)
    view = memoryview(buf)
    zeros = bytes(chunk)
    total = 0
    hole = False
    while n := os.readv(src, [buf]):
        part = view[:n]
        state.update(part)
        # bytearray == bytes is one memcmp (a memoryview compares byte by byte: 50x slower)
        if (
            buf[0] == 0
            and buf[n - 1] == 0
            and (buf == zeros if n == chunk else buf[:n] == zeros[:n])
        ):
            os.lseek(dst, n, os.SEEK_CUR)
            hole = True
        else:
            written = 0
            while written < n:
                written += os.write(dst, part[written:])
        total += n
    if hole:
        os.ftruncate(dst, total)
    oid = ObjectId(state.hexdigest())
    if expected is not None and oid != expected:
        raise CorruptObjectError(f"cache object {expected} is corrupt")
    return oid, total
