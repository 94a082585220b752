"""repro.yaml: the declared stages, parsed and validated with file:line in every message.

Paths in a stage (deps, outs, metrics) are relative to its `wdir` (default: the repository
root) and are normalised to repository paths here; none may leave the repository or enter
`.git/` or `.repro/` (RELIABILITY J3).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprocli.core import paths, yamlio
from reprocli.core.paths import RepoPath
from reprocli.errors import InvalidFileError

FILE = "repro.yaml"
DEFAULT_PARAMS = "params.yaml"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
STAGE_KEYS = {"cmd", "deps", "params", "outs", "metrics", "wdir", "desc"}
OUT_OPTIONS = {"cache"}


@dataclass(frozen=True, slots=True)
class Out:
    """An output of a stage: cached in the object store (and git-ignored) unless `cache` is off."""

    path: RepoPath
    cache: bool = True
    metric: bool = False
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class ParamRef:
    """A parameter a stage reads: a (dotted) key in a YAML, JSON or TOML file."""

    file: RepoPath
    key: str


@dataclass(frozen=True, slots=True)
class Stage:
    """One declared stage, its paths resolved to repository paths."""

    name: str
    cmd: tuple[str, ...]
    wdir: RepoPath | None
    deps: tuple[RepoPath, ...]
    params: tuple[ParamRef, ...]
    outs: tuple[Out, ...]
    line: int
    dep_lines: tuple[int, ...] = field(default=(), compare=False)

    def dep_line(self, dep: str) -> int:
        """The line of repro.yaml declaring dependency `dep` (the stage's line if unknown)."""
        for path, line in zip(self.deps, self.dep_lines, strict=False):
            if path == dep:
                return line
        return self.line

    @property
    def cached_outs(self) -> tuple[Out, ...]:
        """Outputs stored in the object cache."""
        return tuple(o for o in self.outs if o.cache)

    @property
    def command_text(self) -> str:
        """The command as recorded in repro.lock (several commands joined by newlines)."""
        return "\n".join(self.cmd)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Every stage of repro.yaml, in the order they are declared."""

    stages: dict[str, Stage]


class _Where:
    """Builds `repro.yaml:LINE: stage 'x': field: …` messages from the node tree."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def error(self, message: str, *keys: str | int, stage: str | None = None) -> InvalidFileError:
        line = yamlio.line_of(self.node, *keys)
        prefix = f"{FILE}:{line}: " + (f"stage {stage!r}: " if stage else "")
        return InvalidFileError(prefix + message)


def parse(data: bytes) -> Pipeline:
    """Parse and validate repro.yaml's bytes (without looking at the workspace)."""
    raw, node = yamlio.compose(data, where=FILE)
    where = _Where(node)
    if raw is None:
        return Pipeline({})
    if not isinstance(raw, dict):
        raise where.error("repro.yaml is a mapping with a `stages` key")
    unknown = set(raw) - {"stages", "version"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise where.error(f"unknown key {key!r} (expected `stages`)", key)
    if raw.get("version", 1) != 1 or type(raw.get("version", 1)) is not int:
        raise where.error(f"unsupported version {raw.get('version')!r}", "version")
    stages_raw = raw.get("stages") or {}
    if not isinstance(stages_raw, dict):
        raise where.error("`stages` must be a mapping of stage names", "stages")
    stages: dict[str, Stage] = {}
    for name, body in stages_raw.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise where.error(
                f"bad stage name {name!r} (letters, digits, '_', '.', '-')", "stages", str(name)
            )
        stages[name] = _stage(name, body, where)
    return Pipeline(stages)


def _stage(name: str, body: Any, where: _Where) -> Stage:
    at = ("stages", name)
    if not isinstance(body, dict):
        raise where.error("a stage is a mapping with at least `cmd`", *at, stage=name)
    unknown = set(body) - STAGE_KEYS
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise where.error(
            f"unknown field {key!r} (expected one of {', '.join(sorted(STAGE_KEYS))})",
            *at,
            key,
            stage=name,
        )
    cmd = body.get("cmd")
    if isinstance(cmd, str) and cmd.strip():
        commands: tuple[str, ...] = (cmd,)
    elif isinstance(cmd, list) and cmd and all(isinstance(c, str) and c.strip() for c in cmd):
        commands = tuple(cmd)
    else:
        raise where.error("cmd: must be a command string or a list of them", *at, "cmd", stage=name)
    wdir_text = body.get("wdir", ".")
    if not isinstance(wdir_text, str):
        raise where.error("wdir: must be a path", *at, "wdir", stage=name)
    wdir = _resolve(None, wdir_text, where, (*at, "wdir"), name, "wdir", allow_root=True)

    def path_list(field: str) -> list[tuple[Any, int]]:
        items = body.get(field) or []
        if not isinstance(items, list):
            raise where.error(f"{field}: must be a list", *at, field, stage=name)
        return list(zip(items, range(len(items)), strict=True))

    deps = tuple(
        _resolve(
            wdir,
            _plain(item, where, (*at, "deps", i), name, "deps"),
            where,
            (*at, "deps", i),
            name,
            "deps",
        )
        for item, i in path_list("deps")
    )
    outs: list[Out] = []
    for kind in ("outs", "metrics"):
        for item, i in path_list(kind):
            text, cache = _out(item, kind, where, (*at, kind, i), name)
            path = _resolve(wdir, text, where, (*at, kind, i), name, kind)
            line = yamlio.line_of(where.node, *at, kind, i)
            outs.append(Out(path, cache=cache, metric=kind == "metrics", line=line))
    params = _params(body.get("params"), where, at, name)
    dep_lines = tuple(yamlio.line_of(where.node, *at, "deps", i) for _, i in path_list("deps"))
    line = yamlio.line_of(where.node, *at)
    return Stage(name, commands, wdir, deps, params, tuple(outs), line, dep_lines)


def _plain(item: Any, where: _Where, keys: tuple[str | int, ...], stage: str, field: str) -> str:
    if not isinstance(item, str):
        raise where.error(f"{field}: each entry must be a path", *keys, stage=stage)
    return item


def _out(
    item: Any, field: str, where: _Where, keys: tuple[str | int, ...], stage: str
) -> tuple[str, bool]:
    """An output entry: `path`, or `{path: {cache: false}}`. Metrics default to uncached."""
    default_cache = field == "outs"
    if isinstance(item, str):
        return item, default_cache
    if isinstance(item, dict) and len(item) == 1:
        ((text, options),) = item.items()
        if isinstance(text, str) and isinstance(options, dict):
            unknown = set(options) - OUT_OPTIONS
            if unknown:
                raise where.error(
                    f"{field}: unknown option {sorted(map(str, unknown))[0]!r}", *keys, stage=stage
                )
            cache = options.get("cache", default_cache)
            if type(cache) is not bool:
                raise where.error(f"{field}: cache must be true or false", *keys, stage=stage)
            return text, cache
    raise where.error(
        f"{field}: each entry is a path or {{path: {{cache: false}}}}", *keys, stage=stage
    )


def _params(raw: Any, where: _Where, at: tuple[str, str], stage: str) -> tuple[ParamRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise where.error("params: must be a list", *at, "params", stage=stage)
    refs: list[ParamRef] = []
    for i, item in enumerate(raw):
        keys = (*at, "params", i)
        if isinstance(item, str) and item:
            refs.append(ParamRef(RepoPath(DEFAULT_PARAMS), item))
        elif isinstance(item, dict) and len(item) == 1:
            ((file, names),) = item.items()
            if (
                not isinstance(file, str)
                or not isinstance(names, list)
                or not all(isinstance(n, str) and n for n in names)
            ):
                raise where.error(
                    "params: {file: [keys]} expects a list of key names", *keys, stage=stage
                )
            path = _resolve(None, file, where, keys, stage, "params")
            refs.extend(ParamRef(path, n) for n in names)
        else:
            raise where.error("params: each entry is a key or {file: [keys]}", *keys, stage=stage)
    return tuple(refs)


def _resolve(
    wdir: RepoPath | None,
    text: str,
    where: _Where,
    keys: tuple[str | int, ...],
    stage: str,
    field: str,
    *,
    allow_root: bool = False,
) -> RepoPath:
    """Resolve a stage path against its wdir into a checked repository path."""
    if text.startswith("/") or Path(text).is_absolute():
        raise where.error(
            f"{field}: {text!r} is absolute; paths are relative to the stage", *keys, stage=stage
        )
    joined = posixpath.normpath(posixpath.join(wdir or "", text.rstrip("/") or "."))
    if joined == "." and allow_root:
        return RepoPath("")
    if joined == "." or joined == ".." or joined.startswith("../"):
        raise where.error(f"{field}: {text!r} leaves the repository", *keys, stage=stage)
    reason = paths.problem(joined)
    if reason is not None:
        raise where.error(f"{field}: {text!r} {reason}", *keys, stage=stage)
    if joined.split("/", 1)[0].lower() == ".repro":  # any case: the filesystem may fold it
        raise where.error(
            f"{field}: {text!r} is inside .repro/, which repro manages itself", *keys, stage=stage
        )
    return RepoPath(joined)


def is_inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` itself or below it."""
    return path == folder or path.startswith(folder + "/")
