"""Helpers that build test data: file trees and Git commits."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def make_tree(root: Path, files: dict[str, str | bytes]) -> None:
    """Create files under `root` from a {relative path: content} mapping."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` as {relative POSIX path: bytes}."""
    found: dict[str, bytes] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def git(root: Path, *args: str) -> str:
    """Run git in `root` and return stdout; fail the test on error."""
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return result.stdout


def commit(root: Path, message: str = "commit") -> str:
    """Commit everything staged (and tracked changes); return the new HEAD sha."""
    git(root, "commit", "-q", "-a", "-m", message, "--allow-empty")
    return git(root, "rev-parse", "HEAD").strip()
