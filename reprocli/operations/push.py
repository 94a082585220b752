"""`repro push`: upload the objects tracked data needs that the remote lacks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reprocli.core import transfer
from reprocli.core.progress import SILENT, Progress
from reprocli.core.transfer import TransferResult
from reprocli.operations.scope import WORKSPACE_ONLY, Revisions, pointers_in_scope, roots
from reprocli.project import Project


def push(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revisions: Revisions = WORKSPACE_ONLY,
    progress: Progress = SILENT,
) -> TransferResult:
    """Upload what the selected pointers need; raise RemoteError if anything failed."""
    jobs = project.transfer_jobs(remote, jobs)
    target = project.open_remote(remote, jobs=jobs)
    wanted = roots(pointers_in_scope(project, paths, revisions))
    result = transfer.push(project.store, target, wanted, jobs=jobs, progress=progress)
    result.raise_for_failures(target, "pushed")
    return result
