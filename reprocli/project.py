"""Project: one repro repository — its root, `.repro/` folders, config, cache, Git and lock.

Opened once per command with `Project.discover`; everything an operation needs hangs off it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from reprocli.core import config as configmod
from reprocli.core import folders, gitrepo, lock, pointer, workspace, yamlio
from reprocli.core.atomic import remove_stale_temps, storage_error
from reprocli.core.config import Config
from reprocli.core.gitrepo import GitRepo
from reprocli.core.hashing import ObjectId
from reprocli.core.objects import ObjectStore
from reprocli.core.paths import RepoPath, has_symlink_parent, to_repo_path
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT, Progress
from reprocli.core.stat_cache import StatCache
from reprocli.errors import InvalidFileError, NotAProjectError, RemoteError, UnsafePathError

if TYPE_CHECKING:  # loaded by the commands that need them: remotes and pipelines cost imports
    from reprocli.core.remotes import Remote, RemoteSpec
    from reprocli.pipeline.lockfile import LockEntry
    from reprocli.pipeline.spec import Pipeline

REPRO_DIR = ".repro"
PIPELINE_FILE = "repro.yaml"
LOCK_FILE = "repro.lock"


class Project:
    """A repository with a `.repro/` folder at its root."""

    def __init__(self, root: Path, config: Config) -> None:
        self.root = root
        self.config = config
        self.repro_dir = root / REPRO_DIR
        self.tmp_dir = self.repro_dir / "tmp"
        self.state_dir = self.repro_dir / "state"
        self.git: GitRepo | None = None if config.no_scm else GitRepo(root)

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """Open the project enclosing `start` (default: the working directory)."""
        here = (start or Path.cwd()).absolute()
        for folder in (here, *here.parents):
            if os.path.lexists(folder / REPRO_DIR):
                _check_own_folders(folder)
                _check_tracked_internals(folder)
                project = cls(folder, configmod.load(folder / REPRO_DIR))
                if not project.config.no_scm and not (folder / ".git").exists():
                    raise NotAProjectError(
                        f"{folder}: has .repro/ but is not the root of a Git repository",
                        hint="run `git init` there, or `repro init --no-scm` to use repro without Git",
                    )
                return project
        if gitrepo.toplevel(here) is None:
            raise NotAProjectError(
                f"{here}: not a Git repository", hint="run `git init`, then `repro init`"
            )
        raise NotAProjectError(
            f"{here}: not a repro project (no .repro/ here or in any parent)",
            hint="run `repro init` at the repository root",
        )

    @functools.cached_property
    def cache_root(self) -> Path:
        """The object cache folder (`cache.dir`, default `.repro/cache`)."""
        if self.config.cache_dir:
            return (self.root / os.path.expanduser(self.config.cache_dir)).absolute()
        return self.repro_dir / "cache"

    @functools.cached_property
    def store(self) -> ObjectStore:
        """The local object cache."""
        return ObjectStore(self.cache_root, shared=bool(self.config.cache_dir))

    @functools.cached_property
    def cache_links(self) -> str:
        """The prefix of symlinks that point into the object cache (symlink link type)."""
        return str(self.store.objects.absolute()) + os.sep

    @functools.cached_property
    def stat_cache(self) -> StatCache:
        """The stat cache of this workspace."""
        return StatCache(self.state_dir / "stat.db")

    def snapshot(
        self,
        rel: RepoPath,
        hasher: workspace.Hasher = workspace.hash_only,
        *,
        known: Callable[[ObjectId], bool] | None = None,
        foreign_links: list[str] | None = None,
        progress: Progress = SILENT,
    ) -> workspace.Snapshot:
        """The object view of workspace data at `rel` (see workspace.snapshot); a folder on
        the way that is a symlink is refused, so no byte outside the repository is hashed."""
        link = has_symlink_parent(self.root, rel)
        if link is not None:
            raise UnsafePathError(
                f"{rel}: the folder {link} on the way is a symlink; repro does not read "
                "through links",
                hint="replace the link with a real folder",
            )
        return workspace.snapshot(
            self.path(rel),
            rel,
            self.stat_cache,
            hasher,
            known=known,
            cache_links=self.cache_links,
            foreign_links=foreign_links,
            progress=progress,
        )

    def cache_paths(
        self, rels: list[RepoPath], *, progress: Progress = SILENT
    ) -> list[workspace.Snapshot]:
        """Put the content of each workspace path into the cache: every file object durable
        first, then the manifests that list them (children before parents)."""
        with self.store.batch() as batch:
            snaps = [
                self.snapshot(rel, workspace.storing(batch), known=batch.knows, progress=progress)
                for rel in rels
            ]
        for snap in snaps:
            if snap.manifest is not None:
                self.store.put_bytes(snap.manifest, suffix=".dir")
        return snaps

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the repository lock, and clean up temp files of interrupted commands."""
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "cannot create", self.tmp_dir) from exc
        with lock.hold(self.repro_dir / "lock"):
            remove_stale_temps(self.tmp_dir)
            yield

    def remote_spec(self, name: str | None = None) -> RemoteSpec:
        """The configured remote `name`, or the default remote; raise RemoteError if none."""
        remotes = self.config.remotes
        if name is None:
            name = self.config.default_remote
            if name is None:
                raise RemoteError(
                    "no default remote",
                    hint="add one with `repro remote add -d NAME URL`, or pass `-r NAME`",
                )
        spec = remotes.get(name)
        if spec is None:
            known = ", ".join(sorted(remotes)) or "none configured"
            raise RemoteError(
                f"no remote named {name!r} (known: {known})",
                hint="list them with `repro remote list`",
            )
        url = spec.get("url")
        from reprocli.core.remotes import RemoteSpec  # noqa: PLC0415 - see TYPE_CHECKING

        if not isinstance(url, str) or not url:
            raise RemoteError(
                f"remote {name!r} has no url", hint=f"repro remote modify {name} url URL"
            )
        sources = self.config.remote_sources.get(name, {})
        tracked = frozenset(k for k, source in sources.items() if source.level == "repo")
        return RemoteSpec(name, url, {k: v for k, v in spec.items() if k != "url"}, tracked)

    def open_remote(self, name: str | None = None, *, jobs: int) -> Remote:
        """Connect to a configured remote (the default one when `name` is None)."""
        from reprocli.core.remotes import open_remote  # noqa: PLC0415 - see TYPE_CHECKING

        return open_remote(self.remote_spec(name), jobs=jobs, base=self.root)

    def transfer_jobs(self, name: str | None, jobs: int | None) -> int:
        """Concurrent transfers: `-j`, else the remote's `jobs` option, else 4 per CPU (≤ 64)."""
        if jobs:
            return jobs
        configured = self.remote_spec(name).options.get("jobs")
        if isinstance(configured, int) and configured > 0:
            return configured
        return min(64, 4 * (os.cpu_count() or 1))

    def path(self, rel: str) -> Path:
        """The absolute local path of a repository path."""
        return self.root / rel

    def target(self, user_path: str | Path) -> RepoPath:
        """Check a path given on the command line and return it as a repository path."""
        absolute = Path(os.path.abspath(user_path))
        rel = to_repo_path(self.root, absolute)
        if is_own(rel):
            raise UnsafePathError(f"{user_path}: inside {REPRO_DIR}/, which repro manages itself")
        link = has_symlink_parent(self.root, rel)
        if link is not None:
            raise UnsafePathError(f"{user_path}: its parent folder {link} is a symlink")
        return rel

    def pointer_files(self) -> list[RepoPath]:
        """Every pointer file in the workspace (tracked, or new and not ignored), sorted."""
        if self.git is not None:
            listed = self.git.ls_files("*" + pointer.SUFFIX, others=True)
            files = {p for p in listed if p.endswith(pointer.SUFFIX)}
        else:
            files = set(self._walk_pointers())
        # Anything but a folder counts: a pointer that is a link or a device is refused by
        # read_pointer, never silently skipped (nor followed).
        return sorted(RepoPath(p) for p in files if _is_present_non_folder(self.root / p))

    def _walk_pointers(self) -> Iterator[str]:
        for folder, dirs, names in os.walk(self.root):
            rel = os.path.relpath(folder, self.root)
            tracked = {n[: -len(pointer.SUFFIX)] for n in names if n.endswith(pointer.SUFFIX)}
            dirs[:] = [d for d in dirs if d not in (".git", REPRO_DIR) and d not in tracked]
            for name in names:
                if name.endswith(pointer.SUFFIX):
                    yield name if rel == "." else f"{Path(rel).as_posix()}/{name}"

    def read_pointer(self, file: RepoPath) -> Pointer:
        """Parse the pointer file `file`."""
        try:
            data = folders.read_bytes(self.root, file, limit=pointer.MAX_BYTES)
        except FileNotFoundError:
            raise InvalidFileError(f"{file}: no such pointer file") from None
        return self._confined(pointer.decode(data, file=file), file)

    def _confined(self, ptr: Pointer, where: str) -> Pointer:
        """Refuse a pointer whose data would be repro's own files (invariant 5)."""
        if is_own(ptr.data):
            raise UnsafePathError(
                f"{where}: names {ptr.data}, inside {REPRO_DIR}/, which repro manages itself"
            )
        return ptr

    def pointers(self) -> list[Pointer]:
        """Every pointer in the workspace, parsed."""
        return [self.read_pointer(f) for f in self.pointer_files()]

    def pipeline(self) -> Pipeline | None:
        """The stages of repro.yaml (None when there is no repro.yaml)."""
        from reprocli.pipeline import spec  # noqa: PLC0415 - see TYPE_CHECKING

        try:
            data = folders.read_bytes(self.root, PIPELINE_FILE, limit=yamlio.MAX_BYTES)
        except FileNotFoundError:
            return None
        return spec.parse(data)

    def lock_entries(self) -> dict[str, LockEntry]:
        """The stages recorded in repro.lock (empty when there is none)."""
        from reprocli.pipeline import lockfile  # noqa: PLC0415 - see TYPE_CHECKING

        try:
            data = folders.read_bytes(self.root, LOCK_FILE, limit=lockfile.MAX_BYTES)
        except FileNotFoundError:
            return {}
        return lockfile.decode(data)

    def write_lock(self, entries: dict[str, LockEntry]) -> None:
        """Publish repro.lock atomically (deterministic bytes)."""
        from reprocli.pipeline import lockfile  # noqa: PLC0415 - see TYPE_CHECKING

        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        folders.write_bytes(self.root, LOCK_FILE, lockfile.encode(entries), tmp_dir=self.tmp_dir)

    def tracked(self) -> list[Pointer]:
        """Every tracked path: pointer files, and the cached outputs recorded in repro.lock."""
        return self.pointers() + stage_outputs(self.lock_entries())

    def pointers_at(self, revisions: list[str]) -> list[Pointer]:
        """Every pointer committed at any of `revisions`, read from Git objects."""
        if self.git is None or not revisions:
            return []
        found: dict[tuple[str, bytes], Pointer] = {}
        for rev in revisions:
            files = self.git.files_at(rev, (pointer.SUFFIX, LOCK_FILE))
            for file, data in files.items():
                if (file, data) in found:
                    continue
                where = f"{rev[:12]}:{file}"
                if file == LOCK_FILE:
                    from reprocli.pipeline import lockfile  # noqa: PLC0415

                    for ptr in stage_outputs(lockfile.decode(data)):
                        found[(ptr.data, data)] = ptr
                elif file.endswith(pointer.SUFFIX):
                    found[(file, data)] = self._confined(
                        pointer.decode(data, file=RepoPath(file), where=where), where
                    )
        return list(found.values())


