"""`repro checkout`: make the workspace match the pointers.

Two phases (RELIABILITY invariant 4): first plan every pointer — load manifests, find what
must be written or deleted, check that every object is in the cache and that nothing
uncommitted would be overwritten — and only then touch the workspace. A file is replaced
or deleted only when its current bytes are in the cache, or with `force`.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from reprocli.core import gitignore, gitrepo, manifest, workspace
from reprocli.core.atomic import storage_error
from reprocli.core.folders import Folders
from reprocli.core.gitrepo import History
from reprocli.core.hashing import DIR_SUFFIX, ObjectId
from reprocli.core.links import Linker
from reprocli.core.manifest import Entry
from reprocli.core.paths import RepoPath, has_symlink_parent
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT, Progress
from reprocli.core.stat_cache import Record, is_racy
from reprocli.errors import (
    InvalidFileError,
    MissingObjectError,
    UncommittedChangesError,
    UnsafePathError,
    UsageError,
)
from reprocli.operations.revisions import WORKSPACE, Rev, resolve
from reprocli.operations.status import select
from reprocli.project import LOCK_FILE, Project, refuse_tracked_internals, stage_outputs

LISTED = 10


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """What checkout changed: files written and deleted, untracked files it left alone."""

    written: int
    deleted: int
    unchanged: int
    changed: tuple[RepoPath, ...]
    kept: tuple[str, ...]
    link_types: tuple[str, ...]
    removed: tuple[RepoPath, ...] = ()
    """Tracked data the new revision does not have, removed (its bytes stay in the cache)."""
    stages: tuple[str, ...] = ()
    """Stages whose repro.lock record came back with their outputs (`checkout REV -- PATH`)."""


@dataclass(slots=True)
class _Plan:
    ptr: Pointer
    writes: list[Entry] = field(default_factory=list)
    chmods: list[Entry] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    clear_first: bool = False
    unchanged: int = 0

    make_root: bool = False

    @property
    def is_noop(self) -> bool:
        return not (
            self.writes or self.chmods or self.deletes or self.clear_first or self.make_root
        )


def interpret(
    project: Project, before: Sequence[str], after: Sequence[str], *, dashdash: bool
) -> tuple[Rev | None, list[str]]:
    """Split `repro checkout` arguments into a revision and paths (DESIGN §2, as Git does).

    Before `--` there is at most one argument, a revision. Without `--`, the first argument is
    a path when repro tracks it and a revision otherwise; both at once is ambiguous."""
    if dashdash:
        if len(before) > 1:
            raise UsageError(
                f"only one revision may come before `--` (got {len(before)}: {', '.join(before)})"
            )
        rev = resolve(project, before[0]) if before else None
        return (None if rev is None or rev.is_workspace else rev), list(after)
    if not before:
        return None, []
    first = before[0]
    if first == WORKSPACE:
        return None, list(before[1:])
    as_rev = None
    if project.git is not None and first != WORKSPACE:
        sha = gitrepo.resolve(project.root, first)
        as_rev = None if sha is None else Rev(first, sha)
    try:
        select(project.tracked(), project, [first])
        as_path = True
    except (UsageError, UnsafePathError):
        as_path = False
    if as_rev is not None and as_path:
        raise UsageError(
            f"{first!r} is both a revision and a tracked path",
            hint=f"say which: `repro checkout {first} --` or `repro checkout -- {first}`",
        )
    if as_rev is not None:
        return as_rev, list(before[1:])
    if as_path:
        return None, list(before)
    raise UsageError(
        f"{first}: neither a tracked path nor a known revision",
        hint="see `repro status` for tracked paths and `git log` / `git tag` for revisions",
    )


def checkout(
    project: Project,
    paths: Sequence[str | Path] = (),
    *,
    force: bool = False,
    progress: Progress = SILENT,
    fetch_missing: bool = True,
) -> CheckoutResult:
    """Restore the data of every selected pointer from the cache.

    Objects missing from the cache are first fetched from the default remote, when one is
    configured (and `fetch_missing`); nothing in the workspace changes before they are in.
    """

    def current() -> list[Pointer]:
        return select(project.tracked(), project, paths)

    return restore(
        project,
        current(),
        force=force,
        progress=progress,
        fetch_missing=fetch_missing,
        reread=current,
    )


def switch(
    project: Project, rev: Rev, *, force: bool = False, progress: Progress = SILENT
) -> CheckoutResult:
    """`repro checkout REV`: move the Git work tree to `rev` (as `git checkout` does), then
    its data. Every check — Git clean, objects in the cache, no uncommitted data overwritten —
    passes before HEAD moves. Data tracked now but not at `rev` is removed when it is safely
    in the cache, as Git removes files the other commit does not have."""
    git = project.git
    assert git is not None and rev.sha is not None
    dirty = git.uncommitted()
    if dirty:
        raise UncommittedChangesError(
            f"Git has uncommitted changes in {len(dirty)} file(s): {_listing(dirty)}",
            hint="commit or stash them (`git stash`), then check out again",
        )
    # Checked before Git moves: after the switch, a `.repro/tmp` link that `rev` commits
    # would already be where this very command writes its temp files.
    refuse_tracked_internals(git.own_files_at(rev.sha), f"is committed at {rev.name}")
    target = project.pointers_at([rev.sha])
    wanted = [p.data for p in target]
    leaving = [
        p
        for p in project.tracked()
        if not any(p.data == w or _nested(p.data, w) or _nested(w, p.data) for w in wanted)
    ]
    # Data that Git itself tracks on the other side: Git writes (or removes) those files, so
    # repro only checks that nothing uncommitted is lost, and plans them again after the move.
    git_at_rev = _git_tracked(git, rev.sha, [p.data for p in leaving])
    git_now = _git_tracked(git, "HEAD", wanted)
    return restore(
        project,
        target,
        force=force,
        progress=progress,
        leaving=[p for p in leaving if p.data not in git_at_rev],
        protect=[p for p in leaving if p.data in git_at_rev],
        replan=git_now,
        before_apply=lambda: git.switch(rev.name),
    )


def _git_tracked(git: gitrepo.GitRepo, rev: str, paths: Sequence[str]) -> set[str]:
    """Which of `paths` (files or folders) have files committed in Git at `rev`."""
    if not paths:
        return set()
    listed = git.run("ls-tree", "-r", "-z", "--name-only", "--full-tree", rev, "--", *paths)
    names = [n for n in listed.split("\0") if n]
    return {p for p in paths if any(n == p or n.startswith(p + "/") for n in names)}


def rollback(
    project: Project,
    rev: Rev,
    paths: Sequence[str | Path],
    *,
    force: bool = False,
    progress: Progress = SILENT,
) -> CheckoutResult:
    """`repro checkout REV -- PATH...`: HEAD stays; the paths' pointers (or, for stage outputs,
    their stage's record in repro.lock) and bytes come back from `rev`, staged for commit.

    A stage output comes back with its whole stage: every output the stage recorded at `rev`
    and its entry in repro.lock, so the lock never claims that today's inputs made it."""
    from reprocli.operations.add import publish_pointer  # noqa: PLC0415
    from reprocli.pipeline import lockfile  # noqa: PLC0415

    git = project.git
    assert git is not None and rev.sha is not None
    with History(project.root) as history:
        old_lock = lockfile.decode(history.read(rev.sha, LOCK_FILE) or b"")
        uncached = [
            Pointer(o.path, o.oid, o.size, o.nfiles, origin=f"{LOCK_FILE}: stage {name!r}")
            for name, entry in old_lock.items()
            for o in entry.outs
            if not o.cache
        ]
        candidates = project.pointers_at([rev.sha]) + uncached
        wanted = [project.target(p) for p in paths]
        inside = {
            rel: holder
            for rel in wanted
            if (holder := _holder(candidates, rel)) is not None and holder.origin is None
        }
        whole = [rel for rel in wanted if rel not in inside]
        chosen = select(candidates, project, whole, at=rev.name) if whole else []
        files = [p for p in chosen if p.origin is None]
        files += _partial(project, inside, rev, progress)
        outputs = {p.data for p in chosen if p.origin is not None}
        entries = {
            name: entry
            for name, entry in old_lock.items()
            if any(o.path in outputs for o in entry.outs)
        }
        restored_files: list[tuple[str, bytes]] = []
        for entry in entries.values():
            for out in entry.outs:
                if not out.cache:
                    data = history.read(rev.sha, out.path)
                    if data is not None:
                        restored_files.append((out.path, data))
    for path, _ in restored_files:  # refused before anything is written (G3)
        link = has_symlink_parent(project.root, path)
        if link is not None:
            raise UnsafePathError(
                f"{path}: the folder {link} on the way is a symlink; refusing to write through it",
                hint="replace the link with a real folder",
            )
    if restored_files and not force:
        dirty = set(git.uncommitted())
        touched = [path for path, _ in restored_files if path in dirty]
        if touched:
            raise UncommittedChangesError(
                f"checkout would overwrite uncommitted change(s): {_listing(touched)}",
                hint="commit them, or discard them with `repro checkout --force`",
            )
    files = list({p.data: p for p in files}.values())
    pointers = files + stage_outputs(entries)

    def publish() -> None:
        staged: list[str] = []
        for ptr in files:
            publish_pointer(project, ptr)
            staged.append(ptr.file)
            folder = ptr.data.rpartition("/")[0]
            gitignore.ensure_ignored(project.root, ptr.data, tmp_dir=project.tmp_dir)
            staged.append(f"{folder}/.gitignore" if folder else ".gitignore")
        if entries:
            project.write_lock({**project.lock_entries(), **entries})
            staged.append(LOCK_FILE)
            with Folders(project.root) as folders:
                for path, data in restored_files:  # never through a folder HEAD made a link
                    folders.write_bytes(path, data, tmp_dir=project.tmp_dir)
                    staged.append(path)
        if project.config.autostage:
            git.add(sorted(set(staged)))

    result = restore(project, pointers, force=force, progress=progress, after_apply=publish)
    return replace(result, stages=tuple(sorted(entries)))


