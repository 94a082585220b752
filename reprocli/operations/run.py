"""`repro run`: rebuild the stages of repro.yaml whose command, deps, params or outs changed.

Each stage is judged after the stages it needs have finished, so an upstream stage that
reproduces identical outputs does not make its downstream run. Outputs are removed before a
stage runs (never mistaken for new ones) — after their bytes are safe in the cache — then
hashed into the cache, git-ignored and locked. The run-cache restores the outputs of a stage
whose exact inputs were seen before, instead of running it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reprocli.core import atomic, gitignore
from reprocli.core.links import Linker
from reprocli.core.paths import RepoPath, has_symlink_parent
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT
from reprocli.core.workspace import Snapshot
from reprocli.errors import StageFailedError, UnsafePathError, UsageError
from reprocli.operations import checkout as checkoutmod
from reprocli.pipeline.executor import Shell, Task, execute
from reprocli.pipeline.graph import Graph
from reprocli.pipeline.lockfile import Artifact, LockEntry
from reprocli.pipeline.plan import ParamReader, Verdict, judge
from reprocli.pipeline.runcache import RunCache, key
from reprocli.pipeline.spec import Pipeline, Stage, is_inside
from reprocli.project import LOCK_FILE, PIPELINE_FILE, Project

Action = Literal["ran", "restored", "up_to_date", "failed", "not_started", "would_run"]


@dataclass(frozen=True, slots=True)
class StageResult:
    """What `repro run` did with one stage, and why."""

    name: str
    action: Action
    reasons: tuple[str, ...] = ()
    exit_code: int | None = None


def load(project: Project) -> tuple[Pipeline, Graph]:
    """repro.yaml, parsed and checked (clashing outputs, cycles, missing deps)."""
    pipeline = project.pipeline()
    if pipeline is None:
        raise UsageError(
            f"no {PIPELINE_FILE} in {project.root}", hint="declare stages in repro.yaml"
        )
    tracked = [p.data for p in project.pointers()]

    def exists(path: str) -> bool:
        # Tracked data counts even when it is not checked out (a fresh clone before `pull`).
        return os.path.lexists(project.path(path)) or any(is_inside(path, t) for t in tracked)

    return pipeline, Graph(pipeline, exists=exists)


def looker(project: Project) -> Callable[[RepoPath], Snapshot | None]:
    """The current object view of workspace paths (hashing only what the stat cache lacks)."""

    def look(path: RepoPath) -> Snapshot | None:
        if not os.path.lexists(project.path(path)):
            return None
        return project.snapshot(path)

    return look


def predict(
    project: Project, graph: Graph, order: list[str], *, force: bool = False
) -> list[Verdict]:
    """Which stages would run and why, without running anything (`--dry`, `status`)."""
    lock = project.lock_entries()
    reader = ParamReader(project.root)
    look = looker(project)
    stale: set[str] = set()
    verdicts = []
    for name in order:
        stage = graph.stages[name]
        upstream = tuple(u for u in graph.upstream(name) if u in stale)
        verdict = judge(stage, lock.get(name), look, reader.values(stage), upstream=upstream)
        if force and not verdict.stale:
            verdict = Verdict(name, ("forced",))
        if verdict.stale:
            stale.add(name)
        verdicts.append(verdict)
    return verdicts


def run(
    project: Project,
    targets: Sequence[str] = (),
    *,
    force: bool = False,
    dry: bool = False,
    downstream: bool = False,
    run_cache: bool = True,
    jobs: int = 1,
    write: Callable[[str], None] | None = None,
    output_to_stderr: bool = False,
) -> list[StageResult]:
    """Bring the target stages (default: all) up to date; raise StageFailedError on failure."""
    _, graph = load(project)
    order = graph.order(targets, downstream=downstream)
    for name in order:  # an output behind a symlinked folder is refused before anything runs
        check_outputs(project, graph.stages[name])
    if dry:
        return [
            StageResult(v.stage, "would_run" if v.stale else "up_to_date", v.reasons)
            for v in predict(project, graph, order, force=force)
        ]
    shell = Shell(prefix=jobs > 1, write=write, to_stderr=output_to_stderr)
    with project.locked():
        return _run(project, graph, order, force=force, run_cache=run_cache, jobs=jobs, shell=shell)


def _run(
    project: Project,
    graph: Graph,
    order: list[str],
    *,
    force: bool,
    run_cache: bool,
    jobs: int,
    shell: Shell,
) -> list[StageResult]:
    lock = project.lock_entries()
    removed = [name for name in lock if name not in graph.stages]
    for name in removed:  # stages deleted from repro.yaml leave the lock (and tracked data)
        del lock[name]
    if removed:
        project.write_lock(lock)
    reader = ParamReader(project.root)
    for name in order:  # a missing parameter is refused before anything runs
        reader.values(graph.stages[name])
    look = looker(project)
    cache = RunCache(project.cache_root)
    with contextlib.suppress(OSError):  # temp files of killed runs (best effort: only space)
        atomic.remove_stale_temps(cache.tmp)
    results: dict[str, StageResult] = {}
    inputs: dict[str, tuple[dict[str, dict[str, Any]], tuple[str, ...]]] = {}
    touched: set[str] = set()

    def start(name: str) -> Task | None:
        stage = graph.stages[name]
        params = reader.values(stage)
        verdict = judge(stage, lock.get(name), look, params)
        if not verdict.stale and not force:
            results[name] = StageResult(name, "up_to_date")
            return None
        reasons = verdict.reasons or ("forced",)
        if run_cache and not force and _restore(project, stage, params, lock, cache, touched):
            results[name] = StageResult(name, "restored", reasons)
            return None
        _clear_outputs(project, stage)
        inputs[name] = (params, reasons)
        cwd = project.path(stage.wdir) if stage.wdir else project.root
        env = {**os.environ, "REPRO_STAGE": name}
        return lambda: shell.run(name, stage.cmd, cwd, env)

    def finish(name: str, code: int) -> None:
        params, reasons = inputs[name]
        if code != 0:
            results[name] = StageResult(name, "failed", reasons, code)
            return
        stage = graph.stages[name]
        entry = record(project, stage, params, touched)
        lock[name] = entry
        project.write_lock(lock)
        cache.save(key(stage, entry), entry.outs)
        results[name] = StageResult(name, "ran", reasons, 0)

    finished = False
    try:
        outcome = execute(
            order,
            {n: set(graph.upstream(n)) for n in order},
            start,
            finish,
            jobs=jobs,
            shell=shell,
        )
        finished = True
    finally:
        stage_files(
            project,
            touched,
            wrote_lock=bool(removed)
            or any(r.action in ("ran", "restored") for r in results.values()),
            # what an interrupted earlier run wrote but never staged: autostage converges
            pending=_bookkeeping(graph, order, lock) if finished else (),
        )
    blocked = set(outcome.failed)
    for name in order:
        if name not in outcome.not_started:
            continue
        if any(u in blocked for u in graph.upstream(name)):
            blocked.add(name)
            results[name] = StageResult(name, "not_started", ("an upstream stage failed",))
        else:
            results[name] = StageResult(name, "not_started", ("the run stopped after a failure",))
    ordered = [results[n] for n in order if n in results]
    if outcome.failed:
        name, code = next(iter(outcome.failed.items()))
        stopped = [r.name for r in ordered if r.action == "not_started"]
        raise RunFailedError(
            f"stage {name!r} failed with exit code {code}"
            + (f"; not started: {', '.join(stopped)}" if stopped else ""),
            hint="fix it and run `repro run` again: finished stages are kept",
            results=ordered,
        )
    return ordered


class RunFailedError(StageFailedError):
    """A stage failed; `results` says what happened to every stage of the run."""

    def __init__(self, message: str, *, hint: str, results: list[StageResult]) -> None:
        super().__init__(message, hint=hint)
        self.results = results


def record(
    project: Project, stage: Stage, params: dict[str, dict[str, Any]], touched: set[str]
) -> LockEntry:
    """Hash a finished stage's deps and outputs (outputs into the cache) into its lock entry."""
    check_outputs(project, stage)  # the command may have replaced a folder by a symlink
    deps = tuple(_artifact(d, project.snapshot(d)) for d in sorted(stage.deps))
    missing = [o.path for o in stage.outs if not os.path.lexists(project.path(o.path))]
    if missing:
        raise StageFailedError(f"stage {stage.name!r} did not create its output {missing[0]}")
    snaps = list(zip(stage.outs, project.cache_paths([o.path for o in stage.outs]), strict=True))
    for out, _ in snaps:
        _hand_to_git(project, out.path, out.cache, touched)
    outs = tuple(
        sorted(
            (
                Artifact(out.path, snap.oid, snap.size, snap.nfiles, out.cache)
                for out, snap in snaps
            ),
            key=lambda a: a.path,
        )
    )
    return LockEntry(stage.command_text, deps, params, outs)


