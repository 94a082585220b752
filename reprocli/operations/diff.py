"""`repro diff [A [B]]`: which tracked data files were added, modified or deleted between two
revisions (default HEAD vs the workspace).

A commit's side is read from its pointers and repro.lock in Git objects, with directory
manifests from the cache; the workspace side is the data as it is on disk now (hashed through
the stat cache), so uncommitted changes show, as `git diff HEAD` shows them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from reprocli.core import manifest
from reprocli.core.hashing import ObjectId
from reprocli.core.manifest import Entry
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT, Progress
from reprocli.errors import CorruptObjectError, MissingObjectError
from reprocli.operations.revisions import Rev, pair
from reprocli.project import Project

Kind = Literal["added", "modified", "deleted"]


@dataclass(frozen=True, slots=True)
class Version:
    """A file's content on one side: its object and size."""

    oid: ObjectId
    size: int
    exec: bool = False


@dataclass(frozen=True, slots=True)
class FileChange:
    """One data file that differs between the two sides."""

    path: str
    kind: Kind
    old: Version | None
    new: Version | None


@dataclass(frozen=True, slots=True)
class DiffReport:
    """The changes from `old` to `new`, sorted by path.

    `opaque` lists tracked directories compared as a whole because a manifest of theirs is not
    in the cache (a `repro fetch` of that revision lets diff list their files)."""

    old: Rev
    new: Rev
    changes: tuple[FileChange, ...]
    opaque: tuple[str, ...] = ()


@dataclass(slots=True)
class _Side:
    """Tracked data at one revision: a version per file and per tracked directory."""

    files: dict[str, Version]
    dirs: dict[str, Version]
    opaque: set[str]


def diff(
    project: Project,
    old: str | None = None,
    new: str | None = None,
    *,
    progress: Progress = SILENT,
) -> DiffReport:
    """Compare the tracked data of two revisions (`workspace` is the working tree)."""
    a, b = pair(project, old, new)
    before, after = _side(project, a, progress), _side(project, b, progress)
    opaque = before.opaque | after.opaque
    changes: list[FileChange] = []
    for path in before.files.keys() | after.files.keys():
        if opaque and any(path == o or path.startswith(o + "/") for o in opaque):
            continue
        changes += _change(path, before.files.get(path), after.files.get(path))
    for folder in opaque:
        was = before.dirs.get(folder) or before.files.get(folder)
        now = after.dirs.get(folder) or after.files.get(folder)
        changes += _change(folder, was, now)
    changes.sort(key=lambda c: c.path)
    return DiffReport(a, b, tuple(changes), tuple(sorted(opaque)))


def _change(path: str, was: Version | None, now: Version | None) -> list[FileChange]:
    if was == now:
        return []
    kind: Kind = "added" if was is None else "deleted" if now is None else "modified"
    return [FileChange(path, kind, was, now)]


def _side(project: Project, rev: Rev, progress: Progress) -> _Side:
    side = _Side({}, {}, set())
    if rev.sha is None:
        for ptr in project.tracked():
            _add_workspace(project, ptr, side, progress)
        return side
    for ptr in project.pointers_at([rev.sha]):
        if not ptr.is_dir:
            side.files[ptr.data] = Version(ptr.oid, ptr.size, ptr.exec)
            continue
        side.dirs[ptr.data] = Version(ptr.oid, ptr.size)
        entries = _manifest(project, ptr)
        if entries is None:
            side.opaque.add(ptr.data)
        else:
            _add_entries(side, ptr.data, entries)
    return side


def _add_workspace(project: Project, ptr: Pointer, side: _Side, progress: Progress) -> None:
    if not os.path.lexists(project.path(ptr.data)):
        return
    snap = project.snapshot(ptr.data, progress=progress)
    if snap.entries is None:
        side.files[ptr.data] = Version(snap.oid, snap.size, snap.exec)
    else:
        side.dirs[ptr.data] = Version(snap.oid, snap.size)
        _add_entries(side, ptr.data, snap.entries)


def _add_entries(side: _Side, folder: str, entries: Sequence[Entry]) -> None:
    for entry in entries:
        side.files[f"{folder}/{entry.path}"] = Version(entry.oid, entry.size, entry.exec)


def _manifest(project: Project, ptr: Pointer) -> list[Entry] | None:
    try:
        data = project.store.read_bytes(ptr.oid)
    except (MissingObjectError, CorruptObjectError):
        return None
    return manifest.decode(data, where=f"{ptr.file}: manifest {ptr.oid}")
