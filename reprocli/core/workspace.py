"""Reading tracked data in the workspace: scanning trees and turning them into objects.

A snapshot is the object view of a workspace path: its oid (a file object or a `.dir`
manifest), size and entries. The stat cache spares re-hashing files whose stat is unchanged.
"""

from __future__ import annotations

import os
import re
import stat as statmod
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reprocli.core import atomic, manifest
from reprocli.core.atomic import TEMP_PREFIX
from reprocli.core.hashing import DIR_SUFFIX, ObjectId, hash_file, oid_of_bytes
from reprocli.core.manifest import Entry
from reprocli.core.objects import Batch
from reprocli.core.paths import RepoPath
from reprocli.core.progress import SILENT, Progress
from reprocli.core.stat_cache import Record, StatCache, is_racy
from reprocli.errors import UnsafePathError

PROGRESS_STEP = 256
_KIND = 0o170000  # the file-type bits of st_mode


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Tracked data as objects: a file's oid, or a directory's manifest oid and entries."""

    oid: ObjectId
    size: int
    entries: tuple[Entry, ...] | None = None
    manifest: bytes | None = None
    exec: bool = False

    @property
    def nfiles(self) -> int | None:
        """How many files a directory holds (None for a file)."""
        return None if self.entries is None else len(self.entries)


def scan(
    top: Path, *, cache_links: str | None = None, foreign_links: list[str] | None = None
) -> list[tuple[str, os.stat_result]]:
    """Every regular file under `top` with its stat, sorted by relative POSIX path.

    Skips `.git` folders and repro's own temp files. A symlink is an error (repro stores
    file content, and following links could read or write outside the repository), except a
    link into the object cache folder `cache_links`, which checkout made in symlink mode:
    it stands for the cached file it points to. With `foreign_links`, other symlinks are
    collected there (relative paths) instead of raising: checkout replaces them, never
    following them.
    """
    found: list[tuple[str, os.stat_result]] = []
    stack = [("", str(top))]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if not name.isprintable():
                    raise UnsafePathError(
                        f"{entry.path!r}: cannot be tracked: its name has a control character "
                        "or is not valid UTF-8",
                        hint="rename or remove it",
                    )
                st = entry.stat(follow_symlinks=False)  # one call: the kind and the stat
                kind = st.st_mode & _KIND
                if kind == statmod.S_IFREG:
                    if not name.startswith(TEMP_PREFIX):
                        found.append((prefix + name, st))
                elif kind == statmod.S_IFDIR:
                    if name.lower() != ".git":
                        stack.append((prefix + name + "/", entry.path))
                elif kind != statmod.S_IFLNK:
                    continue  # sockets, FIFOs, devices: not data
                elif is_cache_link(entry.path, cache_links):
                    found.append((prefix + name, os.stat(entry.path)))
                elif foreign_links is not None:
                    foreign_links.append(prefix + name)
                else:
                    raise UnsafePathError(
                        f"{entry.path}: is a symlink; repro tracks file content, not links",
                        hint="replace the link with the file it points to, or remove it",
                    )
    found.sort()  # names are unique, so stats are never compared
    return found


_CACHE_NAME = re.compile(r"[0-9a-f]{2}/[0-9a-f]{30}")


def is_cache_link(path: str | Path, cache_links: str | None) -> bool:
    """Whether `path` is a symlink into the object cache folder `cache_links`."""
    if cache_links is None:
        return False
    try:
        target = os.readlink(path)
    except OSError:
        return False
    # The target is judged as written, never resolved: `<cache>/objects/../../secret` starts
    # with the cache prefix but leads out, so only a normal `ab/cdef…` object name counts.
    if not target.startswith(cache_links) or not _CACHE_NAME.fullmatch(target[len(cache_links) :]):
        return False
    try:
        return statmod.S_ISREG(os.lstat(target).st_mode)
    except OSError:
        return False


def is_exec(st: os.stat_result) -> bool:
    """Whether the owner may execute the file (the bit a manifest records)."""
    return bool(st.st_mode & statmod.S_IXUSR)


Hasher = Callable[[str, os.stat_result], tuple[ObjectId, int]]


def hash_only(path: str, st: os.stat_result) -> tuple[ObjectId, int]:
    """Hash a file without storing it."""
    try:
        return hash_file(path)
    except OSError as exc:
        raise atomic.storage_error(exc, "cannot read", path) from exc


def storing(batch: Batch) -> Hasher:
    """Hash a file and copy it into the cache through `batch`."""

    def ingest(path: str, st: os.stat_result) -> tuple[ObjectId, int]:
        return batch.store.ingest(path, batch, st.st_size)

    return ingest


def snapshot(
    path: Path,
    rel: RepoPath,
    stat_cache: StatCache,
    hasher: Hasher,
    *,
    known: Callable[[ObjectId], bool] | None = None,
    cache_links: str | None = None,
    foreign_links: list[str] | None = None,
    progress: Progress = SILENT,
) -> Snapshot:
    """Describe the file or directory at `path` (repository path `rel`) as objects.

    Files whose stat matches the stat cache are not read, unless `known` says their object
    is not available (then they are hashed again through `hasher`). Updates the stat cache.
    Symlinks into `cache_links` (symlink-mode checkouts) count as the file they point to.
    """
    started_ns = time.time_ns()
    st = os.stat(path, follow_symlinks=False)
    record = stat_cache.load(rel)
    if statmod.S_ISLNK(st.st_mode):
        if not is_cache_link(path, cache_links):
            raise UnsafePathError(f"{path}: is a symlink; repro tracks file content, not links")
        st = os.stat(path)
    if not statmod.S_ISDIR(st.st_mode):
        hit = record.lookup("", st)
        if hit is not None and (known is None or known(hit)):
            oid, size = hit, st.st_size
        else:
            oid, size = hasher(str(path), st)
            fresh = Record()
            if not is_racy(st, started_ns):
                fresh.add("", st, oid)
            stat_cache.save(rel, fresh)
        return Snapshot(oid, size, exec=is_exec(st))
    files = scan(path, cache_links=cache_links, foreign_links=foreign_links)
    progress.start(f"hashing {rel}", len(files))
    entries: list[Entry] = []
    misses = 0
    total = 0
    new = tuple.__new__  # Entry's own constructor runs Python code per file: 2x slower
    # The stat comparison is inlined: it runs once per file on every status.
    index_of = record.index().get
    inos, sizes, mtimes, ctimes, modes, oids = (
        record.inos,
        record.sizes,
        record.mtimes,
        record.ctimes,
        record.modes,
        record.oids,
    )
    for count, (name, fst) in enumerate(files, 1):
        i = index_of(name)
        if (
            i is not None
            and mtimes[i] == fst.st_mtime_ns
            and sizes[i] == fst.st_size
            and inos[i] == fst.st_ino
            and ctimes[i] == fst.st_ctime_ns
            and modes[i] == fst.st_mode
            and (known is None or known(oids[i]))  # type: ignore[arg-type]
        ):
            oid, size = ObjectId(oids[i]), fst.st_size
        else:
            oid, size = hasher(f"{path}/{name}", fst)
            misses += 1
        entries.append(new(Entry, (name, oid, size, bool(fst.st_mode & statmod.S_IXUSR))))
        total += size
        if count % PROGRESS_STEP == 0:
            progress.advance(PROGRESS_STEP)
    progress.finish()
    same_files = misses == 0 and len(files) == len(record.names)
    if same_files and record.manifest and (known is None or known(ObjectId(record.manifest))):
        # Every file is as recorded: so is the manifest, without encoding it again.
        return Snapshot(ObjectId(record.manifest), total, tuple(entries), None)
    data = manifest.encode(entries)
    oid = ObjectId(oid_of_bytes(data) + DIR_SUFFIX)
    kept = Record()
    for (name, fst), entry in zip(files, entries, strict=True):
        if not is_racy(fst, started_ns):
            kept.add(name, fst, entry.oid)
    kept.manifest = oid if len(kept.names) == len(entries) else None
    stat_cache.save(rel, kept)
    return Snapshot(oid, total, tuple(entries), data)
