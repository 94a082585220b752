"""RepoPath: the one checked form of a path that comes from a file or the user.

Every path read from a pointer, manifest or lock passes `check_relative` before it is used
(DESIGN §4 invariant 5): relative, POSIX, no empty/`.`/`..` component, no `.git`, no control
characters.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NewType

from reprocli.errors import UnsafePathError

RepoPath = NewType("RepoPath", str)
"""A POSIX path relative to some root: checked on entry, never absolute, never `..`."""

# One regex for the hot path (100k manifest entries): any control character, backslash,
# a leading or doubled or trailing slash, or a `.`/`..`/`.git` component.
_BAD = re.compile(
    r"[\x00-\x1f\x7f-\x9f\\\ud800-\udfff]|^/|//|/$|(?:^|/)(?:\.|\.\.|\.git)(?:/|$)",
    re.IGNORECASE,
)


# The same rules over many paths at once, for a large manifest: the paths are joined by NUL
# (which no valid path contains) and searched with C-level substring scans.
_BAD_CHARS = re.compile(r"[\x01-\x1f\x7f-\x9f\\\ud800-\udfff]")
_BAD_PARTS = tuple(
    f"{left}{middle}{right}"
    for middle in ("", ".", "..", ".git")
    for left in ("\x00", "/")
    for right in ("\x00", "/")
)


def all_safe(texts: list[str]) -> bool:
    """Whether every string is a safe relative path (what `problem` checks, in bulk)."""
    joined = "\x00" + "\x00".join(texts) + "\x00"
    if joined.count("\x00") != len(texts) + 1 or _BAD_CHARS.search(joined) is not None:
        return False
    lowered = joined.lower()
    return not any(part in lowered for part in _BAD_PARTS)


def problem(text: object) -> str | None:
    """Say what is wrong with `text` as a relative POSIX path, or None when it is safe."""
    if not isinstance(text, str):
        return "is not a string"
    if not text:
        return "is empty"
    if text.startswith("/"):
        return "is absolute"
    match = _BAD.search(text)
    if match is None:
        return None
    found = match.group(0).strip("/").lower()
    if found == "..":
        return "leaves its folder ('..')"
    if found == ".git":
        return "enters .git"
    if found == ".":
        return "has a '.' component"
    if found == "\\":
        return "has a backslash (paths are POSIX)"
    if found == "" or "/" in match.group(0):
        return "has an empty component"
    if "\ud800" <= found <= "\udfff":
        return "is not valid UTF-8"
    return "has a control character"


def check_relative(text: object, *, where: str) -> RepoPath:
    """Return `text` as a RepoPath, or raise UnsafePathError naming `where` and the problem."""
    reason = problem(text)
    if reason is not None:
        raise UnsafePathError(f"{where}: path {text!r} {reason}")
    return RepoPath(text)  # type: ignore[arg-type]


def to_repo_path(root: Path, path: Path) -> RepoPath:
    """Express an absolute local path inside `root` as a RepoPath; raise if it is outside."""
    rel = os.path.relpath(path, root)
    if rel == "." or rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise UnsafePathError(f"{path}: outside the repository {root}")
    return check_relative(Path(rel).as_posix(), where=str(path))


def has_symlink_parent(root: Path, rel: str) -> str | None:
    """Return the first leading component of `rel` under `root` that is a symlink, if any."""
    current = root
    parts = rel.split("/")
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            return str(current.relative_to(root).as_posix())
    return None