OWN_FOLDERS = ("", "cache", "cache/objects", "cache/runs", "cache/tmp", "state", "tmp")
"""repro's folders under .repro/: never symlinks (a clone could commit one pointing anywhere)."""
SCANNED = ("", "cache", "cache/objects", "cache/runs", "state")
"""Folders whose every entry must not be a symlink either: the fan-out folders of objects
and run records, the stat database and its journals (temp folders are only ever cleaned)."""
TRACKED_INTERNALS = frozenset({f"{REPRO_DIR}/config.yaml", f"{REPRO_DIR}/.gitignore"})
"""The only files under .repro/ that Git may track."""


def is_own(rel: str) -> bool:
    """Whether repository path `rel` lies in `.repro/` (in any letter case: the filesystem
    may not tell `.Repro` from `.repro`)."""
    return rel.split("/", 1)[0].lower() == REPRO_DIR


def _check_own_folders(root: Path) -> None:
    """Refuse a `.repro/` holding a symlink where repro reads, writes or deletes.

    Git can commit a symlink at any of these paths; following one would put the cache, the
    lock, object fan-out folders, run records or the stat database wherever a hostile
    repository points (invariant 5). A cache kept elsewhere is configured with `cache.dir`,
    never with a link.
    """
    for name in (*OWN_FOLDERS, "lock"):
        path = root / REPRO_DIR / name if name else root / REPRO_DIR
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise storage_error(exc, "cannot read", path) from exc
        expected = stat.S_ISREG(mode) if name == "lock" else stat.S_ISDIR(mode)
        if not expected:
            kind = (
                "a symlink"
                if stat.S_ISLNK(mode)
                else "not a regular " + ("file" if name == "lock" else "folder")
            )
            _refuse_link(path, kind)
    for name in SCANNED:
        folder = root / REPRO_DIR / name if name else root / REPRO_DIR
        try:
            with os.scandir(folder) as entries:  # one listing: the kind comes with each name
                links = [entry.path for entry in entries if entry.is_symlink()]
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise storage_error(exc, "cannot read", folder) from exc
        if links:
            _refuse_link(Path(sorted(links)[0]), "a symlink")


