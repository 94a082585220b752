"""`repro log PATH`: every version of a tracked artifact in the history of HEAD.

The commits come from one `git rev-list` over the pointer files that could track PATH (its own,
and those of the folders above it) and repro.lock; each commit's pointer or lock is read from
Git objects through one persistent `cat-file` process, each distinct blob parsed once. A
version is listed at the commit that introduced it, newest first, as `git log` lists commits.
For a stage output, the lock at that commit says which stage made it from which inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocli.core import manifest, pointer
from reprocli.core.gitrepo import CommitInfo, History
from reprocli.core.hashing import DIR_SUFFIX, ObjectId, oid_of_bytes
from reprocli.core.manifest import Entry
from reprocli.core.paths import RepoPath
from reprocli.errors import CorruptObjectError, InvalidFileError, MissingObjectError, UsageError
from reprocli.operations.revisions import resolve
from reprocli.pipeline import lockfile
from reprocli.pipeline.lockfile import Artifact, LockEntry
from reprocli.project import LOCK_FILE, Project


@dataclass(frozen=True, slots=True)
class Lineage:
    """What made a stage output: the stage, and the inputs and parameters its run recorded."""

    stage: str
    cmd: str
    deps: tuple[Artifact, ...]
    params: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Version:
    """One version of the artifact, at the commit that introduced it.

    `oid` is None when the commit no longer tracks it, or (with a `note` saying why) when its
    version cannot be known here."""

    commit: CommitInfo
    oid: ObjectId | None
    size: int | None = None
    nfiles: int | None = None
    lineage: Lineage | None = None
    note: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LogReport:
    """The versions of `path`, newest first."""

    path: RepoPath
    versions: tuple[Version, ...]
    refs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Branch and tag names of the listed commits."""


def log(project: Project, user_path: str | Path, *, rev: str = "HEAD") -> LogReport:
    """Every version of the artifact at `user_path` in the history of `rev`."""
    if project.git is None:
        raise UsageError("repro log reads Git history; this project was made with --no-scm")
    rel = project.target(user_path)
    rel = RepoPath(rel.removesuffix(pointer.SUFFIX)) if rel.endswith(pointer.SUFFIX) else rel
    start = resolve(project, rev)
    assert start.sha is not None
    parts = rel.split("/")
    holders = ["/".join(parts[: i + 1]) for i in reversed(range(len(parts)))]  # deepest first
    with History(project.root) as history:
        reader = _Reader(project, history, rel, holders)
        commits = history.commits(start.sha, [h + pointer.SUFFIX for h in holders] + [LOCK_FILE])
        found: list[Version] = []
        previous: Version | None = None
        for commit in reversed(commits):  # oldest first, to find where each version began
            version = reader.version_at(commit)
            if previous is None and version.oid is None and version.note is None:
                continue
            if previous is None or (version.oid, version.lineage, version.note) != (
                previous.oid,
                previous.lineage,
                previous.note,
            ):
                found.append(version)
                previous = version
        shown = {v.commit.sha for v in found}
        refs: dict[str, tuple[str, ...]] = {}
        for name, sha in history.refs(branches=True, tags=True):
            if sha in shown:
                refs[sha] = (*refs.get(sha, ()), name)
    if not found:
        raise UsageError(
            f"{rel}: never tracked by repro in the history of {rev}",
            hint="repro log follows PATH.repro pointers and stage outputs in repro.lock",
        )
    return LogReport(rel, tuple(reversed(found)), refs)


class _Reader:
    """The artifact's version at a commit, each pointer, lock and manifest parsed once."""

    def __init__(self, project: Project, history: History, rel: str, holders: list[str]) -> None:
        self.project = project
        self.history = history
        self.rel = rel
        self.holders = holders
        self.pointers: dict[str, pointer.Pointer | None] = {}
        self.locks: dict[str, dict[str, LockEntry]] = {}
        self.manifests: dict[str, list[Entry] | None] = {}

    def version_at(self, commit: CommitInfo) -> Version:
        entries: dict[str, LockEntry] | None = None  # read only when no pointer answers
        for holder in self.holders:
            blob = self.history.blob_id(commit.sha, holder + pointer.SUFFIX)
            ptr = self._pointer(blob, holder) if blob else None
            if ptr is not None:
                return self._inside(commit, holder, ptr.oid, ptr.size, ptr.nfiles, None)
            if entries is None:
                lock_blob = self.history.blob_id(commit.sha, LOCK_FILE)
                entries = self._lock(lock_blob) if lock_blob else {}
            for name, entry in sorted(entries.items()):
                out = entry.out(holder)
                if out is not None and out.cache:
                    lineage = Lineage(name, entry.cmd, entry.deps, entry.params)
                    return self._inside(commit, holder, out.oid, out.size, out.nfiles, lineage)
        return Version(commit, None)

    def _inside(
        self,
        commit: CommitInfo,
        holder: str,
        oid: ObjectId,
        size: int,
        nfiles: int | None,
        lineage: Lineage | None,
    ) -> Version:
        """The version of the artifact given the version of the tracked path holding it."""
        if holder == self.rel:
            return Version(commit, oid, size, nfiles, lineage)
        entries = self._manifest(oid)
        if entries is None:
            return Version(
                commit,
                None,
                lineage=lineage,
                note=f"inside {holder} {oid}, whose manifest is not in the cache (repro fetch)",
            )
        inner = self.rel[len(holder) + 1 :]
        for entry in entries:
            if entry.path == inner:
                return Version(commit, entry.oid, entry.size, None, lineage)
        below = [
            e._replace(path=RepoPath(e.path[len(inner) + 1 :]))
            for e in entries
            if e.path.startswith(inner + "/")
        ]
        if not below:
            return Version(commit, None)
        sub = ObjectId(oid_of_bytes(manifest.encode(below)) + DIR_SUFFIX)
        return Version(commit, sub, sum(e.size for e in below), len(below), lineage)

    def _pointer(self, blob: str, holder: str) -> pointer.Pointer | None:
        if blob not in self.pointers:
            file = RepoPath(holder + pointer.SUFFIX)
            try:
                self.pointers[blob] = pointer.decode(
                    self.history.read_blob(blob), file=file, where=f"{file} (blob {blob[:12]})"
                )
            except InvalidFileError:
                self.pointers[blob] = None  # a damaged old pointer: that commit has no version
        return self.pointers[blob]

    def _lock(self, blob: str) -> dict[str, LockEntry]:
        if blob not in self.locks:
            try:
                self.locks[blob] = lockfile.decode(self.history.read_blob(blob))
            except InvalidFileError:
                self.locks[blob] = {}
        return self.locks[blob]

    def _manifest(self, oid: ObjectId) -> list[Entry] | None:
        if oid not in self.manifests:
            try:
                data = self.project.store.read_bytes(oid)
                self.manifests[oid] = manifest.decode(data, where=f"manifest {oid}")
            except (MissingObjectError, CorruptObjectError, InvalidFileError):
                self.manifests[oid] = None
        return self.manifests[oid]
