"""Credentials never leak, and only `repro run` runs a repository's code (RELIABILITY I1–I4, J1–J2).

I1 (building block 8): sentinel credentials sit in `.repro/config.local.yaml` (through
`repro remote modify --local`), in the environment (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
and in a URL's userinfo. Every command runs in every output mode (default, -q, -v, -vv,
--json), on its error path, and under a pseudo-terminal (`script -q`, where progress bars
draw); stdout, stderr, tracked files, every other file of the repository and `git diff` are
grepped for every sentinel. The S3 remote is a moto server on loopback (tests/remote).

J1: a stage whose command creates a marker file; every command but `repro run` leaves it
uncreated. J2: a clone plus `repro pull`/`checkout` installs no Git hook.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import git, make_tree
from tests.reliability.test_confinement import Invoke, Sandbox, make_invoke, make_sandbox
from tests.remote.conftest import (
    fail_fast,
    fake_aws_env,
    new_bucket,
    quiet_werkzeug,
    s3_client,
    unused_port,
)

PY = sys.executable
LOCAL_SECRET = "SENTINEL-local-7f3a91c4"
ENV_SECRET = "SENTINEL-env-secret-2b8e"
ENV_TOKEN = "SENTINEL-env-token-c51d"
URL_SECRET = "SENTINEL-url-9d04e7"
SENTINELS = (LOCAL_SECRET, ENV_SECRET, ENV_TOKEN, URL_SECRET)

TRAIN = """\
import pathlib
pathlib.Path("model.out").write_text("m")
pathlib.Path("metrics.json").write_text('{"acc": 0.5}')
"""
PIPELINE = """\
stages:
  train:
    cmd: {py} train.py
    deps: [data, train.py]
    params: [lr]
    outs: [model.out]
    metrics: [metrics.json]
"""


@pytest.fixture(name="invoke")
def _invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    return make_invoke(monkeypatch)


@pytest.fixture(name="sandbox")
def _sandbox(tmp_path: Path, repo: Path) -> Sandbox:
    return make_sandbox(tmp_path, repo)


@pytest.fixture(scope="module", name="s3_endpoint")
def _s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a loopback port for this module (as tests/remote does)."""
    quiet_werkzeug()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def leaks(text: str) -> list[str]:
    return [s for s in SENTINELS if s in text]


def repository_leaks(repo: Path) -> list[str]:
    """Sentinels in any file of the repository but the private config, in the index, or in
    `git diff` (staged or not)."""
    found = []
    private = repo / ".repro" / "config.local.yaml"
    for folder, _, names in os.walk(repo):
        for name in names:
            path = Path(folder) / name
            if path == private or path.is_symlink():
                continue
            data = path.read_bytes()
            found += [f"{path.relative_to(repo)}: {s}" for s in SENTINELS if s.encode() in data]
    for args in (("diff",), ("diff", "--cached"), ("grep", "--cached", "-I", "-e", "SENTINEL")):
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        found += [f"git {' '.join(args)}: {s}" for s in leaks(done.stdout)]
    return found