def _holder(candidates: Sequence[Pointer], rel: str) -> Pointer | None:
    """The tracked directory that `rel` lies inside, among `candidates`."""
    return next((p for p in candidates if p.is_dir and _nested(rel, p.data)), None)


def _partial(
    project: Project, inside: dict[RepoPath, Pointer], rev: Rev, progress: Progress
) -> list[Pointer]:
    """Pointers for directories of which only some paths come back from `rev`: today's
    manifest with the entries under each such path replaced by `rev`'s."""
    if not inside:
        return []
    store = project.store
    if project.config.default_remote is not None:
        _fetch_missing(project, list(inside.values()), progress)
    result: dict[str, Pointer] = {}
    for rel, holder in inside.items():
        current = result.get(holder.data)
        if current is None:
            try:
                current = project.read_pointer(holder.file)
            except InvalidFileError:
                current = None
        if current is None or not current.is_dir:
            result[holder.data] = holder  # not a directory now: it comes back whole
            continue
        now = manifest.decode(store.read_bytes(current.oid), where=f"{current.file}: manifest")
        then = manifest.decode(store.read_bytes(holder.oid), where=f"{rev.name}:{holder.file}")
        inner = rel[len(holder.data) + 1 :]

        def under(entry: Entry, inner: str = inner) -> bool:
            return entry.path == inner or entry.path.startswith(inner + "/")

        back = [e for e in then if under(e)]
        if not back:
            raise UsageError(f"{rel}: not in {holder.data} at {rev.name}")
        merged = sorted([e for e in now if not under(e)] + back, key=lambda e: e.path)
        oid = store.put_bytes(manifest.encode(merged), suffix=DIR_SUFFIX)
        result[holder.data] = Pointer(holder.data, oid, sum(e.size for e in merged), len(merged))
    return list(result.values())


