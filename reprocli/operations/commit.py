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
    pipeline = project.pipeline()
    stages: list[str] = []
    others: list[str | Path] = []
    producers = (
        {}
        if pipeline is None
        else {o.path: s.name for s in pipeline.stages.values() for o in s.outs}
    )
    for arg in paths:
        if pipeline is not None and str(arg) in pipeline.stages:
            stages.append(str(arg))
        elif project.target(arg) in producers:  # an output: record the stage that makes it
            stages.append(producers[project.target(arg)])
        else:
            others.append(arg)
    if not paths and pipeline is not None:
        stages = hand_edited_stages(project)
    results: list[Recorded] = []
    if stages:
        results += commit_stages(project, list(dict.fromkeys(stages)))
        if paths and not others:
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


def hand_edited_stages(project: Project) -> list[str]:
    """Stages whose only difference from repro.lock is outputs changed by hand."""
    from reprocli.operations import run  # noqa: PLC0415 - pipelines only

    _, graph = run.load(project)
    return [
        v.stage
        for v in run.predict(project, graph, graph.order())
        if v.stale and all(r.endswith(" was modified") for r in v.reasons)
    ]


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