@pytest.fixture
def secret_project(
    repo: Path,
    invoke: Invoke,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Path:
    """Tracked data, a stage, an S3 remote with a local secret, env secrets, a URL password."""
    fake_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", ENV_TOKEN)
    bucket = new_bucket(s3_client(s3_endpoint))
    s3_server = s3_endpoint
    make_tree(repo, {"data/a.csv": "1\n", "data/sub/b.csv": "2\n", "model.bin": b"m1"})
    (repo / "params.yaml").write_text("lr: 0.1\n")
    (repo / "train.py").write_text(TRAIN)
    (repo / "repro.yaml").write_text(PIPELINE.format(py=shlex.quote(PY)))

    def ok(*args: str) -> None:
        outcome = invoke(*args)
        assert outcome.exit_code == 0, outcome

    ok("add", "data", "model.bin")
    ok("remote", "add", "-d", "s3", f"s3://{bucket}/store", "-o", f"endpoint_url={s3_server}")
    ok("remote", "modify", "--local", "s3", "access_key_id", "AKIAREPROTEST")
    ok("remote", "modify", "--local", "s3", "secret_access_key", LOCAL_SECRET)
    ok("remote", "add", "envs3", f"s3://{bucket}/env", "-o", f"endpoint_url={s3_server}")
    port = unused_port()
    ok("remote", "add", "--local", "web", f"ftp://user:{URL_SECRET}@127.0.0.1:{port}/store")
    ok("remote", "add", "--local", "dead", f"s3://{bucket}/dead")
    ok("remote", "modify", "--local", "dead", "endpoint_url", f"http://127.0.0.1:{port}")
    ok("remote", "modify", "--local", "dead", "secret_access_key", LOCAL_SECRET)
    fail_fast(repo, "dead")  # one attempt per call against the dead endpoint
    local = repo / ".repro" / "config.local.yaml"
    ok("run")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project with remotes")
    assert all(s in local.read_text() for s in (LOCAL_SECRET, URL_SECRET))
    assert repository_leaks(repo) == []
    return repo


# Every command (and the remote-reaching ones against each remote). (args, may fail)
COMMANDS: list[tuple[tuple[str, ...], bool]] = [
    (("status",), False),
    (("status", "--remote"), False),
    (("status", "--remote", "-r", "envs3"), False),
    (("add", "model.bin"), False),
    (("commit",), False),
    (("checkout",), False),
    (("diff",), False),
    (("log", "model.bin"), False),
    (("gc", "--dry"), False),
    (("fsck",), False),
    (("fsck", "-r", "s3"), False),
    (("doctor",), True),
    (("run", "--dry"), False),
    (("run",), False),
    (("dag",), False),
    (("push", "--run-cache"), False),
    (("push", "-r", "envs3"), False),
    (("fetch", "--run-cache"), False),
    (("pull",), False),
    (("pull", "-r", "envs3"), False),
    (("params", "diff"), False),
    (("metrics", "show"), False),
    (("metrics", "diff"), False),
    (("remote", "list"), False),
    (("remote", "default"), False),
    (("hooks", "install"), False),
    (("version",), False),
]
# The error path: unreachable endpoints, a refused password, a bad key.
ERRORS: list[tuple[str, ...]] = [
    ("push", "-r", "web"),
    ("pull", "-r", "web"),
    ("fetch", "-r", "dead", "--run-cache"),
    ("status", "--remote", "-r", "dead"),
    ("fsck", "-r", "web"),
    ("gc", "--dry", "-r", "dead"),
    ("remote", "add", "x", f"https://u:{URL_SECRET}@example.com/s"),
    ("remote", "add", "y", "s3://b/p", "-o", f"secret_access_key={LOCAL_SECRET}"),
    ("remote", "modify", "s3", "session_token", ENV_TOKEN),
]
MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "-q": ("-q",),
    "-v": ("-v",),
    "-vv": ("-vv",),
    "--json": ("--json",),
}
COUNTS: dict[str, int] = {}


def _sweep(invoke: Invoke, repo: Path, modes: list[str]) -> list[str]:
    problems = []
    for mode in modes:
        for args, may_fail in COMMANDS:
            outcome = invoke(*MODES[mode], *args)
            if outcome.exit_code not in (0, 1) and not may_fail:
                problems.append(f"unexpected failure: {outcome}")
            problems += [
                f"{mode} {' '.join(args)}: {s}" for s in leaks(outcome.stdout + outcome.stderr)
            ]
            COUNTS["runs"] = COUNTS.get("runs", 0) + 1
        for args in ERRORS:
            outcome = invoke(*MODES[mode], *args)
            if outcome.exit_code != 2:
                problems.append(f"error path did not fail: {outcome}")
            problems += [
                f"{mode} {' '.join(args)}: {s}" for s in leaks(outcome.stdout + outcome.stderr)
            ]
            COUNTS["runs"] = COUNTS.get("runs", 0) + 1
        for name in ("botocore", "boto3", "urllib3", "s3fs", "fsspec", "aiobotocore"):
            if logging.getLogger(name).getEffectiveLevel() <= logging.DEBUG:
                problems.append(f"{mode}: the {name} logger was switched to DEBUG")
    return problems + [f"repository: {p}" for p in repository_leaks(repo)]