def restore(
    project: Project,
    pointers: Sequence[Pointer],
    *,
    force: bool = False,
    progress: Progress = SILENT,
    fetch_missing: bool = True,
    leaving: Sequence[Pointer] = (),
    protect: Sequence[Pointer] = (),
    replan: set[str] | None = None,
    before_apply: Callable[[], None] | None = None,
    after_apply: Callable[[], None] | None = None,
    reread: Callable[[], Sequence[Pointer]] | None = None,
) -> CheckoutResult:
    """Plan every pointer, refuse on any conflict, then write the workspace.

    `leaving`: tracked data to remove (when safely cached); `protect`: tracked data that
    `before_apply` will replace, which must be safely cached too. `replan`: data paths that
    `before_apply` changes (Git files becoming data): Git holds their bytes, so they are planned
    with force, and planned again once it has run. `before_apply` runs once every check has
    passed and before the first write; `after_apply` once the data is in place. `reread`
    reads the pointers again once the lock is held: another command (an `add`, then a `gc`)
    may have changed them, and the objects of stale ones, since they were first read."""
    if fetch_missing and project.config.default_remote is not None:
        _fetch_missing(project, pointers, progress)
    with project.locked():
        if reread is not None:
            pointers = reread()
        replan = replan or set()
        plans = [plan(project, ptr, force=force or ptr.data in replan) for ptr in pointers]
        conflicts = [c for p in plans for c in p.conflicts]
        removals: list[RepoPath] = []
        for ptr in [*leaving, *protect]:
            path = project.path(ptr.data)
            if not os.path.lexists(path):
                continue
            if force or _is_cached(project, path):
                if ptr in leaving:
                    removals.append(ptr.data)
            else:
                conflicts.append(ptr.data)
        if conflicts:
            raise UncommittedChangesError(
                f"checkout would overwrite {len(conflicts)} uncommitted change(s): "
                + _listing(conflicts),
                hint="record them with `repro commit`, or discard them with `repro checkout --force`",
            )
        if before_apply is not None:
            before_apply()
            plans = [plan(project, p.ptr, force=True) if p.ptr.data in replan else p for p in plans]
        linker = Linker(project.store, project.config.link_types, project.tmp_dir)
        total = sum(len(p.writes) for p in plans)
        progress.start("checking out", total)
        for item in plans:
            if not item.is_noop:
                apply(project, item, linker, progress)
        progress.finish()
        # By path again after `before_apply` moved Git: a folder on the way may be a link
        # now (`d -> ..`), so each removal goes through descriptors that refuse links.
        with Folders(project.root) as folders:
            for rel in removals:
                # gone, or behind a folder Git made a link: nothing there is ours to remove
                with contextlib.suppress(FileNotFoundError, UnsafePathError):
                    folders.remove_tree(rel)
        if after_apply is not None:
            after_apply()
    return CheckoutResult(
        written=total,
        deleted=sum(len(p.deletes) for p in plans),
        unchanged=sum(p.unchanged for p in plans),
        changed=tuple(p.ptr.data for p in plans if not p.is_noop),
        kept=tuple(f"{p.ptr.data}/{k}" for p in plans for k in p.kept),
        link_types=tuple(sorted(linker.used)),
        removed=tuple(p.data for p in leaving if p.data in removals),
    )


