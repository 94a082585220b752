"""Git access: plain `git` subprocesses on hot paths; GitPython (lazily) for history walks.

The only module that runs Git or imports GitPython. Git is resolved once to an absolute path,
never from a relative or empty PATH entry (a repository's own `./git` is never run), and
arguments that come from users or files always follow `--`.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reprocli.errors import GitError, InvalidFileError, StorageError

_DISK_FULL = re.compile(r"(?i)out of diskspace|no space left on device|disk quota exceeded")

HOOK_GUARD = "REPRO_RUNNING_GIT"
"""Set in the environment of every git that repro runs: installed hooks see it and do nothing."""


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
            env={**os.environ, HOOK_GUARD: "1"},
        )
        if check and result.returncode != 0:
            lines = [
                line.strip().removeprefix("error: ").removeprefix("fatal: ")
                for line in result.stderr.decode("utf-8", "replace").splitlines()
                if line.strip() and line.strip() != "Aborting" and not line.startswith("hint:")
            ]
            detail = " ".join(lines)[:500] if lines else f"exit code {result.returncode}"
            if _DISK_FULL.search(detail):  # Git words it its own way: say it as repro does
                raise StorageError(f"git {args[0]} failed: no space left on device ({detail})")
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

    def uncommitted(self) -> list[str]:
        """Tracked files with changes Git has not committed (staged or not)."""
        out = self.run("status", "--porcelain", "-z", "--untracked-files=no")
        return [record[3:] for record in out.split("\0") if len(record) > 3]

    def unstaged(self, paths: list[str]) -> set[str]:
        """Which of `paths` differ from the index (changed, or new and not ignored)."""
        out = self.run(
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--",
            *(f":(literal){p}" for p in paths),
        )
        changed: set[str] = set()
        records = iter(out.split("\0"))
        for record in records:
            if len(record) < 4:
                continue
            if record[0] in "RC":
                next(records, None)  # a rename's or copy's source path follows
            if record[1] != " ":  # the work tree differs from the index (`??`: untracked)
                changed.add(record[3:])
        return changed

    def switch(self, rev: str) -> None:
        """`git checkout REV`: move HEAD and the work tree (a branch stays a branch)."""
        self.run("checkout", "--quiet", rev, "--")

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
            refs = (["refs/heads", "refs/remotes"] if branches else []) + (
                ["refs/tags"] if tags else []
            )
            if refs:
                out = self.run("for-each-ref", "--format=%(objectname) %(*objectname)", *refs)
                for line in out.splitlines():
                    parts = line.split()
                    sha = parts[-1] if parts else ""
                    if sha and self.run("cat-file", "-t", sha).strip() == "commit":
                        shas.append(sha)
        return list(dict.fromkeys(shas))

    def own_files_at(self, rev: str) -> list[str]:
        """Every path `rev` commits under a root folder named `.repro` in any letter case
        (a link or file at such a name included)."""
        roots = self.run("ls-tree", "-z", "--name-only", "--full-tree", rev).split("\0")
        own = [name for name in roots if name.lower() == ".repro"]
        if not own:
            return []
        listed = self.run("ls-tree", "-r", "-z", "--name-only", "--full-tree", rev, "--", *own)
        return [name for name in listed.split("\0") if name]

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


def resolve(root: Path, rev: str) -> str | None:
    """The commit SHA that `rev` (branch, tag, SHA, `HEAD~n`, ...) names, or None."""
    if not rev or "\n" in rev or rev.startswith("-"):
        return None
    result = subprocess.run(
        [
            git_executable(),
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            rev + "^{commit}",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else None


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit as `repro log` shows it."""

    sha: str
    date: int
    author: str
    summary: str


class History:
    """Read-only access to Git objects at any revision, through GitPython.

    Every read goes through GitPython's persistent `git cat-file --batch` process: reading a
    file at 500 revisions costs 500 round trips on one pipe, not 500 subprocesses. Callers pass
    SHAs from `resolve` (never raw user text) and repository paths already validated.
    """

    def __init__(self, root: Path) -> None:
        # GitPython runs `git version` while it is imported: make that the absolute git too,
        # never a `./git` found through an empty PATH entry.
        os.environ["GIT_PYTHON_GIT_EXECUTABLE"] = git_executable()
        import git  # noqa: PLC0415 - GitPython costs ~130 ms to import; history commands only

        git.refresh(git_executable())  # the absolute git, never one found via a relative PATH
        self._repo = git.Repo(root)

    def close(self) -> None:
        """Stop the persistent git processes."""
        self._repo.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blob_id(self, sha: str, path: str) -> str | None:
        """The blob id of `path` in commit `sha`, or None when the commit has no such file."""
        header = self._blob_header(sha, path)
        return None if header is None else header[0]

    def _blob_header(self, sha: str, path: str) -> tuple[str, int] | None:
        """(blob id, size) of `path` in commit `sha`, or None when it is not a file there."""
        if "\n" in path:
            return None
        try:
            found, kind, size = self._repo.git.get_object_header(f"{sha}:{path}")
        except ValueError:
            return None
        return (_text(found), int(size)) if _text(kind) == "blob" else None

    def read_blob(self, blob: str) -> bytes:
        """The content of blob `blob`."""
        return bytes(self._repo.git.get_object_data(blob)[3])

    def read(self, sha: str, path: str, *, limit: int | None = None) -> bytes | None:
        """The content of `path` in commit `sha`, or None when there is no such file; with
        `limit`, a blob larger than that is refused before it is read."""
        header = self._blob_header(sha, path)
        if header is None:
            return None
        blob, size = header
        if limit is not None and size > limit:
            raise InvalidFileError(f"{sha[:12]}:{path}: file is larger than {limit} bytes")
        return self.read_blob(blob)

    def commits(self, sha: str, paths: list[str]) -> list[CommitInfo]:
        """Commits reachable from `sha` that changed any of `paths`, newest first."""
        found = []
        for commit in self._repo.iter_commits(sha, paths=paths):
            message = commit.message
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
            found.append(
                CommitInfo(
                    sha=commit.hexsha,
                    date=commit.committed_date,
                    author=str(commit.author.name or ""),
                    summary=text.strip().splitlines()[0] if text.strip() else "",
                )
            )
        return found

    def refs(self, *, branches: bool, tags: bool) -> list[tuple[str, str]]:
        """(name, commit SHA) of every branch and/or tag, sorted by name."""
        named: list[tuple[str, str]] = []
        if branches:
            named += [(head.name, head.commit.hexsha) for head in self._repo.heads]
        if tags:
            for tag in self._repo.tags:
                try:
                    named.append((tag.name, tag.commit.hexsha))
                except ValueError:  # a tag of a tree or blob: no commit to read
                    continue
        return sorted(named)


def _text(value: str | bytes) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value
