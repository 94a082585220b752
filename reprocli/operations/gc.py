"""`repro gc`: delete cache objects that nothing kept refers to.

The keep-set is every object named — directly or through a directory manifest — by the
pointers and repro.lock of the workspace, of the Git index, of HEAD, and of the revisions
asked for (`--all-branches/--all-tags/--all-commits`), plus the run-cache records whose
outputs are all kept. Anything that cannot be read (a damaged pointer, a manifest not in the
cache) aborts gc before it deletes a thing: an unknown reference could be to any object.

Only names matching the object pattern are ever deleted, and an object younger than the grace
period is kept whatever the keep-set says: another process (sharing the cache through
`cache.dir`, or adding while this gc plans) may be about to name it. The repository lock is
held throughout, so adds in this repository wait for gc.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from reprocli.core import manifest, pointer
from reprocli.core.hashing import ObjectId, is_dir_oid, oid_of_bytes
from reprocli.core.paths import RepoPath
from reprocli.core.pointer import Pointer
from reprocli.errors import (
    CorruptObjectError,
    MissingObjectError,
    ReproError,
    StorageError,
    UsageError,
)
from reprocli.operations.scope import Revisions
from reprocli.project import LOCK_FILE, Project, stage_outputs

DEFAULT_GRACE = 3600.0
"""Seconds: objects written more recently than this are never deleted."""


@dataclass(frozen=True, slots=True)
class Sweep:
    """What gc deletes (or, dry, would delete) in one store."""

    where: str
    kept: int
    doomed: tuple[ObjectId, ...]
    freed: int
    recent: int
    runs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GcReport:
    """The local sweep and, with `-r`, the remote one."""

    local: Sweep
    remote: Sweep | None = None
    dry: bool = False
    done: bool = False
    """Whether the deletions were carried out (not dry, and confirmed)."""


def plan_scope(project: Project, revisions: Revisions) -> list[Pointer]:
    """Every pointer record gc must keep: workspace, index, HEAD, the stash and the revisions
    asked for (`--all-branches` includes remote-tracking branches)."""
    found = project.tracked() + _indexed(project)
    if project.git is not None:
        revs = project.git.revisions(
            branches=revisions.all_branches, tags=revisions.all_tags, commits=revisions.all_commits
        )
        # The stash, as git gc keeps it: each entry's work tree, index and untracked commits.
        stash = project.git.run("log", "-g", "--format=%H %P", "refs/stash", check=False)
        found += project.pointers_at(list(dict.fromkeys(revs + stash.split())))
    return found


def _indexed(project: Project) -> list[Pointer]:
    """Pointers and lock outputs staged in the Git index (added but not yet committed)."""
    if project.git is None:
        return []
    listing = project.git.run("ls-files", "-s", "-z", "--", "*" + pointer.SUFFIX, LOCK_FILE)
    files: list[tuple[str, str]] = []
    for record in listing.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        if path == LOCK_FILE or path.endswith(pointer.SUFFIX):
            files.append((path, meta.split()[1]))
    blobs = project.git.read_blobs([sha for _, sha in files])
    found: list[Pointer] = []
    for (path, _), data in zip(files, blobs, strict=True):
        if path == LOCK_FILE:
            from reprocli.pipeline import lockfile  # noqa: PLC0415 - pipelines only

            found += stage_outputs(lockfile.decode(data))
        else:
            found.append(pointer.decode(data, file=RepoPath(path), where=f"index:{path}"))
    return found


def reachable(
    pointers: Iterable[Pointer], read_manifest: Callable[[ObjectId], bytes]
) -> set[ObjectId]:
    """Every object the pointers name, with the files of each directory manifest."""
    keep: set[ObjectId] = set()
    for ptr in pointers:
        if ptr.oid in keep:
            continue
        keep.add(ptr.oid)
        if is_dir_oid(ptr.oid):
            try:
                data = read_manifest(ptr.oid)
            except (MissingObjectError, CorruptObjectError) as exc:
                raise type(exc)(
                    f"{ptr.file}: cannot read the manifest of {ptr.data} ({exc}); "
                    "gc cannot tell which objects it still needs, so it deletes nothing",
                    hint="fetch it (`repro fetch` with the same revision flags) or gc a narrower "
                    "set of revisions",
                ) from None
            keep.update(e.oid for e in manifest.decode(data, where=f"{ptr.file}: manifest"))
    return keep


def gc(
    project: Project,
    revisions: Revisions,
    *,
    remote: str | None = None,
    dry: bool = False,
    grace: float = DEFAULT_GRACE,
    confirm: Callable[[GcReport], bool] | None = None,
    others: Sequence[Project] | None = None,
) -> GcReport:
    """Delete unreferenced objects (and run records) from the cache, and from `remote` if given.

    Everything is planned first; `confirm` sees the plan and may stop gc before any delete.
    A shared cache (`cache.dir`) needs `others`: every other project that uses it, whose
    workspace and revisions are kept too (an empty list says this project is the only one).
    """
    from reprocli.pipeline.runcache import RunCache  # noqa: PLC0415

    others = _sharing(project, others, dry=dry)
    with project.locked():
        store = project.store
        keep = reachable(plan_scope(project, revisions), store.read_bytes)
        for other in others:  # their locks are not taken: their new objects are young
            keep |= reachable(plan_scope(other, revisions), store.read_bytes)
        runs = RunCache(project.cache_root)
        doomed_runs = []
        cutoff = time.time() - grace
        for run_key in runs.keys():  # noqa: SIM118 - RunCache is not a mapping
            outs = runs.load(run_key) or ()
            if outs and all(o.oid in keep for o in outs if o.cache):
                keep.update(_with_files((o.oid for o in outs), store.read_bytes))
            elif _older(runs.path_of(run_key), cutoff):
                doomed_runs.append(run_key)
            else:
                keep.update(_with_files((o.oid for o in outs), store.read_bytes))
        doomed, freed, recent = [], 0, 0
        candidates: list[tuple[ObjectId, int]] = []
        young_manifests = []
        for oid in store.iter_oids():
            if oid in keep:
                continue
            try:
                st = os.lstat(store.os_path(oid))
            except FileNotFoundError:
                continue
            if st.st_mtime > cutoff:
                recent += 1
                if is_dir_oid(oid):
                    young_manifests.append(oid)
                continue
            candidates.append((oid, st.st_size))
        # A manifest kept for its age keeps its files: the cache never holds a manifest
        # whose files are gone (invariant 3).
        keep.update(_with_files(young_manifests, store.read_bytes))
        for oid, size in candidates:
            if oid not in keep:
                doomed.append(oid)
                freed += size
        local = Sweep(
            str(project.cache_root),
            len(keep),
            tuple(sorted(doomed)),
            freed,
            recent,
            tuple(sorted(doomed_runs)),
        )
        remote_sweep = _plan_remote(project, remote, keep, cutoff) if remote else None
        report = GcReport(local, remote_sweep, dry)
        if dry or (confirm is not None and not confirm(report)):
            return report
        for run_key in local.runs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(runs.path_of(run_key))
        spared: set[ObjectId] = set()
        for oid in manifests_first(local.doomed):
            # Checked again: while gc waited for its answer, a project sharing the cache may
            # have used the object (which refreshes its mtime); a manifest spared that way
            # spares its files too.
            if oid in spared:
                continue
            if _older(store.os_path(oid), cutoff):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(store.os_path(oid))
            elif is_dir_oid(oid):
                spared |= _with_files([oid], store.read_bytes)
        if remote_sweep is not None and remote is not None:
            target = project.open_remote(remote, jobs=project.transfer_jobs(remote, None))
            for oid in manifests_first(remote_sweep.doomed):
                target.delete(oid)
    return replace(report, done=True)


def _sharing(project: Project, others: Sequence[Project] | None, *, dry: bool) -> list[Project]:
    """The other projects of a shared cache; refuse to gc one without being told about them."""
    if not project.config.cache_dir:
        if others:
            raise UsageError(
                "--project is for a shared cache (cache.dir); this project's cache is its own"
            )
        return []
    if others is None:
        if dry:
            return []
        raise UsageError(
            f"the cache {project.cache_root} is shared (cache.dir): gc would delete objects "
            "that other projects using it still need",
            hint="name each other project with --project PATH (--project . when this one is "
            "the only one), or see what would go with --dry",
        )
    mine = os.path.realpath(project.cache_root)
    found = []
    for other in others:
        if other.root == project.root:
            continue
        if os.path.realpath(other.cache_root) != mine:
            raise UsageError(f"--project {other.root}: uses another cache ({other.cache_root})")
        found.append(other)
    return found


def manifests_first(oids: Iterable[ObjectId]) -> list[ObjectId]:
    """The deletion order: directory manifests before file objects, so that a gc killed
    midway never leaves a manifest whose files are gone (the cache stays complete)."""
    return sorted(oids, key=lambda oid: not is_dir_oid(oid))


def _with_files(
    oids: Iterable[ObjectId], read_manifest: Callable[[ObjectId], bytes]
) -> set[ObjectId]:
    """`oids` plus the files of each directory manifest among them that can be read."""
    found: set[ObjectId] = set()
    for oid in oids:
        found.add(oid)
        if is_dir_oid(oid):
            try:
                data = read_manifest(oid)
                found.update(e.oid for e in manifest.decode(data, where=f"manifest {oid}"))
            except ReproError:
                continue  # not readable: nothing more to keep on its account
    return found


def _older(path: os.PathLike[str] | str, cutoff: float) -> bool:
    try:
        return os.lstat(path).st_mtime <= cutoff
    except FileNotFoundError:
        return False


def _plan_remote(project: Project, name: str, keep: set[ObjectId], cutoff: float) -> Sweep:
    from reprocli.pipeline.lockfile import parse_artifact  # noqa: PLC0415

    target = project.open_remote(name, jobs=project.transfer_jobs(name, None))
    present = target.list_oids()
    keep = set(keep)
    named: set[ObjectId] = set()
    for run_key in target.list_runs():  # the remote's run records keep what they name
        try:
            record = json.loads(target.get_run(run_key))
            named.update(parse_artifact(o, "run-cache", "outs").oid for o in record["outs"])
        except (OSError, ValueError, KeyError, TypeError, ReproError):
            continue

    def manifest_bytes(oid: ObjectId) -> bytes:  # from the cache, else from the remote
        if project.store.has(oid):
            return project.store.read_bytes(oid)
        project.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = project.tmp_dir / f"gc-manifest-{os.getpid()}"
        try:
            target.get(oid, tmp)
            data = manifest.read_downloaded(tmp, where=f"manifest {oid} on {target.name}")
        except OSError as exc:
            raise StorageError(f"cannot read manifest {oid} from {target.name}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if oid_of_bytes(data) != oid.removesuffix(".dir"):
            raise StorageError(f"manifest {oid} on {target.name} is corrupt")
        return data

    keep |= _with_files(named, manifest_bytes)
    old, recent, young_manifests = [], 0, []
    for oid in sorted(present - keep):
        modified = target.modified(oid)
        if modified is not None and modified > cutoff:
            recent += 1
            if is_dir_oid(oid):
                young_manifests.append(oid)
            continue
        old.append(oid)
    keep |= _with_files(young_manifests, manifest_bytes)  # a kept manifest keeps its files
    doomed = [oid for oid in old if oid not in keep]
    return Sweep(target.name, len(present & keep), tuple(doomed), 0, recent)