def _listing(items: Sequence[str]) -> str:
    return ", ".join(items[:LISTED]) + (" …" if len(items) > LISTED else "")


def _nested(path: str, folder: str) -> bool:
    return path.startswith(folder + "/")


def _fetch_missing(project: Project, pointers: Sequence[Pointer], progress: Progress) -> None:
    from reprocli.core import transfer  # noqa: PLC0415 - only when a remote may be needed

    store = project.store
    needed = []
    for ptr in pointers:
        if not store.has(ptr.oid):
            needed.append(ptr.oid)
        elif ptr.is_dir:
            entries = manifest.decode(
                store.read_bytes(ptr.oid), where=f"{ptr.file}: manifest {ptr.oid}"
            )
            if store.missing(e.oid for e in entries):
                needed.append(ptr.oid)
    if not needed:
        return
    jobs = project.transfer_jobs(None, None)
    remote = project.open_remote(None, jobs=jobs)
    with project.locked():
        result = transfer.fetch(store, remote, needed, jobs=jobs, progress=progress)
    result.raise_for_failures(remote, "fetched")


def plan(project: Project, ptr: Pointer, *, force: bool) -> _Plan:
    """Decide what restoring `ptr` takes, without changing anything."""
    store = project.store
    link = has_symlink_parent(project.root, ptr.data)
    if link is not None:
        raise UnsafePathError(
            f"{ptr.file}: the folder {link} on the way to {ptr.data} is a symlink"
        )
    if ptr.is_dir:
        target = manifest.decode(store.read_bytes(ptr.oid), where=f"{ptr.file}: manifest {ptr.oid}")
    else:
        target = [Entry(RepoPath(""), ptr.oid, ptr.size, ptr.exec)]
    _check_path_lengths(project, ptr, target)
    result = _Plan(ptr)
    path = project.path(ptr.data)
    current: dict[str, Entry] = {}
    result.make_root = ptr.is_dir and not os.path.isdir(path)
    if os.path.lexists(path):
        st = os.lstat(path)
        if statmod.S_ISLNK(st.st_mode) and workspace.is_cache_link(path, project.cache_links):
            st = os.stat(path)
        if statmod.S_ISDIR(st.st_mode) == ptr.is_dir and not statmod.S_ISLNK(st.st_mode):
            links: list[str] = []
            snap = project.snapshot(ptr.data, foreign_links=links)
            if snap.entries is None:
                current = {"": Entry(RepoPath(""), snap.oid, snap.size, snap.exec)}
            else:
                current = {e.path: e for e in snap.entries}
            folders = {e.path.rpartition("/")[0] for e in target}
            for link in links:  # symlinks we did not make: replaced, never followed
                if link in folders or any(f.startswith(link + "/") for f in folders):
                    raise UnsafePathError(
                        f"{_join(ptr.data, link)}: is a symlink where tracked data needs a folder; "
                        "refusing to write through it",
                        hint="replace the link with a real folder",
                    )
                if force:
                    result.deletes.append(link)
                else:
                    result.conflicts.append(f"{_join(ptr.data, link)} (a symlink)")
        elif force or _is_cached(project, path):
            result.clear_first = True
        else:
            result.conflicts.append(ptr.data)
    for entry in target:
        have = current.pop(entry.path, None)
        if have is None:
            result.writes.append(entry)
        elif have.oid != entry.oid:
            if force or store.has(have.oid):
                result.writes.append(entry)
            else:
                result.conflicts.append(_join(ptr.data, entry.path))
        elif have.exec != entry.exec:
            result.chmods.append(entry)
        else:
            result.unchanged += 1
    for name, extra in current.items():
        if force or store.has(extra.oid):
            result.deletes.append(name)
        else:
            result.kept.append(name)
    missing = [e.oid for e in result.writes if not store.has(e.oid)]
    if missing:
        raise MissingObjectError(
            f"{ptr.data}: {len(missing)} object(s) are not in the cache (first: {missing[0]})",
            hint="fetch them with `repro pull`",
        )
    return result


