"""Remotes under test: a folder, fsspec's memory://, and real S3 (moto's server on 127.0.0.1).

S3 is never mocked: repro talks to a moto HTTP server on loopback through s3fs, exactly as it
would talk to AWS, MinIO or Ceph (ECOSYSTEM §6). Every remote comes with a `RemoteView` that
inspects and damages it *without* going through repro (os calls, fsspec's memory store, boto3),
so that what the tests observe does not depend on the code they test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import xxhash
import yaml

from tests.builders import git, make_tree

OBJECT_KEY = "objects/{}/{}"
REGION = "us-east-1"
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


# --- checking objects -----------------------------------------------------------------------


def oid_of_key(key: str) -> str | None:
    """The object id stored under the relative key `objects/ab/cdef…`, or None for other keys."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "objects" or len(parts[1]) != 2:
        return None
    return parts[1] + parts[2]


def hashes_to_its_name(oid: str, data: bytes) -> bool:
    """Whether `data` is the content of object `oid` (xxh3-128; manifests carry `.dir`)."""
    return xxhash.xxh3_128_hexdigest(data) == oid.removesuffix(".dir")


def cache_root(repo: Path) -> Path:
    """The object folder of the repository's cache."""
    return repo / ".repro" / "cache"


def cache_keys(repo: Path) -> set[str]:
    """Every file in the cache as a relative key (`objects/ab/cdef…`)."""
    root = cache_root(repo)
    if not root.is_dir():
        return set()
    return {
        (Path(folder) / name).relative_to(root).as_posix()
        for folder, _, names in os.walk(root)
        for name in names
    }


def cache_oids(repo: Path) -> set[str]:
    """Every object id in the cache."""
    return {oid for key in cache_keys(repo) if (oid := oid_of_key(key)) is not None}


def assert_cache_valid(repo: Path) -> None:
    """Re-hash every cache object: none may differ from its name (invariant 2)."""
    for key in cache_keys(repo):
        oid = oid_of_key(key)
        assert oid is not None, f"stray file in the cache: {key}"
        assert hashes_to_its_name(oid, (cache_root(repo) / key).read_bytes()), f"corrupt: {key}"


def cache_path(repo: Path, oid: str) -> Path:
    """Where object `oid` lives in the cache."""
    return cache_root(repo) / OBJECT_KEY.format(oid[:2], oid[2:])


def overwrite(path: Path, data: bytes) -> None:
    """Replace a (possibly read-only) file's bytes in place, keeping its name."""
    os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) | stat.S_IWUSR)
    path.write_bytes(data)


def pointer_oid(repo: Path, pointer: str) -> str:
    """The object id a pointer file names."""
    doc = yaml.safe_load((repo / pointer).read_text())
    return str(doc["outs"][0]["oid"])


def manifest_children(repo: Path, dir_oid: str) -> dict[str, str]:
    """{path: object id} of a directory manifest in the cache."""
    entries = json.loads(cache_path(repo, dir_oid).read_bytes())
    return {e["path"]: e["oid"] for e in entries}


# --- workspaces and Git ---------------------------------------------------------------------


def make_dataset(root: Path, version: str = "1") -> None:
    """A small tracked folder (nested, with an executable file) and a single model file."""
    make_tree(
        root,
        {
            "data/a.csv": f"a,{version}\n",
            "data/b.csv": f"b,{version}\n",
            "data/sub/c.txt": f"c {version}\n",
            "data/run.sh": f"#!/bin/sh\necho {version}\n",
            "model.bin": f"model {version}".encode() + bytes(range(256)),
        },
    )
    os.chmod(root / "data/run.sh", 0o755)


def tree_state(root: Path, *names: str) -> dict[str, tuple[bytes, bool]]:
    """{relative path: (bytes, executable)} of every file under the named paths of `root`."""
    found: dict[str, tuple[bytes, bool]] = {}
    for name in names:
        top = root / name
        if top.is_file():
            found[name] = (top.read_bytes(), bool(os.stat(top).st_mode & stat.S_IXUSR))
            continue
        for folder, _, files in os.walk(top):
            for file in files:
                path = Path(folder) / file
                rel = path.relative_to(root).as_posix()
                found[rel] = (path.read_bytes(), bool(os.stat(path).st_mode & stat.S_IXUSR))
    return found


def clone(source: Path, dest: Path) -> Path:
    """`git clone` the repository `source` into `dest` (pointers and config only, no data)."""
    subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True, capture_output=True)
    return dest


