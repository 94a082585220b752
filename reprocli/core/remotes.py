"""Remotes: object stores with the cache's layout (`objects/ab/cdef…`), local or via fsspec.

The only module that imports fsspec. Two implementations of one small interface: a plain
directory (os calls; every object published by temp file + rename) and any fsspec
filesystem (S3 through s3fs, memory:// in tests, gcs, azure, ssh… when installed).
Foreign exceptions are translated here into RemoteError, with credentials redacted.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from reprocli.core import atomic
from reprocli.core.config import tracked_problems
from reprocli.core.hashing import (
    DIR_SUFFIX,
    FILE_OID_PATTERN,
    OID_PATTERN,
    ObjectId,
    chunk_size_for,
    hash_file,
)
from reprocli.core.objects import copy_hashing
from reprocli.errors import CorruptObjectError, RemoteError

# Options repro understands for S3, mapped to s3fs's own names.
S3_OPTIONS = {
    "endpoint_url": "endpoint_url",
    "profile": "profile",
    "access_key_id": "key",
    "secret_access_key": "secret",
    "session_token": "token",
}
SECRET_OPTIONS = frozenset(
    {
        "access_key_id",
        "secret_access_key",
        "session_token",
        "password",
        "key",
        "secret",
        "token",
        "account_key",
        "sas_token",
        "connection_string",
        "client_secret",
        "passphrase",
    }
)
REPRO_OPTIONS = frozenset({"url", "jobs"})


_USERINFO = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):)?//(?P<user>[^/@:?#\s]*)(?P<password>:[^/@\s]*)?@"
)
_USERNAME_SCHEMES = frozenset({"ssh", "sftp", "scp", "git+ssh", "ssh+git"})
"""Schemes whose bare userinfo (`ssh://git@host`) is a user name; elsewhere it is a token
(`https://TOKEN@host`, the form GitHub and Hugging Face hand out)."""


def _redact_userinfo(match: re.Match[str]) -> str:
    head = f"{match['scheme']}://" if match["scheme"] else "//"
    if match["password"] is not None:
        return f"{head}{match['user']}:***@"
    scheme = (match["scheme"] or "").lower()
    if match["user"] and scheme not in _USERNAME_SCHEMES:
        return f"{head}***@"
    return match[0]


def redact(url: str) -> str:
    """The URL (or any text) with userinfo secrets replaced by `***`: passwords, and bare
    tokens (`https://TOKEN@host`) outside the ssh-like schemes where userinfo is a name."""
    return _USERINFO.sub(_redact_userinfo, url)


def has_userinfo_secret(url: str) -> bool:
    """Whether the URL carries a password or a bare token in its userinfo."""
    return redact(url) != url


def is_chained(url: str) -> bool:
    """Whether the URL chains fsspec file systems (`simplecache::s3://…`)."""
    return "::" in url


class Remote(Protocol):
    """An object store shared by clones: objects are immutable and named by content."""

    name: str
    url: str
    retries: int

    def exists(self, oid: ObjectId) -> bool:
        """Whether object `oid` is on the remote."""

    def list_oids(self, prefixes: Iterable[str] | None = None) -> set[ObjectId]:
        """The object names present (only under the given 2-hex prefixes, when given)."""

    def get(self, oid: ObjectId, dest: Path) -> None:
        """Download object `oid` into the local file `dest` (not verified: callers verify)."""

    def put(self, source: Path, oid: ObjectId) -> None:
        """Upload the local file `source` as object `oid`; it appears whole or not at all.

        Raises CorruptObjectError, uploading nothing, when `source` does not hash to `oid`.
        """

    def modified(self, oid: ObjectId) -> float | None:
        """When the object was written (POSIX seconds), or None when the store cannot say."""

    def delete(self, oid: ObjectId) -> None:
        """Remove object `oid` (missing is fine)."""

    def commit(self) -> None:
        """Make every `put` so far durable and visible (a no-op where a put already is)."""

    def list_runs(self) -> set[str]:
        """The run-cache records on the remote (`runs/ab/cdef…`), by key."""

    def get_run(self, key: str) -> bytes:
        """One run-cache record's bytes."""

    def put_run(self, key: str, data: bytes) -> None:
        """Store one run-cache record (whole or not at all)."""

    def incomplete_uploads(self) -> list[str]:
        """Keys under this remote with an upload started and never finished nor aborted
        (S3 multipart uploads: their parts are billed until a lifecycle rule aborts them)."""


def _key(oid: str) -> str:
    return f"objects/{oid[:2]}/{oid[2:]}"


def _run_key(key: str) -> str:
    return f"runs/{key[:2]}/{key[2:]}"


def _run_keys(listing: Iterable[str]) -> set[str]:
    """Run keys from paths ending in `ab/cdef…`."""
    found = set()
    for full in listing:
        parts = full.rstrip("/").rsplit("/", 2)
        if len(parts) == 3 and FILE_OID_PATTERN.fullmatch(parts[1] + parts[2]):
            found.add(parts[1] + parts[2])
    return found


