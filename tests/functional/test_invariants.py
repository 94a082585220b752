"""The storage invariants of DESIGN §4, one or more named tests each, plus the stat cache's
racy rule and the repository lock (RELIABILITY C1, C4, E1, E4, E5, F1, F2, F5, G2, G3).

Invariant 7 (crash recovery) is enumerated in test_crash.py; here only its clean-up rule.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import commit, git, make_tree, read_tree
from tests.conftest import Cli
from tests.functional.test_crash import (
    cache_objects,
    check_cache,
    file_oid,
    leftover_temps,
    read_pointer_oid,
    repro,
    repro_env,
    set_link_type,
)

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def cache_of(root: Path) -> Path:
    return root / ".repro" / "cache"


def object_path(root: Path, oid: str) -> Path:
    return cache_of(root) / "objects" / oid[:2] / oid[2:]


def pointer_oid(root: Path, data: str) -> str:
    return read_pointer_oid((root / f"{data}.repro").read_bytes())


def manifest_of(root: Path, data: str) -> dict[str, str]:
    """{path in the directory: oid} from the manifest a directory pointer names."""
    entries = json.loads(object_path(root, pointer_oid(root, data)).read_bytes())
    return {e["path"]: e["oid"] for e in entries}


def damage(path: Path, how: str) -> None:
    """Corrupt a read-only cache object in place: flip one byte, or truncate it to nothing."""
    os.chmod(path, 0o644)
    if how == "truncate":
        path.write_bytes(b"")
    else:
        with open(path, "r+b") as handle:
            offset = path.stat().st_size * 3 // 4
            handle.seek(offset)
            byte = handle.read(1)
            handle.seek(offset)
            handle.write(bytes([byte[0] ^ 0xFF]))
    os.chmod(path, 0o444)


def tree_state(root: Path) -> dict[str, tuple[bytes, bool]]:
    """{path: (bytes, executable)} of every file under `root` (links followed)."""
    return {
        rel: (data, bool(os.stat(root / rel).st_mode & stat.S_IXUSR))
        for rel, data in read_tree(root).items()
    }


def sentinel(folder: Path) -> dict[str, bytes]:
    """Everything under a folder outside the repository, to prove nothing was written there."""
    return read_tree(folder) | {
        f"{p.relative_to(folder)}/": b"dir" for p in folder.rglob("*") if p.is_dir()
    }


# --- invariant 1: objects appear only complete, read-only, durable before they are named --


_HANDLERS: list[Callable[[str, tuple[Any, ...]], None]] = []
_HOOKED: list[bool] = []


def _dispatch(event: str, args: tuple[Any, ...]) -> None:
    for handler in list(_HANDLERS):
        handler(event, args)


@contextlib.contextmanager
def audit_events(handler: Callable[[str, tuple[Any, ...]], None]) -> Iterator[None]:
    """Call `handler` for every audit event raised in this process while the block runs.

    Audit hooks cannot be removed, so one dispatcher is installed once per process.
    """
    if not _HOOKED:
        sys.addaudithook(_dispatch)
        _HOOKED.append(True)
    _HANDLERS.append(handler)
    try:
        yield
    finally:
        _HANDLERS.remove(handler)


def test_objects_appear_only_complete_and_read_only(repo: Path, cli: Cli) -> None:
    rng = random.Random(1)
    make_tree(
        repo,
        {
            "data/a.csv": "1,2\n",
            "data/sub/b.csv": "3,4\n",
            "data/same.csv": "1,2\n",  # same content as a.csv: one object
            "data/empty": b"",
            "data/big.bin": rng.randbytes(3 << 20) + bytes(2 << 20),  # streamed, with a hole
            "model.bin": rng.randbytes(5000),
        },
    )
    objects_dir = os.path.realpath(cache_of(repo) / "objects")
    violations: list[str] = []
    renamed: list[str] = []

    def inside_objects(path: object) -> bool:
        return isinstance(path, (str, bytes)) and os.path.realpath(os.fsdecode(path)).startswith(
            objects_dir + os.sep
        )

    def on_event(event: str, args: tuple[Any, ...]) -> None:
        try:
            if event == "open" and inside_objects(args[0]):
                flags = args[2] if isinstance(args[2], int) else 0
                if flags & WRITE_FLAGS or (isinstance(args[1], str) and set(args[1]) & set("wax+")):
                    violations.append(f"{args[0]} opened for writing under its final name")
            elif event in ("os.rename", "os.link") and inside_objects(args[1]):
                src, dst = os.fsdecode(args[0]), os.fsdecode(args[1])
                name = Path(dst).parent.name + Path(dst).name
                renamed.append(name)
                if inside_objects(src):
                    violations.append(f"{dst} renamed from inside objects/ ({src})")
                elif file_oid(Path(src)) != name.removesuffix(".dir"):
                    violations.append(f"{dst} was renamed into place before it was complete")
                elif os.stat(src).st_mode & 0o222:
                    violations.append(f"{dst} was published writable")
            elif event == "os.rename" and os.fsdecode(args[1]).endswith(".repro"):
                oid = read_pointer_oid(Path(os.fsdecode(args[0])).read_bytes())
                if not object_path(repo, oid).is_file():
                    violations.append(f"{args[1]} published before its object {oid}")
        except Exception as exc:  # an audit hook must never raise into repro
            violations.append(f"{event}: checker failed: {exc!r}")

    with audit_events(on_event):
        cli("add", "data", "model.bin")

    assert not violations, "\n".join(violations)
    cache = cache_of(repo)
    assert not check_cache(cache)
    expected = {file_oid(p) for p in (repo / "data").rglob("*") if p.is_file()}
    expected |= {file_oid(repo / "model.bin"), pointer_oid(repo, "data")}
    assert set(cache_objects(cache)) == expected
    assert sorted(renamed) == sorted(expected), "every object arrives by one rename (or link)"
    for path in cache_objects(cache).values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o444, path
    assert set(manifest_of(repo, "data").values()) <= expected
    assert leftover_temps(repo, cache) == []


STRACE = shutil.which("strace")
_SYSCALL = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def durability_problems(trace: str, root: Path) -> list[str]:
    """Check a `strace -f` log of one repro command against the publish protocol.

    - an object is renamed into objects/ only after its bytes were flushed (its own fsync,
      or a syncfs/sync that covers the batch) since its temp file was created;
    - any other file repro publishes (pointer, .gitignore) is fsynced before its rename and
      its folder is fsynced after it;
    - a pointer is renamed into place only after every earlier object rename was made
      durable (a syncfs/sync, or an fsync of the object's folder, in between).
    """
    lines = [m for m in map(_SYSCALL.match, trace.splitlines()) if m and int(m["ret"]) >= 0]
    if not lines:
        return ["empty trace"]
    main = lines[0]["pid"]
    objects = str(cache_of(root) / "objects") + "/"
    fds: dict[str, str] = {}
    created: dict[str, int] = {}
    flushed: list[tuple[int, str | None]] = []  # (index, path or None for syncfs/sync)
    renames: list[tuple[int, str, str]] = []
    for index, m in enumerate(lines):
        if m["pid"] != main:
            continue
        call, args, ret = m["call"], m["args"], int(m["ret"])
        strings = [s.encode().decode("unicode_escape") for s in _STRING.findall(args)]
        if call in ("openat", "open") and strings:
            path = os.path.normpath(os.path.join(root, strings[0]))
            fds[str(ret)] = path
            if "O_CREAT" in args:
                created[path] = index
        elif call == "close":
            fds.pop(args.strip(), None)
        elif call in ("fsync", "fdatasync"):
            flushed.append((index, fds.get(args.strip())))
        elif call in ("syncfs", "sync"):
            flushed.append((index, None))
        elif call.startswith("rename") and len(strings) >= 2:
            src, dst = (os.path.normpath(os.path.join(root, s)) for s in strings[:2])
            renames.append((index, src, dst))
    problems: list[str] = []

    def flushed_between(start: int, end: int, paths: set[str | None]) -> bool:
        return any(start < i < end and (p is None or p in paths) for i, p in flushed)

    object_renames: list[tuple[int, str]] = []
    for index, src, dst in renames:
        rel = os.path.relpath(dst, root)
        if rel.startswith(".git/"):
            continue
        born = created.get(src, -1)
        if dst.startswith(objects):
            if not flushed_between(born, index, {src}):
                problems.append(f"object {rel} renamed into place before its bytes were flushed")
            object_renames.append((index, str(Path(dst).parent)))
            continue
        if not flushed_between(born, index, {src}) or not any(
            i > index and p == str(Path(dst).parent) for i, p in flushed
        ):
            problems.append(f"{rel}: not published as fsync(file), rename, fsync(folder)")
        if rel.endswith(".repro"):
            for obj_index, folder in object_renames:
                if not flushed_between(obj_index, index, {folder}):
                    problems.append(f"{rel} published before an object it may name was durable")
                    break
    if not object_renames:
        problems.append("no object was renamed into the cache: the trace missed the command")
    return problems


def test_objects_are_durable_before_the_pointer_that_names_them_is_published(
    repo: Path, tmp_path: Path
) -> None:
    if STRACE is None:
        pytest.skip("strace is not installed")
    make_tree(repo, {f"data/f{i}.txt": f"{i}\n" for i in range(20)})
    (repo / "model.bin").write_bytes(random.Random(2).randbytes(2 << 20))
    for step, args in enumerate((("add", "data", "model.bin"), ("commit",))):
        if step:
            (repo / "data/f3.txt").write_text("changed\n")
            (repo / "data/new.txt").write_text("new\n")
        log = tmp_path / f"trace-{step}.txt"
        command = [
            STRACE, "-f", "-qq", "-s", "4096", "-o", str(log),
            "-e", "trace=openat,open,close,fsync,fdatasync,syncfs,sync,rename,renameat,renameat2",
            sys.executable, "-m", "reprocli", *args,
        ]  # fmt: skip
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
        if result.returncode != 0 and "ptrace" in result.stderr:
            pytest.skip(f"strace cannot trace here: {result.stderr.strip()}")
        assert result.returncode == 0, result.stderr
        problems = durability_problems(log.read_text(), repo)
        assert not problems, f"repro {' '.join(args)}:\n" + "\n".join(problems)


# --- invariant 2: no object has content that does not hash to its name -------------------


@pytest.mark.parametrize(
    ("target", "how"),
    [("a.csv", "flip"), ("a.csv", "truncate"), ("big.bin", "flip")],
    ids=["small file, one flipped byte", "small file, truncated", "large file, one flipped byte"],
)
def test_corrupt_cache_object_is_never_materialised(
    repo: Path, cli: Cli, target: str, how: str
) -> None:
    set_link_type(repo, "copy")
    big = random.Random(3).randbytes(3 << 20)
    make_tree(repo, {"data/a.csv": "1,2\n", "data/big.bin": big, "data/c.csv": "5,6\n"})
    expected = read_tree(repo / "data")
    cli("add", "data")
    commit(repo, "data")
    oid = manifest_of(repo, "data")[target]
    damage(object_path(repo, oid), how)
    shutil.rmtree(repo / "data")

    result = cli("checkout", expect=2)

    assert "corrupt" in result.stderr and oid in result.stderr, result.stderr
    assert not (repo / "data" / target).exists()
    restored = read_tree(repo / "data") if (repo / "data").exists() else {}
    wrong = [name for name, data in restored.items() if data != expected[name]]
    assert not wrong, f"materialised with wrong bytes: {wrong}"
    assert leftover_temps(repo, cache_of(repo)) == []
    assert "up to date" not in cli("status", expect=0).stdout
    cli("status", "--check", expect=1)


def test_status_never_reports_corrupted_linked_bytes_as_up_to_date(repo: Path, cli: Cli) -> None:
    set_link_type(repo, "hardlink")
    make_tree(repo, {"data/a.csv": "1,2,3\n", "data/b.csv": "4,5,6\n"})
    cli("add", "data")
    commit(repo, "data")
    shutil.rmtree(repo / "data")
    cli("checkout")
    time.sleep(0.05)  # leave the racy window, so that status can trust and record stats
    cli("status", "--check")
    oid = manifest_of(repo, "data")["a.csv"]
    path = object_path(repo, oid)
    before = path.stat()
    damage(path, "flip")  # the workspace file is the same inode: it changes too
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    result = cli("status", expect=0)

    assert "data: modified" in result.stdout, result.stdout
    assert "up to date" not in result.stdout
    cli("status", "--check", expect=1)


# --- invariant 3: uncommitted workspace data is never overwritten or deleted -------------


def tracked_repo(repo: Path, cli: Cli) -> dict[str, bytes]:
    """A committed directory `data` and a committed file `model.bin`; return their bytes."""
    make_tree(
        repo,
        {"data/a.csv": "1\n", "data/b.csv": "2\n", "data/sub/c.csv": "3\n", "model.bin": b"\x00m1"},
    )
    cli("add", "data", "model.bin")
    commit(repo, "data v1")
    return read_tree(repo / "data") | {"../model.bin": (repo / "model.bin").read_bytes()}


def test_checkout_keeps_unsaved_edits(repo: Path, cli: Cli) -> None:
    committed = tracked_repo(repo, cli)
    (repo / "data/a.csv").write_text("unsaved edit\n")
    (repo / "model.bin").write_bytes(b"unsaved model")
    (repo / "data/b.csv").unlink()  # something checkout could restore

    result = cli("checkout", expect=2)

    assert "data/a.csv" in result.stderr and "model.bin" in result.stderr, result.stderr
    assert (repo / "data/a.csv").read_text() == "unsaved edit\n"
    assert (repo / "model.bin").read_bytes() == b"unsaved model"
    assert not (repo / "data/b.csv").exists(), "checkout half-ran before refusing"

    cli("checkout", "--force")
    assert (
        read_tree(repo / "data") | {"../model.bin": (repo / "model.bin").read_bytes()} == committed
    )


def test_checkout_keeps_untracked_files_in_tracked_dirs(repo: Path, cli: Cli) -> None:
    committed = tracked_repo(repo, cli)
    make_tree(repo, {"data/new.csv": "mine\n", "data/sub/deeper/new2.csv": "also mine\n"})
    (repo / "data/a.csv").unlink()

    result = cli("checkout")

    assert (repo / "data/a.csv").read_bytes() == committed["a.csv"]
    assert (repo / "data/new.csv").read_text() == "mine\n"
    assert (repo / "data/sub/deeper/new2.csv").read_text() == "also mine\n"
    assert "data/new.csv" in result.stderr and "data/sub/deeper/new2.csv" in result.stderr

    cli("checkout", "--force")
    assert read_tree(repo / "data") == {
        k: v for k, v in committed.items() if not k.startswith("../")
    }


def test_checkout_keeps_a_file_that_replaced_a_tracked_folder(repo: Path, cli: Cli) -> None:
    committed = tracked_repo(repo, cli)
    shutil.rmtree(repo / "data")
    (repo / "data").write_text("not a folder any more\n")

    result = cli("checkout", expect=2)

    assert "data" in result.stderr
    assert (repo / "data").read_text() == "not a folder any more\n"
    cli("checkout", "--force")
    assert read_tree(repo / "data") == {
        k: v for k, v in committed.items() if not k.startswith("../")
    }


@pytest.mark.parametrize("link_type", ["reflink,copy", "hardlink", "symlink"])
def test_add_never_changes_workspace_bytes(repo: Path, cli: Cli, link_type: str) -> None:
    set_link_type(repo, link_type)
    rng = random.Random(4)
    make_tree(
        repo,
        {
            "data/a.csv": "1\n",
            "data/empty": b"",
            "data/sub/big.bin": rng.randbytes(2 << 20) + bytes(3 << 20),
            "data/twin.csv": "1\n",
            "model.bin": rng.randbytes(1000),
        },
    )
    (repo / "data/run.sh").write_text("#!/bin/sh\n")
    os.chmod(repo / "data/run.sh", 0o755)
    before = tree_state(repo / "data") | {"../model.bin": tree_state(repo)["model.bin"]}
    inodes = {p: p.stat().st_ino for p in (repo / "data").rglob("*") if p.is_file()}

    cli("add", "data", "model.bin")
    assert tree_state(repo / "data") | {"../model.bin": tree_state(repo)["model.bin"]} == before
    if link_type == "reflink,copy":
        assert {p: p.stat().st_ino for p in inodes} == inodes, "add replaced workspace files"

    commit(repo, "data")
    (repo / "data/a.csv").write_text("changed\n")
    (repo / "data/added.csv").write_text("new\n")
    changed = tree_state(repo / "data")
    cli("commit")
    assert tree_state(repo / "data") == changed
    cli("status", "--check")


# --- invariant 5: nothing is read or written outside the repository ----------------------


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_checkout_refuses_to_write_through_a_symlinked_parent_folder_of_a_tracked_dir(
    repo: Path, cli: Cli, tmp_path: Path, force: bool
) -> None:
    make_tree(repo, {"data/a.csv": "1\n", "data/sub/x.csv": "2\n", "data/sub/y.csv": "3\n"})
    cli("add", "data")
    commit(repo, "data")
    outside = tmp_path / "outside"
    make_tree(outside, {"decoy.txt": "do not touch\n", "x.csv": "outside x\n"})
    shutil.rmtree(repo / "data/sub")
    os.symlink(outside, repo / "data/sub")
    guard = sentinel(outside)

    result = repro(repo, "checkout", *(["--force"] if force else []))

    assert sentinel(outside) == guard, "checkout wrote outside the repository"
    # With --force, replacing the link by a real folder or refusing are both safe.
    assert result.returncode in ((0, 2) if force else (2,)), result.stderr
    if result.returncode == 0:
        assert not (repo / "data/sub").is_symlink()
        assert read_tree(repo / "data/sub") == {"x.csv": b"2\n", "y.csv": b"3\n"}
    else:
        assert "symlink" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_checkout_refuses_to_write_through_a_symlinked_parent_folder_of_a_tracked_file(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    make_tree(repo, {"data/sub/model.bin": b"model v1"})
    cli("add", "data/sub/model.bin")
    commit(repo, "model")
    outside = tmp_path / "outside"
    outside.mkdir()
    # The folder holding the pointer becomes a link to a folder outside the repository,
    # where the same pointer file sits: restoring it would write outside/model.bin.
    shutil.copy(repo / "data/sub/model.bin.repro", outside / "model.bin.repro")
    shutil.rmtree(repo / "data/sub")
    os.symlink(outside, repo / "data/sub")
    guard = sentinel(outside)

    for args in (("checkout",), ("checkout", "--force")):
        result = cli(*args, expect=2)
        assert "symlink" in result.stderr, result.stderr
        assert sentinel(outside) == guard, f"repro {' '.join(args)} wrote outside the repository"


@pytest.mark.parametrize(
    "pointer_is_dir", [True, False], ids=["file in a tracked dir", "tracked file"]
)
def test_checkout_replaces_a_symlinked_workspace_file_without_following_it(
    repo: Path, cli: Cli, tmp_path: Path, pointer_is_dir: bool
) -> None:
    make_tree(repo, {"data/a.csv": "1\n", "data/b.csv": "2\n"})
    target = "data/a.csv" if pointer_is_dir else "data/b.csv"
    cli("add", *(["data"] if pointer_is_dir else ["data/a.csv", "data/b.csv"]))
    commit(repo, "data")
    outside = tmp_path / "outside.csv"
    outside.write_text("outside, do not touch\n")
    (repo / target).unlink()
    os.symlink(outside, repo / target)

    refused = cli("checkout", expect=2)
    assert (repo / target).is_symlink(), "a link nobody cached was removed without --force"
    assert outside.read_text() == "outside, do not touch\n"
    assert refused.stderr

    cli("checkout", "--force")
    assert outside.read_text() == "outside, do not touch\n", "checkout wrote through the link"
    assert not (repo / target).is_symlink()
    assert (repo / target).read_text() == ("1\n" if target.endswith("a.csv") else "2\n")


@pytest.mark.parametrize("link_type", ["copy", "hardlink"])
def test_a_workspace_file_hardlinked_to_an_outside_file_is_replaced_by_rename(
    repo: Path, cli: Cli, tmp_path: Path, link_type: str
) -> None:
    set_link_type(repo, link_type)
    make_tree(repo, {"data/a.csv": "tracked a\n", "data/b.csv": "tracked b\n", "data/c.csv": "c\n"})
    cli("add", "data")
    commit(repo, "data")
    # Case 1: the outside file's bytes are in the cache (b's), so checkout may replace a.csv.
    outside = tmp_path / "outside.csv"
    outside.write_text("tracked b\n")
    (repo / "data/a.csv").unlink()
    os.link(outside, repo / "data/a.csv")
    cli("checkout")
    assert outside.read_text() == "tracked b\n"
    assert (repo / "data/a.csv").read_text() == "tracked a\n"
    assert os.stat(repo / "data/a.csv").st_ino != outside.stat().st_ino
    # Case 2: unknown bytes: refused without --force, replaced (never truncated) with it.
    other = tmp_path / "other.csv"
    other.write_text("precious outside bytes\n")
    (repo / "data/c.csv").unlink()
    os.link(other, repo / "data/c.csv")
    cli("checkout", expect=2)
    cli("checkout", "--force")
    assert other.read_text() == "precious outside bytes\n"
    assert (repo / "data/c.csv").read_text() == "c\n"
    assert os.stat(repo / "data/c.csv").st_ino != other.stat().st_ino


@pytest.mark.parametrize(
    "hostile", ["../outside.txt", "{outside}", ".git/hooks/pre-commit", "sub/../../outside.txt"]
)
def test_a_pointer_naming_a_path_outside_the_repository_is_rejected(
    repo: Path, cli: Cli, tmp_path: Path, hostile: str
) -> None:
    make_tree(repo, {"data.txt": "payload\n"})
    cli("add", "data.txt")
    oid = pointer_oid(repo, "data.txt")
    outside = tmp_path / "outside.txt"
    path = hostile.format(outside=outside)
    (repo / "evil.repro").write_text(
        f"version: 1\nouts:\n- path: {json.dumps(path)}\n  hash: xxh3-128\n  oid: {oid}\n  size: 8\n"
    )
    git(repo, "add", "evil.repro")

    result = cli("checkout", expect=2)

    assert "evil.repro" in result.stderr, result.stderr
    assert not outside.exists()
    assert not (repo / ".git/hooks/pre-commit").exists()


# --- invariant 7 (its clean-up rule; kill -9 at every event is in test_crash.py) ----------


TEMP_NAMES = "from reprocli.core.atomic import temp_name\nfor _ in range(3): print(temp_name())"


def temp_names_of_a_dead_process() -> list[str]:
    """Temp file names as repro makes them, owned by a process that has exited."""
    done = subprocess.run(
        [sys.executable, "-c", TEMP_NAMES], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_temp_files_of_dead_processes_are_removed_by_the_next_command(repo: Path, cli: Cli) -> None:
    make_tree(repo, {"data/a.csv": "1\n"})
    dead = temp_names_of_a_dead_process()
    with subprocess.Popen(
        [sys.executable, "-c", TEMP_NAMES + "\nimport time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    ) as sleeper:
        try:
            assert sleeper.stdout is not None
            alive = repo / ".repro/tmp" / sleeper.stdout.readline().strip()
            stale = [repo / ".repro/tmp" / dead[0], cache_of(repo) / "tmp" / dead[1]]
            for path in [*stale, alive]:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"half-written")

            cli("add", "data")

            assert [p for p in stale if p.exists()] == []
            assert alive.exists(), "the temp file of a running process was deleted"
        finally:
            sleeper.kill()


def test_a_dead_process_temp_file_beside_tracked_data_is_cleaned_or_ignored(
    repo: Path, cli: Cli
) -> None:
    make_tree(repo, {"models/model.bin": b"m1"})
    cli("add", "models/model.bin")
    commit(repo, "model")
    # What a checkout killed mid-copy leaves when .repro/tmp is on another filesystem than
    # the destination (links.py then writes its temp file beside the destination).
    leftover = repo / "models" / temp_names_of_a_dead_process()[0]
    leftover.write_bytes(b"partial")

    cli("checkout")
    cli("status", "--check")

    untracked = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert not leftover.exists() or leftover.name not in untracked, (
        f"{leftover.relative_to(repo)} is neither removed nor ignored by Git: {untracked}"
    )


# --- the stat cache -----------------------------------------------------------------------


def test_racy_edit_within_the_same_timestamp_is_detected(repo: Path, cli: Cli) -> None:
    data = repo / "data.csv"
    # 1: an edit of the same size, with the old mtime put back (os.utime), long after add.
    data.write_bytes(b"a,b\n1,2\n")
    time.sleep(0.05)
    cli("add", "data.csv")
    cli("status", "--check")
    st = os.stat(data)
    with open(data, "r+b") as handle:
        handle.write(b"A")
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(data)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    result = cli("status", expect=0)
    assert "data.csv: modified" in result.stdout, result.stdout
    cli("status", "--check", expect=1)
    # 2: edits within milliseconds of the moment the file was recorded, same size each time.
    for round_ in range(10):
        data.write_bytes(f"{round_:04d}\n".encode())
        cli("commit", "data.csv")
        with open(data, "r+b") as handle:
            handle.write(b"X")
        result = cli("status", expect=0)
        assert "data.csv: modified" in result.stdout, f"round {round_}: {result.stdout}"


@pytest.mark.parametrize("which", ["tracked file", "file in a tracked dir", "manifest"])
def test_stat_cache_entry_for_a_deleted_object_is_not_trusted(
    repo: Path, cli: Cli, which: str
) -> None:
    make_tree(repo, {"model.bin": b"model bytes", "data/a.csv": "1\n", "data/b.csv": "2\n"})
    time.sleep(0.05)  # older than the racy window: the stat cache records these files
    cli("add", "model.bin", "data")
    cli("status", "--check")
    oid = {
        "tracked file": lambda: pointer_oid(repo, "model.bin"),
        "file in a tracked dir": lambda: manifest_of(repo, "data")["a.csv"],
        "manifest": lambda: pointer_oid(repo, "data"),
    }[which]()
    object_path(repo, oid).unlink()
    tracked = "model.bin" if which == "tracked file" else "data"

    report = json.loads(cli("status", "--json").stdout)
    states = {d["path"]: d["state"] for d in report["data"]}
    assert states[tracked] == "not_in_cache", states
    assert "up to date" not in cli("status").stdout
    cli("status", "--check", expect=1)

    cli("commit")
    assert object_path(repo, oid).is_file(), "commit did not put the object back"
    assert not check_cache(cache_of(repo))
    cli("status", "--check")


# --- the repository lock ------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from reprocli.core.lock import hold
with hold(Path(sys.argv[1]), timeout=10):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_writer_fails_naming_the_lock_holder_until_the_holder_is_killed(
    repo: Path,
) -> None:
    make_tree(repo, {"data/a.csv": "1\n"})
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo / ".repro" / "lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        blocked = repro(repo, "add", "data", env=repro_env(REPRO_LOCK_TIMEOUT="0.5"))
        assert blocked.returncode == 2, blocked.stderr
        assert f"pid {holder.pid}" in blocked.stderr, blocked.stderr
        assert blocked.stderr.startswith("error: ") and "Traceback" not in blocked.stderr
        assert time.monotonic() - started < 10, "REPRO_LOCK_TIMEOUT was not honoured"
        assert not (repo / "data.repro").exists(), "a second writer ran while the lock was held"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    assert holder.returncode == -signal.SIGKILL

    after = repro(repo, "add", "data", env=repro_env(REPRO_LOCK_TIMEOUT="0.5"))

    assert after.returncode == 0, after.stderr
    assert (repo / "data.repro").is_file()


def test_two_concurrent_adds_of_the_same_data_both_succeed_with_one_valid_object_set(
    repo: Path,
) -> None:
    rng = random.Random(5)
    expected: set[str] = set()
    for round_ in range(3):
        make_tree(repo, {f"data/f{i}.bin": rng.randbytes(2000) for i in range(40)})
        (repo / "data/big.bin").write_bytes(rng.randbytes(2 << 20))
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "reprocli", "add", "data"],
                cwd=repo,
                env=repro_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in runs]
        assert [code for code, _ in outcomes] == [0, 0], f"round {round_}: {outcomes}"
        expected |= set(manifest_of(repo, "data").values()) | {pointer_oid(repo, "data")}
        assert not check_cache(cache_of(repo))
        assert set(cache_objects(cache_of(repo))) == expected
        assert leftover_temps(repo, cache_of(repo)) == []
        assert repro(repo, "status", "--check").returncode == 0
