"""`repro fetch`: download into the cache the objects tracked data needs (workspace untouched)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reprocli.core import transfer
from reprocli.core.progress import SILENT, Progress
from reprocli.core.transfer import TransferResult
from reprocli.operations.scope import WORKSPACE_ONLY, Revisions, pointers_in_scope, roots
from reprocli.pipeline import runcache
from reprocli.pipeline.runcache import RunCache
from reprocli.project import Project


def fetch(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revisions: Revisions = WORKSPACE_ONLY,
    run_cache: bool = False,
    progress: Progress = SILENT,
) -> TransferResult:
    """Fetch and verify what the selected pointers need (and with `run_cache` the remote's
    run-cache records and their outputs); raise RemoteError if anything failed."""
    jobs = project.transfer_jobs(remote, jobs)
    source = project.open_remote(remote, jobs=jobs)
    wanted = roots(pointers_in_scope(project, paths, revisions))
    if run_cache:
        records = RunCache(project.cache_root)
        wanted += runcache.objects(records, runcache.download(records, source))
    with project.locked():
        result = transfer.fetch(project.store, source, wanted, jobs=jobs, progress=progress)
    result.raise_for_failures(source, "fetched")
    return result
