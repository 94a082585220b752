"""The run-cache: (command, dependency oids, parameter values) → output oids.

A stage whose exact inputs were seen before gets its outputs back from the object cache
instead of running again. Records live beside the objects, in `<cache>/runs/ab/cdef…`, each
named by the xxh3-128 of its canonical key and written atomically (docs/formats.md).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from reprocli.core import atomic
from reprocli.core.hashing import ObjectId, is_oid, oid_of_bytes
from reprocli.core.remotes import Remote
from reprocli.errors import InvalidFileError
from reprocli.pipeline.lockfile import Artifact, LockEntry, artifact_dict, parse_artifact
from reprocli.pipeline.spec import Stage

VERSION = 1
MAX_BYTES = 16 << 20
"""The largest run record read: records name a stage's outputs, a few lines each."""


def key(stage: Stage, entry: LockEntry) -> str:
    """The run-cache key of a run: what it executed and read, and where it wrote."""
    canonical = json.dumps(
        {
            "cmd": entry.cmd,
            "wdir": stage.wdir or "",
            "deps": sorted([d.path, d.oid] for d in entry.deps),
            "params": entry.params,
            "outs": sorted([o.path, o.cache] for o in stage.outs),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return oid_of_bytes(canonical.encode())


def parse(data: bytes) -> tuple[Artifact, ...] | None:
    """The outputs a record's bytes name, or None when the record is damaged in any way.

    A record only saves time, so anything unexpected (bad JSON, nesting too deep for the
    parser, a wrong type anywhere) counts as no record rather than an error.
    """
    try:
        raw: Any = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or type(raw.get("version")) is not int:
        return None
    items = raw.get("outs")
    if raw["version"] != VERSION or not isinstance(items, list):
        return None
    try:
        return tuple(parse_artifact(item, "run-cache", "outs") for item in items)
    except InvalidFileError:
        return None


class RunCache:
    """Run records under `<cache>/runs/`."""

    def __init__(self, cache_root: Path) -> None:
        self.root = cache_root / "runs"
        self.tmp = cache_root / "tmp"

    def path_of(self, run_key: str) -> Path:
        """Where the record for `run_key` lives."""
        return self.root / run_key[:2] / run_key[2:]

    def save(self, run_key: str, outs: tuple[Artifact, ...]) -> None:
        """Record the outputs of a successful run (after they are in the object cache)."""
        body = {"version": VERSION, "outs": [artifact_dict(o, with_cache=True) for o in outs]}
        path = self.path_of(run_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        atomic.write_bytes(path, data, tmp_dir=self.tmp)

    def read(self, run_key: str) -> bytes | None:
        """The bytes of the record for `run_key`, or None when it is missing, too large, or
        not a regular file (a planted link must never be read, nor uploaded by a push)."""
        try:
            fd = os.open(self.path_of(run_key), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
                return None
            data = os.read(fd, MAX_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        return data if len(data) <= MAX_BYTES else None

    def load(self, run_key: str) -> tuple[Artifact, ...] | None:
        """The outputs recorded for `run_key`, or None (a damaged record counts as none)."""
        data = self.read(run_key)
        return None if data is None else parse(data)

    def keys(self) -> list[str]:
        """Every run key present (regular files only)."""
        found = []
        try:
            prefixes = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for prefix in prefixes:
            if not prefix.is_dir(follow_symlinks=False):
                continue
            with os.scandir(prefix.path) as entries:
                for entry in entries:
                    run_key = prefix.name + entry.name
                    if is_oid(run_key) and entry.is_file(follow_symlinks=False):
                        found.append(run_key)
        return found


def upload(cache: RunCache, remote: Remote, keys: list[str]) -> int:
    """Upload the records the remote lacks (after their objects are there); return how many."""
    missing = sorted(set(keys) - remote.list_runs())
    sent = 0
    for run_key in missing:
        data = cache.read(run_key)
        if data is None or parse(data) is None:
            continue  # only records repro could use leave this machine
        remote.put_run(run_key, data)
        sent += 1
    return sent


def download(cache: RunCache, remote: Remote) -> list[str]:
    """Download the records this cache lacks (each checked before it is kept); return their keys."""
    fetched = []
    for run_key in sorted(remote.list_runs() - set(cache.keys())):
        try:
            outs = parse(remote.get_run(run_key))
        except OSError:
            continue
        if outs is None:
            continue  # a damaged record is skipped: the run-cache only saves time
        cache.save(run_key, outs)
        fetched.append(run_key)
    return fetched


def objects(cache: RunCache, keys: list[str]) -> list[ObjectId]:
    """The output objects the given records name."""
    return sorted({out.oid for run_key in keys for out in cache.load(run_key) or ()})
