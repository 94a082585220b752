"""`repro checkout`: make the workspace match the pointers.

Two phases (RELIABILITY invariant 4): first plan every pointer — load manifests, find what
must be written or deleted, check that every object is in the cache and that nothing
uncommitted would be overwritten — and only then touch the workspace. A file is replaced
or deleted only when its current bytes are in the cache, or with `force`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat as statmod
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reprocli.core import manifest, workspace
from reprocli.core.hashing import ObjectId
from reprocli.core.links import Linker
from reprocli.core.manifest import Entry
from reprocli.core.paths import RepoPath, has_symlink_parent
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT, Progress
from reprocli.core.stat_cache import Record, is_racy
from reprocli.errors import MissingObjectError, UncommittedChangesError, UnsafePathError
from reprocli.operations.status import select
from reprocli.project import Project

LISTED = 10


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """What checkout changed: files written and deleted, untracked files it left alone."""

    written: int
    deleted: int
    unchanged: int
    changed: tuple[RepoPath, ...]
    kept: tuple[str, ...]
    link_types: tuple[str, ...]


@dataclass(slots=True)
class _Plan:
    ptr: Pointer
    writes: list[Entry] = field(default_factory=list)
    chmods: list[Entry] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    clear_first: bool = False
    unchanged: int = 0

    make_root: bool = False

    @property
    def is_noop(self) -> bool:
        return not (
            self.writes or self.chmods or self.deletes or self.clear_first or self.make_root
        )


def checkout(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    force: bool = False,
    progress: Progress = SILENT,
    fetch_missing: bool = True,
) -> CheckoutResult:
    """Restore the data of every selected pointer from the cache.

    Objects missing from the cache are first fetched from the default remote, when one is
    configured (and `fetch_missing`); nothing in the workspace changes before they are in.
    """
    pointers = select(project.tracked(), project, paths)
    if fetch_missing and project.config.default_remote is not None:
        _fetch_missing(project, pointers, progress)
    with project.locked():
        plans = [plan(project, ptr, force=force) for ptr in pointers]
        conflicts = [c for p in plans for c in p.conflicts]
        if conflicts:
            shown = ", ".join(conflicts[:LISTED]) + (" …" if len(conflicts) > LISTED else "")
            raise UncommittedChangesError(
                f"checkout would overwrite {len(conflicts)} uncommitted change(s): {shown}",
                hint="record them with `repro commit`, or discard them with `repro checkout --force`",
            )
        linker = Linker(project.store, project.config.link_types, project.tmp_dir)
        total = sum(len(p.writes) for p in plans)
        progress.start("checking out", total)
        for item in plans:
            if not item.is_noop:
                apply(project, item, linker, progress)
        progress.finish()
    return CheckoutResult(
        written=total,
        deleted=sum(len(p.deletes) for p in plans),
        unchanged=sum(p.unchanged for p in plans),
        changed=tuple(p.ptr.data for p in plans if not p.is_noop),
        kept=tuple(f"{p.ptr.data}/{k}" for p in plans for k in p.kept),
        link_types=tuple(sorted(linker.used)),
    )


def _fetch_missing(project: Project, pointers: Sequence[Pointer], progress: Progress) -> None:
    from reprocli.core import transfer  # noqa: PLC0415 - only when a remote may be needed

    store = project.store
    needed = []
    for ptr in pointers:
        if not store.has(ptr.oid):
            needed.append(ptr.oid)
        elif ptr.is_dir:
            entries = manifest.decode(
                store.read_bytes(ptr.oid), where=f"{ptr.file}: manifest {ptr.oid}"
            )
            if store.missing(e.oid for e in entries):
                needed.append(ptr.oid)
    if not needed:
        return
    jobs = project.transfer_jobs(None, None)
    remote = project.open_remote(None, jobs=jobs)
    with project.locked():
        result = transfer.fetch(store, remote, needed, jobs=jobs, progress=progress)
    result.raise_for_failures(remote, "fetched")


def plan(project: Project, ptr: Pointer, *, force: bool) -> _Plan:
    """Decide what restoring `ptr` takes, without changing anything."""
    store = project.store
    link = has_symlink_parent(project.root, ptr.data)
    if link is not None:
        raise UnsafePathError(
            f"{ptr.file}: the folder {link} on the way to {ptr.data} is a symlink"
        )
    if ptr.is_dir:
        target = manifest.decode(store.read_bytes(ptr.oid), where=f"{ptr.file}: manifest {ptr.oid}")
    else:
        target = [Entry(RepoPath(""), ptr.oid, ptr.size, ptr.exec)]
    result = _Plan(ptr)
    path = project.path(ptr.data)
    current: dict[str, Entry] = {}
    result.make_root = ptr.is_dir and not os.path.isdir(path)
    if os.path.lexists(path):
        st = os.lstat(path)
        if statmod.S_ISLNK(st.st_mode) and workspace.is_cache_link(path, project.cache_links):
            st = os.stat(path)
        if statmod.S_ISDIR(st.st_mode) == ptr.is_dir and not statmod.S_ISLNK(st.st_mode):
            links: list[str] = []
            snap = project.snapshot(ptr.data, foreign_links=links)
            if snap.entries is None:
                current = {"": Entry(RepoPath(""), snap.oid, snap.size, snap.exec)}
            else:
                current = {e.path: e for e in snap.entries}
            folders = {e.path.rpartition("/")[0] for e in target}
            for link in links:  # symlinks we did not make: replaced, never followed
                if link in folders or any(f.startswith(link + "/") for f in folders):
                    raise UnsafePathError(
                        f"{_join(ptr.data, link)}: is a symlink where tracked data needs a folder; "
                        "refusing to write through it",
                        hint="replace the link with a real folder",
                    )
                if force:
                    result.deletes.append(link)
                else:
                    result.conflicts.append(f"{_join(ptr.data, link)} (a symlink)")
        elif force or _is_cached(project, path):
            result.clear_first = True
        else:
            result.conflicts.append(ptr.data)
    for entry in target:
        have = current.pop(entry.path, None)
        if have is None:
            result.writes.append(entry)
        elif have.oid != entry.oid:
            if force or store.has(have.oid):
                result.writes.append(entry)
            else:
                result.conflicts.append(_join(ptr.data, entry.path))
        elif have.exec != entry.exec:
            result.chmods.append(entry)
        else:
            result.unchanged += 1
    for name, extra in current.items():
        if force or store.has(extra.oid):
            result.deletes.append(name)
        else:
            result.kept.append(name)
    missing = [e.oid for e in result.writes if not store.has(e.oid)]
    if missing:
        raise MissingObjectError(
            f"{ptr.data}: {len(missing)} object(s) are not in the cache (first: {missing[0]})",
            hint="fetch them with `repro pull`",
        )
    return result


def _join(data: str, name: str) -> str:
    return f"{data}/{name}" if name else data


def _is_cached(project: Project, path: Path) -> bool:
    """Whether every byte at `path` (a file, a link, or a tree) is safely in the cache."""
    if path.is_symlink():
        return False
    if path.is_dir():
        try:
            files = workspace.scan(path, cache_links=project.cache_links)
        except UnsafePathError:
            return False
        return all(project.store.has(workspace.hash_only(f"{path}/{n}", st)[0]) for n, st in files)
    return project.store.has(workspace.hash_only(str(path), os.lstat(path))[0])


def apply(project: Project, item: _Plan, linker: Linker, progress: Progress) -> None:
    """Carry out one plan: clear, delete, write, fix exec bits, update the stat cache."""
    ptr = item.ptr
    top = project.path(ptr.data)
    if item.clear_first:
        if top.is_dir() and not top.is_symlink():
            shutil.rmtree(top)
        else:
            top.unlink()
    for name in item.deletes:
        _join_path(top, name).unlink()
    for name in sorted({n.rpartition("/")[0] for n in item.deletes if "/" in n}, reverse=True):
        _remove_empty(top, name)
    made: set[str] = set()
    placed: list[tuple[str, str, ObjectId]] = []
    if ptr.is_dir:
        _ensure_dir(top)
    base = str(top)
    for count, entry in enumerate(item.writes, 1):
        dest = f"{base}/{entry.path}" if entry.path else base  # strings: 100k files, no pathlib
        folder = entry.path.rpartition("/")[0]
        if folder and folder not in made:
            _make_dirs(top, folder, made)
        linker.place(entry.oid, dest, executable=entry.exec)
        placed.append((entry.path, dest, entry.oid))
        if count % 256 == 0:
            progress.advance(256)
    progress.advance(len(item.writes) % 256)
    for entry in item.chmods:
        dest = f"{base}/{entry.path}" if entry.path else base
        st = os.lstat(dest)
        if statmod.S_ISLNK(st.st_mode) or st.st_nlink > 1:
            # Shared with the cache (or elsewhere): give it its own file, never chmod the cache.
            linker.place(entry.oid, dest, executable=entry.exec)
            placed.append((entry.path, dest, entry.oid))
        else:
            os.chmod(dest, st.st_mode | 0o111 if entry.exec else st.st_mode & ~0o111)
    _remember(project, item, placed)


def _remember(project: Project, item: _Plan, placed: list[tuple[str, str, ObjectId]]) -> None:
    """Record the stat of every file just placed, so the next status need not hash them."""
    recorded_ns = time.time_ns()
    fresh = {name: (os.lstat(dest), oid) for name, dest, oid in placed}
    old = project.stat_cache.load(item.ptr.data)
    gone = set(item.deletes) | set(fresh)
    keep = {n: i for i, n in enumerate(old.names) if n not in gone and not item.clear_first}
    record = Record()
    for name in sorted(keep.keys() | fresh.keys()):
        if name in fresh:
            st, oid = fresh[name]
            if not statmod.S_ISLNK(st.st_mode) and not is_racy(st, recorded_ns):
                record.add(name, st, oid)
        else:
            i = keep[name]
            record.names.append(name)
            record.inos.append(old.inos[i])
            record.sizes.append(old.sizes[i])
            record.mtimes.append(old.mtimes[i])
            record.ctimes.append(old.ctimes[i])
            record.modes.append(old.modes[i])
            record.oids.append(old.oids[i])
    project.stat_cache.save(item.ptr.data, record)


def _join_path(top: Path, name: str) -> Path:
    return top / name if name else top


def _ensure_dir(path: Path) -> None:
    if path.is_symlink():
        raise UnsafePathError(f"{path}: is a symlink; refusing to write through it")
    path.mkdir(parents=True, exist_ok=True)


def _make_dirs(top: Path, folder: str, made: set[str]) -> None:
    """Create `top/folder` one component at a time, refusing to pass through a symlink."""
    parts = folder.split("/")
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        if sub in made:
            continue
        path = top / sub
        try:
            os.mkdir(path)
        except FileExistsError:
            st = os.lstat(path)
            if statmod.S_ISLNK(st.st_mode) or not statmod.S_ISDIR(st.st_mode):
                raise UnsafePathError(
                    f"{path}: is not a folder; refusing to write through it"
                ) from None
        made.add(sub)


def _remove_empty(top: Path, folder: str) -> None:
    parts = folder.split("/")
    while parts:
        with contextlib.suppress(OSError):
            os.rmdir(top / "/".join(parts))
        parts.pop()