def edit_local_config(repo: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Hand-edit `.repro/config.local.yaml` (for options the CLI cannot express)."""
    path = repo / ".repro" / "config.local.yaml"
    data: dict[str, Any] = {"version": 1}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or data
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.chmod(path, 0o600)


def fail_fast(repo: Path, remote: str) -> None:
    """One HTTP attempt per botocore call for `remote` (botocore would otherwise back off for
    ~20 s per call against a dead endpoint, on top of repro's own retries)."""

    def change(data: dict[str, Any]) -> None:
        spec = data.setdefault("remotes", {}).setdefault(remote, {})
        spec["config_kwargs"] = {"retries": {"total_max_attempts": 1}, "connect_timeout": 2}

    edit_local_config(repo, change)


def unused_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- looking at a remote without repro ------------------------------------------------------


class RemoteView(Protocol):
    """Reads and damages a remote's storage directly, keyed relative to the remote's root."""

    def files(self) -> set[str]:
        """Every stored file, as `objects/ab/cdef…`-style keys."""

    def read(self, key: str) -> bytes:
        """The bytes stored under `key`."""

    def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what is there."""

    def delete(self, key: str) -> None:
        """Remove `key`."""

    def upload_order(self) -> contextlib.AbstractContextManager[list[str]]:
        """Record, in order, the keys that get written while the context is open."""


def object_key(oid: str) -> str:
    """The relative key of object `oid` on a remote (the cache's layout)."""
    return OBJECT_KEY.format(oid[:2], oid[2:])


def remote_oids(view: RemoteView) -> set[str]:
    """Every object id stored on the remote."""
    return {oid for key in view.files() if (oid := oid_of_key(key)) is not None}


def assert_remote_valid(view: RemoteView) -> None:
    """Every remote object hashes to its name, and every manifest's files are there too."""
    keys = view.files()
    present = {oid for key in keys if (oid := oid_of_key(key)) is not None}
    for key in keys:
        oid = oid_of_key(key)
        assert oid is not None, f"stray key on the remote: {key}"
        data = view.read(key)
        assert hashes_to_its_name(oid, data), f"corrupt on the remote: {key}"
        if oid.endswith(".dir"):
            children = {e["oid"] for e in json.loads(data)}
            assert children <= present, f"manifest {oid} on the remote lacks {children - present}"


_renames: list[str] | None = None
_renames_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "os.rename" and _renames is not None:
        with _renames_lock:
            _renames.append(os.fsdecode(args[1]))


_audit_installed = False


@dataclass(frozen=True)
class LocalView:
    """A folder remote, read with plain os calls."""

    root: Path

    def files(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {
            (Path(folder) / name).relative_to(self.root).as_posix()
            for folder, _, names in os.walk(self.root)
            for name in names
        }

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        overwrite(self.root / key, data)

    def delete(self, key: str) -> None:
        (self.root / key).unlink()

    @contextlib.contextmanager
    def upload_order(self) -> Iterator[list[str]]:
        """Renames into the remote folder (how it publishes objects), seen by an audit hook."""
        global _renames, _audit_installed
        if not _audit_installed:
            sys.addaudithook(_audit)  # audit hooks cannot be removed: it idles when unused
            _audit_installed = True
        order: list[str] = []
        _renames = []
        try:
            yield order
        finally:
            prefix = f"{self.root}{os.sep}"
            order.extend(p[len(prefix) :] for p in _renames if p.startswith(prefix))
            _renames = None


@dataclass(frozen=True)
class MemoryView:
    """fsspec's process-global memory:// store."""

    root: str  # "/<unique>/store"

    @property
    def fs(self) -> Any:
        import fsspec

        return fsspec.filesystem("memory")

    def files(self) -> set[str]:
        prefix = self.root + "/"
        return {p[len(prefix) :] for p in self.fs.store if p.startswith(prefix)}

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(f"{self.root}/{key}"))

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{key}", data)

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{self.root}/{key}")

    @contextlib.contextmanager
    def upload_order(self) -> Iterator[list[str]]:
        """The memory store is a dict: new keys are appended in the order files are committed."""
        before = set(self.fs.store)
        order: list[str] = []
        try:
            yield order
        finally:
            prefix = self.root + "/"
            order.extend(
                p[len(prefix) :]
                for p in list(self.fs.store)
                if p not in before and p.startswith(prefix)
            )

    def clear(self) -> None:
        """Drop everything under the root (the store outlives the test otherwise)."""
        for path in [p for p in self.fs.store if p.startswith(self.root + "/")]:
            self.fs.store.pop(path, None)


class _RequestLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass(frozen=True)
class S3View:
    """A bucket prefix on the moto server, read and written with boto3."""

    client: Any
    bucket: str
    prefix: str  # "store"

    def files(self) -> set[str]:
        found: set[str] = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/"
        )
        for page in pages:
            found.update(item["Key"][len(self.prefix) + 1 :] for item in page.get("Contents", []))
        return found

    def read(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"]
        return bytes(body.read())

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")

    @contextlib.contextmanager
    def upload_order(self) -> Iterator[list[str]]:
        """Successful PUT requests, in the order the server answered them (werkzeug's log)."""
        logger = logging.getLogger("werkzeug")
        handler = _RequestLog()
        level, propagate = logger.level, logger.propagate
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        order: list[str] = []
        try:
            yield order
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
            marker = f"/{self.bucket}/{self.prefix}/"
            for line in handler.lines:  # '127.0.0.1 - - [date] "PUT /path HTTP/1.1" 200 -'
                found = re.search(r'"PUT (\S+) HTTP/[0-9.]+" 200 ', line)
                if found and found[1].startswith(marker):
                    order.append(found[1][len(marker) :])


# --- the S3 server --------------------------------------------------------------------------


def quiet_werkzeug() -> None:
    """werkzeug logs every request to stderr unless told otherwise."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on an ephemeral loopback port, shared by the session's tests."""
    quiet_werkzeug()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(endpoint: str) -> Any:
    """A boto3 client for the test server, with explicit fake credentials (no env lookup)."""
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture(scope="session")
def s3_admin(s3_server: str) -> Any:
    """The session's boto3 client, used to create buckets and inspect or damage objects."""
    return s3_client(s3_server)


def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials, a region, and no config file or profile that could leak in."""
    for name in [n for n in os.environ if n.startswith(("AWS_", "FSSPEC_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("BOTO_CONFIG", "/dev/null")


@dataclass(frozen=True)
class S3Location:
    """A fresh bucket on the test server: `url` is `s3://BUCKET/store`."""

    url: str
    endpoint: str
    bucket: str
    prefix: str
    view: S3View


def new_bucket(client: Any) -> str:
    """Create a bucket with a unique name and return the name."""
    bucket = f"repro-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def aws_env(isolated_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake AWS credentials and region (after `isolated_env` has cleared the real ones)."""
    fake_aws_env(monkeypatch, tmp_path)


@pytest.fixture
def s3_url(aws_env: None, s3_server: str, s3_admin: Any) -> S3Location:
    """A fresh bucket on the session's S3 server, with a fake AWS environment."""
    bucket = new_bucket(s3_admin)
    return S3Location(
        url=f"s3://{bucket}/store",
        endpoint=s3_server,
        bucket=bucket,
        prefix="store",
        view=S3View(s3_admin, bucket, "store"),
    )


# --- remotes of every kind ------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteUnderTest:
    """A remote to configure (`url` plus `-o` options) and a view of its storage."""

    kind: str
    url: str
    options: tuple[str, ...]
    view: RemoteView

    def add_args(self, name: str = "origin", *, default: bool = True) -> list[str]:
        """Arguments of `repro remote add` for this remote."""
        return ["remote", "add", *(["-d"] if default else []), name, self.url, *self.options]


@pytest.fixture
def local_remote(tmp_path: Path) -> RemoteUnderTest:
    """A folder remote (absolute path, so clones elsewhere reach it too)."""
    root = tmp_path / "remote-store"
    return RemoteUnderTest("local", str(root), (), LocalView(root))


@pytest.fixture
def memory_remote() -> Iterator[RemoteUnderTest]:
    """A memory:// remote: global to the process, so a unique root per test (in-process only)."""
    unique = f"repro-{uuid.uuid4().hex[:16]}"
    view = MemoryView(f"/{unique}/store")
    yield RemoteUnderTest("memory", f"memory://{unique}/store", (), view)
    view.clear()


@pytest.fixture
def s3_remote(s3_url: S3Location) -> RemoteUnderTest:
    """An S3 remote on the loopback moto server (its endpoint given as a remote option)."""
    options = ("-o", f"endpoint_url={s3_url.endpoint}")
    return RemoteUnderTest("s3", s3_url.url, options, s3_url.view)


@pytest.fixture(params=["local", "memory", "s3"])
def remote_url(request: pytest.FixtureRequest) -> RemoteUnderTest:
    """The same contract, three remotes: a folder, memory://, and S3."""
    remote: RemoteUnderTest = request.getfixturevalue(f"{request.param}_remote")
    return remote


def configure(cli: Callable[..., Any], repo: Path, remote: RemoteUnderTest) -> None:
    """Add `remote` as the default remote `origin` and commit the config, as a team would."""
    cli(*remote.add_args())
    git(repo, "commit", "-q", "-m", "remote", ".repro/config.yaml")


@pytest.fixture
def tracked(repo: Path) -> Path:
    """`repo` with `make_dataset` added and committed (data/ and model.bin)."""
    from reprocli.operations.add import add
    from reprocli.project import Project

    make_dataset(repo)
    add(Project.discover(repo), [repo / "data", repo / "model.bin"])
    git(repo, "commit", "-q", "-m", "data v1")
    return repo
