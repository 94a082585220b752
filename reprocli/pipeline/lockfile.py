"""repro.lock: what each stage's last run read and produced (docs/formats.md#repro-lock).

Written atomically and deterministically — stages sorted by name, deps and outs by path,
params by file and key — so the same run gives the same bytes, whatever `-j` did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reprocli.core import paths, yamlio
from reprocli.core.hashing import HASH_NAME, ObjectId, is_dir_oid, is_oid
from reprocli.core.paths import RepoPath
from reprocli.errors import InvalidFileError

FILE = "repro.lock"
MAX_BYTES = 64 << 20
"""The largest repro.lock read (checked before reading: a committed link to /dev/zero)."""
VERSION = 1


@dataclass(frozen=True, slots=True)
class Artifact:
    """A dependency or output as recorded: path, object id, size (and files, for a directory)."""

    path: RepoPath
    oid: ObjectId
    size: int
    nfiles: int | None = None
    cache: bool = True


@dataclass(frozen=True, slots=True)
class LockEntry:
    """One stage's last successful run."""

    cmd: str
    deps: tuple[Artifact, ...] = ()
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    outs: tuple[Artifact, ...] = ()

    def dep(self, path: str) -> Artifact | None:
        """The recorded dependency at `path`."""
        return next((d for d in self.deps if d.path == path), None)

    def out(self, path: str) -> Artifact | None:
        """The recorded output at `path`."""
        return next((o for o in self.outs if o.path == path), None)


def artifact_dict(item: Artifact, *, with_cache: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"path": item.path, "oid": item.oid, "size": item.size}
    if item.nfiles is not None:
        body["nfiles"] = item.nfiles
    if with_cache and not item.cache:
        body["cache"] = False
    return body


def encode(entries: dict[str, LockEntry]) -> bytes:
    """The canonical bytes of repro.lock."""
    stages: dict[str, Any] = {}
    for name in sorted(entries):
        entry = entries[name]
        body: dict[str, Any] = {"cmd": entry.cmd}
        if entry.deps:
            body["deps"] = [
                artifact_dict(d, with_cache=False) for d in sorted(entry.deps, key=lambda a: a.path)
            ]
        if entry.params:
            body["params"] = {
                file: {key: entry.params[file][key] for key in sorted(entry.params[file])}
                for file in sorted(entry.params)
            }
        if entry.outs:
            body["outs"] = [
                artifact_dict(o, with_cache=True) for o in sorted(entry.outs, key=lambda a: a.path)
            ]
        stages[name] = body
    return yamlio.dump({"version": VERSION, "hash": HASH_NAME, "stages": stages})


def decode(data: bytes) -> dict[str, LockEntry]:
    """Parse and validate repro.lock; raise InvalidFileError naming what is wrong."""
    raw = yamlio.load(data, where=FILE, limit=MAX_BYTES)
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"version", "hash", "stages"}:
        raise InvalidFileError(f"{FILE}: expected `version`, `hash` and `stages`")
    version = raw.get("version")
    if type(version) is not int or version != VERSION:
        raise InvalidFileError(f"{FILE}: unsupported version {version!r}", hint="upgrade repro")
    if raw.get("hash") != HASH_NAME:
        raise InvalidFileError(f"{FILE}: unsupported hash {raw.get('hash')!r}")
    stages = raw.get("stages") or {}
    if not isinstance(stages, dict):
        raise InvalidFileError(f"{FILE}: `stages` must be a mapping")
    return {str(name): _entry(str(name), body) for name, body in stages.items()}


def _entry(name: str, body: Any) -> LockEntry:
    where = f"{FILE}: stage {name!r}"
    if not isinstance(body, dict) or set(body) - {"cmd", "deps", "params", "outs"}:
        raise InvalidFileError(f"{where}: expected cmd, deps, params and outs")
    cmd = body.get("cmd")
    if not isinstance(cmd, str):
        raise InvalidFileError(f"{where}: cmd must be a string")
    params = body.get("params") or {}
    if not isinstance(params, dict) or not all(
        isinstance(f, str) and isinstance(v, dict) for f, v in params.items()
    ):
        raise InvalidFileError(f"{where}: params must map files to {{key: value}}")
    return LockEntry(
        cmd,
        tuple(
            parse_artifact(item, where, "deps") for item in _list(body.get("deps"), where, "deps")
        ),
        {f: dict(v) for f, v in params.items()},
        tuple(
            parse_artifact(item, where, "outs") for item in _list(body.get("outs"), where, "outs")
        ),
    )


def _list(value: Any, where: str, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidFileError(f"{where}: {field} must be a list")
    return value


def parse_artifact(item: Any, where: str, field: str) -> Artifact:
    if not isinstance(item, dict) or set(item) - {"path", "oid", "size", "nfiles", "cache"}:
        raise InvalidFileError(f"{where}: {field}: each entry has path, oid, size (nfiles, cache)")
    path = paths.check_relative(item.get("path"), where=f"{where}: {field}")
    if path.split("/", 1)[0].lower() == ".repro":  # any case: the filesystem may fold it
        raise InvalidFileError(f"{where}: {field}: {path!r} is inside .repro/")
    oid = item.get("oid")
    if not isinstance(oid, str) or not is_oid(oid):
        raise InvalidFileError(f"{where}: {field}: bad oid {oid!r}")
    size = item.get("size")
    if type(size) is not int or size < 0:
        raise InvalidFileError(f"{where}: {field}: bad size {size!r}")
    nfiles = item.get("nfiles")
    if is_dir_oid(oid) != (nfiles is not None) or (
        nfiles is not None and (type(nfiles) is not int or nfiles < 0)
    ):
        raise InvalidFileError(f"{where}: {field}: nfiles is a count, for directories only")
    cache = item.get("cache", True)
    if type(cache) is not bool:
        raise InvalidFileError(f"{where}: {field}: cache must be true or false")
    return Artifact(path, ObjectId(oid), size, nfiles, cache)
