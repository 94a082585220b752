"""`repro status`: how tracked data in the workspace differs from its pointers.

"Out of date" is a result, not an error: the CLI turns a non-clean report into exit 1 only
with `--check`. Status never writes anything but the stat cache.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reprocli.core import manifest
from reprocli.core.hashing import ObjectId
from reprocli.core.manifest import Entry
from reprocli.core.paths import RepoPath
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT, Progress
from reprocli.errors import MissingObjectError, UsageError
from reprocli.project import PIPELINE_FILE, Project

if TYPE_CHECKING:  # the pipeline modules load only when there is a repro.yaml
    from reprocli.pipeline.plan import Verdict

State = Literal["clean", "modified", "missing", "not_in_cache"]
ChangeKind = Literal["added", "modified", "deleted"]


@dataclass(frozen=True, slots=True)
class Change:
    """One file of a tracked directory that differs from the pointer's manifest."""

    path: str
    kind: ChangeKind


@dataclass(frozen=True, slots=True)
class DataStatus:
    """One tracked path: its state and, for a modified directory, the files that changed.

    States: clean; modified (workspace differs from the pointer); missing (no data in the
    workspace: run checkout); not_in_cache (workspace matches, but the cache lacks objects).
    """

    path: RepoPath
    state: State
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The state of every tracked path that was asked about."""

    data: tuple[DataStatus, ...]
    stages: tuple[Verdict, ...] = ()

    @property
    def clean(self) -> bool:
        """Whether everything is in step."""
        return all(item.state == "clean" for item in self.data) and not any(
            v.stale for v in self.stages
        )


def select(
    pointers: Sequence[Pointer],
    project: Project,
    paths: Sequence[str | Path],
    *,
    at: str | None = None,
) -> list[Pointer]:
    """The pointers whose data is, contains, or lies inside one of `paths` (all when empty).

    `at` names the revision the pointers come from, for the error when a path matches none."""
    if not paths:
        return list(pointers)
    wanted = [project.target(p) for p in paths]
    chosen = []
    matched: set[str] = set()
    for ptr in pointers:
        data, file = ptr.data, ptr.file
        for rel in wanted:
            if rel in (data, file) or rel.startswith(data + "/") or data.startswith(rel + "/"):
                chosen.append(ptr)
                matched.add(rel)
    for rel in wanted:
        if rel not in matched:
            if at is not None:
                raise UsageError(f"{rel}: not tracked by repro at {at}")
            raise UsageError(
                f"{rel}: not tracked by repro", hint=f"track it with `repro add {rel}`"
            )
    return list(dict.fromkeys(chosen))


def status(
    project: Project, paths: Sequence[str | Path] = (), *, progress: Progress = SILENT
) -> StatusReport:
    """Compare each selected pointer with its data in the workspace."""
    pointers = select(project.pointers(), project, paths)
    data = tuple(data_status(project, ptr, progress) for ptr in pointers)
    stages: tuple[Verdict, ...] = ()
    if not paths and os.path.lexists(project.path(PIPELINE_FILE)):  # a link is refused
        from reprocli.operations.run import load, predict  # noqa: PLC0415 - pipelines only

        _, graph = load(project)
        stages = tuple(predict(project, graph, graph.order()))
    return StatusReport(data, stages)


def data_status(project: Project, ptr: Pointer, progress: Progress = SILENT) -> DataStatus:
    """The state of one tracked path."""
    path = project.path(ptr.data)
    if not os.path.lexists(path):
        return DataStatus(ptr.data, "missing")
    snap = project.snapshot(ptr.data, progress=progress)
    store = project.store
    if snap.oid == ptr.oid and snap.exec == ptr.exec:
        entries = snap.entries or ()
        if not store.has(ptr.oid) or store.missing(e.oid for e in entries):
            return DataStatus(ptr.data, "not_in_cache")
        return DataStatus(ptr.data, "clean")
    if not ptr.is_dir or snap.entries is None:
        return DataStatus(ptr.data, "modified")
    try:
        recorded = manifest.decode(
            store.read_bytes(ptr.oid), where=f"{ptr.file}: manifest {ptr.oid}"
        )
    except MissingObjectError:
        return DataStatus(ptr.data, "modified")
    return DataStatus(ptr.data, "modified", diff_entries(recorded, snap.entries))


def diff_entries(old: Sequence[Entry], new: Sequence[Entry]) -> tuple[Change, ...]:
    """Files added, modified (content or exec bit) or deleted between two manifests."""
    before = {e.path: (e.oid, e.exec) for e in old}
    after = {e.path: (e.oid, e.exec) for e in new}
    changes = [Change(p, "deleted") for p in before.keys() - after.keys()]
    changes += [Change(p, "added") for p in after.keys() - before.keys()]
    changes += [
        Change(p, "modified")
        for p, now in after.items()
        if (was := before.get(p)) is not None and was != now
    ]
    return tuple(sorted(changes, key=lambda c: c.path))


@dataclass(frozen=True, slots=True)
class RemoteGap:
    """A tracked path with objects the remote lacks (`missing` of `total`)."""

    path: RepoPath
    missing: int
    total: int


@dataclass(frozen=True, slots=True)
class RemoteReport:
    """What a remote lacks of the tracked data in the workspace."""

    remote: str
    gaps: tuple[RemoteGap, ...]

    @property
    def clean(self) -> bool:
        """Whether the remote has everything."""
        return not self.gaps


def remote_status(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
) -> RemoteReport:
    """Which tracked paths have objects not yet on the remote (nothing is transferred)."""
    from reprocli.core import transfer  # noqa: PLC0415 - only --remote pays for remotes

    jobs = project.transfer_jobs(remote, jobs)
    target = project.open_remote(remote, jobs=jobs)
    store = project.store
    needs: dict[RepoPath, set[ObjectId]] = {}
    for ptr in select(project.tracked(), project, paths):
        oids = {ptr.oid}
        if ptr.is_dir and store.has(ptr.oid):
            entries = manifest.decode(
                store.read_bytes(ptr.oid), where=f"{ptr.file}: manifest {ptr.oid}"
            )
            oids.update(e.oid for e in entries)
        needs[ptr.data] = oids
    present = transfer.present_on(target, set().union(*needs.values()), jobs=jobs)
    gaps = tuple(
        RemoteGap(path, len(oids - present), len(oids))
        for path, oids in needs.items()
        if oids - present
    )
    return RemoteReport(target.name, gaps)
