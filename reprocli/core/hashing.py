"""Object ids: xxh3-128 of the content, 32 lowercase hex digits (DESIGN §4).

Files up to SMALL_FILE bytes are read with one system call; larger ones stream through one
reusable buffer, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NewType

import xxhash

ObjectId = NewType("ObjectId", str)
"""32 lowercase hex digits of xxh3-128, plus `.dir` for a directory manifest."""

HASH_NAME = "xxh3-128"
DIR_SUFFIX = ".dir"
SMALL_FILE = 1 << 20
CHUNK = 1 << 20
BIG_CHUNK = 4 << 20
OID_PATTERN = re.compile(r"[0-9a-f]{32}(?:\.dir)?")
FILE_OID_PATTERN = re.compile(r"[0-9a-f]{32}")


def is_oid(text: object) -> bool:
    """Whether `text` is a well-formed object id (file or manifest)."""
    return isinstance(text, str) and OID_PATTERN.fullmatch(text) is not None


def is_dir_oid(oid: str) -> bool:
    """Whether `oid` names a directory manifest."""
    return oid.endswith(DIR_SUFFIX)


def oid_of_bytes(data: bytes | bytearray | memoryview) -> ObjectId:
    """The object id of an in-memory byte string."""
    return ObjectId(xxhash.xxh3_128_hexdigest(data))


def chunk_size_for(size: int) -> int:
    """The streaming buffer size for a file of `size` bytes."""
    return BIG_CHUNK if size > 64 * CHUNK else CHUNK


def read_small(fd: int, size: int) -> bytes:
    """Read a whole small file from `fd`, following it if it grew since it was stat'ed."""
    data = os.read(fd, size + 1)
    if len(data) <= size:
        return data
    parts = [data]
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def hash_fd(fd: int, size: int) -> tuple[ObjectId, int]:
    """Hash the rest of an open file; return its object id and the bytes read."""
    if size <= SMALL_FILE:
        data = read_small(fd, size)
        return oid_of_bytes(data), len(data)
    state = xxhash.xxh3_128()
    buf = bytearray(chunk_size_for(size))
    view = memoryview(buf)
    total = 0
    while n := os.readv(fd, [buf]):
        state.update(view[:n])
        total += n
    return ObjectId(state.hexdigest()), total


def hash_file(path: Path | str) -> tuple[ObjectId, int]:
    """Hash a file's content by streaming it; return its object id and size."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return hash_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
