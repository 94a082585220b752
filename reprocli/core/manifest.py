"""Directory manifests: the `.dir` object listing a tree's files (DESIGN §3–4, docs/formats.md).

A manifest is UTF-8 JSON, a list of {"exec", "oid", "path", "size"} objects sorted by path,
with no whitespace: the same tree gives the same bytes, hence the same id, on every machine.
Decoding validates every entry (invariant 5) before anything uses it.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import re
from collections.abc import Sequence
from json.encoder import encode_basestring as _encode_string
from typing import Any, NamedTuple

from reprocli.core import paths
from reprocli.core.hashing import FILE_OID_PATTERN, ObjectId
from reprocli.core.paths import RepoPath
from reprocli.errors import InvalidFileError

MAX_BYTES = 1 << 30
"""The largest manifest read from a remote (about seven million files): checked on the
downloaded file before it is read into memory, so a remote cannot exhaust it."""


class Entry(NamedTuple):
    """One file of a tracked directory: its path inside the directory, object, size, exec bit.

    A NamedTuple rather than a dataclass: a status of 100,000 files builds 100,000 of them.
    """

    path: RepoPath
    oid: ObjectId
    size: int
    exec: bool


def encode(entries: Sequence[Entry]) -> bytes:
    """The canonical bytes of a manifest; `entries` must already be sorted by path.

    Byte-identical to `json.dumps(..., ensure_ascii=False, separators=(",", ":"),
    sort_keys=True)` of the entry dicts (a test checks it), formatted directly because
    this runs on every status of every tracked directory.
    """
    quote = _encode_string
    body = ",".join(
        f'{{"exec":{"true" if e.exec else "false"},"oid":"{e.oid}","path":{quote(e.path)},"size":{e.size}}}'
        for e in entries
    )
    return f"[{body}]".encode()


def read_downloaded(path: str | os.PathLike[str], *, where: str) -> bytes:
    """The bytes of a manifest downloaded to `path`, refused when over MAX_BYTES."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_BYTES:
            raise InvalidFileError(f"{where}: manifest is larger than {MAX_BYTES} bytes")
        return handle.read(MAX_BYTES + 1)


def decode(data: bytes, *, where: str) -> list[Entry]:
    """Parse and validate a manifest; raise InvalidFileError naming `where` on any defect."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidFileError(f"{where}: not a valid manifest ({exc})") from None
    except RecursionError:
        raise InvalidFileError(f"{where}: not a valid manifest (nested too deeply)") from None
    if not isinstance(raw, list):
        raise InvalidFileError(f"{where}: a manifest is a JSON list of entries")
    entries = _decode_valid(raw)
    if entries is None:  # something is wrong: find and name the first defect
        entries = _decode_checked(raw, where)
    _refuse_files_as_folders(entries, where)
    return entries


_HEX = re.compile(r"[0-9a-f]*")


def _decode_valid(raw: list[Any]) -> list[Entry] | None:
    """The entries when every check passes (column-wise, in bulk), else None."""
    if not raw:
        return []
    if set(map(type, raw)) != {dict} or set(map(len, raw)) != {4}:
        return None
    try:
        names = [item["path"] for item in raw]
        oids = [item["oid"] for item in raw]
        sizes = [item["size"] for item in raw]
        execs = [item["exec"] for item in raw]
    except KeyError:
        return None
    if set(map(type, names)) != {str} or set(map(type, oids)) != {str}:
        return None
    if set(map(type, sizes)) != {int} or min(sizes) < 0 or not set(map(type, execs)) <= {bool}:
        return None
    joined = "".join(oids)
    if len(joined) != 32 * len(oids) or _HEX.fullmatch(joined) is None:
        return None
    if not paths.all_safe(names) or not all(
        map(operator.lt, names, itertools.islice(names, 1, None))
    ):
        return None
    new = tuple.__new__  # Entry's own constructor runs Python code per entry: 2x slower
    return [new(Entry, row) for row in zip(names, oids, sizes, execs, strict=True)]


def _decode_checked(raw: list[Any], where: str) -> list[Entry]:
    """Validate entry by entry, raising InvalidFileError at the first defect."""
    entries: list[Entry] = []
    previous = ""
    match_oid = FILE_OID_PATTERN.fullmatch
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or item.keys() != {"exec", "oid", "path", "size"}:
            raise InvalidFileError(
                f"{where}: entry {index} must have exactly exec, oid, path and size"
            )
        path, oid, size, is_exec = item["path"], item["oid"], item["size"], item["exec"]
        reason = paths.problem(path)
        if reason is not None:
            raise InvalidFileError(f"{where}: entry {index}: path {path!r} {reason}")
        if path <= previous:
            what = "duplicate" if path == previous else "out of order"
            raise InvalidFileError(f"{where}: entry {index}: path {path!r} is {what}")
        if not isinstance(oid, str) or match_oid(oid) is None:
            raise InvalidFileError(f"{where}: entry {index}: bad oid {oid!r}")
        if type(size) is not int or size < 0:
            raise InvalidFileError(f"{where}: entry {index}: bad size {size!r}")
        if type(is_exec) is not bool:
            raise InvalidFileError(f"{where}: entry {index}: exec must be true or false")
        previous = path
        entries.append(Entry(RepoPath(path), ObjectId(oid), size, is_exec))
    return entries


def _refuse_files_as_folders(entries: list[Entry], where: str) -> None:
    """A path may not be both a file and the folder of another entry ("a" and "a/b")."""
    files = {e.path for e in entries}
    clash = files & _ancestors({p[: p.rfind("/")] for p in files if "/" in p})
    if clash:
        folder = min(clash)
        inner = next(e.path for e in entries if e.path.startswith(folder + "/"))
        raise InvalidFileError(f"{where}: {inner!r} is inside file {folder!r}")


def _ancestors(folders: set[str]) -> set[str]:
    """The folders and every folder above them."""
    found = set(folders)
    todo = list(folders)
    while todo:
        folder = todo.pop()
        cut = folder.rfind("/")
        if cut > 0 and folder[:cut] not in found:
            found.add(folder[:cut])
            todo.append(folder[:cut])
    return found