def _check_path_lengths(project: Project, ptr: Pointer, target: list[Entry]) -> None:
    """Refuse, before anything is written, a tracked path longer than the system allows."""
    try:
        limit = os.pathconf(project.root, "PC_PATH_MAX")
    except (OSError, ValueError):
        limit = 4096
    base = len(os.fsencode(project.path(ptr.data))) + 1
    if base + 4 * max((len(e.path) for e in target), default=0) < limit:
        return  # the common case: no UTF-8 encoding of every path needed
    for entry in target:
        if base + len(entry.path.encode("utf-8", "surrogateescape")) >= limit:
            raise UnsafePathError(
                f"{ptr.file}: {_join(ptr.data, entry.path)[:80]}…: the path is longer than "
                f"this system allows ({limit} bytes); nothing was checked out"
            )


def _join(data: str, name: str) -> str:
    return f"{data}/{name}" if name else data


def _is_cached(project: Project, path: Path) -> bool:
    """Whether every byte at `path` (a file, a link, or a tree) is safely in the cache."""
    if path.is_symlink():
        return False
    if path.is_dir():
        try:
            files = workspace.scan(path, cache_links=project.cache_links)
        except UnsafePathError:
            return False
        return all(project.store.has(workspace.hash_only(f"{path}/{n}", st)[0]) for n, st in files)
    return project.store.has(workspace.hash_only(str(path), os.lstat(path))[0])


