"""Remote options in the tracked config are a stranger's input (security issue, holes 1, 4, 6).

A cloned repository's `.repro/config.yaml` is written by whoever wrote the repository. Every
test here plays the victim: the attacker commits a hostile remote to `upstream`, the victim
`git clone`s it to `S/repo` and runs the commands that open a remote. The decoys are a file
outside the repository (`S/outside/victim.txt`), `HOME/.bashrc` and the clone's `.git/config`;
the sandbox witnesses of tests/reliability/test_confinement.py check that nothing outside the
repository or under `.git/` changes.

- Hole 4: a wrapper or archive protocol (`simplecache://`, `dir://`…, with `target_protocol:
  zip` and `target_options: {fo: DECOY, mode: w}`) truncated any file to an empty ZIP.
- Hole 1: `proxy_command` (sshfs) runs a command when the remote is opened.
- Hole 6: a local redefinition of a tracked remote inherited the tracked `endpoint_url`.
"""

from __future__ import annotations

import contextlib
import gc
import http.server
import importlib
import inspect
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fsspec.registry import known_implementations
from fsspec.spec import AbstractFileSystem

from reprocli.core import config
from reprocli.errors import InvalidFileError
from tests.builders import git
from tests.reliability.test_confinement import (
    Invoke,
    Outcome,
    Sandbox,
    confined,
    make_invoke,
    make_sandbox,
)
from tests.remote import conftest as remote_fixtures
from tests.remote.conftest import fake_aws_env, new_bucket, s3_client

# Every command that opens the default remote (checkout does when objects are missing).
REMOTE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("pull",),
    ("fetch",),
    ("checkout",),
    ("status", "--remote"),
    ("fsck", "-r", "origin"),
    ("push",),
    ("gc", "--dry", "-r", "origin"),
    ("doctor",),
)
CONFIG = ".repro/config.yaml"


@pytest.fixture(name="invoke")
def _invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    return make_invoke(monkeypatch)


def config_text(remote: dict[str, Any], name: str = "origin") -> str:
    """A tracked config whose default remote `name` is `remote`."""
    doc = {"version": 1, "core": {"autostage": True, "remote": name}, "remotes": {name: remote}}
    return yaml.safe_dump(doc, sort_keys=False)


Victim = Callable[[dict[str, Any]], Sandbox]


_TEMPLATES: list[Path] = []


def _upstream_template(base: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The attacker's project before the attack (built once per worker, then copied): model.bin
    added and pushed to a folder remote, everything committed."""
    if _TEMPLATES:
        return _TEMPLATES[0]
    upstream = base / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    with monkeypatch.context() as patch:
        patch.chdir(upstream)
        assert invoke("init").exit_code == 0
        (upstream / "model.bin").write_bytes(b"model v1\n")
        assert invoke("add", "model.bin").exit_code == 0
        assert invoke("remote", "add", "-d", "store", str(base / "remote")).exit_code == 0
        assert invoke("push").exit_code == 0
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "data")
    gc.collect()  # the stat cache's database closes now, before it is copied
    _TEMPLATES.append(upstream)
    return upstream


@pytest.fixture
def victim(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> Victim:
    """The attacker's repository with a hostile remote committed as the default, `git clone`d
    to `S/repo` (the working directory from then on)."""
    template = _upstream_template(tmp_path_factory.mktemp("template"), invoke, monkeypatch)
    upstream = tmp_path / "upstream"
    shutil.copytree(template, upstream, symlinks=True)

    def build(remote: dict[str, Any]) -> Sandbox:
        (upstream / CONFIG).write_text(config_text(remote))
        git(upstream, "commit", "-q", "-a", "-m", "hostile remote")
        repo = tmp_path / "repo"
        git(tmp_path, "clone", "-q", str(upstream), str(repo))
        monkeypatch.chdir(repo)
        return make_sandbox(tmp_path, repo)

    return build


def decoys(sandbox: Sandbox) -> list[Path]:
    """The files an attack aims at: outside the repository, in HOME, and the clone's Git config."""
    return [
        sandbox.root / "outside" / "victim.txt",
        sandbox.root / "home" / ".bashrc",
        sandbox.repo / ".git" / "config",
    ]


def assert_refused(outcome: Outcome, *names: str) -> None:
    """Exit 2, one `error:` line naming the tracked config and each of `names`, then hints;
    doctor reports it as a problem (exit 1) instead."""
    assert outcome.clean, outcome
    if outcome.args[-1] == "doctor":
        assert outcome.exit_code == 1, outcome
        problem = [line for line in outcome.stderr.splitlines() if CONFIG in line]
        assert problem and all(n in problem[0] for n in names), outcome
        return
    assert outcome.exit_code == 2, outcome
    lines = outcome.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and CONFIG in lines[0], outcome
    assert all(n in lines[0] for n in names), (names, outcome.stderr)
    assert all(line.startswith("hint: ") for line in lines[1:]), outcome


def write_config(sandbox: Sandbox, remote: dict[str, Any]) -> None:
    """The attacker's next commit, as the victim's `git pull` would bring it in."""
    (sandbox.repo / CONFIG).write_text(config_text(remote))


def snapshot(paths: list[Path]) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in paths}


