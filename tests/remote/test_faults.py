"""Integrity and faults at the remote boundary (RELIABILITY groups D and I, DESIGN §4).

- D3: wrong bytes under a valid name are rejected by `pull`, named, and reach neither the
  cache nor the workspace (two-phase pull);
- D4: push uploads files before their manifest, and never a manifest with a missing file;
- D5: objects deleted out of band are noticed and uploaded again;
- D1: the server dies mid-push: exit 2 with an honest summary, and a rerun completes;
- D7: unreachable endpoint, unknown remote or protocol: one `error:` line, exit 2;
- I1–I3: credentials never enter tracked files or any output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.builders import commit, git, make_tree
from tests.conftest import Cli, Result
from tests.remote.conftest import (
    RemoteUnderTest,
    S3Location,
    S3View,
    assert_cache_valid,
    assert_remote_valid,
    cache_oids,
    cache_path,
    clone,
    configure,
    edit_local_config,
    fail_fast,
    make_dataset,
    manifest_children,
    new_bucket,
    object_key,
    overwrite,
    pointer_oid,
    quiet_werkzeug,
    remote_oids,
    s3_client,
    tree_state,
    unused_port,
)

TRACKED = ("data", "model.bin")
SENTINEL = "SENTINEL-7f3a9c-do-not-print"


def assert_one_error_line(result: Result, *needles: str) -> str:
    """stderr is one `error:` line (plus an optional `hint:` line) that names every needle."""
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# --- corrupt and missing remote objects (D3, D5) --------------------------------------------


@pytest.mark.parametrize(
    ("kind", "damaged"),
    [
        ("local", "file"),
        ("memory", "file"),
        ("s3", "file"),
        ("local", "manifest"),
        ("memory", "manifest"),
    ],
)
def test_a_corrupt_remote_object_fails_pull_naming_it_and_changes_nothing(
    repo: Path,
    kind: str,
    damaged: str,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    remote_url: RemoteUnderTest = request.getfixturevalue(f"{kind}_remote")
    configure(cli, repo, remote_url)
    make_dataset(repo, "1")
    cli("add", *TRACKED)
    v1 = commit(repo, "data v1")
    v1_manifest = pointer_oid(repo, "data.repro")
    v1_file = manifest_children(repo, v1_manifest)["b.csv"]
    make_dataset(repo, "2")
    cli("add", *TRACKED)
    commit(repo, "data v2")
    cli("push", "--all-commits")

    # A teammate has v2 in the workspace, then goes back to v1's pointers.
    mate = clone(repo, tmp_path / "mate")
    monkeypatch.chdir(mate)
    cli("pull")
    git(mate, "checkout", "-q", v1)
    v2_workspace = tree_state(mate, *TRACKED)
    v2_cache = cache_oids(mate)

    bad = v1_file if damaged == "file" else v1_manifest
    good_bytes = remote_url.view.read(object_key(bad))
    remote_url.view.write(object_key(bad), good_bytes + b"tampered")

    result = cli("pull", expect=2)
    assert_one_error_line(result, bad)
    assert "corrupt" in result.stderr
    # Two-phase: not one workspace file changed, not even model.bin whose object was fine.
    assert tree_state(mate, *TRACKED) == v2_workspace
    assert bad not in cache_oids(mate)
    assert v1_manifest not in cache_oids(mate)
    assert v2_cache <= cache_oids(mate)
    assert_cache_valid(mate)

    remote_url.view.write(object_key(bad), good_bytes)
    cli("pull")
    make_dataset(tmp_path / "expected", "1")
    assert tree_state(mate, *TRACKED) == tree_state(tmp_path / "expected", *TRACKED)
    assert_cache_valid(mate)


def test_a_missing_remote_object_fails_pull_naming_it(
    tracked: Path,
    remote_url: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")
    lost = manifest_children(tracked, pointer_oid(tracked, "data.repro"))["sub/c.txt"]
    remote_url.view.delete(object_key(lost))

    mate = clone(tracked, tmp_path / "mate")
    monkeypatch.chdir(mate)
    result = cli("pull", expect=2)
    assert_one_error_line(result, lost)
    assert "missing" in result.stderr
    assert not (mate / "data").exists()
    assert not (mate / "model.bin").exists()  # two-phase: nothing is checked out
    assert lost not in cache_oids(mate)
    assert_cache_valid(mate)


def test_an_object_deleted_from_the_remote_is_uploaded_again_by_the_next_push(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")
    lost = manifest_children(tracked, pointer_oid(tracked, "data.repro"))["a.csv"]
    remote_url.view.delete(object_key(lost))

    doc = json.loads(cli("push", "--json").stdout)
    assert (doc["transferred"], doc["already_there"]) == (1, 5)
    assert lost in remote_oids(remote_url.view)
    assert_remote_valid(remote_url.view)


# --- push order and local damage (D4, E) ----------------------------------------------------


def test_files_are_uploaded_before_the_manifest_that_lists_them(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    manifest = pointer_oid(tracked, "data.repro")
    children = set(manifest_children(tracked, manifest).values())

    with remote_url.view.upload_order() as order:
        cli("push", "-j", "2")

    uploaded = [key.rsplit("/", 2)[-2] + key.rsplit("/", 1)[-1] for key in order]
    assert set(uploaded) == cache_oids(tracked), order
    position = uploaded.index(manifest)
    assert all(uploaded.index(child) < position for child in children), uploaded


def test_push_never_uploads_a_manifest_whose_files_are_missing_from_the_cache(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    manifest = pointer_oid(tracked, "data.repro")
    gone = manifest_children(tracked, manifest)["b.csv"]
    cache_path(tracked, gone).unlink()

    result = cli("push", expect=2)
    assert_one_error_line(result, gone)
    on_remote = remote_oids(remote_url.view)
    assert manifest not in on_remote
    assert gone not in on_remote
    assert pointer_oid(tracked, "model.bin.repro") in on_remote  # the rest still travelled
    assert_remote_valid(remote_url.view)


def test_a_corrupt_cache_object_is_never_uploaded(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    manifest = pointer_oid(tracked, "data.repro")
    damaged = manifest_children(tracked, manifest)["a.csv"]
    overwrite(cache_path(tracked, damaged), b"bit rot\n")

    result = cli("push", expect=2)
    assert_one_error_line(result, damaged)
    assert "corrupt" in result.stderr
    on_remote = remote_oids(remote_url.view)
    assert damaged not in on_remote
    assert manifest not in on_remote
    assert_remote_valid(remote_url.view)


# --- configuration and connection errors (D7) -----------------------------------------------


@pytest.mark.parametrize(
    "command", [("push",), ("pull",), ("status", "--remote")], ids=["push", "pull", "status"]
)
def test_an_unreachable_s3_endpoint_is_one_error_line_and_exit_2(
    tracked: Path, aws_env: None, command: tuple[str, ...], cli: Cli
) -> None:
    dead = f"http://127.0.0.1:{unused_port()}"
    cli("remote", "add", "-d", "origin", "s3://repro-bucket/store", "-o", f"endpoint_url={dead}")
    fail_fast(tracked, "origin")
    if command[0] == "pull":  # with a full cache it need not ask the remote
        shutil.rmtree(tracked / ".repro" / "cache")
    before = tree_state(tracked, *TRACKED)

    result = cli(*command, expect=2)
    assert_one_error_line(result, "origin")
    assert tree_state(tracked, *TRACKED) == before


@pytest.mark.parametrize(
    "command",
    [("push",), ("fetch",), ("pull",), ("status", "--remote"), ("push", "--all-tags")],
    ids=["push", "fetch", "pull", "status", "push-all-tags"],
)
def test_an_unknown_remote_name_is_exit_2_naming_it(
    tracked: Path, command: tuple[str, ...], cli: Cli, tmp_path: Path
) -> None:
    cli("remote", "add", "-d", "origin", str(tmp_path / "store"))
    result = cli(*command, "-r", "nope", expect=2)
    assert_one_error_line(result, "'nope'")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "command",
    [("push",), ("fetch",), ("pull",), ("status", "--remote")],
    ids=["push", "fetch", "pull", "status"],
)
def test_no_default_remote_is_exit_2_with_a_hint(
    tracked: Path, command: tuple[str, ...], cli: Cli, tmp_path: Path
) -> None:
    cli("remote", "add", "elsewhere", str(tmp_path / "store"))  # configured, not the default
    result = cli(*command, expect=2)
    assert_one_error_line(result, "default remote")
    assert "hint: " in result.stderr and "-r NAME" in result.stderr


def test_an_unknown_protocol_is_exit_2(tracked: Path, cli: Cli) -> None:
    result = cli("remote", "add", "-d", "origin", "nosuchproto://bucket/x", expect=2)
    assert_one_error_line(result, "nosuchproto")
    assert "origin" not in cli("remote", "list").stdout

    # The same URL written by hand into the config fails at use, just as clearly.
    edit_local_config(
        tracked,
        lambda data: data.update(
            core={"remote": "origin"}, remotes={"origin": {"url": "nosuchproto://bucket/x"}}
        ),
    )
    for command in (("push",), ("pull",), ("status", "--remote")):
        assert_one_error_line(cli(*command, expect=2), "nosuchproto")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_a_protocol_whose_package_is_missing_names_the_package_to_install(
    tracked: Path, cli: Cli
) -> None:
    cli("remote", "add", "-d", "gcs", "gs://bucket/project")
    for command in (("push",), ("pull",), ("status", "--remote")):
        result = cli(*command, expect=2)
        assert_one_error_line(result, "gcsfs")
        assert "hint: pip install gcsfs" in result.stderr


# --- the server dies mid-push (D1) ----------------------------------------------------------


class DyingMotoServer:
    """moto's ThreadedMotoServer, made to die after serving `die_after` object requests of
    one HTTP method (PUT: uploads, GET: downloads).

    Death is abrupt: the listening socket closes (new connections are refused) and every
    request on a kept-alive connection has its connection dropped without an answer. Its
    data lives on in the process, so a server started again on the same port has it.
    """

    def __init__(self, port: int = 0, *, die_after: int | None = None, method: str = "PUT") -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from moto.server import ThreadedMotoServer

        owner = self

        class Server(ThreadedMotoServer):
            def _server_entry(self) -> None:  # moto's own, with the app wrapped
                from werkzeug.serving import make_server

                app = DomainDispatcherApplication(create_backend_app)
                self._server = make_server(
                    self._ip_address,
                    self._port,
                    owner._wrap(app),
                    True,
                    request_handler=MotoRequestHandler,
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        quiet_werkzeug()
        self.die_after = die_after
        self.method = method
        self.served = 0
        self.dead = threading.Event()
        self.gone = threading.Event()
        self._lock = threading.Lock()
        self._server = Server(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _wrap(self, app: Any) -> Any:
        def dying(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if self.dead.is_set():
                connection = environ.get("werkzeug.socket")
                if connection is not None:
                    connection.shutdown(socket.SHUT_RDWR)
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
            response: Iterable[bytes] = app(environ, start_response)
            if environ["REQUEST_METHOD"] == self.method and "/objects/" in environ["PATH_INFO"]:
                with self._lock:
                    self.served += 1
                    due = self.die_after is not None and self.served >= self.die_after
                    if due and not self.dead.is_set():
                        self.dead.set()
                        threading.Thread(target=self.stop, daemon=True).start()
            return response

        return dying

    def stop(self) -> None:
        """Stop serving and release the port."""
        with self._lock:
            if self.gone.is_set():
                return
            self.gone.set()
        self._server.stop()
        assert self._server._server is not None
        self._server._server.server_close()


FILES = 16


def many_small_files(repo: Path, cli: Cli) -> int:
    """Track FILES small files in data/; return how many objects that makes (files + manifest)."""
    make_tree(repo, {f"data/f{i:02}.txt": f"small object {i}\n" for i in range(FILES)})
    cli("add", "data")
    commit(repo, "data")
    return len(cache_oids(repo))


def test_a_push_cut_off_by_the_server_dying_fails_and_a_rerun_completes(
    repo: Path, aws_env: None, cli: Cli
) -> None:
    objects = many_small_files(repo, cli)
    first = DyingMotoServer(die_after=12, method="PUT")
    bucket = new_bucket(s3_client(first.endpoint))
    try:
        cli("remote", "add", "-d", "origin", f"s3://{bucket}/store",
            "-o", f"endpoint_url={first.endpoint}")  # fmt: skip
        fail_fast(repo, "origin")
        result = cli("push", "-j", "2", expect=2)
    finally:
        first.stop()
    assert first.dead.is_set()
    line = assert_one_error_line(result, "origin")
    match = re.search(r"pushed (\d+) object\(s\), (\d+) failed", line)
    assert match, line

    second = DyingMotoServer(port=first.port)  # back up: same port, same data
    try:
        view = S3View(s3_client(second.endpoint), bucket, "store")
        survived = remote_oids(view)
        assert 12 <= len(survived) < objects
        assert int(match[1]) == len(survived)  # the summary is honest
        assert int(match[1]) + int(match[2]) == objects
        assert pointer_oid(repo, "data.repro") not in survived  # no manifest without its files
        assert_remote_valid(view)

        doc = json.loads(cli("push", "-j", "2", "--json").stdout)
        assert doc["transferred"] == objects - len(survived)
        assert doc["already_there"] == len(survived)
        assert remote_oids(view) == cache_oids(repo)
        assert_remote_valid(view)
    finally:
        second.stop()


def test_a_pull_cut_off_by_the_server_dying_changes_no_workspace_file_and_a_rerun_completes(
    repo: Path, aws_env: None, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = DyingMotoServer(die_after=12, method="GET")
    try:
        bucket = new_bucket(s3_client(first.endpoint))
        cli("remote", "add", "-d", "origin", f"s3://{bucket}/store",
            "-o", f"endpoint_url={first.endpoint}")  # fmt: skip
        git(repo, "commit", "-q", "-m", "remote", ".repro/config.yaml")
        objects = many_small_files(repo, cli)
        cli("push")
        expected = tree_state(repo, "data")

        mate = clone(repo, tmp_path / "mate")
        monkeypatch.chdir(mate)
        fail_fast(mate, "origin")
        result = cli("pull", "-j", "2", expect=2)
    finally:
        first.stop()
    assert first.dead.is_set()
    assert_one_error_line(result, "origin")
    assert not (mate / "data").exists()  # two-phase: nothing half checked out
    fetched = cache_oids(mate)
    assert 0 < len(fetched) < objects
    assert pointer_oid(mate, "data.repro") not in fetched  # no manifest without its files
    assert_cache_valid(mate)

    second = DyingMotoServer(port=first.port)
    try:
        doc = json.loads(cli("pull", "-j", "2", "--json").stdout)
    finally:
        second.stop()
    assert doc["transferred"] == objects - len(fetched)
    assert tree_state(mate, "data") == expected
    assert cache_oids(mate) == cache_oids(repo)
    assert_cache_valid(mate)


# --- credentials (I1–I3) --------------------------------------------------------------------


def tracked_files_mention(repo: Path, text: str) -> str:
    """Lines of tracked or not-ignored files (and of the index and git diff) containing `text`."""
    found = subprocess.run(
        ["git", "grep", "-n", "--untracked", "-F", text], cwd=repo, capture_output=True, text=True
    ).stdout
    found += subprocess.run(
        ["git", "grep", "-n", "--cached", "-F", text], cwd=repo, capture_output=True, text=True
    ).stdout
    return found


@pytest.mark.parametrize(
    "args",
    [
        ("remote", "add", "s3x", "s3://b/p", "-o", f"secret_access_key={SENTINEL}"),
        ("remote", "add", "s3x", "s3://b/p", "-o", f"access_key_id={SENTINEL}"),
        ("remote", "add", "s3x", "s3://b/p", "-o", f"session_token={SENTINEL}"),
        ("remote", "add", "s3x", "s3://b/p", "-o", f"password={SENTINEL}"),
        ("remote", "add", "web", f"https://user:{SENTINEL}@example.com/store"),
        ("remote", "modify", "origin", "secret_access_key", SENTINEL),
        ("remote", "modify", "origin", "url", f"sftp://user:{SENTINEL}@example.com/store"),
    ],
    ids=["secret", "key-id", "token", "password", "url-password", "modify", "modify-url"],
)
def test_a_credential_is_refused_in_the_tracked_config_and_written_nowhere(
    repo: Path, args: tuple[str, ...], cli: Cli, tmp_path: Path
) -> None:
    cli("remote", "add", "origin", str(tmp_path / "store"))
    tracked_config = (repo / ".repro/config.yaml").read_bytes()

    result = cli(*args, expect=2)
    assert_one_error_line(result)
    assert "--local" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert (repo / ".repro/config.yaml").read_bytes() == tracked_config
    assert not (repo / ".repro/config.local.yaml").exists()
    assert tracked_files_mention(repo, SENTINEL) == ""
    assert SENTINEL not in git(repo, "diff") + git(repo, "diff", "--cached")
    assert [line.split("\t")[0] for line in cli("remote", "list").stdout.splitlines()] == ["origin"]


def test_a_credential_with_local_stays_private_and_is_never_printed(
    tracked: Path, s3_url: S3Location, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", SENTINEL + "-env")  # the environment's, too
    cli(
        "remote", "add", "-d", "--local", "s3x", s3_url.url,
        "-o", f"endpoint_url={s3_url.endpoint}",
        "-o", "access_key_id=AKIAREPROTEST",
        "-o", f"secret_access_key={SENTINEL}",
    )  # fmt: skip
    local = tracked / ".repro/config.local.yaml"
    assert SENTINEL in local.read_text()
    assert stat.S_IMODE(os.stat(local).st_mode) == 0o600
    git(tracked, "check-ignore", "-q", ".repro/config.local.yaml")  # exit 0: ignored
    assert tracked_files_mention(tracked, "SENTINEL") == ""
    assert git(tracked, "status", "--porcelain") == ""

    outputs: list[Result] = [
        cli("remote", "list"),
        cli("remote", "list", "--json"),
        cli("status", "--remote", "-v"),
        cli("push", "-v"),
        cli("push", "--json"),
    ]
    listed = json.loads(outputs[1].stdout)["remotes"][0]
    assert listed["options"]["secret_access_key"] == "***"
    assert listed["options"]["endpoint_url"] == s3_url.endpoint
    assert len(remote_oids(s3_url.view)) == 6  # the push really used those credentials

    cli("remote", "modify", "--local", "s3x", "endpoint_url", f"http://127.0.0.1:{unused_port()}")
    fail_fast(tracked, "s3x")
    (tracked / "model.bin").write_bytes(b"v2")
    cli("add", "model.bin")
    outputs += [cli("push", "-v", expect=2), cli("status", "--remote", expect=2)]
    assert_one_error_line(outputs[-1])
    outputs.append(traced("push", "-vv"))  # tracebacks, on request, are no leak either

    for result in outputs:
        assert "SENTINEL" not in result.stdout + result.stderr, result
    assert tracked_files_mention(tracked, "SENTINEL") == ""


def test_a_password_in_a_remote_url_never_appears_in_errors(tracked: Path, cli: Cli) -> None:
    # ftp:// needs no extra package; nothing listens on the port.
    url = f"ftp://user:{SENTINEL}@127.0.0.1:{unused_port()}/store"
    cli("remote", "add", "--local", "-d", "files", url)
    outputs = [cli("remote", "list"), cli("remote", "list", "--json")]
    assert "ftp://user:***@127.0.0.1" in outputs[0].stdout
    shutil.rmtree(tracked / ".repro" / "cache")  # so that pull must reach the remote
    for command in (("push",), ("pull", "-v"), ("status", "--remote"), ("checkout",)):
        result = cli(*command, expect=2)
        assert_one_error_line(result, "files")
        outputs.append(result)
    outputs.append(traced("fetch", "-vv"))
    for result in outputs:
        assert "SENTINEL" not in result.stdout + result.stderr, result


def traced(*args: str) -> Result:
    """Run `repro ARGS` that must fail with exit 2, allowing the traceback `-vv` asks for."""
    from typer.testing import CliRunner

    from reprocli.cli.app import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" in result.stderr
    return Result(result.exit_code, result.stdout, result.stderr)