class LocalRemote:
    """A remote that is a folder on this machine (or a mounted share)."""

    retries = 1  # a local filesystem error does not go away by itself

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.url = str(root)
        self.root = root
        self._pending: list[tuple[str, ObjectId]] = []
        self._lock = threading.Lock()
        self._tmp_ready = False
        self._dirs: set[str] = set()

    def _path(self, oid: str) -> Path:
        return self.root / _key(oid)

    def exists(self, oid: ObjectId) -> bool:
        return self._path(oid).is_file()

    def list_oids(self, prefixes: Iterable[str] | None = None) -> set[ObjectId]:
        objects = self.root / "objects"
        if prefixes is None:
            try:
                prefixes = [p for p in os.listdir(objects) if len(p) == 2]
            except FileNotFoundError:
                return set()
        found: set[ObjectId] = set()
        for prefix in prefixes:
            try:
                names = os.listdir(objects / prefix)
            except FileNotFoundError:
                continue
            found.update(ObjectId(prefix + n) for n in names if OID_PATTERN.fullmatch(prefix + n))
        return found

    def get(self, oid: ObjectId, dest: Path) -> None:
        try:
            shutil.copyfile(self._path(oid), dest)
        except FileNotFoundError:
            raise RemoteError(f"remote {self.name!r}: object {oid} is missing") from None

    def put(self, source: Path, oid: ObjectId) -> None:
        # Copied (and hashed on the way: a damaged source never lands) to a temp file now;
        # `commit` syncs them all at once, then renames them under their names (the cache's
        # batched durability: no per-object fsync).
        if not self._tmp_ready:
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
            atomic.remove_stale_temps(self.root / "tmp")  # left by pushes that were killed
            self._tmp_ready = True
        tmp = f"{self.root}/tmp/{atomic.temp_name()}"
        try:
            src = os.open(source, os.O_RDONLY)
            try:
                dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
                try:
                    size = os.fstat(src).st_size
                    copy_hashing(
                        src, dst, chunk_size_for(size), expected=oid.removesuffix(DIR_SUFFIX)
                    )
                finally:
                    os.close(dst)
            finally:
                os.close(src)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        with self._lock:
            self._pending.append((tmp, oid))

    def commit(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            atomic.sync_filesystem(self.root)
            objects = f"{self.root}/objects"
            for tmp, oid in pending:
                if oid[:2] not in self._dirs:
                    os.makedirs(f"{objects}/{oid[:2]}", exist_ok=True)
                    self._dirs.add(oid[:2])
                os.replace(tmp, f"{objects}/{oid[:2]}/{oid[2:]}")
            atomic.sync_filesystem(self.root)
        finally:
            for tmp, _ in pending:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def delete(self, oid: ObjectId) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(oid).unlink()

    def modified(self, oid: ObjectId) -> float | None:
        try:
            return self._path(oid).stat().st_mtime
        except FileNotFoundError:
            return None

    def list_runs(self) -> set[str]:
        return _run_keys(str(p) for p in (self.root / "runs").glob("*/*"))

    def get_run(self, key: str) -> bytes:
        return (self.root / _run_key(key)).read_bytes()

    def put_run(self, key: str, data: bytes) -> None:
        final = self.root / _run_key(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(final, data, tmp_dir=self.root / "tmp")

    def incomplete_uploads(self) -> list[str]:
        return []  # a killed push's temp files are removed by the next push to this folder


class FsspecRemote:
    """A remote on any fsspec filesystem (S3, GCS, Azure, SFTP, memory://…)."""

    retries = 3  # set to 1 where the backend retries itself (s3fs through botocore)

    def __init__(self, name: str, url: str, fs: Any, root: str) -> None:
        self.name = name
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")

    def _path(self, oid: str) -> str:
        return f"{self.root}/{_key(oid)}"

    def exists(self, oid: ObjectId) -> bool:
        return bool(self.fs.exists(self._path(oid)))

    def list_oids(self, prefixes: Iterable[str] | None = None) -> set[ObjectId]:
        base = f"{self.root}/objects"
        found: set[ObjectId] = set()
        if prefixes is None:
            try:
                names = self.fs.find(base)
            except FileNotFoundError:
                return found
            for full in names:
                parts = full.rstrip("/").rsplit("/", 2)
                if len(parts) == 3 and OID_PATTERN.fullmatch(parts[1] + parts[2]):
                    found.add(ObjectId(parts[1] + parts[2]))
            return found
        for prefix in prefixes:
            try:
                names = self.fs.ls(f"{base}/{prefix}", detail=False)
            except FileNotFoundError:
                continue
            for full in names:
                oid = prefix + full.rstrip("/").rsplit("/", 1)[-1]
                if OID_PATTERN.fullmatch(oid):
                    found.add(ObjectId(oid))
        return found

    def get(self, oid: ObjectId, dest: Path) -> None:
        try:
            self.fs.get_file(self._path(oid), str(dest))
        except FileNotFoundError:
            raise RemoteError(f"remote {self.name!r}: object {oid} is missing") from None

    def put(self, source: Path, oid: ObjectId) -> None:
        # Object stores publish a PUT whole or not at all; no temp name is needed. The bytes
        # are checked first: a damaged cache object must never reach the remote.
        if hash_file(source)[0] != oid.removesuffix(DIR_SUFFIX):
            raise CorruptObjectError("corrupt in the local cache; run `repro fsck --repair`")
        self.fs.put_file(str(source), self._path(oid))

    def delete(self, oid: ObjectId) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(oid))

    def modified(self, oid: ObjectId) -> float | None:
        try:
            info = self.fs.info(self._path(oid))
        except FileNotFoundError:
            return None
        for key in ("LastModified", "mtime", "last_modified", "created"):
            value = info.get(key)
            if isinstance(value, datetime.datetime):
                return value.timestamp()
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return None

    def commit(self) -> None:
        pass

    def list_runs(self) -> set[str]:
        try:
            return _run_keys(self.fs.find(f"{self.root}/runs"))
        except FileNotFoundError:
            return set()

    def get_run(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(f"{self.root}/{_run_key(key)}"))

    def put_run(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{_run_key(key)}", data)

    def incomplete_uploads(self) -> list[str]:
        lister = getattr(self.fs, "list_multipart_uploads", None)  # s3fs only
        if lister is None:
            return []
        bucket, _, prefix = self.root.partition("/")
        start = f"{prefix}/" if prefix else ""
        keys = (str(upload.get("Key", "")) for upload in lister(bucket))
        return sorted(key for key in keys if key.startswith(start))


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    """A configured remote: its name, URL and storage options (secrets included)."""

    name: str
    url: str
    options: dict[str, Any]
    tracked: frozenset[str] = frozenset()
    """The keys (`url` included) whose values came from the tracked `.repro/config.yaml`."""


def protocol_of(url: str) -> str:
    """The fsspec protocol of a remote URL (`file` for plain paths)."""
    if "::" in url:
        return url.split("::", 1)[0]
    scheme = urlsplit(url).scheme
    if not scheme or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        return "file"
    return scheme


def open_remote(spec: RemoteSpec, *, jobs: int, base: Path) -> Remote:
    """Connect to a configured remote; raise RemoteError naming what is missing or wrong.

    What came from the tracked config is checked again here (the config check refuses it
    first): no wrapper or archive protocol, no option outside the tracked allowlist.
    """
    stranger = {k: v for k, v in spec.options.items() if k in spec.tracked}
    if stranger or "url" in spec.tracked:
        for problem in tracked_problems({**stranger, "url": spec.url}):
            raise RemoteError(f"remote {spec.name!r}: {problem}")
    protocol = protocol_of(spec.url)
    if protocol == "file":
        path = spec.url[len("file://") :] if spec.url.startswith("file://") else spec.url
        return LocalRemote(spec.name, (base / os.path.expanduser(path)).absolute())
    import fsspec  # noqa: PLC0415 - only transfers pay for fsspec (60-210 ms)
    from fsspec.registry import known_implementations  # noqa: PLC0415

    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        known = known_implementations.get(protocol)
        if known is None:
            raise RemoteError(
                f"remote {spec.name!r}: unknown protocol {protocol!r} in {redact(spec.url)}"
            ) from None
        package = known["class"].split(".", 1)[0]
        raise RemoteError(
            f"remote {spec.name!r}: the {protocol!r} protocol needs the {package} package",
            hint=f"pip install {package}",
        ) from exc
    options = storage_options(protocol, spec.options, jobs=jobs)
    try:
        fs, root = fsspec.core.url_to_fs(spec.url, **options)
    except Exception as exc:
        raise RemoteError(
            f"remote {spec.name!r}: cannot open {redact(spec.url)}: {describe(exc)}"
        ) from None
    remote = FsspecRemote(spec.name, spec.url, fs, root)
    if protocol in ("s3", "s3a"):
        remote.retries = 1
    return remote


def storage_options(protocol: str, options: dict[str, Any], *, jobs: int) -> dict[str, Any]:
    """Translate repro's remote options into fsspec storage options for `protocol`."""
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key in REPRO_OPTIONS:
            continue
        if protocol in ("s3", "s3a"):
            if key == "region":
                result.setdefault("client_kwargs", {})["region_name"] = value
                continue
            key = S3_OPTIONS.get(key, key)
        result[key] = value
    if protocol in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and "endpoint_url" not in result:
            result["endpoint_url"] = endpoint
        config = result.setdefault("config_kwargs", {})
        config.setdefault("max_pool_connections", max(jobs, 10))
        # botocore retries throttling and resets itself (repro does not retry on top of it)
        config.setdefault("retries", {"max_attempts": 4, "mode": "adaptive"})
        config.setdefault("connect_timeout", 10)
        result.setdefault("skip_instance_cache", True)
    return result


def describe(exc: BaseException) -> str:
    """One line about a foreign exception, with anything that looks like a secret removed."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = redact(text)
    return re.sub(r"(?i)(signature|credential|token|secret|key)=[^&\s]+", r"\1=***", text)[:300]
