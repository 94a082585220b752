"""Moving objects between the cache and a remote: only what the other side lacks, concurrently.

Ordering and integrity (DESIGN §4 invariants 2–3):
- push uploads files before the manifests that name them, and never uploads a manifest
  whose children could not be uploaded; every uploaded byte is verified against its name;
- fetch downloads a manifest, verifies and validates it, downloads its children (each hashed
  before it enters the cache), and publishes the manifest into the cache last.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from reprocli.core import atomic, manifest
from reprocli.core.hashing import DIR_SUFFIX, ObjectId, hash_file, is_dir_oid
from reprocli.core.objects import OBJECT_MODE, ObjectStore
from reprocli.core.progress import SILENT, Progress
from reprocli.core.remotes import Remote, describe
from reprocli.errors import CorruptObjectError, InvalidFileError, RemoteError

# Below this many objects, one existence check each; above, list the fan-out folders.
EXISTS_LIMIT = 256
RETRIES = 3
BACKOFF_S = 0.25

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class TransferResult:
    """What a push or fetch did: objects moved, objects already there, and failures."""

    transferred: int = 0
    present: int = 0
    bytes: int = 0
    failed: list[tuple[ObjectId, str]] = field(default_factory=list)

    def raise_for_failures(self, remote: Remote, verb: str) -> None:
        """Raise one RemoteError summarising the failures, if any."""
        if not self.failed:
            return
        oid, reason = self.failed[0]
        reasons = " ".join(why for _, why in self.failed)
        if "corrupt" in reasons:
            hint = "a damaged copy must be replaced: push it again from a clone whose cache has it intact"
        elif "not in the local cache" in reasons:
            hint = (
                "this clone lacks the data: `repro pull` it first, or push from a clone that has it"
            )
        else:
            hint = "rerun the command: only the missing objects travel"
        raise RemoteError(
            f"remote {remote.name!r}: {verb} {self.transferred} object(s), "
            f"{len(self.failed)} failed (first: {oid}: {reason})",
            hint=hint,
        )


LOCAL_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
"""Errors of this machine's disk: retrying cannot help, and the remote is not to blame."""


def is_local_disk_error(exc: BaseException) -> bool:
    """Whether `exc` says this machine's disk cannot take the bytes (full, quota, read-only)."""
    return isinstance(exc, OSError) and exc.errno in LOCAL_DISK_ERRORS


