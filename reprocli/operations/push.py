"""`repro push`: upload the objects tracked data needs that the remote lacks."""

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


def push(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    revisions: Revisions = WORKSPACE_ONLY,
    run_cache: bool = False,
    progress: Progress = SILENT,
) -> TransferResult:
    """Upload what the selected pointers need (and with `run_cache` every run-cache record
    with its outputs); raise RemoteError if anything failed."""
    jobs = project.transfer_jobs(remote, jobs)
    target = project.open_remote(remote, jobs=jobs)
    wanted = roots(pointers_in_scope(project, paths, revisions))
    records = RunCache(project.cache_root)
    keys = records.keys() if run_cache else []
    wanted += [oid for oid in runcache.objects(records, keys) if project.store.has(oid)]
    result = transfer.push(project.store, target, wanted, jobs=jobs, progress=progress)
    result.raise_for_failures(target, "pushed")
    if keys:  # records after the objects they name
        result.transferred += runcache.upload(records, target, keys)
    return result
