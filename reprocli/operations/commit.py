"""`repro commit`: record the current content of tracked data, or of a stage's outputs."""

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
    """Re-record every selected tracked path present in the workspace; arguments that name a
    stage of repro.yaml record that stage's outputs (changed by hand) in repro.lock.

    A path named explicitly must be tracked and present; unchanged data costs only a stat.
    """
    pipeline = project.pipeline() if project.path("repro.yaml").is_file() else None
    stages = [str(p) for p in paths if pipeline is not None and str(p) in pipeline.stages]
    others = [p for p in paths if str(p) not in stages]
    results: list[Recorded] = []
    if stages:
        results += commit_stages(project, stages)
        if not others:
            return results
    pointers = select(project.pointers(), project, others)
    present = [p.data for p in pointers if os.path.lexists(project.path(p.data))]
    if others and len(present) < len(pointers):
        missing = next(p.data for p in pointers if p.data not in present)
        raise UsageError(
            f"{missing}: missing from the workspace", hint="run `repro checkout` first"
        )
    with project.locked():
        return results + record(project, present, progress=progress)


def commit_stages(project: Project, names: Sequence[str]) -> list[Recorded]:
    """Record the named stages as if they had just run: their deps, params and outputs."""
    from reprocli.operations import run  # noqa: PLC0415 - pipelines only
    from reprocli.pipeline.plan import ParamReader  # noqa: PLC0415
    from reprocli.pipeline.runcache import RunCache, key  # noqa: PLC0415

    _, graph = run.load(project)
    reader = ParamReader(project.root)
    results: list[Recorded] = []
    touched: set[str] = set()
    with project.locked():
        lock = project.lock_entries()
        for name in names:
            stage = graph.stages[name]
            entry = run.record(project, stage, reader.values(stage), touched)
            changed = lock.get(name) != entry
            lock[name] = entry
            project.write_lock(lock)
            RunCache(project.cache_root).save(key(stage, entry), entry.outs)
            results += [Recorded(o.path, o.oid, o.size, o.nfiles, changed) for o in entry.outs]
        run.stage_files(project, touched, wrote_lock=True)
    return results
