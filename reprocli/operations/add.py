"""`repro add`: cache files or directories and write their pointers.

Writes go objects → manifest → pointer → .gitignore → `git add` (DESIGN §4): a pointer is
published only after every object it names is durable in the cache.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reprocli.core import folders, gitignore, pointer, workspace
from reprocli.core.hashing import ObjectId
from reprocli.core.paths import RepoPath, has_symlink_parent, problem
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT, Progress
from reprocli.errors import InvalidFileError, UnsafePathError, UsageError
from reprocli.project import Project


@dataclass(frozen=True, slots=True)
class Recorded:
    """Tracked data after add/commit: its path, object, size, file count, and whether it changed."""

    path: RepoPath
    oid: ObjectId
    size: int
    nfiles: int | None
    changed: bool


def add(
    project: Project, paths: Sequence[str | Path], *, progress: Progress = SILENT
) -> list[Recorded]:
    """Track each path: every check runs before anything is written."""
    targets: list[RepoPath] = []
    for user_path in paths:
        rel = check_target(project, user_path)
        if rel not in targets:
            targets.append(rel)
    for rel in targets:
        for other in targets:
            if rel.startswith(other + "/"):
                raise UsageError(f"{rel}: inside {other}, which is also being added")
    with project.locked():
        return record(project, targets, progress=progress)


def check_target(project: Project, user_path: str | Path) -> RepoPath:
    """Validate one `repro add` argument; return its repository path."""
    rel = project.target(user_path)
    full = project.path(rel)
    if rel.endswith(pointer.SUFFIX):
        raise UsageError(f"{rel}: is a pointer file; add the data it names instead")
    if not os.path.lexists(full):
        raise UsageError(f"{rel}: no such file or directory")
    if full.is_symlink():
        raise UnsafePathError(f"{rel}: is a symlink; repro tracks file content, not links")
    if not (full.is_file() or full.is_dir()):
        raise UsageError(f"{rel}: not a regular file or directory")
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if project.path(parent + pointer.SUFFIX).is_file():
            raise UsageError(
                f"{rel}: inside tracked data {parent}",
                hint=f"run `repro commit {parent}` to record changes to it",
            )
    if project.git is not None:
        tracked = project.git.ls_files(rel)
        if tracked:
            raise UsageError(
                f"{rel}: tracked by Git ({len(tracked)} file(s), e.g. {tracked[0]})",
                hint=f"stop tracking it in Git first: git rm -r --cached {rel}",
            )
    return rel


def record(
    project: Project, targets: Sequence[RepoPath], *, progress: Progress = SILENT
) -> list[Recorded]:
    """Store the content of each target, then publish its pointer and .gitignore line."""
    store = project.store
    snapshots: list[tuple[RepoPath, workspace.Snapshot]] = []
    with store.batch() as batch:
        for rel in targets:
            snap = project.snapshot(
                rel, workspace.storing(batch), known=batch.knows, progress=progress
            )
            for entry in snap.entries or ():
                reason = problem(entry.path)
                if reason is not None:
                    raise UnsafePathError(
                        f"{rel}/{entry.path}: cannot be tracked: its name {reason}",
                        hint="rename or remove it",
                    )
                if entry.path.endswith(pointer.SUFFIX):
                    raise UsageError(
                        f"{rel}/{entry.path}: a pointer file inside data being added",
                        hint="track nested data in one place only",
                    )
            snapshots.append((rel, snap))
    for _, snap in snapshots:  # children are durable: now their manifests
        if snap.manifest is not None:
            store.put_bytes(snap.manifest, suffix=".dir")
    results: list[Recorded] = []
    to_stage: list[str] = []
    for rel, snap in snapshots:
        ptr = Pointer(rel, snap.oid, snap.size, snap.nfiles, snap.exec)
        changed = publish_pointer(project, ptr)
        folder = rel.rpartition("/")[0]
        to_stage.append(ptr.file)
        if project.git is not None:
            gitignore.ensure_ignored(project.root, rel, tmp_dir=project.tmp_dir)
            to_stage.append(f"{folder}/.gitignore" if folder else ".gitignore")
        results.append(Recorded(rel, snap.oid, snap.size, snap.nfiles, changed))
    if project.git is not None and project.config.autostage:
        project.git.add(sorted(set(to_stage)))
    return results


def publish_pointer(project: Project, ptr: Pointer) -> bool:
    """Write `ptr` atomically unless the file already holds these bytes; return if it changed."""
    data = pointer.encode(ptr)
    try:
        if folders.read_bytes(project.root, ptr.file, limit=pointer.MAX_BYTES) == data:
            return False
    except (FileNotFoundError, InvalidFileError):
        pass  # missing, or not a file we would write: replaced
    except UnsafePathError:
        if has_symlink_parent(project.root, ptr.file) is not None:
            raise
        # a symlink at the pointer itself is replaced, never followed
    folders.write_bytes(project.root, ptr.file, data, tmp_dir=project.tmp_dir)
    return True
