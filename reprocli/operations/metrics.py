"""`repro params diff`, `repro metrics show` and `repro metrics diff`: experiments compared
across Git revisions.

At each revision, repro.yaml says which parameters the stages read and which files are
metrics; those files are read at that revision (Git objects for a commit, disk for the
workspace; a cached metrics file from the object cache through that revision's repro.lock).
Nested keys are flattened (`train.lr`). A file that cannot be read at an old revision is a
warning, never the end of the table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reprocli.errors import ReproError
from reprocli.operations.revisions import (
    WORKSPACE,
    Reader,
    Rev,
    listed,
    open_history,
    pair,
    resolve,
)
from reprocli.pipeline import lockfile, params, spec
from reprocli.pipeline.spec import Pipeline
from reprocli.project import LOCK_FILE, PIPELINE_FILE, Project

Values = dict[str, dict[str, Any]]
"""File → flattened key → value."""

Kind = Literal["params", "metrics"]


@dataclass(frozen=True, slots=True)
class Delta:
    """One key compared across two revisions; `change` is new − old when both are numbers."""

    file: str
    key: str
    old: Any
    new: Any
    change: float | int | None

    @property
    def changed(self) -> bool:
        """Whether the value differs (a key present on one side only counts)."""
        return self.old != self.new or type(self.old) is not type(self.new)


@dataclass(frozen=True, slots=True)
class DiffReport:
    """Keys compared between `old` and `new`, by file then key."""

    old: Rev
    new: Rev
    deltas: tuple[Delta, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Row:
    """The metrics of one revision."""

    rev: Rev
    values: Values


@dataclass(frozen=True, slots=True)
class ShowReport:
    """Metrics per revision: the workspace first, then the revisions asked for."""

    rows: tuple[Row, ...]
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class _Collector:
    """Reads values at revisions, parsing each distinct blob once."""

    project: Project
    reader: Reader
    warnings: list[str] = field(default_factory=list)
    pipelines: dict[str, Pipeline | None] = field(default_factory=dict)
    files: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def pipeline(self, rev: Rev) -> Pipeline | None:
        key = self.reader.version(rev, PIPELINE_FILE)
        if key is not None and key in self.pipelines:
            return self.pipelines[key]
        data = self.reader.read(rev, PIPELINE_FILE)
        found = None
        if data is not None:
            try:
                found = spec.parse(data)
            except ReproError as exc:
                if rev.is_workspace:
                    raise
                self.warnings.append(f"{rev.name}: {exc}")
        if key is not None:
            self.pipelines[key] = found
        return found

    def mapping(self, rev: Rev, path: str, data: bytes | None = None) -> dict[str, Any] | None:
        """The parsed file at `rev` (None when absent or unreadable: a warning says why)."""
        key = self.reader.version(rev, path)
        if key is not None:  # the same bytes parse differently as JSON, TOML or YAML
            key = f"{key}{os.path.splitext(path)[1].lower()}"
        if key is not None and key in self.files:
            return self.files[key]
        if data is None:
            data = self.reader.read(rev, path)
        value = None
        if data is not None:
            try:
                value = params.parse(data, path)
            except ReproError as exc:
                self.warnings.append(f"{rev.name}: {exc}")
        if key is not None:
            self.files[key] = value
        return value

    def params(self, rev: Rev) -> Values:
        found: Values = {}
        pipeline = self.pipeline(rev)
        if pipeline is None:
            return found
        refs = {(ref.file, ref.key) for stage in pipeline.stages.values() for ref in stage.params}
        for file, key in sorted(refs):
            values = self.mapping(rev, file)
            if values is None:
                continue
            value = params.lookup(values, key)
            if value is not params.MISSING:
                found.setdefault(file, {}).update(params.flatten(value, key))
        return found

    def metrics(self, rev: Rev) -> Values:
        found: Values = {}
        pipeline = self.pipeline(rev)
        if pipeline is None:
            return found
        paths = sorted({o.path for s in pipeline.stages.values() for o in s.outs if o.metric})
        for path in paths:
            data = self.reader.read(rev, path)
            if data is None and not rev.is_workspace:
                data = self._cached(rev, path)
            values = self.mapping(rev, path, data)
            if values is not None:
                found[path] = params.flatten(values)
        return found

    def _cached(self, rev: Rev, path: str) -> bytes | None:
        """A metrics file kept in the object cache: its oid from the revision's repro.lock."""
        data = self.reader.read(rev, LOCK_FILE)
        if data is None:
            return None
        try:
            entries = lockfile.decode(data)
        except ReproError:
            return None
        for entry in entries.values():
            out = entry.out(path)
            if out is not None and self.project.store.has(out.oid):
                try:
                    return self.project.store.read_bytes(out.oid)
                except ReproError:
                    return None
        return None


def params_diff(
    project: Project, old: str | None = None, new: str | None = None, *, everything: bool = False
) -> DiffReport:
    """Parameters the stages read, compared between two revisions (default HEAD vs workspace)."""
    return _diff(project, old, new, "params", everything=everything)


def metrics_diff(
    project: Project, old: str | None = None, new: str | None = None, *, everything: bool = False
) -> DiffReport:
    """Metrics compared between two revisions (default HEAD vs workspace), with deltas."""
    return _diff(project, old, new, "metrics", everything=everything)


def _diff(
    project: Project, old: str | None, new: str | None, kind: Kind, *, everything: bool
) -> DiffReport:
    a, b = pair(project, old, new)
    history = open_history(project)
    try:
        collector = _Collector(project, Reader(project, history))
        read = collector.params if kind == "params" else collector.metrics
        before, after = read(a), read(b)
    finally:
        if history is not None:
            history.close()
    deltas = []
    for file in sorted(before.keys() | after.keys()):
        was, now = before.get(file, {}), after.get(file, {})
        for key in sorted(was.keys() | now.keys()):
            delta = Delta(
                file, key, was.get(key), now.get(key), _change(was.get(key), now.get(key))
            )
            if everything or delta.changed:
                deltas.append(delta)
    return DiffReport(a, b, tuple(deltas), tuple(collector.warnings))


def _change(old: Any, new: Any) -> float | int | None:
    numbers = (int, float)
    if (
        isinstance(old, numbers)
        and isinstance(new, numbers)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
    ):
        change = new - old
        return round(change, 12) if isinstance(change, float) else change
    return None


def metrics_show(
    project: Project,
    revisions: Sequence[str] = (),
    *,
    all_branches: bool = False,
    all_tags: bool = False,
    all_commits: bool = False,
) -> ShowReport:
    """Metrics of the workspace, or of the revisions named and/or every branch, tag or commit."""
    history = open_history(project)
    try:
        revs: list[Rev] = []
        if not revisions:
            revs.append(Rev(WORKSPACE, None))
        revs += [resolve(project, name) for name in revisions]
        if history is not None and (all_branches or all_tags or all_commits):
            seen = {r.sha for r in revs}
            revs += [
                r
                for r in listed(
                    project, history, branches=all_branches, tags=all_tags, commits=all_commits
                )
                if r.sha not in seen
            ]
        collector = _Collector(project, Reader(project, history))
        rows = tuple(Row(rev, collector.metrics(rev)) for rev in revs)
    finally:
        if history is not None:
            history.close()
    return ShowReport(rows, tuple(collector.warnings))
