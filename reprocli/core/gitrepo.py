"""Git access: plain `git` subprocesses on hot paths; GitPython (lazily) for history walks.

The only module that runs Git or imports GitPython. Git is resolved once to an absolute path,
never from a relative or empty PATH entry (a repository's own `./git` is never run), and
arguments that come from users or files always follow `--`.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from reprocli.errors import GitError


@functools.cache
def git_executable() -> str:
    """The absolute path of `git`, skipping relative and empty PATH entries."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isabs(folder):
            continue
        candidate = os.path.join(folder, "git")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise GitError("git is not installed (no `git` on PATH)", hint="install Git")


def toplevel(start: Path) -> Path | None:
    """The root of the Git work tree enclosing `start`, or None outside any work tree."""
    result = subprocess.run(
        [git_executable(), "rev-parse", "--show-toplevel"],
        cwd=start,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip():
        return None
    return Path(result.stdout.strip())


class GitRepo:
    """A Git work tree rooted at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str, check: bool = True) -> str:
        """Run one git command in the work tree; return stdout, raise GitError on failure."""
        result = subprocess.run(
            [git_executable(), *args],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        if check and result.returncode != 0:
            lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit code {result.returncode}"
            raise GitError(f"git {args[0]} failed: {detail}")
        return result.stdout.decode("utf-8", "surrogateescape")

    def ls_files(self, *pathspecs: str, others: bool = False) -> list[str]:
        """Paths Git tracks (and, with `others`, untracked non-ignored ones) matching pathspecs."""
        flags = ["--cached", "--others", "--exclude-standard"] if others else ["--cached"]
        out = self.run("ls-files", "-z", *flags, "--", *pathspecs)
        return [p for p in out.split("\0") if p]

    def add(self, paths: list[str]) -> None:
        """Stage `paths` (pointers, .gitignore files)."""
        if paths:
            self.run("add", "--", *paths)

    def revisions(
        self, *, branches: bool = False, tags: bool = False, commits: bool = False
    ) -> list[str]:
        """Commit SHAs of HEAD plus every branch, tag or commit asked for (deduplicated)."""
        shas: list[str] = []
        head = self.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).strip()
        if head:
            shas.append(head)
        if commits:
            shas += self.run("rev-list", "--all").split()
        else:
            refs = (["refs/heads"] if branches else []) + (["refs/tags"] if tags else [])
            if refs:
                out = self.run("for-each-ref", "--format=%(objectname) %(*objectname)", *refs)
                for line in out.splitlines():
                    parts = line.split()
                    sha = parts[-1] if parts else ""
                    if sha and self.run("cat-file", "-t", sha).strip() == "commit":
                        shas.append(sha)
        return list(dict.fromkeys(shas))

    def files_at(self, rev: str, suffix: str | tuple[str, ...]) -> dict[str, bytes]:
        """The content of every file whose path ends with `suffix` in the tree of `rev`."""
        listing = self.run("ls-tree", "-r", "-z", "--full-tree", rev)
        blobs: dict[str, str] = {}
        for record in listing.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            kind, sha = meta.split()[1:3]
            if kind == "blob" and path.endswith(suffix):
                blobs[path] = sha
        return dict(zip(blobs, self.read_blobs(list(blobs.values())), strict=True))

    def read_blobs(self, shas: list[str]) -> list[bytes]:
        """The content of each blob, read through one `git cat-file --batch` process."""
        if not shas:
            return []
        result = subprocess.run(
            [git_executable(), "cat-file", "--batch"],
            cwd=self.root,
            input="".join(f"{sha}\n" for sha in shas).encode(),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise GitError(
                "git cat-file failed: " + result.stderr.decode("utf-8", "replace").strip()
            )
        out = result.stdout
        blobs: list[bytes] = []
        pos = 0
        for _ in shas:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            if len(header) < 3:
                raise GitError(f"git cat-file: cannot read object {header[0].decode()}")
            size = int(header[2])
            blobs.append(out[end + 1 : end + 1 + size])
            pos = end + 1 + size + 1
        return blobs
