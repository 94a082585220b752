"""Revisions as the history commands see them: a Git commit, or `workspace` (the working tree).

Files are read at a revision straight from Git objects (core.gitrepo.History), never by
checking anything out; the workspace is read from disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from reprocli.core import folders, gitrepo
from reprocli.core.gitrepo import History
from reprocli.errors import UsageError
from reprocli.pipeline.lockfile import MAX_BYTES as READ_LIMIT
from reprocli.project import Project

WORKSPACE = "workspace"


@dataclass(frozen=True, slots=True)
class Rev:
    """A revision by the name the user knows it (`v1.2`, `main`, `HEAD~2`), and its commit."""

    name: str
    sha: str | None  # None: the working tree

    @property
    def is_workspace(self) -> bool:
        """Whether this is the working tree rather than a commit."""
        return self.sha is None


def resolve(project: Project, name: str) -> Rev:
    """The revision `name` names; `workspace` is the working tree."""
    if name == WORKSPACE:
        return Rev(WORKSPACE, None)
    if project.git is None:
        raise UsageError(f"{name}: revisions need Git (this project was made with --no-scm)")
    sha = gitrepo.resolve(project.root, name)
    if sha is None:
        raise UsageError(
            f"unknown revision {name!r}",
            hint="name a branch, a tag, a commit, HEAD~N, or `workspace` for the working tree",
        )
    return Rev(name, sha)


def head(project: Project) -> Rev | None:
    """HEAD as a revision, or None in a repository with no commit yet."""
    if project.git is None:
        return None
    sha = gitrepo.resolve(project.root, "HEAD")
    return None if sha is None else Rev("HEAD", sha)


def pair(project: Project, old: str | None, new: str | None) -> tuple[Rev, Rev]:
    """The two sides of a comparison: `A B`; `A` alone is A vs workspace; none is HEAD vs workspace."""
    if old is None:
        base = head(project)
        if base is None:
            raise UsageError("nothing to compare: the repository has no commit yet")
        return base, Rev(WORKSPACE, None)
    return resolve(project, old), resolve(project, new or WORKSPACE)


def listed(
    project: Project,
    history: History,
    *,
    branches: bool = False,
    tags: bool = False,
    commits: bool = False,
) -> list[Rev]:
    """The revisions `--all-branches/--all-tags/--all-commits` name, each under its ref name
    (a commit with no ref is named by its short SHA); each commit once."""
    if project.git is None:
        return []
    found: dict[str, Rev] = {}
    for name, sha in history.refs(branches=branches, tags=tags):
        found.setdefault(sha, Rev(name, sha))
    if commits:
        for sha in project.git.run("rev-list", "--all").split():
            found.setdefault(sha, Rev(sha[:8], sha))
    return list(found.values())


class Reader:
    """Reads files at a revision: from Git objects for a commit, from disk for the workspace."""

    def __init__(self, project: Project, history: History | None) -> None:
        self.project = project
        self.history = history

    def read(self, rev: Rev, path: str) -> bytes | None:
        """The bytes of `path` at `rev`, or None when it has no such file."""
        if rev.sha is None:
            try:  # never through a link: a committed `metrics.json -> ~/.kube/config`
                return folders.read_bytes(self.project.root, path, limit=READ_LIMIT)
            except FileNotFoundError:
                return None
        if self.history is None:
            return None
        return self.history.read(rev.sha, path, limit=READ_LIMIT)

    def version(self, rev: Rev, path: str) -> str | None:
        """An id of the content of `path` at `rev` (the blob id), for reading each version once;
        None for the workspace or a missing file."""
        if rev.sha is None or self.history is None:
            return None
        return self.history.blob_id(rev.sha, path)


def open_history(project: Project) -> History | None:
    """GitPython access to the project's history (None without Git)."""
    return None if project.git is None else History(project.root)
