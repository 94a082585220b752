"""Whether a stage is out of date, and why: its command, deps, params and outs vs repro.lock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprocli.core.paths import RepoPath
from reprocli.core.workspace import Snapshot
from reprocli.errors import InvalidFileError
from reprocli.pipeline import params as paramsmod
from reprocli.pipeline.lockfile import LockEntry
from reprocli.pipeline.spec import Stage

Look = Callable[[RepoPath], Snapshot | None]
"""The current object view of a workspace path (None when nothing is there)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A stage's state: up to date when there are no reasons."""

    stage: str
    reasons: tuple[str, ...]

    @property
    def stale(self) -> bool:
        """Whether the stage must run (or be restored)."""
        return bool(self.reasons)


class ParamReader:
    """Reads each parameters file once per command."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, dict[str, Any]] = {}

    def values(self, stage: Stage) -> dict[str, dict[str, Any]]:
        """The current value of every parameter `stage` declares, by file then key."""
        found: dict[str, dict[str, Any]] = {}
        for ref in stage.params:
            if ref.file not in self._files:
                self._files[ref.file] = paramsmod.read(self.root, ref.file)
            value = paramsmod.lookup(self._files[ref.file], ref.key)
            if value is paramsmod.MISSING:
                raise InvalidFileError(
                    f"{ref.file}: no parameter {ref.key!r} (declared by stage {stage.name!r})"
                )
            found.setdefault(ref.file, {})[ref.key] = value
        return found


def judge(
    stage: Stage,
    entry: LockEntry | None,
    look: Look,
    params: dict[str, dict[str, Any]],
    *,
    upstream: tuple[str, ...] = (),
) -> Verdict:
    """Compare a stage with its lock entry; `upstream` names stages that will run first."""
    if entry is None:
        return Verdict(stage.name, ("never run",))
    reasons: list[str] = [f"upstream {name} changed" for name in upstream]
    if entry.cmd != stage.command_text:
        reasons.append("command changed")
    recorded = {d.path for d in entry.deps}
    if recorded != set(stage.deps):
        added = sorted(set(stage.deps) - recorded)
        reasons.append(f"new dependency {added[0]}" if added else "dependencies changed")
    for dep in stage.deps:
        was = entry.dep(dep)
        if was is None:
            continue
        now = look(dep)
        if now is None:
            reasons.append(f"{dep} is missing")
        elif now.oid != was.oid:
            reasons.append(f"{dep} changed")
    for file, old_values in entry.params.items():
        gone = sorted(set(old_values) - set(params.get(file, {})))
        if gone:
            reasons.append(f"param {gone[0]} no longer used")
    for file, values in params.items():
        old = entry.params.get(file, {})
        for key, value in values.items():
            if key not in old:
                reasons.append(f"new param {key}")
            elif old[key] != value or type(old[key]) is not type(value):
                reasons.append(f"param {key}: {_show(old[key])} → {_show(value)}")
    if {o.path for o in entry.outs} != {o.path for o in stage.outs}:
        reasons.append("outputs changed")
    else:
        for out in stage.outs:
            was = entry.out(out.path)
            now = look(out.path)
            if now is None:
                reasons.append(f"{out.path} is missing")
            elif was is not None and now.oid != was.oid:
                reasons.append(f"{out.path} was modified")
    return Verdict(stage.name, tuple(reasons))


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