def test_no_sentinel_credential_is_ever_printed_or_written(
    secret_project: Path, invoke: Invoke
) -> None:
    problems = _sweep(invoke, secret_project, ["default", "-vv", "--json"])
    assert problems == [], "\n".join(problems[:30])
    print(
        f"\nFIGURE I1: {COUNTS['runs']} runs ({len(COMMANDS)} commands + {len(ERRORS)} error "
        "paths × default, -vv, --json; all five modes with -m slow): 0 leaks of 4 sentinels"
    )


@pytest.mark.slow
def test_no_sentinel_credential_leaks_in_any_output_mode(
    secret_project: Path, invoke: Invoke
) -> None:
    problems = _sweep(invoke, secret_project, list(MODES))
    assert problems == [], "\n".join(problems[:30])


def in_a_terminal(repo: Path, *args: str) -> tuple[int, str]:
    """Run `repro ARGS` under a pseudo-terminal (progress bars draw) and return its output."""
    command = shlex.join([PY, "-m", "reprocli", *args])
    done = subprocess.run(
        ["script", "-q", "-e", "-c", command, "/dev/null"],
        cwd=repo,
        capture_output=True,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout.decode("utf-8", "replace")


TTY_FAST = [("push", "--run-cache"), ("pull", "-v"), ("push", "-vv", "-r", "web")]
TTY_SLOW = [("fetch", "--run-cache"), ("fsck", "-r", "s3"), ("status", "--remote", "-v"),
            ("checkout", "--force"), ("add", "data"), ("pull", "-r", "envs3")]  # fmt: skip


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script is not installed")
@pytest.mark.parametrize(
    "args",
    [*TTY_FAST, *(pytest.param(a, marks=pytest.mark.slow) for a in TTY_SLOW)],
    ids=lambda a: " ".join(a),
)
def test_progress_on_a_terminal_never_shows_a_credential(
    secret_project: Path, args: tuple[str, ...]
) -> None:
    (secret_project / "model.bin").write_bytes(b"m2" * 50_000)
    code, output = in_a_terminal(secret_project, *args)
    assert code in (0, 2), output
    assert leaks(output) == [], output
    assert "\x1b" in output or "error" in output or output.strip(), "nothing was drawn"


def test_a_crash_report_with_v_never_shows_the_configured_secret(
    secret_project: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """I4: an unexpected exception deep in a transfer, with -v/-vv tracebacks on request."""
    from reprocli.core import remotes

    def explode(protocol: str, options: dict[str, Any], *, jobs: int) -> dict[str, Any]:
        raise RuntimeError("boom with the remote's options in scope")

    monkeypatch.setattr(remotes, "storage_options", explode)
    (secret_project / "model.bin").write_bytes(b"m3")
    assert invoke("add", "model.bin").exit_code == 0
    for flags in ((), ("-v",), ("-vv",)):
        outcome = invoke(*flags, "push")
        assert outcome.exit_code == 2, outcome
        assert ("Traceback" in outcome.stderr) == bool(flags), outcome
        assert leaks(outcome.stdout + outcome.stderr) == [], outcome


# --- I2, I3 -------------------------------------------------------------------------------------

SECRET_KEYS = [
    "access_key_id", "secret_access_key", "session_token", "password", "key", "secret", "token",
    "account_key", "sas_token", "connection_string", "client_secret", "passphrase",
]  # fmt: skip
SECRET_URLS = [
    f"https://user:{URL_SECRET}@example.com/store",
    f"s3://AKIA:{URL_SECRET}@bucket/store",
    f"sftp://me:{URL_SECRET}@host/store",
    f"ftp://:{URL_SECRET}@host/store",
    f"https://user:{URL_SECRET}%2Fx@example.com/store",
]


def test_every_credential_is_refused_in_the_tracked_config_and_never_echoed(
    repo: Path, invoke: Invoke, tmp_path: Path
) -> None:
    assert invoke("remote", "add", "origin", str(tmp_path / "store")).exit_code == 0
    git(repo, "commit", "-q", "-m", "remote", ".repro/config.yaml")
    tracked = (repo / ".repro" / "config.yaml").read_bytes()
    attempts = [
        ("remote", "add", "x", "s3://b/p", "-o", f"{k}={LOCAL_SECRET}") for k in SECRET_KEYS
    ]
    attempts += [("remote", "modify", "origin", k, LOCAL_SECRET) for k in SECRET_KEYS]
    attempts += [("remote", "add", "x", url) for url in SECRET_URLS]
    attempts += [("remote", "modify", "origin", "url", url) for url in SECRET_URLS]
    for args in attempts:
        outcome = invoke(*args)
        assert outcome.exit_code == 2, outcome
        assert "--local" in outcome.stderr, outcome
        assert leaks(outcome.stdout + outcome.stderr) == [], outcome
    assert (repo / ".repro" / "config.yaml").read_bytes() == tracked
    assert not (repo / ".repro" / "config.local.yaml").exists()
    assert repository_leaks(repo) == []
    print(
        f"\nFIGURE I2: {len(attempts)} attempts to put a credential in the tracked config: all refused"
    )


def test_a_bare_token_in_a_url_is_a_credential(repo: Path, invoke: Invoke) -> None:
    url = f"https://{URL_SECRET}@127.0.0.1:9/store"
    assert invoke("remote", "add", "--local", "web", url).exit_code == 0
    for args in (("remote", "list"), ("--json", "remote", "list"), ("doctor",)):
        outcome = invoke(*args)
        assert leaks(outcome.stdout + outcome.stderr) == [], outcome
    refused = invoke("remote", "add", "web2", url)
    assert refused.exit_code == 2, refused


def test_the_local_config_is_private_and_ignored_whatever_the_umask(
    repo: Path, invoke: Invoke
) -> None:
    local = repo / ".repro" / "config.local.yaml"
    old = os.umask(0)
    try:
        assert invoke("remote", "add", "--local", "s", "s3://b/p").exit_code == 0
        assert stat.S_IMODE(local.stat().st_mode) == 0o600
        os.chmod(local, 0o666)  # a file someone loosened by hand is tightened on the next write
        assert (
            invoke("remote", "modify", "--local", "s", "secret_access_key", LOCAL_SECRET).exit_code
            == 0
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    git(repo, "check-ignore", "-q", ".repro/config.local.yaml")
    assert git(repo, "status", "--porcelain", "--ignored=no") == ""


# --- J1: only `repro run` runs a repository's code ------------------------------------------------


@pytest.fixture
def booby_trapped(sandbox: Sandbox, invoke: Invoke) -> tuple[Path, Path]:
    """A project whose stage command, params and metrics would each create a marker if run
    or evaluated by a shell; the stage is stale (its dependency changed after the last run)."""
    repo = sandbox.repo
    marker = sandbox.root / "J1-RAN"
    remote = sandbox.root / "remote"
    make_tree(repo, {"data/a.csv": "1\n"})
    trap = f"$(touch {marker}-param)`touch {marker}-tick`"
    (repo / "params.yaml").write_text(f"lr: 0.1\nname: {json.dumps(trap)}\n")
    (repo / "metrics.json").write_text(json.dumps({"acc": 0.5, trap: 1}))
    (repo / "metrics.seed").write_text('{"acc": 1.0}\n')
    (repo / "repro.yaml").write_text(
        "stages:\n  train:\n"
        f"    cmd: touch {marker} && echo m > model.out && cp metrics.seed metrics.json\n"
        "    deps: [data]\n    params: [lr, name]\n    outs: [model.out]\n"
        "    metrics: [{metrics.json: {cache: false}}]\n"
    )
    for args in (
        ("add", "data"),
        ("remote", "add", "-d", "origin", "../remote"),
    ):
        assert invoke(*args).exit_code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "trapped")
    (repo / "model.out").write_text("stale model\n")
    (repo / "data" / "a.csv").write_text("2\n")
    assert invoke("commit").exit_code == 0
    assert invoke("push").exit_code == 0
    git(repo, "commit", "-q", "-a", "-m", "new data")
    remote.mkdir(exist_ok=True)
    return repo, marker


READ_ONLY_COMMANDS = [
    ("status",),
    ("status", "--check"),
    ("dag",),
    ("dag", "--format", "mermaid"),
    ("pull",),
    ("fetch",),
    ("checkout",),
    ("checkout", "--force"),
    ("diff",),
    ("log", "data"),
    ("params", "diff"),
    ("params", "diff", "HEAD~1"),
    ("metrics", "show"),
    ("metrics", "diff"),
    ("run", "--dry"),
    ("run", "--dry", "--check"),
    ("gc", "--dry"),
    ("fsck",),
    ("doctor",),
    ("hooks", "install"),
    ("push",),
    ("commit",),
]


def test_no_command_but_run_executes_a_stage_or_evaluates_a_value(
    booby_trapped: tuple[Path, Path], invoke: Invoke
) -> None:
    repo, marker = booby_trapped
    for args in READ_ONLY_COMMANDS:
        outcome = invoke(*args)
        assert outcome.clean, outcome
        assert not marker.exists(), f"repro {' '.join(args)} ran the stage"
    # with the hooks installed, Git operations run repro, never the stage
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "data" / "a.csv").write_text("3\n")
    subprocess.run(["git", "commit", "-q", "-a", "-m", "x"], cwd=repo, capture_output=True)
    git(repo, "checkout", "-q", "main")
    assert not marker.exists(), "a hook ran the stage"
    traps = [p for p in marker.parent.iterdir() if p.name.startswith(marker.name)]
    assert traps == [], "a parameter or metric was evaluated by a shell"
    assert invoke("run").exit_code == 0
    assert marker.exists(), "the trap itself works: `repro run` runs the stage"
    print(
        f"\nFIGURE J1: {len(READ_ONLY_COMMANDS)} commands (+ git checkout/commit through the "
        "installed hooks): 0 executions outside `repro run`"
    )


# --- J2: hooks are opt-in -------------------------------------------------------------------------


def hook_files(root: Path) -> dict[str, bytes]:
    folder = root / ".git" / "hooks"
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


def test_a_clone_and_pull_install_no_hook(
    booby_trapped: tuple[Path, Path],
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, marker = booby_trapped
    (repo / ".githooks").mkdir()
    (repo / ".githooks" / "post-checkout").write_text(f"#!/bin/sh\ntouch {marker}-hook\n")
    os.chmod(repo / ".githooks" / "post-checkout", 0o755)
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n- repo: local\n  hooks:\n  - id: x\n    name: x\n"
        f"    entry: touch {marker}-pre-commit\n    language: system\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hooks the clone must not get")
    fresh = tmp_path / "fresh"
    git(tmp_path, "init", "-q", str(fresh))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    for args in (("pull",), ("checkout",), ("status",), ("run", "--dry"), ("metrics", "show")):
        outcome = invoke(*args)
        assert outcome.exit_code in (0, 1), outcome
    assert hook_files(clone) == hook_files(fresh), "a hook appeared in the clone"
    assert (
        subprocess.run(["git", "config", "core.hooksPath"], cwd=clone, capture_output=True).stdout
        == b""
    )
    git(clone, "checkout", "-q", "-b", "b2")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(marker.name)] == []
