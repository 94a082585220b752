"""`repro fsck`: check the cache (or a remote) and the workspace's pointers and lock.

Every object is re-hashed against its name; every manifest is decoded and validated; every
pointer file and repro.lock in the workspace is parsed, and the objects they name looked up.
Damage (a corrupt object, an invalid manifest, an unreadable pointer or lock) makes the
report fail; objects that are only missing are listed, since `repro pull` brings them.
`repair` deletes corrupt objects so that the next pull, fetch or add replaces them; it never
touches the workspace or pointer files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reprocli.core import atomic, manifest
from reprocli.core.hashing import DIR_SUFFIX, ObjectId, hash_file, is_dir_oid
from reprocli.core.pointer import Pointer
from reprocli.core.progress import SILENT, Progress
from reprocli.errors import ReproError
from reprocli.project import Project


@dataclass(frozen=True, slots=True)
class Problem:
    """One damaged thing: an object id or a file, and what is wrong with it."""

    subject: str
    problem: str


@dataclass(frozen=True, slots=True)
class FsckReport:
    """What fsck found in one store and in the workspace's records."""

    where: str
    objects: int
    corrupt: tuple[Problem, ...]
    invalid: tuple[Problem, ...]
    missing: tuple[Problem, ...]
    repaired: tuple[ObjectId, ...] = ()

    @property
    def damaged(self) -> bool:
        """Whether anything is damaged (missing objects alone are not damage)."""
        return bool(self.corrupt or self.invalid)


def fsck(
    project: Project,
    *,
    remote: str | None = None,
    repair: bool = False,
    jobs: int | None = None,
    progress: Progress = SILENT,
) -> FsckReport:
    """Check every object of the cache (or of `remote`) and every pointer and lock record."""
    with project.locked():
        invalid: list[Problem] = []
        records = _records(project, invalid)
        if remote is None:
            where, count, corrupt, manifests = _check_cache(project, jobs, progress)
        else:
            where, count, corrupt, manifests = _check_remote(project, remote, jobs, progress)
        invalid += manifests
        missing = _missing(project, records) if remote is None else []
        repaired: list[ObjectId] = []
        if repair:
            bad = [ObjectId(p.subject) for p in corrupt] + [
                ObjectId(p.subject) for p in manifests if p.problem.startswith("invalid manifest")
            ]  # a folder named like an object is reported, never removed
            repaired = _drop(project, remote, bad)
    return FsckReport(where, count, tuple(corrupt), tuple(invalid), tuple(missing), tuple(repaired))


def _records(project: Project, invalid: list[Problem]) -> list[Pointer]:
    """Every pointer file and lock record of the workspace that parses; the rest are problems."""
    found: list[Pointer] = []
    for file in project.pointer_files():
        try:
            found.append(project.read_pointer(file))
        except ReproError as exc:
            invalid.append(Problem(file, str(exc)))
    try:
        from reprocli.project import stage_outputs  # noqa: PLC0415

        found += stage_outputs(project.lock_entries())
    except ReproError as exc:
        invalid.append(Problem("repro.lock", str(exc)))
    return found


def _check_cache(
    project: Project, jobs: int | None, progress: Progress
) -> tuple[str, int, list[Problem], list[Problem]]:
    store = project.store
    oids = list(store.iter_oids())
    progress.start("checking objects", len(oids))
    corrupt: list[Problem] = []
    invalid = [
        Problem(name, "named like an object but not a regular file") for name in store.oddities()
    ]
    with ThreadPoolExecutor(max_workers=jobs or 2 * (os.cpu_count() or 1)) as pool:
        for oid, intact in zip(oids, pool.map(store.verify, oids), strict=True):
            progress.advance()
            if not intact:
                if store.has(oid):
                    corrupt.append(Problem(oid, "its bytes do not hash to its name"))
                continue
            if is_dir_oid(oid):
                problem = _manifest_problem(store.path_of(oid).read_bytes(), oid)
                if problem is not None:
                    invalid.append(problem)
    progress.finish()
    return str(project.cache_root), len(oids), corrupt, invalid


def _check_remote(
    project: Project, name: str, jobs: int | None, progress: Progress
) -> tuple[str, int, list[Problem], list[Problem]]:
    workers = project.transfer_jobs(name, jobs)
    target = project.open_remote(name, jobs=workers)
    oids = sorted(target.list_oids())
    scratch = project.tmp_dir
    scratch.mkdir(parents=True, exist_ok=True)

    def check(oid: ObjectId) -> Problem | None:
        tmp = scratch / atomic.temp_name()
        try:
            try:
                target.get(oid, tmp)
            except ReproError as exc:
                return Problem(oid, f"cannot be read ({exc})")
            except OSError as exc:
                return Problem(oid, f"cannot be read ({exc.strerror or exc})")
            if hash_file(tmp)[0] != oid.removesuffix(DIR_SUFFIX):
                return Problem(oid, "its bytes do not hash to its name")
            if is_dir_oid(oid):
                try:
                    data = manifest.read_downloaded(tmp, where=f"manifest {oid}")
                except ReproError as exc:
                    return Problem(oid, str(exc))
                return _manifest_problem(data, oid)
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    progress.start(f"checking {target.name}", len(oids))
    corrupt: list[Problem] = []
    invalid: list[Problem] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for problem in pool.map(check, oids):
            progress.advance()
            if problem is None:
                continue
            is_manifest = problem.problem.startswith("invalid manifest")
            (invalid if is_manifest else corrupt).append(problem)
    progress.finish()
    return f"remote {target.name}", len(oids), corrupt, invalid


def _manifest_problem(data: bytes, oid: ObjectId) -> Problem | None:
    try:
        manifest.decode(data, where=f"manifest {oid}")
    except ReproError as exc:
        return Problem(oid, f"invalid manifest ({exc})")
    return None


def _missing(project: Project, records: Iterable[Pointer]) -> list[Problem]:
    """Objects the workspace's pointers and lock name that the cache lacks."""
    store = project.store
    missing: list[Problem] = []
    for ptr in records:
        if not store.has(ptr.oid):
            missing.append(Problem(ptr.data, f"object {ptr.oid} is not in the cache"))
            continue
        if ptr.is_dir:
            try:
                entries = manifest.decode(store.read_bytes(ptr.oid), where=f"manifest {ptr.oid}")
            except ReproError:
                continue  # reported as an invalid or corrupt object
            absent = store.missing(e.oid for e in entries)
            if absent:
                missing.append(
                    Problem(
                        ptr.data,
                        f"{len(absent)} of its {len(entries)} files' objects are not in the cache",
                    )
                )
    return missing


def _drop(project: Project, remote: str | None, oids: list[ObjectId]) -> list[ObjectId]:
    if remote is not None:
        target = project.open_remote(remote, jobs=project.transfer_jobs(remote, None))
        for oid in oids:
            target.delete(oid)
        return oids
    for oid in oids:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(project.store.os_path(oid))
    return oids
