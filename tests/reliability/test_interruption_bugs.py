"""Bugs the interruption tests found, each reduced to a minimal test (strict xfail until fixed).

The crash enumeration (test_interruption_crash.py) counts the crash states each of these
explains under KNOWN_BUGS instead of failing; when a fix makes one of these tests pass,
strict xfail fails the run, and the matching KNOWN_BUGS entry must be removed with it.

Where a test asks "what if the process died right here", it looks at the files from a
Python audit hook at each filesystem event: what it sees is what a kill -9 at that event
would leave.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reprocli.operations.hooks import install
from reprocli.operations.run import run
from reprocli.project import Project
from tests.builders import commit, git, make_tree
from tests.conftest import Cli
from tests.functional.test_invariants import (
    audit_events,
    cache_of,
    object_path,
    pointer_oid,
    temp_names_of_a_dead_process,
)


class Killed(BaseException):
    """Stands for a kill -9 at an audit event (no `except Exception` in repro catches it)."""


def _install_hooks_recording(repo: Path, on_event: Any) -> None:
    with audit_events(on_event):
        install(Project.discover(repo))


def test_hooks_install_publishes_each_stub_already_executable(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    published: dict[str, int] = {}

    def on_event(event: str, args: tuple[Any, ...]) -> None:
        if event == "os.rename" and Path(os.fsdecode(args[1])).parent == hooks:
            published[Path(os.fsdecode(args[1])).name] = stat.S_IMODE(
                os.stat(os.fsdecode(args[0])).st_mode
            )

    _install_hooks_recording(repo, on_event)

    assert published, "no hook was published by rename"
    not_executable = {name: f"{mode:o}" for name, mode in published.items() if not mode & 0o100}
    assert not not_executable, f"published without the exec bit: {not_executable}"


def test_hooks_install_never_leaves_a_foreign_hooks_name_empty(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "post-checkout").write_text("#!/bin/sh\necho the team's hook\n")
    os.chmod(hooks / "post-checkout", 0o755)
    gaps: list[str] = []

    def on_event(event: str, args: tuple[Any, ...]) -> None:
        if event in ("open", "os.rename", "os.chmod") and not os.path.lexists(
            hooks / "post-checkout"
        ):
            gaps.append(f"{event} {args[0]!r}")

    _install_hooks_recording(repo, on_event)

    assert not gaps, f"post-checkout was missing at {len(gaps)} event(s), first: {gaps[0]}"


def test_gc_deletes_a_manifest_before_its_files(repo: Path, cli: Cli) -> None:
    make_tree(repo, {f"data/f{i:02d}.txt": f"v1 {i}\n" for i in range(12)})
    cli("add", "data")
    commit(repo, "v1")
    old_manifest = pointer_oid(repo, "data")
    children = {e["oid"] for e in json.loads(object_path(repo, old_manifest).read_bytes())}
    make_tree(repo, {f"data/f{i:02d}.txt": f"v2 {i}\n" for i in range(12)})
    cli("commit")
    commit(repo, "v2")
    objects = str(cache_of(repo) / "objects")
    deleted: list[str] = []

    def on_event(event: str, args: tuple[Any, ...]) -> None:
        path = os.fsdecode(args[0]) if event == "os.remove" else ""
        if path.startswith(objects):
            deleted.append(Path(path).parent.name + Path(path).name)

    with audit_events(on_event):
        cli("gc", "-f", "--grace", "0")

    assert old_manifest in deleted and children <= set(deleted)
    first_child = min(deleted.index(c) for c in children)
    assert deleted.index(old_manifest) < first_child, (
        f"a file of {old_manifest} was deleted before it (order: {deleted})"
    )


CTRL_C_DURING_IMPORT = """
import os, signal, sys
fired = []
def hook(event, args):
    if event == "import" and args[0] == "typer" and not fired:
        fired.append(True)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the CLI framework loads
sys.addaudithook(hook)
sys.argv = ["repro", "status"]
from reprocli.cli import main
main()
"""


def test_ctrl_c_while_the_cli_loads_is_one_line_and_no_traceback(repo: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_DURING_IMPORT],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode in (130, -signal.SIGINT), result.stderr
    assert result.stderr == "error: interrupted\n"


def test_a_stage_skipped_after_an_unrelated_failure_is_not_blamed_on_its_upstream(
    repo: Path, cli: Cli
) -> None:
    (repo / "repro.yaml").write_text(
        "stages:\n"
        "  broken:\n    cmd: exit 3\n    outs: [a.txt]\n"
        "  unrelated:\n    cmd: echo x > b.txt\n    outs: [b.txt]\n"
    )

    result = cli("run", expect=1)

    line = next(x for x in (result.stdout + result.stderr).splitlines() if "unrelated" in x)
    assert "upstream" not in line, line


def test_the_run_after_one_killed_before_git_add_still_stages_repro_lock(
    repo: Path, cli: Cli
) -> None:
    (repo / "repro.yaml").write_text(
        "stages:\n  make:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n"
    )

    def on_event(event: str, args: tuple[Any, ...]) -> None:
        if event == "subprocess.Popen" and "add" in args[1] and "repro.lock" in args[1]:
            raise Killed  # the moment before Git is asked to stage repro.lock

    with audit_events(on_event), pytest.raises(Killed):
        run(Project.discover(repo))
    assert (repo / "repro.lock").is_file()

    cli("run")

    assert "repro.lock" in git(repo, "diff", "--cached", "--name-only").split()


def test_an_up_to_date_run_removes_temp_files_of_a_killed_run_from_the_cache(
    repo: Path, cli: Cli
) -> None:
    (repo / "repro.yaml").write_text(
        "stages:\n  make:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n"
    )
    cli("run")
    stale = cache_of(repo) / "tmp" / temp_names_of_a_dead_process()[0]
    stale.write_bytes(b'{"version":1,"outs":[')  # a run-cache record cut short by kill -9

    cli("run")

    assert not stale.exists(), "the temp file of a dead process survived the next command"


LOST_INTERRUPT = """
import sys, time, weakref
from reprocli.cli import redeliver_lost_interrupts
redeliver_lost_interrupts()
class Thing: pass
def callback(_):
    raise KeyboardInterrupt  # Ctrl-C landing in a weakref or import-lock callback
thing = Thing(); ref = weakref.ref(thing, callback); del thing
try:
    for _ in range(200):
        time.sleep(0.01)
    print("lost")
except KeyboardInterrupt:
    print("redelivered")
"""


def test_a_ctrl_c_inside_a_python_callback_still_interrupts_and_prints_no_traceback() -> None:
    """Found by the SIGINT torture of gc (1 of 210): the signal landed in importlib's module
    lock callback, Python printed 'Exception ignored in …' and a traceback, and gc went on."""
    result = subprocess.run(
        [sys.executable, "-c", LOST_INTERRUPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.stdout == "redelivered\n", result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
