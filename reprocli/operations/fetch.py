"""`repro fetch`: download into the cache the objects tracked data needs (workspace untouched)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reprocli.core import transfer
from reprocli.core.progress import SILENT, Progress
from reprocli.core.transfer import TransferResult
from reprocli.operations.scope import WORKSPACE_ONLY, Revisions, pointers_in_scope, roots
from reprocli.project import Project


def fetch(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revisions: Revisions = WORKSPACE_ONLY,
    progress: Progress = SILENT,
) -> TransferResult:
    """Fetch and verify what the selected pointers need; raise RemoteError if anything failed."""
    jobs = project.transfer_jobs(remote, jobs)
    source = project.open_remote(remote, jobs=jobs)
    wanted = roots(pointers_in_scope(project, paths, revisions))
    with project.locked():
        result = transfer.fetch(project.store, source, wanted, jobs=jobs, progress=progress)
    result.raise_for_failures(source, "fetched")
    return result
