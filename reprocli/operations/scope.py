"""Which tracked data a command covers: workspace pointers, chosen paths, and revisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reprocli.core.hashing import ObjectId
from reprocli.core.pointer import Pointer
from reprocli.operations.status import select
from reprocli.project import Project


@dataclass(frozen=True, slots=True)
class Revisions:
    """Which Git revisions, beyond the workspace, a transfer covers."""

    all_branches: bool = False
    all_tags: bool = False
    all_commits: bool = False

    @property
    def any(self) -> bool:
        """Whether any revision beyond the workspace is asked for."""
        return self.all_branches or self.all_tags or self.all_commits


def pointers_in_scope(
    project: Project, paths: Sequence[str | Path], revisions: Revisions
) -> list[Pointer]:
    """Workspace pointers (selected by `paths`), plus those committed at the revisions asked for."""
    found = project.tracked()
    if revisions.any and project.git is not None:
        revs = project.git.revisions(
            branches=revisions.all_branches, tags=revisions.all_tags, commits=revisions.all_commits
        )
        found += project.pointers_at(revs)
    return select(found, project, paths)


def roots(pointers: Sequence[Pointer]) -> list[ObjectId]:
    """The top-level objects (files and manifests) the pointers name, deduplicated."""
    return sorted({p.oid for p in pointers})


WORKSPACE_ONLY = Revisions()