def _artifact(path: RepoPath, snap: Snapshot | None) -> Artifact:
    if snap is None:
        raise StageFailedError(f"dependency {path} disappeared while the pipeline ran")
    return Artifact(path, snap.oid, snap.size, snap.nfiles)


def _restore(
    project: Project,
    stage: Stage,
    params: dict[str, dict[str, Any]],
    lock: dict[str, LockEntry],
    cache: RunCache,
    touched: set[str],
) -> bool:
    """Restore the outputs of an identical earlier run from the cache; False when none."""
    deps = []
    for dep in stage.deps:
        snap = project.snapshot(dep) if os.path.lexists(project.path(dep)) else None
        if snap is None:
            return False
        deps.append(_artifact(dep, snap))
    probe = LockEntry(stage.command_text, tuple(deps), params)
    outs = cache.load(key(stage, probe))
    store = project.store
    if outs is None or {o.path for o in outs} != {o.path for o in stage.outs}:
        return False
    for out in outs:
        if not store.has(out.oid):
            return False
    _clear_outputs(project, stage)
    linker = Linker(store, project.config.link_types, project.tmp_dir)
    for out in outs:
        ptr = Pointer(
            out.path, out.oid, out.size, out.nfiles, origin=f"run-cache: stage {stage.name!r}"
        )
        try:
            item = checkoutmod.plan(project, ptr, force=True)
        except Exception:
            return False
        checkoutmod.apply(project, item, linker, SILENT)
        _hand_to_git(project, out.path, out.cache, touched)
    lock[stage.name] = LockEntry(stage.command_text, tuple(deps), params, outs)
    project.write_lock(lock)
    return True


