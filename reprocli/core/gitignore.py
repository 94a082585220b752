"""Keeping tracked data out of Git: one anchored `/name` line per path in its folder's .gitignore."""

from __future__ import annotations

import re
from pathlib import Path

from reprocli.core import folders
from reprocli.errors import InvalidFileError, UnsafePathError

MAX_BYTES = 16 << 20
"""The largest .gitignore repro edits."""
_SPECIAL = re.compile(r"([\\*?\[\]!#])")


def entry_for(name: str) -> str:
    """The .gitignore line matching exactly the file or folder `name` in the same folder."""
    escaped = _SPECIAL.sub(r"\\\1", name)
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return "/" + escaped


def ensure_ignored(root: Path, rel: str, *, tmp_dir: Path | None) -> bool:
    """Add repository path `rel` to its folder's .gitignore unless present; return whether
    the file changed."""
    folder, _, name = rel.rpartition("/")
    return ensure_line(root, folder, entry_for(name), tmp_dir=tmp_dir)


def ensure_line(root: Path, folder: str, line: str, *, tmp_dir: Path | None) -> bool:
    """Add the pattern `line` to the .gitignore of folder `folder` ("" is `root`) unless
    present; return if it changed. Neither the file nor a folder on its way may be a symlink:
    a committed link could stage any file's bytes into the next commit."""
    rel = f"{folder}/.gitignore" if folder else ".gitignore"
    try:
        data = folders.read_bytes(root, rel, limit=MAX_BYTES)
    except FileNotFoundError:
        data = b""
    except UnsafePathError as exc:
        raise UnsafePathError(str(exc), hint="replace the link with a regular file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFileError(f"{rel}: is not UTF-8 text") from None
    if line in text.splitlines():
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    folders.write_bytes(root, rel, (text + line + "\n").encode("utf-8"), tmp_dir=tmp_dir)
    return True
