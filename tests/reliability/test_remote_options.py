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

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.builders import git
from tests.reliability.test_confinement import (
    Invoke,
    Outcome,
    Sandbox,
    confined,
    make_invoke,
    make_sandbox,
)

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


@pytest.fixture
def victim(tmp_path: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> Victim:
    """Build the attacker's repository (data pushed to a folder remote, then a hostile remote
    committed as the default), `git clone` it to `S/repo` and enter the clone."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    monkeypatch.chdir(upstream)
    assert invoke("init").exit_code == 0
    (upstream / "model.bin").write_bytes(b"model v1\n")
    assert invoke("add", "model.bin").exit_code == 0
    assert invoke("remote", "add", "-d", "store", str(tmp_path / "remote")).exit_code == 0
    assert invoke("push").exit_code == 0
    git(upstream, "add", "-A")
    git(upstream, "commit", "-q", "-m", "data")
    gc.collect()  # the upstream's stat cache closes now, not inside the sandbox's watch

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
    assert all(n in lines[0] for n in names), outcome
    assert all(line.startswith("hint: ") for line in lines[1:]), outcome


# --- hole 4: a wrapper protocol truncates a file -------------------------------------------------


@pytest.mark.parametrize("wrapper", ["simplecache", "dir"])
@pytest.mark.parametrize("command", REMOTE_COMMANDS, ids=" ".join)
def test_a_tracked_wrapper_protocol_never_truncates_a_file_outside(
    victim: Victim, invoke: Invoke, wrapper: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    target = tmp_path / "outside" / "victim.txt"
    sandbox = victim(
        {
            "url": f"{wrapper}://store",
            "target_protocol": "zip",
            "target_options": {"fo": str(target), "mode": "w"},
        }
    )
    before = {path: path.read_bytes() for path in decoys(sandbox)}
    with confined(sandbox):
        outcome = invoke(*command)
    assert {path: path.read_bytes() for path in before} == before
    assert_refused(outcome, repr(wrapper))
