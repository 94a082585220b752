"""`repro commit`: record the current content of tracked data (cache, then pointer)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from reprocli.core.progress import SILENT, Progress
from reprocli.errors import UsageError
from reprocli.operations.add import Recorded, record
from reprocli.operations.status import select
from reprocli.project import Project


def commit(
    project: Project, paths: Sequence[str | Path] = (), *, progress: Progress = SILENT
) -> list[Recorded]:
    """Re-record every selected tracked path present in the workspace.

    A path named explicitly must be tracked and present; unchanged data costs only a stat.
    """
    pointers = select(project.pointers(), project, paths)
    present = [p.data for p in pointers if os.path.lexists(project.path(p.data))]
    if paths and len(present) < len(pointers):
        missing = next(p.data for p in pointers if p.data not in present)
        raise UsageError(
            f"{missing}: missing from the workspace", hint="run `repro checkout` first"
        )
    with project.locked():
        return record(project, present, progress=progress)
