"""Pointer files, `PATH.repro`: which object a tracked file or directory holds (DESIGN §3).

Format version 1 (docs/formats.md). Bytes are written by hand, not by a YAML emitter, so the
same pointer gives the same bytes with every library version; reading is strict.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from reprocli.core import paths, yamlio
from reprocli.core.hashing import HASH_NAME, ObjectId, is_dir_oid, is_oid
from reprocli.core.paths import RepoPath
from reprocli.errors import InvalidFileError

SUFFIX = ".repro"
VERSION = 1
MAX_BYTES = 64 * 1024
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}
_OUT_KEYS = {"path", "hash", "oid", "size", "nfiles", "exec"}


@dataclass(frozen=True, slots=True)
class Pointer:
    """A parsed pointer: the data path (relative to the repository root) and its object."""

    data: RepoPath
    oid: ObjectId
    size: int
    nfiles: int | None = None
    exec: bool = False
    origin: str | None = None
    """Where the record lives when it is not a pointer file (a stage's entry in repro.lock)."""

    @property
    def file(self) -> RepoPath:
        """The pointer file's own path (or the origin of a record from repro.lock)."""
        return RepoPath(self.origin or self.data + SUFFIX)

    @property
    def is_dir(self) -> bool:
        """Whether the pointer tracks a directory."""
        return is_dir_oid(self.oid)


def pointer_file_of(data: RepoPath) -> RepoPath:
    """The pointer path for tracked data at `data`."""
    return RepoPath(data + SUFFIX)


def _scalar(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    # YAML, unlike JSON, treats some printable-looking characters (U+2028, U+0085…) as line
    # breaks: escape everything Python does not call printable.
    return "".join(c if c.isprintable() else _escape(c) for c in quoted)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def encode(pointer: Pointer) -> bytes:
    """The canonical bytes of a pointer file (one output, path relative to its folder)."""
    name = pointer.data.rsplit("/", 1)[-1]
    lines = [
        f"version: {VERSION}",
        "outs:",
        f"- path: {_scalar(name)}",
        f"  hash: {HASH_NAME}",
        f"  oid: {pointer.oid}",
        f"  size: {pointer.size}",
    ]
    if pointer.nfiles is not None:
        lines.append(f"  nfiles: {pointer.nfiles}")
    if pointer.exec:
        lines.append("  exec: true")
    return ("\n".join(lines) + "\n").encode("utf-8")


def decode(data: bytes, *, file: RepoPath, where: str | None = None) -> Pointer:
    """Parse and validate the pointer at `file` (repository-relative); raise InvalidFileError.

    Messages name `where` (default: `file`), e.g. `v1.2:data.repro` for a committed pointer.
    """
    raw = yamlio.load(data, where=where or file, limit=MAX_BYTES)
    return _validate(raw, file, where or file)


def _validate(raw: object, path: RepoPath, file: str) -> Pointer:
    if not isinstance(raw, dict):
        raise InvalidFileError(f"{file}: a pointer is a mapping with `version` and `outs`")
    unknown = set(raw) - {"version", "outs"}
    if unknown:
        raise InvalidFileError(f"{file}: unknown key {sorted(map(str, unknown))[0]!r}")
    version = raw.get("version")
    if type(version) is not int or version != VERSION:
        raise InvalidFileError(
            f"{file}: unsupported pointer version {raw.get('version')!r} (this repro reads 1)",
            hint="upgrade repro",
        )
    outs = raw.get("outs")
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise InvalidFileError(f"{file}: `outs` must be a list with exactly one entry")
    out = outs[0]
    unknown = set(out) - _OUT_KEYS
    if unknown:
        raise InvalidFileError(f"{file}: unknown key {sorted(map(str, unknown))[0]!r} in outs")
    rel = paths.check_relative(out.get("path"), where=file)
    folder, _, name = path.rpartition("/")
    if not name.endswith(SUFFIX) or rel != name[: -len(SUFFIX)]:
        raise InvalidFileError(
            f"{file}: path {rel!r} must name the data beside the pointer "
            f"({name[: -len(SUFFIX)]!r})",
            hint="rename the pointer file along with its data",
        )
    target = RepoPath(f"{folder}/{rel}" if folder else rel)
    if out.get("hash") != HASH_NAME:
        raise InvalidFileError(
            f"{file}: unsupported hash {out.get('hash')!r} (expected {HASH_NAME})"
        )
    oid = out.get("oid")
    if not isinstance(oid, str) or not is_oid(oid):
        raise InvalidFileError(f"{file}: bad oid {oid!r} (32 lowercase hex digits, optional .dir)")
    size = out.get("size")
    if type(size) is not int or size < 0:
        raise InvalidFileError(f"{file}: bad size {size!r}")
    nfiles = out.get("nfiles")
    if is_dir_oid(oid):
        if type(nfiles) is not int or nfiles < 0:
            raise InvalidFileError(f"{file}: a directory pointer needs a whole-number `nfiles`")
    elif nfiles is not None:
        raise InvalidFileError(f"{file}: `nfiles` is only for directories")
    is_exec = out.get("exec", False)
    if type(is_exec) is not bool or (is_exec and is_dir_oid(oid)):
        raise InvalidFileError(f"{file}: `exec` is true or false, and only for files")
    return Pointer(target, ObjectId(oid), size, nfiles, is_exec)