# --- what fsspec knows, derived rather than listed ------------------------------------------------


def _init_parameters(cls: type) -> set[str]:
    """Every keyword the `__init__` of a class and of its bases takes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        with contextlib.suppress(TypeError, ValueError):
            names |= {
                name
                for name, p in inspect.signature(init).parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"
            }
    return names


def _fsspec_classes() -> dict[str, type]:
    """protocol -> class, for each protocol whose class is fsspec's own or s3fs's and imports
    here (third-party packages are not imported for this)."""
    found: dict[str, type] = {}
    for protocol, entry in sorted(known_implementations.items()):
        module, _, name = str(entry["class"]).rpartition(".")
        if not module.startswith(("fsspec.", "s3fs")):
            continue
        with contextlib.suppress(ImportError):
            found[protocol] = getattr(importlib.import_module(module), name)
    return found


CLASSES = _fsspec_classes()
KNOWN_PROTOCOLS = sorted(set(known_implementations) | set(CLASSES))
# A wrapper or archive protocol: its file system is built from another one (`target_protocol`,
# `fs`) or from a file (`fo`), both of which the options name.
WRAPPERS = sorted(
    p for p, cls in CLASSES.items() if _init_parameters(cls) & {"target_protocol", "fs", "fo"}
)
# The option families the issue names, plus every keyword of every file system class above.
ISSUE_FAMILIES = (
    "proxy_command", "proxy_jump", "target_protocol", "target_options", "fo", "cache_storage",
    "client_keys", "known_hosts", "key_filename", "pkey", "sock", "config", "agent_path",
    "profile", "protocol", "client_kwargs", "config_kwargs", "headers", "kerb_ticket", "anon",
    "token", "credentials", "account_key", "account_host", "sas_token", "connection_string",
    "password", "passphrase", "access_key_id", "secret_access_key", "session_token",
    "endpoint_url",
)  # fmt: skip
OPTION_NAMES = sorted(set(ISSUE_FAMILIES).union(*map(_init_parameters, CLASSES.values())))


def forbidden_options(protocol: str) -> list[str]:
    """The generated option names a tracked remote of `protocol` may not set."""
    allowed = config.TRACKED_COMMON | config.TRACKED_REMOTES[protocol]
    return [name for name in OPTION_NAMES if name not in allowed]


def url_for(protocol: str) -> str:
    """A URL of an allowed protocol (never opened: the config is refused first)."""
    return "../remote" if protocol == "file" else f"{protocol}://127.0.0.1/store"


def hostile(name: str, decoy: Path, marker: Path) -> Any:
    """A value for option `name` that would do harm if it reached a file system."""
    if name == "proxy_command":
        return ["sh", "-c", f"touch {marker}"]
    if name == "target_protocol":
        return "zip"
    if name == "target_options":
        return {"fo": str(decoy), "mode": "w"}
    return str(decoy)  # a path where a path is wanted, a string elsewhere


def wrapper_attack(decoy: Path) -> dict[str, Any]:
    """Options that truncate `decoy` to an empty ZIP through any wrapper protocol."""
    return {"target_protocol": "zip", "target_options": {"fo": str(decoy), "mode": "w"}}


def test_the_generated_tables_cover_what_the_issue_names() -> None:
    assert {"simplecache", "filecache", "blockcache", "dir", "zip", "tar"} <= set(WRAPPERS)
    assert {"s3", "file", "memory", "http", "zip", "simplecache"} <= set(KNOWN_PROTOCOLS)
    assert {"target_protocol", "target_options", "fo", "cache_storage"} <= set(OPTION_NAMES)
    assert {"client_kwargs", "config_kwargs", "use_ssl", "s3_additional_kwargs"} <= set(
        forbidden_options("s3")
    )
    assert "endpoint_url" not in forbidden_options("s3")
    assert "endpoint_url" in forbidden_options("gs")
    print(
        f"{len(WRAPPERS)} wrapper protocols, {len(KNOWN_PROTOCOLS)} known protocols, "
        f"{len(OPTION_NAMES)} option names × {len(config.TRACKED_REMOTES)} allowed protocols"
    )


# --- hole 4: a wrapper protocol truncates a file ---------------------------------------------


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_a_tracked_wrapper_protocol_never_truncates_a_file_outside(
    victim: Victim, invoke: Invoke, wrapper: str, tmp_path: Path
) -> None:
    decoy = ["outside/victim.txt", "home/.bashrc"][WRAPPERS.index(wrapper) % 2]
    target = tmp_path / decoy  # made by the sandbox, committed as the attack's target now
    sandbox = victim({"url": f"{wrapper}://store", **wrapper_attack(target)})
    before = snapshot(decoys(sandbox))
    for command in REMOTE_COMMANDS:
        with confined(sandbox):
            outcome = invoke(*command)
        assert snapshot(decoys(sandbox)) == before, outcome
        assert_refused(outcome, repr(wrapper))


def test_a_tracked_wrapper_truncating_the_clones_git_config_is_refused(
    victim: Victim, invoke: Invoke, tmp_path: Path
) -> None:
    sandbox = victim({"url": "simplecache://store", **wrapper_attack(Path(".git/config"))})
    before = snapshot(decoys(sandbox))
    for command in REMOTE_COMMANDS:
        with confined(sandbox):
            assert_refused(invoke(*command), "'simplecache'")
    assert snapshot(decoys(sandbox)) == before


def test_every_protocol_but_the_allowed_ones_is_refused_in_the_tracked_config(
    victim: Victim, invoke: Invoke, tmp_path: Path
) -> None:
    sandbox = victim({"url": "../remote"})
    targets = decoys(sandbox)
    before = snapshot(targets)
    others = [p for p in KNOWN_PROTOCOLS if p not in config.TRACKED_REMOTES]
    cases = [(f"{p}://store", repr(p)) for p in others]
    cases += [(f"{p.upper()}://store", repr(p.upper())) for p in config.TRACKED_REMOTES]
    cases += [(f"{p}:store", repr(p)) for p in others if p.isalnum()]  # a scheme, no '//'
    cases += [(f"{p}::s3://bucket/store", "chained") for p in WRAPPERS]
    cases += [("s3:bucket/store", "s3://"), ("data:,store", "'data'")]
    with confined(sandbox):
        for i, (url, name) in enumerate(cases):
            write_config(sandbox, {"url": url, **wrapper_attack(targets[i % len(targets)])})
            assert_refused(invoke(*REMOTE_COMMANDS[i % len(REMOTE_COMMANDS)]), name)
    assert snapshot(targets) == before
    assert len(cases) > 100


# --- hole 1 (and the families of hole 4): options outside the allowlist ----------------------


SHARE = 3  # each protocol runs every third name through the CLI: each name runs 4 times


@pytest.mark.parametrize("protocol", list(config.TRACKED_REMOTES))
def test_an_option_outside_the_allowlist_is_refused_by_every_command(
    victim: Victim, invoke: Invoke, protocol: str, tmp_path: Path
) -> None:
    """Through the CLI: every generated option name, with a harmful value, under each allowed
    protocol in turn and each command in turn (the whole product runs in-process below)."""
    marker = tmp_path / "outside" / "COMMAND-RAN"
    sandbox = victim({"url": url_for(protocol)})
    targets = decoys(sandbox)
    before = snapshot(targets)
    offset = list(config.TRACKED_REMOTES).index(protocol)
    names = [n for i, n in enumerate(OPTION_NAMES) if i % SHARE == offset % SHARE]
    names = [n for n in names if n in forbidden_options(protocol)]
    with confined(sandbox):
        for i, name in enumerate(names):
            value = hostile(name, targets[i % len(targets)], marker)
            write_config(sandbox, {"url": url_for(protocol), name: value})
            command = REMOTE_COMMANDS[(i + offset) % len(REMOTE_COMMANDS)]
            assert_refused(invoke(*command), repr(name))
    assert not marker.exists()
    assert snapshot(targets) == before
    assert len(names) >= 30


def test_the_allowlist_is_exact_for_every_protocol_option_and_type(tmp_path: Path) -> None:
    """In-process, the whole product: each forbidden option and each badly typed allowed one
    is refused for each allowed protocol (and accepted in the local config); the allowed
    ones, well typed, all load together."""
    repro_dir = tmp_path / ".repro"
    repro_dir.mkdir()
    good: dict[type, Any] = {str: "eu-west-1", bool: True, int: 22}
    bad: dict[type, Any] = {str: ["x"], bool: "true", int: "22"}
    refused = 0
    for protocol, allowed in config.TRACKED_REMOTES.items():
        spec = {"url": url_for(protocol), "jobs": 4, **{k: good[t] for k, t in allowed.items()}}
        (repro_dir / "config.yaml").write_text(config_text(spec))
        assert config.load(repro_dir).remotes["origin"] == spec
        variants: list[tuple[str, Any]] = [(n, "x") for n in forbidden_options(protocol)]
        variants += [(key, bad[kind]) for key, kind in allowed.items()]
        variants += [("jobs", 0), ("jobs", 10_000), ("jobs", True)]
        for key, value in variants:
            doc = {"version": 1, "remotes": {"origin": {**spec, key: value}}}
            with pytest.raises(InvalidFileError, match=f"'{key}'"):
                config.check(doc, repro_dir / "config.yaml", "repo")  # what read_level runs
            config.check(doc, repro_dir / "config.local.yaml", "local")  # allowed there
            refused += 1
    assert refused > 500


class FakeSSHFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Stands in for sshfs, which is not installed: like asyncssh, it runs `proxy_command` to
    reach the host as soon as the file system is created."""

    protocol = ("ssh", "sftp")
    cachable = False

    def __init__(self, host: str = "", proxy_command: list[str] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if proxy_command:
            subprocess.run(proxy_command, check=False)

    @classmethod
    def _get_kwargs_from_urls(cls, path: str) -> dict[str, Any]:
        return {"host": urlsplit(path).hostname or ""}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        raise FileNotFoundError(path)


def test_a_tracked_proxy_command_never_runs_and_never_reaches_the_file_system(
    victim: Victim, invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from reprocli.core import remotes

    registry = sys.modules["fsspec.registry"]._registry
    monkeypatch.setitem(registry, "ssh", FakeSSHFileSystem)
    monkeypatch.setitem(registry, "sftp", FakeSSHFileSystem)
    seen: list[dict[str, Any]] = []
    real = remotes.storage_options

    def recording(protocol: str, options: dict[str, Any], *, jobs: int) -> dict[str, Any]:
        seen.append(dict(options))
        return real(protocol, options, jobs=jobs)

    monkeypatch.setattr(remotes, "storage_options", recording)
    marker = tmp_path / "outside" / "PROXY-RAN"
    command = ["sh", "-c", f"touch {marker}"]
    sandbox = victim({"url": "ssh://127.0.0.1/store", "proxy_command": command})
    for args in REMOTE_COMMANDS:
        with confined(sandbox):  # the marker would be a file created outside the repository
            outcome = invoke(*args)
        assert not marker.exists(), outcome
        assert_refused(outcome, "'proxy_command'")
    assert seen == []

    # The control: the user's own local config may use it, and then the fake does run it.
    write_config(sandbox, {"url": str(tmp_path / "remote")})
    local = {"remotes": {"mine": {"url": "ssh://127.0.0.1/store", "proxy_command": command}}}
    (sandbox.repo / ".repro" / "config.local.yaml").write_text(yaml.safe_dump(local))
    invoke("fetch", "-r", "mine")
    assert marker.exists()
    assert [options.get("proxy_command") for options in seen] == [command]


def test_open_remote_refuses_what_came_from_the_tracked_config(tmp_path: Path) -> None:
    """Defence in depth below the config check: a spec whose keys are marked as tracked."""
    from reprocli.core.remotes import RemoteSpec, open_remote
    from reprocli.errors import RemoteError

    decoy = tmp_path / "decoy.txt"
    decoy.write_text("decoy\n")
    attack = wrapper_attack(decoy)
    for spec in (
        RemoteSpec("w", "simplecache://store", attack, frozenset({"url", *attack})),
        RemoteSpec("w", "s3://b/p", attack, frozenset(attack)),
        RemoteSpec("w", "s3://b/p", {"profile": "prod"}, frozenset({"url", "profile"})),
    ):
        with pytest.raises(RemoteError, match="tracked config"):
            open_remote(spec, jobs=1, base=tmp_path)
    assert decoy.read_text() == "decoy\n"
    local = RemoteSpec("m", "memory://store", {"skip_instance_cache": True}, frozenset({"url"}))
    assert open_remote(local, jobs=1, base=tmp_path).url == "memory://store"


# --- hole 6: a local redefinition inherits the tracked endpoint ------------------------------


@dataclass
class Recorder:
    """An HTTP server that records every request and denies it (an attacker's endpoint)."""

    url: str = ""
    requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def recording_server() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recorder.requests.append(f"{self.command} {self.path} {dict(self.headers)}")
            body = b"<Error><Code>AccessDenied</Code><Message>recorded</Message></Error>"
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


# The session's moto server on a loopback port, requested by name (tests/remote/conftest.py).
s3_server = remote_fixtures.s3_server


TOKEN = "SENTINEL-session-token-6a1f"


def tracked_s3(url: str, endpoint: str) -> dict[str, Any]:
    """A tracked S3 remote setting every option the allowlist lets a stranger set."""
    values = {"endpoint_url": endpoint, "region": "eu-north-1", "requester_pays": True}
    assert set(values) == set(config.TRACKED_REMOTES["s3"])
    return {"url": url, "jobs": 3, **values}


@pytest.mark.parametrize("user_endpoint", ["environment", "local config"])
def test_a_local_redefinition_sends_nothing_to_the_tracked_endpoint(
    victim: Victim,
    invoke: Invoke,
    s3_server: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    user_endpoint: str,
) -> None:
    fake_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    client = s3_client(s3_server)
    bucket = new_bucket(client)
    with recording_server() as attacker:
        sandbox = victim(tracked_s3(f"s3://{bucket}/team", attacker.url))
        repo = sandbox.repo

        def ok(*args: str) -> Outcome:
            outcome = invoke(*args)
            assert outcome.exit_code == 0, outcome
            return outcome

        # The user follows the docs: their own `origin`, in the local config.
        ok("remote", "modify", "--local", "origin", "url", f"s3://{bucket}/mine")
        if user_endpoint == "environment":
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
        else:
            ok("remote", "modify", "--local", "origin", "endpoint_url", s3_server)

        (repo / "mine.bin").write_bytes(b"the user's own data\n")
        ok("add", "mine.bin")
        outcomes = [invoke(*args) for args in (("push", "mine.bin"), ("status", "--remote"))]
        outcomes += [invoke("fsck", "-r", "origin"), invoke("doctor")]
        shutil.rmtree(repo / ".repro" / "cache")
        (repo / "mine.bin").unlink()
        outcomes.append(invoke("pull", "mine.bin"))
    assert attacker.requests == []  # not one request, so no signature and no session token
    assert [o.exit_code for o in outcomes] == [0] * 5, outcomes
    assert (repo / "mine.bin").read_bytes() == b"the user's own data\n"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys and all(key.startswith("mine/objects/") for key in keys)

    from reprocli.project import Project

    merged = Project.discover(repo).config.remotes["origin"]
    assert merged == {"url": f"s3://{bucket}/mine"} | (
        {} if user_endpoint == "environment" else {"endpoint_url": s3_server}
    )
    listed = ok("--json", "remote", "list").stdout
    assert attacker.url not in listed and '"repo"' not in listed


def test_the_allowed_tracked_s3_options_still_push_and_pull(
    victim: Victim, invoke: Invoke, s3_server: str, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    fake_aws_env(monkeypatch, tmp_path)
    client = s3_client(s3_server)
    bucket = new_bucket(client)
    spec = tracked_s3(f"s3://{bucket}/team", s3_server) | {"region": "us-east-1"}
    sandbox = victim(spec)
    (sandbox.repo / "mine.bin").write_bytes(b"team data\n")
    for args in (("add", "mine.bin"), ("push", "mine.bin"), ("status", "--remote", "mine.bin")):
        assert invoke(*args).exit_code == 0, args
    shutil.rmtree(sandbox.repo / ".repro" / "cache")
    assert invoke("pull", "mine.bin").exit_code == 0
    assert (sandbox.repo / "mine.bin").read_bytes() == b"team data\n"
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] > 0
