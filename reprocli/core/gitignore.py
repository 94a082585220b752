"""Keeping tracked data out of Git: one anchored `/name` line per path in its folder's .gitignore."""

from __future__ import annotations

import re
from pathlib import Path

from reprocli.core import atomic
from reprocli.errors import InvalidFileError, UnsafePathError

_SPECIAL = re.compile(r"([\\*?\[\]!#])")


def entry_for(name: str) -> str:
    """The .gitignore line matching exactly the file or folder `name` in the same folder."""
    escaped = _SPECIAL.sub(r"\\\1", name)
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return "/" + escaped


def ensure_ignored(folder: Path, name: str, *, tmp_dir: Path | None) -> bool:
    """Add `name` to `folder/.gitignore` unless present; return whether the file changed."""
    return ensure_line(folder, entry_for(name), tmp_dir=tmp_dir)


def ensure_line(folder: Path, line: str, *, tmp_dir: Path | None) -> bool:
    """Add the pattern `line` to `folder/.gitignore` unless present; return if it changed."""
    path = folder / ".gitignore"
    if path.is_symlink():  # a committed link could stage any file's bytes into the next commit
        raise UnsafePathError(
            f"{path}: is a symlink; repro only edits a regular .gitignore",
            hint="replace the link with a regular file",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except UnicodeDecodeError:
        raise InvalidFileError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise atomic.storage_error(exc, "cannot read", path) from exc
    if line in text.splitlines():
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    atomic.write_bytes(path, (text + line + "\n").encode("utf-8"), tmp_dir=tmp_dir)
    return True