def _refuse_link(path: Path, kind: str) -> None:
    raise UnsafePathError(
        f"{path}: is {kind}; repro never follows links inside {REPRO_DIR}/",
        hint="remove it (`git rm --cached` it if Git tracks it); "
        "to keep the cache elsewhere, set cache.dir in .repro/config.local.yaml",
    )


def _check_tracked_internals(root: Path) -> None:
    """Refuse a repository whose Git tracks files under `.repro/` beyond the tracked config
    and its `.gitignore`: a clone could commit a `config.local.yaml` (which moves the cache
    and may set any remote option), planted cache objects or run records, or links there.

    The enclosing work tree is asked even when `.repro/` is not at its root: a `no_scm`
    project nested inside a clone is still a stranger's files."""
    if not (root / ".git").exists() and gitrepo.toplevel(root) is None:
        return  # no Git around: nothing can have been committed
    # Run from `root`, ls-files prints paths relative to it, wherever the work tree starts.
    listed = GitRepo(root).run("ls-files", "-z", "--cached", "--", f":(icase){REPRO_DIR}")
    refuse_tracked_internals(listed.split("\0"), "is tracked by Git")


def refuse_tracked_internals(names: Iterable[str], how: str) -> None:
    """Raise UnsafePathError for the first of `names` (paths Git holds) under `.repro/`, in
    any letter case, that is not one of TRACKED_INTERNALS; `how` says where Git holds it."""
    for rel in sorted(n for n in names if n and is_own(n) and n not in TRACKED_INTERNALS):
        what = (
            "the local config, which must never be committed"
            if rel.lower().endswith(configmod.LOCAL_FILE)
            else f"repro's own files, of which Git may only track {REPRO_DIR}/config.yaml"
        )
        raise UnsafePathError(
            f"{rel}: {how}, but it is {what}",
            hint=f"check what the repository put there, then `git rm -r --cached {rel}`",
        )


def _is_present_non_folder(path: Path) -> bool:
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def stage_outputs(entries: dict[str, LockEntry]) -> list[Pointer]:
    """The cached outputs of recorded stages, as pointer records."""
    return [
        Pointer(out.path, out.oid, out.size, out.nfiles, origin=f"{LOCK_FILE}: stage {name!r}")
        for name, entry in sorted(entries.items())
        for out in entry.outs
        if out.cache
    ]
