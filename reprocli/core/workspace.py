"""Reading tracked data in the workspace: scanning trees and turning them into objects.

A snapshot is the object view of a workspace path: its oid (a file object or a `.dir`
manifest), size and entries. The stat cache spares re-hashing files whose stat is unchanged.
"""

from __future__ import annotations

import os
import stat as statmod
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reprocli.core import manifest
from reprocli.core.atomic import TEMP_PREFIX
from reprocli.core.hashing import DIR_SUFFIX, ObjectId, hash_file, oid_of_bytes
from reprocli.core.manifest import Entry
from reprocli.core.objects import Batch
from reprocli.core.paths import RepoPath
from reprocli.core.progress import SILENT, Progress
from reprocli.core.stat_cache import StatCache, key_of
from reprocli.errors import UnsafePathError

PROGRESS_STEP = 256


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


def scan(top: Path) -> list[tuple[str, os.stat_result]]:
    """Every regular file under `top` with its stat, sorted by relative POSIX path.

    Skips `.git` folders and repro's own temp files; a symlink is an error (repro stores
    file content, and following links could read or write outside the repository).
    """
    found: list[tuple[str, os.stat_result]] = []
    stack = [("", str(top))]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    if name != ".git":
                        stack.append((prefix + name + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    if not name.startswith(TEMP_PREFIX):
                        found.append((prefix + name, entry.stat(follow_symlinks=False)))
                elif entry.is_symlink():
                    raise UnsafePathError(
                        f"{entry.path}: is a symlink; repro tracks file content, not links",
                        hint="replace the link with the file it points to, or remove it",
                    )
    found.sort(key=lambda item: item[0])
    return found


def is_exec(st: os.stat_result) -> bool:
    """Whether the owner may execute the file (the bit a manifest records)."""
    return bool(st.st_mode & statmod.S_IXUSR)


Hasher = Callable[[Path, os.stat_result], tuple[ObjectId, int]]


def hash_only(path: Path, st: os.stat_result) -> tuple[ObjectId, int]:
    """Hash a file without storing it."""
    return hash_file(path)


def storing(batch: Batch) -> Hasher:
    """Hash a file and copy it into the cache through `batch`."""

    def ingest(path: Path, st: os.stat_result) -> tuple[ObjectId, int]:
        return batch.store.ingest(path, batch, st.st_size)

    return ingest


def snapshot(
    path: Path,
    rel: RepoPath,
    stat_cache: StatCache,
    hasher: Hasher,
    *,
    known: Callable[[ObjectId], bool] | None = None,
    progress: Progress = SILENT,
) -> Snapshot:
    """Describe the file or directory at `path` (repository path `rel`) as objects.

    Files whose stat matches the stat cache are not read, unless `known` says their object
    is not available (then they are hashed again through `hasher`). Updates the stat cache.
    """
    started_ns = time.time_ns()
    st = os.stat(path, follow_symlinks=False)
    cached = stat_cache.load(rel)
    if statmod.S_ISLNK(st.st_mode):
        raise UnsafePathError(f"{path}: is a symlink; repro tracks file content, not links")
    if not statmod.S_ISDIR(st.st_mode):
        oid, size = _file_oid(path, rel, st, cached, hasher, known)
        stat_cache.store([(rel, st, oid)], started_ns)
        return Snapshot(oid, size, exec=is_exec(st))
    files = scan(path)
    progress.start(f"hashing {rel}", len(files))
    entries: list[Entry] = []
    fresh: list[tuple[str, os.stat_result, ObjectId]] = []
    total = 0
    for index, (name, fst) in enumerate(files, 1):
        full = f"{rel}/{name}"
        hit = cached.get(full)
        if hit is not None and hit[0] == key_of(fst) and (known is None or known(hit[1])):
            oid, size = hit[1], fst.st_size
        else:
            oid, size = hasher(path / name, fst)
            fresh.append((full, fst, oid))
        entries.append(Entry(RepoPath(name), oid, size, is_exec(fst)))
        total += size
        if index % PROGRESS_STEP == 0:
            progress.advance(PROGRESS_STEP)
    progress.finish()
    stat_cache.store(fresh, started_ns)
    data = manifest.encode(entries)

    return Snapshot(ObjectId(oid_of_bytes(data) + DIR_SUFFIX), total, tuple(entries), data)


def _file_oid(
    path: Path,
    rel: str,
    st: os.stat_result,
    cached: dict[str, tuple[tuple[int, int, int, int, int], ObjectId]],
    hasher: Hasher,
    known: Callable[[ObjectId], bool] | None,
) -> tuple[ObjectId, int]:
    hit = cached.get(rel)
    if hit is not None and hit[0] == key_of(st) and (known is None or known(hit[1])):
        return hit[1], st.st_size
    return hasher(path, st)
