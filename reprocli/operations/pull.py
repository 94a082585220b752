"""`repro pull`: fetch, then checkout — the workspace changes only once every object is verified."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reprocli.core.progress import SILENT, Progress
from reprocli.core.transfer import TransferResult
from reprocli.operations.checkout import CheckoutResult, checkout
from reprocli.operations.fetch import fetch
from reprocli.operations.scope import WORKSPACE_ONLY, Revisions
from reprocli.project import Project


@dataclass(frozen=True, slots=True)
class PullResult:
    """The fetch, then the checkout."""

    fetched: TransferResult
    checkout: CheckoutResult


def pull(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    remote: str | None = None,
    jobs: int | None = None,
    force: bool = False,
    revisions: Revisions = WORKSPACE_ONLY,
    run_cache: bool = False,
    progress: Progress = SILENT,
) -> PullResult:
    """Fetch and verify everything first (two-phase), then make the workspace match."""
    fetched = fetch(
        project,
        paths,
        remote=remote,
        jobs=jobs,
        revisions=revisions,
        run_cache=run_cache,
        progress=progress,
    )
    restored = checkout(project, paths, force=force, progress=progress, fetch_missing=False)
    return PullResult(fetched, restored)