def _hand_to_git(project: Project, path: RepoPath, cached: bool, touched: set[str]) -> None:
    """A cached output is git-ignored; an uncached one (metrics) is Git's to track."""
    if project.git is None:
        return
    if cached:
        gitignore.ensure_ignored(project.root, path, tmp_dir=project.tmp_dir)
    touched.add(_git_file(path, cached))


def _git_file(path: str, cached: bool) -> str:
    """The file Git tracks for an output: the output itself, or the .gitignore beside it."""
    if not cached:
        return path
    folder = path.rpartition("/")[0]
    return f"{folder}/.gitignore" if folder else ".gitignore"


def _clear_outputs(project: Project, stage: Stage) -> None:
    """Remove a stage's outputs before it runs, once their current bytes are in the cache."""
    check_outputs(project, stage)  # an upstream command may have made a symlinked folder
    project.cache_paths([o.path for o in stage.outs if os.path.lexists(project.path(o.path))])
    for out in stage.outs:
        path = project.path(out.path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)


def check_outputs(project: Project, stage: Stage) -> None:
    """Refuse a stage whose outputs lie behind a symlink or a file where a folder belongs:
    repro would delete, hash and write (the output, its .gitignore) wherever it leads."""
    for out in stage.outs:
        link = has_symlink_parent(project.root, out.path)
        if link is not None:
            raise UnsafePathError(
                f"{PIPELINE_FILE}: stage {stage.name!r}: the folder {link} on the way to its "
                f"output {out.path} is a symlink; refusing to write through it"
            )
        folder = out.path.rpartition("/")[0]  # no symlink on the way: the nearest existing
        while folder and not os.path.lexists(project.path(folder)):  # one must be a folder
            folder = folder.rpartition("/")[0]
        if folder and not project.path(folder).is_dir():
            raise UnsafePathError(
                f"{PIPELINE_FILE}: stage {stage.name!r}: {folder} on the way to its output "
                f"{out.path} is not a folder"
            )


def _bookkeeping(graph: Graph, order: list[str], lock: dict[str, LockEntry]) -> set[str]:
    """What running the recorded stages of `order` stages: repro.lock, the .gitignore of
    each cached output and each uncached output."""
    files = {LOCK_FILE}
    for name in order:
        if name not in lock:
            continue
        files.update(_git_file(o.path, o.cache) for o in graph.stages[name].outs)
    return files


def stage_files(
    project: Project, touched: set[str], *, wrote_lock: bool, pending: Iterable[str] = ()
) -> None:
    """Stage the files this run wrote, and those of `pending` that differ from the index
    (written by an earlier run that was killed before it could stage them)."""
    if project.git is None or not project.config.autostage:
        return
    files = touched | ({LOCK_FILE} if wrote_lock else set())
    rest = sorted(
        f
        for f in set(pending) - files
        if has_symlink_parent(project.root, f) is None and project.path(f).is_file()
    )
    if rest:
        files |= project.git.unstaged(rest)
    existing = [f for f in sorted(files) if project.path(f).exists()]
    if existing:
        project.git.add(existing)