def apply(project: Project, item: _Plan, linker: Linker, progress: Progress) -> None:
    """Carry out one plan: clear, delete, write, fix exec bits, update the stat cache.

    Every change goes through folder descriptors opened without following links (see
    core/folders.py): the symlink checks of `plan` cannot be raced.
    """
    ptr = item.ptr
    with Folders(project.root) as folders:
        try:
            placed = _apply(folders, project, item, linker, progress)
        except OSError as exc:
            raise storage_error(exc, "cannot check out", project.path(ptr.data)) from exc
    _remember(project, item, placed)


def _apply(
    folders: Folders, project: Project, item: _Plan, linker: Linker, progress: Progress
) -> list[tuple[str, str, ObjectId]]:
    ptr = item.ptr
    top = ptr.data
    if item.clear_first:
        folders.remove_tree(top)
    for name in item.deletes:
        folders.unlink(_join(top, name))
    for name in sorted({n.rpartition("/")[0] for n in item.deletes if "/" in n}, reverse=True):
        _remove_empty(folders, top, name)
    placed: list[tuple[str, str, ObjectId]] = []
    if ptr.is_dir:
        folders.fd(top, create=True)
    base = str(project.path(top))
    parent = top.rpartition("/")[0]
    for count, entry in enumerate(item.writes, 1):
        dest = f"{base}/{entry.path}" if entry.path else base  # strings: 100k files, no pathlib
        if entry.path:
            folder = entry.path.rpartition("/")[0]
            fd = folders.fd(f"{top}/{folder}" if folder else top, create=True)
        else:
            fd = folders.fd(parent, create=True)
        linker.place(entry.oid, dest, executable=entry.exec, dir_fd=fd)
        placed.append((entry.path, dest, entry.oid))
        if count % 256 == 0:
            progress.advance(256)
    progress.advance(len(item.writes) % 256)
    for entry in item.chmods:
        dest = f"{base}/{entry.path}" if entry.path else base
        st = os.lstat(dest)
        if statmod.S_ISLNK(st.st_mode) or st.st_nlink > 1:
            # Shared with the cache (or elsewhere): give it its own file, never chmod the cache.
            inner = entry.path.rpartition("/")[0]
            fd = folders.fd(_join(top, inner) if entry.path else parent)
            linker.place(entry.oid, dest, executable=entry.exec, dir_fd=fd)
            placed.append((entry.path, dest, entry.oid))
        else:
            folders.chmod_exec(_join(top, entry.path), executable=entry.exec)
    return placed


def _remember(project: Project, item: _Plan, placed: list[tuple[str, str, ObjectId]]) -> None:
    """Record the stat of every file just placed, so the next status need not hash them."""
    recorded_ns = time.time_ns()
    fresh = {name: (os.lstat(dest), oid) for name, dest, oid in placed}
    old = project.stat_cache.load(item.ptr.data)
    gone = set(item.deletes) | set(fresh)
    keep = {n: i for i, n in enumerate(old.names) if n not in gone and not item.clear_first}
    record = Record()
    for name in sorted(keep.keys() | fresh.keys()):
        if name in fresh:
            st, oid = fresh[name]
            if not statmod.S_ISLNK(st.st_mode) and not is_racy(st, recorded_ns):
                record.add(name, st, oid)
        else:
            i = keep[name]
            record.names.append(name)
            record.inos.append(old.inos[i])
            record.sizes.append(old.sizes[i])
            record.mtimes.append(old.mtimes[i])
            record.ctimes.append(old.ctimes[i])
            record.modes.append(old.modes[i])
            record.oids.append(old.oids[i])
    project.stat_cache.save(item.ptr.data, record)


def _remove_empty(folders: Folders, top: str, folder: str) -> None:
    """Remove `top/folder` and its parents up to `top` while they are empty."""
    parts = folder.split("/")
    while parts:
        if not folders.rmdir_empty(f"{top}/{'/'.join(parts)}"):
            return
        parts.pop()
