"""The durability protocol of checkout, pull and run, read from syscall traces (RELIABILITY A5).

tests/functional/test_invariants.py checks `add` and `commit` this way; this file extends the
check (building block 3) to `checkout` (copy mode), `pull` (folder remote) and `run`. Unlike
that checker, this one follows every thread of the repro process (pull downloads in worker
threads; strace then splits calls into `<unfinished ...>` and `<... resumed>` lines) and
leaves out child processes (git). Publishes are sorted by what they name:

- an object renamed into `objects/` must have been flushed since its temp file was created
  (its own fsync, or the syncfs that covers a batch);
- a pointer, repro.lock, .gitignore, config or run-cache record must be flushed before its
  rename, its folder fsynced after it, and every object renamed before it must be durable
  (an fsync of the object's folder, or a syncfs, in between): objects before what names them;
- workspace data (a checked-out file) needs none of this — a torn one is found by hashing
  and its bytes are in the cache — so it is only counted.

Skipped where strace is missing or cannot trace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.reliability.test_interruption_crash import (
    figure,
    fresh_copy,
    prepare,
    repo_of,
    s3_admin,
    s3_server,
    state_problems,
    unexplained,
)

__all__ = ["figure", "s3_admin", "s3_server"]  # fixtures

STRACE = shutil.which("strace")
CALLS = (
    "execve,openat,open,creat,close,fsync,fdatasync,syncfs,sync,"
    "rename,renameat,renameat2,link,linkat"
)
_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<rest>.*)$")
_CALL = re.compile(r"^(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)")
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"^<\.\.\. (?P<call>\w+) resumed>(?P<rest>.*)$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Call:
    index: int
    pid: str
    call: str
    args: str
    ret: int

    def strings(self) -> list[str]:
        return [s.encode().decode("unicode_escape") for s in _STRING.findall(self.args)]


def parse_trace(text: str) -> list[Call]:
    """The completed calls of a `strace -f` log in completion order, split lines joined."""
    pending: dict[str, str] = {}
    calls: list[Call] = []
    for raw in text.splitlines():
        line = _LINE.match(raw)
        if line is None:
            continue
        pid, rest = line["pid"], line["rest"]
        if rest.endswith(_UNFINISHED):
            pending[pid] = rest[: -len(_UNFINISHED)]
            continue
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            rest = pending.pop(pid, f"{resumed['call']}(") + resumed["rest"]
        found = _CALL.match(rest)
        if found is not None:
            calls.append(Call(len(calls), pid, found["call"], found["args"], int(found["ret"])))
    return calls


@dataclass
class Report:
    """What one traced command published, and what broke the protocol."""

    objects: int = 0
    metadata: int = 0
    workspace: int = 0
    workspace_flushed: int = 0
    problems: list[str] = field(default_factory=list)


METADATA = re.compile(r"(\.repro|/repro\.lock|/\.gitignore|/\.repro/[^/]+\.yaml)$")


def check_publishes(trace: str, root: Path) -> Report:
    """Check every rename of one repro process (threads included, children not)."""
    calls = [c for c in parse_trace(trace) if c.ret >= 0]
    report = Report()
    if not calls:
        report.problems.append("empty trace")
        return report
    main = calls[0].pid
    children = {c.pid for c in calls if c.call == "execve" and c.pid != main}
    calls = [c for c in calls if c.pid not in children]
    cache = str(root / ".repro" / "cache")
    objects = (
        cache + "/objects/",
        str(root.parent / "remote" / "objects") + "/",
    )  # + a folder remote
    runs = cache + "/runs/"
    fds: dict[str, str] = {}
    created: dict[str, int] = {}
    flushes: list[tuple[int, str | None]] = []  # (index, path), None for syncfs/sync
    renames: list[tuple[int, str, str]] = []
    for c in calls:
        strings = c.strings()
        if c.call in ("openat", "open", "creat") and strings:
            path = os.path.normpath(os.path.join(root, strings[0]))
            fds[str(c.ret)] = path
            if "O_CREAT" in c.args or c.call == "creat":
                created[path] = c.index
        elif c.call in ("link", "linkat") and len(strings) >= 2:
            created[os.path.normpath(os.path.join(root, strings[-1]))] = c.index
        elif c.call == "close":
            fds.pop(c.args.strip(), None)
        elif c.call in ("fsync", "fdatasync"):
            flushes.append((c.index, fds.get(c.args.strip())))
        elif c.call in ("syncfs", "sync"):
            flushes.append((c.index, None))
        elif c.call.startswith("rename") and len(strings) >= 2:
            src, dst = (os.path.normpath(os.path.join(root, s)) for s in strings[:2])
            renames.append((c.index, src, dst))

    def flushed(start: int, end: int, paths: set[str]) -> bool:
        return any(start < i < end and (p is None or p in paths) for i, p in flushes)

    durable_objects: list[tuple[int, str]] = []  # (index of the rename, its folder)
    for index, src, dst in renames:
        rel = os.path.relpath(dst, root)
        if rel.startswith(".git/"):
            continue
        born = created.get(src, -1)
        if dst.startswith(objects):
            report.objects += 1
            if not flushed(born, index, {src}):
                report.problems.append(f"object {rel}: renamed into place before it was flushed")
            durable_objects.append((index, str(Path(dst).parent)))
        elif METADATA.search(dst) or dst.startswith(runs):
            report.metadata += 1
            after = any(i > index and p == str(Path(dst).parent) for i, p in flushes)
            if not flushed(born, index, {src}) or not after:
                report.problems.append(
                    f"{rel}: not published as fsync(file), rename, fsync(folder)"
                )
            if any(not flushed(i, index, {folder}) for i, folder in durable_objects):
                report.problems.append(f"{rel}: published before an object it may name was durable")
        else:
            report.workspace += 1
            report.workspace_flushed += flushed(born, index, {src})
    return report


def trace(base: Path, args: tuple[str, ...], log: Path, env: dict[str, str]) -> None:
    assert STRACE is not None
    command = [
        STRACE, "-f", "-qq", "-s", "4096", "-o", str(log), "-e", f"trace={CALLS}",
        sys.executable, "-m", "reprocli", *args,
    ]  # fmt: skip
    from tests.functional.test_crash import repro_env

    result = subprocess.run(
        command,
        cwd=repo_of(base),
        env=repro_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace cannot trace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("scenario", "expect"),
    [
        ("checkout-reflink", "workspace"),  # reflink falls back to copy: real data written
        ("pull-local", "objects"),
        ("run", "metadata"),
        ("push-local", "objects"),  # into the folder remote: temp, one sync, renames
        ("remote-add", "metadata"),  # .repro/config.yaml
    ],
    ids=["checkout", "pull", "run", "push", "remote add"],
)
def test_every_publish_is_flushed_renamed_and_dir_synced_objects_first(
    scenario: str,
    expect: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    figure: Callable[[str], None],
) -> None:
    if STRACE is None:
        pytest.skip("strace is not installed")
    prepared = prepare(scenario, tmp_path_factory, request)
    base = fresh_copy(prepared, tmp_path, "traced")
    log = tmp_path / "trace.txt"

    trace(base, prepared.scenario.command, log, prepared.env)

    report = check_publishes(log.read_text(), repo_of(base))
    command = " ".join(prepared.scenario.command)
    figure(
        f"A5 {command}: {report.objects + report.metadata} publishes checked"
        f" ({report.objects} objects, {report.metadata} pointer/lock/config/record files),"
        f" {len(report.problems)} out of order; {report.workspace} workspace files placed"
        f" ({report.workspace_flushed} of them fsynced, which the protocol does not require)"
    )
    assert getattr(report, expect) > 0, f"the trace missed the command's {expect}: {report}"
    assert not report.problems, f"repro {command}:\n" + "\n".join(report.problems)
    assert not unexplained(prepared.scenario, state_problems(prepared, base))


def test_the_trace_parser_joins_calls_split_between_threads() -> None:
    text = (
        '10 openat(AT_FDCWD, "/r/a", O_WRONLY|O_CREAT|O_EXCL, 0644 <unfinished ...>\n'
        "11 fsync(7 <unfinished ...>\n"
        "10 <... openat resumed>) = 5\n"
        "11 <... fsync resumed>) = 0\n"
        '10 rename("/r/a", "/r/b") = 0\n'
    )
    calls = parse_trace(text)
    assert [(c.pid, c.call, c.ret) for c in calls] == [
        ("10", "openat", 5),
        ("11", "fsync", 0),
        ("10", "rename", 0),
    ]
    assert calls[0].strings() == ["/r/a"]


def test_the_checker_finds_an_unflushed_object_and_a_lock_published_too_early() -> None:
    root = Path("/r")
    text = (
        '1 execve("/usr/bin/python", ["python"], 0x0 /* 1 vars */) = 0\n'
        '1 openat(AT_FDCWD, "/r/.repro/cache/tmp/t1", O_WRONLY|O_CREAT|O_EXCL, 0444) = 3\n'
        "1 close(3) = 0\n"
        '1 rename("/r/.repro/cache/tmp/t1", "/r/.repro/cache/objects/ab/cd") = 0\n'
        '1 openat(AT_FDCWD, "/r/.repro/tmp/t2", O_WRONLY|O_CREAT|O_EXCL, 0644) = 3\n'
        "1 fsync(3) = 0\n"
        "1 close(3) = 0\n"
        '1 rename("/r/.repro/tmp/t2", "/r/repro.lock") = 0\n'
        '1 openat(AT_FDCWD, "/r", O_RDONLY|O_DIRECTORY) = 3\n'
        "1 fsync(3) = 0\n"
        '2 execve("/usr/bin/git", ["git"], 0x0 /* 1 vars */) = 0\n'
        '2 rename("/r/x", "/r/y.repro") = 0\n'
    )
    report = check_publishes(text, root)
    assert (report.objects, report.metadata) == (1, 1)
    assert report.problems == [
        "object .repro/cache/objects/ab/cd: renamed into place before it was flushed",
        "repro.lock: published before an object it may name was durable",
    ]