def retrying(action: Callable[[], T], attempts: int = RETRIES) -> T:
    """Run `action`, retrying transient failures with exponential backoff."""
    for attempt in range(attempts):
        try:
            return action()
        except (RemoteError, CorruptObjectError, FileNotFoundError, PermissionError):
            raise
        except Exception as exc:
            if is_local_disk_error(exc):
                raise
            if attempt >= attempts - 1:
                raise
            time.sleep(BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")


def present_on(remote: Remote, oids: Iterable[ObjectId], *, jobs: int) -> set[ObjectId]:
    """Which of `oids` the remote has: per-object checks for a few, listings for many."""
    wanted = set(oids)
    if not wanted:
        return set()
    try:
        if len(wanted) > EXISTS_LIMIT:
            # Many objects: listing beats one request each. With most of the 256 fan-out
            # folders wanted anyway, one paginated listing of everything (1,000 names per
            # request on S3) costs no more than listing folder by folder.
            prefixes = {oid[:2] for oid in wanted}
            return remote.list_oids(None if len(prefixes) > 64 else prefixes) & wanted
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            flags = pool.map(
                lambda oid: retrying(lambda: remote.exists(oid), remote.retries), sorted(wanted)
            )
            return {oid for oid, flag in zip(sorted(wanted), flags, strict=True) if flag}
    except RemoteError:
        raise
    except Exception as exc:
        raise RemoteError(f"remote {remote.name!r}: cannot list objects: {describe(exc)}") from None


def expand_local(
    store: ObjectStore, roots: Iterable[ObjectId]
) -> tuple[list[ObjectId], dict[ObjectId, set[ObjectId]], list[ObjectId]]:
    """Split the objects `roots` need into (files, manifests with their files, missing)."""
    files: set[ObjectId] = set()
    manifests: dict[ObjectId, set[ObjectId]] = {}
    missing: list[ObjectId] = []
    for oid in sorted(set(roots)):
        if not store.has(oid):
            missing.append(oid)
            continue
        if is_dir_oid(oid):
            entries = manifest.decode(store.read_bytes(oid), where=f"manifest {oid}")
            manifests[oid] = {e.oid for e in entries}
            files |= manifests[oid]
        else:
            files.add(oid)
    absent = store.missing(files)
    missing.extend(sorted(absent))
    return sorted(files - absent), manifests, missing


def _run(
    jobs: int, items: list[T], work: Callable[[T], R]
) -> Iterator[tuple[T, R | BaseException]]:
    """Run `work` on every item in a thread pool; yield (item, its result or its exception)."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures: dict[Future[R], T] = {pool.submit(work, item): item for item in items}
        try:
            for future in as_completed(futures):
                item = futures[future]
                try:
                    yield item, future.result()
                except Exception as exc:
                    yield item, exc
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CorruptObjectError | RemoteError | InvalidFileError):
        return str(exc)
    return describe(exc)


def push(
    store: ObjectStore,
    remote: Remote,
    roots: Iterable[ObjectId],
    *,
    jobs: int,
    progress: Progress = SILENT,
) -> TransferResult:
    """Upload every object `roots` need that the remote lacks: files first, then manifests."""
    files, manifests, missing = expand_local(store, roots)
    result = TransferResult()
    present = present_on(remote, [*files, *manifests, *missing], jobs=jobs)
    # What this clone lacks is fine when the remote has it (a manifest on the remote implies
    # its files are there too: manifests are uploaded last).
    missing = [oid for oid in missing if oid not in present]
    result.failed.extend((oid, "not in the local cache") for oid in missing)
    result.present = len(present)
    todo = [oid for oid in files if oid not in present]
    progress.start(f"pushing to {remote.name}", len(todo))

    def upload(oid: ObjectId) -> int:
        source = store.path_of(oid)
        retrying(lambda: remote.put(source, oid), remote.retries)  # put verifies the bytes
        return source.stat().st_size

    failed_files: set[ObjectId] = set(missing)
    for oid, outcome in _run(jobs, todo, upload):
        if isinstance(outcome, BaseException):
            result.failed.append((oid, _reason(outcome)))
            failed_files.add(oid)
        else:
            result.transferred += 1
            result.bytes += outcome
        progress.advance()
    _commit(remote)  # the files are durable on the remote before any manifest names them
    for oid in manifests:
        if oid in present:
            continue
        if manifests[oid] & failed_files:
            result.failed.append((oid, "not uploaded: some of its files could not be"))
            continue
        try:
            retrying(lambda: remote.put(store.path_of(oid), oid), remote.retries)  # noqa: B023 - runs now
        except Exception as exc:
            result.failed.append((oid, _reason(exc)))
            continue
        result.transferred += 1
    _commit(remote)
    progress.finish()
    return result


def _commit(remote: Remote) -> None:
    try:
        remote.commit()
    except Exception as exc:
        raise RemoteError(
            f"remote {remote.name!r}: cannot publish objects: {describe(exc)}"
        ) from None


def fetch(
    store: ObjectStore,
    remote: Remote,
    roots: Iterable[ObjectId],
    *,
    jobs: int,
    progress: Progress = SILENT,
) -> TransferResult:
    """Download every object `roots` need that the cache lacks, verifying each one."""
    result = TransferResult()
    store.prepare()
    new_manifests: dict[ObjectId, bytes] = {}
    files: set[ObjectId] = set()
    for oid in sorted(set(roots)):
        if not is_dir_oid(oid):
            files.add(oid)
            continue
        try:
            data = (
                store.read_bytes(oid) if store.has(oid) else _download_manifest(store, remote, oid)
            )
        except Exception as exc:
            result.failed.append((oid, _reason(exc)))
            continue
        if not store.has(oid):
            new_manifests[oid] = data
        files.update(
            e.oid for e in manifest.decode(data, where=f"manifest {oid} from {remote.name}")
        )
    todo = sorted(store.missing(files))
    result.present = len(files) - len(todo)
    progress.start(f"fetching from {remote.name}", len(todo))
    failed: set[ObjectId] = set()

    def download(oid: ObjectId) -> Path:
        tmp = store.tmp / atomic.temp_name()
        try:
            retrying(lambda: _get_verified(remote, oid, tmp), remote.retries)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    disk_full: OSError | None = None
    with store.batch() as batch:
        for oid, outcome in _run(jobs, todo, download):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, OSError) and is_local_disk_error(outcome):
                    disk_full = disk_full or outcome
                result.failed.append((oid, _reason(outcome)))
                failed.add(oid)
            else:
                size = outcome.stat().st_size
                os.chmod(outcome, OBJECT_MODE)  # read-only, as every object in the cache
                batch.add(oid, str(outcome), size)  # published durably when the batch ends
                result.transferred += 1
                result.bytes += size
            progress.advance()
    if disk_full is not None:  # the disk is to blame, not the remote: say so, once
        raise atomic.storage_error(disk_full, "cannot write to the cache", store.tmp)
    for oid, data in new_manifests.items():  # children are durable: now the manifests
        entries = manifest.decode(data, where=f"manifest {oid}")
        if any(e.oid in failed for e in entries):
            continue
        store.put_bytes(data, suffix=DIR_SUFFIX)
        result.transferred += 1
    progress.finish()
    return result


def _get_verified(remote: Remote, oid: ObjectId, tmp: Path) -> None:
    remote.get(oid, tmp)
    actual, _ = hash_file(tmp)
    if actual != oid.removesuffix(DIR_SUFFIX):
        os.unlink(tmp)
        raise CorruptObjectError(
            f"object {oid} on remote {remote.name!r} is corrupt (its bytes do not match its name)"
        )


def _download_manifest(store: ObjectStore, remote: Remote, oid: ObjectId) -> bytes:
    tmp = store.tmp / atomic.temp_name()
    try:
        retrying(lambda: _get_verified(remote, oid, tmp), remote.retries)
        data = manifest.read_downloaded(tmp, where=f"manifest {oid} from remote {remote.name!r}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    manifest.decode(data, where=f"manifest {oid} from remote {remote.name!r}")
    return data
