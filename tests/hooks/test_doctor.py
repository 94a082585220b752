"""`repro doctor`: versions, Git, the cache and its link type, and whether each remote answers
(DESIGN §2; RELIABILITY I1: no secret in any output).

An unreachable remote is real: S3 through s3fs at a loopback port nobody listens on.
"""

from __future__ import annotations

import json
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reprocli import __version__
from reprocli.operations.doctor import LIBRARIES
from tests.conftest import Cli

SECRET = "SENTINEL-doctor-secret-3c9e1f"
ENV_SECRET = "SENTINEL-doctor-env-secret-77ab"
KEY = "AKIASENTINELDOCTORKEY1"
ENV_KEY = "AKIASENTINELDOCTORENV2"
LINK_TYPES = {"reflink", "copy", "hardlink", "symlink"}


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def with_store(repo: Path, cli: Cli, tmp_path: Path) -> Path:
    """`repo` with a directory remote `store` as the default; returns the remote's folder."""
    store = tmp_path / "store"
    cli("remote", "add", "-d", "store", str(store))
    return store


def test_doctor_text_lists_versions_git_cache_and_link_type(
    repo: Path, with_store: Path, cli: Cli
) -> None:
    out = cli("doctor").stdout
    lines = {line.split(maxsplit=1)[0]: line for line in out.splitlines() if line.strip()}
    assert lines["repro"] == f"repro      {__version__}"
    assert f"python     {platform.python_version()} on {platform.system()}" in out
    assert re.search(r"^git        git version \d+\.\d+.* \(/.*git\)$", out, re.M)
    libraries = lines["libraries"]
    for name in LIBRARIES:
        assert re.search(rf"\b{name} \d", libraries), libraries
    assert "MISSING" not in out
    assert f"project    {repo}" in out
    assert re.search(
        rf"^cache      {re.escape(str(repo / '.repro' / 'cache'))} \(.* free\)$", out, re.M
    )
    link = re.search(r"^link type  (.+)$", out, re.M)
    assert link and set(link.group(1).split(", ")) <= LINK_TYPES
    assert f"remote     store (default) {with_store}: reachable" in out
    assert not (repo / ".repro" / "tmp" / "doctor-probe").exists()
    assert "warning" not in cli("doctor").stderr


def test_doctor_json_fields(repo: Path, with_store: Path, cli: Cli) -> None:
    doc = json.loads(cli("doctor", "--json").stdout)
    assert set(doc) == {
        "version",
        "repro",
        "python",
        "system",
        "libraries",
        "git",
        "project",
        "cache",
        "free_bytes",
        "link_type",
        "remotes",
        "problems",
    }
    assert doc["version"] == 1
    assert doc["repro"] == __version__
    assert doc["python"] == platform.python_version()
    assert doc["system"].startswith(platform.system())
    assert set(doc["libraries"]) == set(LIBRARIES)
    assert all(isinstance(v, str) and v for v in doc["libraries"].values())
    assert doc["git"].startswith("git version ")
    assert doc["project"] == str(repo)
    assert doc["cache"] == str(repo / ".repro" / "cache")
    assert isinstance(doc["free_bytes"], int) and doc["free_bytes"] > 0
    assert set(doc["link_type"].split(", ")) <= LINK_TYPES
    assert doc["remotes"] == [
        {
            "name": "store",
            "url": str(with_store),
            "default": True,
            "reachable": True,
            "detail": "reachable",
            "incomplete_uploads": 0,
        }
    ]
    assert doc["problems"] == []


def test_doctor_outside_a_project_says_so_and_exits_1(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    doc = json.loads(cli("doctor", "--json", expect=1).stdout)
    assert doc["project"] is None and doc["cache"] is None and doc["remotes"] == []
    assert doc["repro"] == __version__ and doc["git"]
    assert any("not in a repro project" in p for p in doc["problems"])
    result = cli("doctor", expect=1)
    assert "project    -" in result.stdout
    assert "warning: not in a repro project" in result.stderr


@pytest.fixture
def dead_remotes(repo: Path, with_store: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two S3 remotes at a loopback port nobody listens on, with sentinel credentials."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    # `dead`: full credentials in the local config; the connection is refused
    cli("remote", "add", "dead", "s3://bucket/prefix", "-o", f"endpoint_url={endpoint}")
    cli("remote", "modify", "--local", "dead", "access_key_id", KEY)
    cli("remote", "modify", "--local", "dead", "secret_access_key", SECRET)
    # `partial`: a secret but no key id, so botocore refuses before connecting
    cli("remote", "add", "partial", "s3://other", "-o", f"endpoint_url={endpoint}")
    cli("remote", "modify", "--local", "partial", "secret_access_key", SECRET)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)


def check_dead_remotes(store: Path, outputs: dict[str, tuple[str, str, int]]) -> None:
    """The doctor runs in each mode: exit 1, no secret anywhere, each remote reported."""
    for mode, (stdout, stderr, code) in outputs.items():
        assert code == 1, (mode, stdout, stderr)
        for secret in (SECRET, KEY, ENV_SECRET, ENV_KEY):
            assert secret not in stdout + stderr, (mode, secret)
        assert "Traceback" not in stderr

    stdout, stderr, _ = outputs["text"]
    assert re.search(r"^remote     dead s3://bucket/prefix: UNREACHABLE: \S", stdout, re.M)
    assert f"remote     store (default) {store}: reachable" in stdout
    assert "warning: remote dead:" in stderr

    doc = json.loads(outputs["json"][0])
    remotes = {r["name"]: r for r in doc["remotes"]}
    assert remotes["dead"]["reachable"] is False
    assert remotes["dead"]["default"] is False
    assert remotes["dead"]["url"] == "s3://bucket/prefix"
    assert "connect" in remotes["dead"]["detail"].lower()  # it did try the endpoint
    assert remotes["partial"]["reachable"] is False
    assert "credentials" in remotes["partial"]["detail"]
    assert remotes["store"]["reachable"] is True
    assert [p for p in doc["problems"] if p.startswith("remote ")] == [
        f"remote dead: {remotes['dead']['detail']}",
        f"remote partial: {remotes['partial']['detail']}",
    ]


MODES = {"text": ["doctor"], "json": ["doctor", "--json"], "verbose": ["-v", "doctor"]}


def test_unreachable_remote_exits_1_and_no_secret_is_shown(
    with_store: Path, dead_remotes: None, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's backoff between retries is not under test: do not sleep through it
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    outputs = {}
    for mode, args in MODES.items():
        result = cli(*args, expect=1)
        outputs[mode] = (result.stdout, result.stderr, result.exit_code)
    check_dead_remotes(with_store, outputs)


@pytest.mark.slow
def test_unreachable_remote_in_a_real_process_shows_no_secret(
    repo: Path, with_store: Path, dead_remotes: None
) -> None:
    """As above, through `python -m reprocli` with botocore's real retries (5-15 s)."""
    running = {
        mode: subprocess.Popen(
            [sys.executable, "-m", "reprocli", *args],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode, args in MODES.items()
    }
    outputs = {}
    for mode, proc in running.items():
        stdout, stderr = proc.communicate(timeout=120)
        outputs[mode] = (stdout, stderr, proc.returncode)
    check_dead_remotes(with_store, outputs)
