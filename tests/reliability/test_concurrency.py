"""Concurrency (RELIABILITY C1–C7): repro processes racing each other on one repository, one
remote, or one shared cache.

Every command runs as its own `python -m reprocli` process (the CLI, as users run it). After
each race the invariant checker of tests/functional/test_crash.py holds: every object hashes
to its name, every pointer names objects that are present, no temp file survives the next
command. Random schedules log their seed in the FIGURE line. The repositories live on a
tmpfs when one can be mounted (repro's syncs then stay local to the test; flock and rename
behave as on any local file system), else in the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.testing
import xxhash
import yaml
from typer.testing import CliRunner

from tests.builders import git, make_tree
from tests.functional.test_crash import (
    cache_objects,
    check_cache,
    check_pointers,
    file_oid,
    leftover_temps,
    read_pointer_oid,
    repro,
    repro_env,
    workspace_files,
)
from tests.remote import conftest as remotes
from tests.remote.conftest import LocalView, RemoteUnderTest, assert_remote_valid, remote_oids

# The S3 fixtures of tests/remote (a moto server on loopback), requested by name below.
aws_env = remotes.aws_env
s3_server = remotes.s3_server
s3_admin = remotes.s3_admin
s3_url = remotes.s3_url
s3_remote = remotes.s3_remote

MiB = 1 << 20
TIMEOUT = 120.0
"""Seconds after which a command counts as hung."""


# --- running repro -----------------------------------------------------------------------


def start(root: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start `repro ARGS` in `root` as its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "reprocli", *args],
        cwd=root,
        env=repro_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = TIMEOUT) -> tuple[int, str]:
    """Wait for a started command; (exit code, stderr). A hang fails the test."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"{process.args}: still running after {timeout} s (a hang or deadlock)")
    return process.returncode, stderr


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stderr}"
    return result


def clean_error(stderr: str) -> bool:
    """One `error:` line, at most one `hint:` line, no traceback, not an internal error."""
    lines = stderr.strip().splitlines()
    return (
        bool(lines)
        and lines[0].startswith("error: ")
        and "internal error" not in lines[0]
        and all(line.startswith("hint: ") for line in lines[1:])
        and len(lines) <= 2
        and "Traceback" not in stderr
    )


def new_repo(root: Path, **cache: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    ok(repro(root, "init", "-q"))
    if cache:
        (root / ".repro" / "config.local.yaml").write_text(
            yaml.safe_dump({"version": 1, "cache": cache})
        )
    git(root, "commit", "-q", "-m", "init")
    return root


def cache_of(root: Path) -> Path:
    return root / ".repro" / "cache"


def state_problems(root: Path, cache: Path | None = None) -> list[str]:
    """The invariant checker, for a state with no command running: objects intact, every
    pointer's objects present."""
    cache = cache or cache_of(root)
    return check_cache(cache) + check_pointers(root, cache, {})


def tracked_oids(root: Path, cache: Path | None = None) -> set[str]:
    """Every object the workspace's pointers name (manifests with their files)."""
    cache = cache or cache_of(root)
    found: set[str] = set()
    for rel, data in workspace_files(root).items():
        if not rel.endswith(".repro"):
            continue
        oid = read_pointer_oid(data)
        found.add(oid)
        if oid.endswith(".dir"):
            path = cache / "objects" / oid[:2] / oid[2:]
            found |= {e["oid"] for e in json.loads(path.read_bytes())}
    return found


@functools.cache
def _can_mount() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"repro-c-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True
        )
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where this module's repositories live: a tmpfs if one can be mounted."""
    base = tmp_path_factory.mktemp("concurrency")
    if not _can_mount():
        yield base
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(base)], check=True)
    try:
        yield base
    finally:
        if subprocess.run(["umount", str(base)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(base)], check=False)


@pytest.fixture
def place(scratch: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh folder on the scratch file system for one test, removed afterwards."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:80]
    folder = scratch / name
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# --- C1: two adds of the same data at once ------------------------------------------------


def new_dataset(root: Path, rng: random.Random, tag: str, *, large: int = 2 * MiB) -> None:
    """Replace data/ and model.bin with new random content (small files and one large one)."""
    shutil.rmtree(root / "data", ignore_errors=True)
    files: dict[str, str | bytes] = {
        f"data/{'sub/' if i % 4 == 0 else ''}f{i:02d}.bin": rng.randbytes(rng.randint(1, 20_000))
        for i in range(20)
    }
    files["data/large.bin"] = rng.randbytes(large)
    files["data/tag.txt"] = tag
    files["model.bin"] = rng.randbytes(rng.randint(1000, large))
    make_tree(root, files)


def race_adds(root: Path, rounds: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    outcome: Counter[str] = Counter()
    stored: set[str] = set()
    for number in range(rounds):
        if number == 0 or rng.random() < 0.8:  # sometimes re-add what is already there
            new_dataset(root, rng, f"round {number}\n")
        runs = [start(root, "add", "data", "model.bin") for _ in range(2)]
        results = [finish(p) for p in runs]
        for code, stderr in results:
            assert code == 0, f"round {number}: exit {code}: {stderr}"
            outcome["succeeded"] += 1
        expected = {file_oid(p) for p in (root / "data").rglob("*") if p.is_file()}
        expected.add(file_oid(root / "model.bin"))
        named = tracked_oids(root)
        assert expected <= named, f"round {number}: pointers do not name the workspace's bytes"
        stored |= named
        assert set(cache_objects(cache_of(root))) == stored, "objects beyond what adds named"
        problems = damaged(cache_of(root), named) + leftover_temps(root, cache_of(root))
        assert not problems, f"round {number}: {problems}"
        outcome["objects"] = len(cache_objects(cache_of(root)))
        outcome["rounds"] += 1
    assert not state_problems(root)
    ok(repro(root, "status", "--check"))
    return outcome


def damaged(cache: Path, oids: set[str]) -> list[str]:
    """The objects among `oids` that are missing, writable or do not hash to their name."""
    problems = []
    for oid in sorted(oids):
        path = cache / "objects" / oid[:2] / oid[2:]
        if not path.is_file():
            problems.append(f"{oid}: missing")
        elif path.stat().st_mode & 0o222:
            problems.append(f"{oid}: writable")
        elif file_oid(path) != oid.removesuffix(".dir"):
            problems.append(f"{oid}: does not hash to its name")
    return problems


def test_two_adds_of_the_same_data_at_once_both_succeed(place: Path) -> None:
    root = new_repo(place / "repo")
    outcome = race_adds(root, rounds=5, seed=101)
    print(
        f"FIGURE C1: {outcome['rounds']} rounds of 2 concurrent adds (seed 101):"
        f" {outcome['succeeded']} succeeded, 0 failed; {outcome['objects']} objects, all valid,"
        " each stored once; 0 temp files left"
    )


@pytest.mark.slow
def test_fifty_rounds_of_two_concurrent_adds(place: Path) -> None:
    root = new_repo(place / "repo")
    outcome = race_adds(root, rounds=50, seed=102)
    print(f"FIGURE C1 (slow): {outcome['rounds']} rounds, {outcome['succeeded']} adds succeeded")


# --- C2: gc racing add ----------------------------------------------------------------------


def plant_garbage(cache: Path, rng: random.Random, count: int) -> set[str]:
    """Valid but unreferenced, old objects: what gc --grace 0 deletes."""
    planted = set()
    old = time.time() - 7200
    for _ in range(count):
        data = rng.randbytes(rng.randint(10, 5000))
        oid = file_oid_of(data)
        path = cache / "objects" / oid[:2] / oid[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o444)
        os.utime(path, (old, old))
        planted.add(oid)
    return planted


def file_oid_of(data: bytes) -> str:
    return str(xxhash.xxh3_128_hexdigest(data))


def race_gc_and_add(root: Path, rounds: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    cache = cache_of(root)
    outcome: Counter[str] = Counter()
    for number in range(rounds):
        planted = plant_garbage(cache, rng, 5)
        reused = rng.randbytes(3000)  # also planted as old garbage: add must keep it alive
        plant = cache / "objects" / file_oid_of(reused)[:2] / file_oid_of(reused)[2:]
        plant.parent.mkdir(parents=True, exist_ok=True)
        if not plant.exists():
            plant.write_bytes(reused)
            os.chmod(plant, 0o444)
        os.utime(plant, (time.time() - 7200,) * 2)
        name = f"new{number}"
        make_tree(
            root,
            {
                f"{name}/big.bin": rng.randbytes(rng.randint(MiB // 2, 4 * MiB)),
                f"{name}/reused.bin": reused,
                **{f"{name}/f{i}.txt": f"{number} {i}\n" for i in range(20)},
            },
        )
        adding = start(root, "add", name)
        time.sleep(rng.uniform(0.0, 0.4))
        collecting = start(root, "gc", "-f", "--grace", "0")
        add_code, add_err = finish(adding)
        gc_code, gc_err = finish(collecting)
        assert add_code == 0, f"round {number}: add exited {add_code}: {add_err}"
        assert gc_code == 0, f"round {number}: gc exited {gc_code}: {gc_err}"
        wanted = tracked_oids(root)
        missing = [oid for oid in wanted if oid not in cache_objects(cache)]
        assert not missing, f"round {number}: gc deleted objects a pointer names: {missing[:3]}"
        problems = state_problems(root)
        assert not problems, f"round {number}: {problems}"
        left = planted & set(cache_objects(cache))
        outcome["garbage deleted"] += len(planted) - len(left)
        outcome["rounds"] += 1
        # This round's data becomes garbage for the next gc: the cache stays small.
        git(root, "rm", "-q", "-f", f"{name}.repro")
        shutil.rmtree(root / name)
    fsck = ok(repro(root, "fsck", "--json"))
    doc = json.loads(fsck.stdout)
    assert (doc["corrupt"], doc["invalid"], doc["missing"]) == ([], [], [])
    assert not leftover_temps(root, cache)
    return outcome


def test_gc_racing_add_never_deletes_what_add_names(place: Path) -> None:
    root = new_repo(place / "repo")
    outcome = race_gc_and_add(root, rounds=4, seed=201)
    print(
        f"FIGURE C2: {outcome['rounds']} gc/add races at random offsets (seed 201, gc --grace 0):"
        f" 0 objects lost, 0 dangling pointers; gc deleted {outcome['garbage deleted']} planted"
        " garbage objects"
    )


@pytest.mark.slow
def test_a_hundred_gc_add_races(place: Path) -> None:
    root = new_repo(place / "repo")
    outcome = race_gc_and_add(root, rounds=100, seed=202)
    print(f"FIGURE C2 (slow): {outcome['rounds']} gc/add races: 0 objects lost")


# --- C3: mixed torture ----------------------------------------------------------------------

LOCKED = "holds the repository lock"
REFUSED = "uncommitted change"


@dataclass
class Torture:
    """Shared state of the torture workers: what was written, and what every command did."""

    root: Path
    remote: Path
    seed: int
    deadline: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    contents: dict[str, set[bytes]] = field(default_factory=dict)
    ops: Counter[str] = field(default_factory=Counter)
    waits: int = 0
    waits_without_pid: int = 0
    refusals: int = 0
    violations: list[str] = field(default_factory=list)
    hangs: int = 0
    slowest: float = 0.0

    def record(self, rel: str, data: bytes) -> None:
        with self.lock:
            self.contents.setdefault(rel, set()).add(data)


FILES = [f"data/f{i}.txt" for i in range(6)] + ["data/sub/g.bin", "model.bin"]
OPS = {
    "add": 25,
    "modify": 20,
    "status": 20,
    "checkout": 15,
    "gc": 10,
    "push": 10,
}


def modify(t: Torture, rng: random.Random) -> None:
    """Replace one tracked file atomically (as an editor saving it would)."""
    rel = rng.choice(FILES)
    data = (
        rng.randbytes(rng.randint(1, 300_000))
        if rel.endswith(".bin")
        else (f"{rng.random()}\n".encode() * rng.randint(1, 50))
    )
    t.record(rel, data)
    path = t.root / rel
    tmp = t.root / f".editor-{threading.get_ident()}.tmp"  # outside the tracked data
    tmp.write_bytes(data)
    os.replace(tmp, path)


def command_for(op: str, rng: random.Random) -> tuple[str, ...]:
    if op == "add":
        return ("add", "data", "model.bin")
    if op == "status":
        return ("status",)
    if op == "checkout":
        return ("checkout",)
    if op == "gc":
        return ("gc", "-f", "--grace", rng.choice(["0", "3600"]))
    return ("push",)


def worker(t: Torture, number: int) -> None:
    rng = random.Random(t.seed * 100 + number)
    names, weights = zip(*OPS.items(), strict=True)
    while time.monotonic() < t.deadline:
        op = rng.choices(names, weights)[0]
        with t.lock:
            t.ops[op] += 1
        if op == "modify":
            modify(t, rng)
            continue
        args = command_for(op, rng)
        started = time.monotonic()
        # A short wait limit half the time: the "lock held by PID n" report is exercised too.
        process = start(t.root, *args, REPRO_LOCK_TIMEOUT=rng.choice(["0.5", "15"]))
        try:
            _, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            with t.lock:
                t.hangs += 1
            continue
        elapsed = time.monotonic() - started
        code = process.returncode
        with t.lock:
            t.slowest = max(t.slowest, elapsed)
            if code == 0 and "Traceback" not in stderr:
                continue
            if code == 2 and clean_error(stderr) and LOCKED in stderr:
                t.waits += 1
                t.waits_without_pid += "(pid " not in stderr
            elif code == 2 and clean_error(stderr) and op == "checkout" and REFUSED in stderr:
                t.refusals += 1
            else:
                t.violations.append(f"repro {' '.join(args)}: exit {code}: {stderr.strip()!r}")


def run_torture(place: Path, seconds: float, seed: int) -> Torture:
    root = new_repo(place / "repo")
    remote = place / "remote"
    ok(repro(root, "remote", "add", "-d", "origin", str(remote)))
    rng = random.Random(seed)
    t = Torture(root, remote, seed, deadline=0.0)
    for rel in FILES:
        data = rng.randbytes(50_000) if rel.endswith(".bin") else f"{rel}\n".encode()
        make_tree(root, {rel: data})
        t.record(rel, data)
    ok(repro(root, "add", "data", "model.bin"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    t.deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=worker, args=(t, n)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 2 * TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a torture worker never finished"
    return t


def check_after_torture(t: Torture) -> list[str]:
    """The invariant checker once every process has stopped; then the next commands."""
    root, cache = t.root, cache_of(t.root)
    problems = state_problems(root)
    for rel in FILES:
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: lost (nothing in the torture deletes it)")
        elif path.read_bytes() not in t.contents[rel]:
            problems.append(f"{rel}: holds bytes nobody wrote")
    fsck = repro(root, "fsck", "--json")
    if fsck.returncode != 0:
        problems.append(f"fsck: exit {fsck.returncode}: {fsck.stdout[-500:]}{fsck.stderr}")
    if t.remote.exists():
        try:
            assert_remote_valid(LocalView(t.remote))
        except AssertionError as exc:
            problems.append(f"remote: {exc}")
    for args in (("add", "data", "model.bin"), ("status", "--check"), ("push",)):
        result = repro(root, *args)
        if result.returncode != 0:
            problems.append(f"repro {' '.join(args)} after the torture: {result.stderr.strip()}")
    problems += [f"temp file after the next command: {p}" for p in leftover_temps(root, cache)]
    return problems


def report_torture(t: Torture, seconds: float, tier: str) -> None:
    ops = ", ".join(f"{n} {op}" for op, n in sorted(t.ops.items()))
    print(
        f"FIGURE C3{tier}: 4 processes x {seconds:g} s mixed operations (seed {t.seed}):"
        f" {sum(t.ops.values())} ops ({ops}); {t.waits} lock waits over the limit reported"
        f" ({t.waits - t.waits_without_pid} naming the holder's PID), {t.refusals} checkouts"
        f" refused over unsaved edits; {len(t.violations)} violations, {t.hangs} hangs;"
        f" slowest command {t.slowest:.1f} s"
    )


def test_mixed_torture_keeps_every_invariant(place: Path) -> None:
    seconds = 20.0
    t = run_torture(place, seconds, seed=301)
    problems = check_after_torture(t)
    report_torture(t, seconds, "")
    assert not t.hangs, f"{t.hangs} commands hung"
    assert not t.violations, "\n".join(t.violations[:20])
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_mixed_torture_for_five_minutes(place: Path) -> None:
    seconds = float(os.environ.get("REPRO_TORTURE_SECONDS", 300))
    t = run_torture(place, seconds, seed=302)
    problems = check_after_torture(t)
    report_torture(t, seconds, " (slow)")
    assert not t.hangs
    assert not t.violations, "\n".join(t.violations[:20])
    assert not problems, "\n".join(problems)


def test_checkout_reads_the_pointers_again_once_it_holds_the_lock(
    place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the 5-minute torture: checkout read a pointer, then an `add` replaced it and a
    `gc --grace 0` deleted its manifest before checkout got the lock."""
    from reprocli.operations.checkout import checkout
    from reprocli.project import Project

    root = new_repo(place / "repo")
    make_tree(root, {"data/a.txt": "1\n"})
    ok(repro(root, "add", "data"))
    git(root, "commit", "-q", "-m", "v1")
    make_tree(root, {"data/a.txt": "2\n"})
    ok(repro(root, "add", "data"))  # v2: staged, never committed
    original = Project.locked

    def another_process_first(self: Project) -> Any:
        monkeypatch.setattr(Project, "locked", original)
        make_tree(root, {"data/a.txt": "3\n"})
        ok(repro(root, "add", "data"))  # v3 replaces v2 in the workspace and the index ...
        ok(repro(root, "gc", "-f", "--grace", "0"))  # ... so v2's manifest goes
        return original(self)

    monkeypatch.setattr(Project, "locked", another_process_first)
    result = checkout(Project.discover(root))  # read v2's pointer before the lock

    assert (root / "data" / "a.txt").read_text() == "3\n"
    assert result.written == 0
    assert not state_problems(root)


# --- C4: stale lock after kill -9 -----------------------------------------------------------


def kill_while_locked(root: Path, args: tuple[str, ...]) -> tuple[int, str]:
    """Start `repro ARGS`, SIGKILL it as soon as the lock file names it; (its pid, the lock
    file's content after the kill). Fails if the command finished before it could be killed."""
    process = start(root, *args)
    lock = root / ".repro" / "lock"
    mark = f"pid {process.pid} "
    deadline = time.monotonic() + 30
    held = ""
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(FileNotFoundError):
            held = lock.read_text()
        if mark in held:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.0005)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, f"{args} finished before the kill"
    return process.pid, lock.read_text()


def prepare_holders(root: Path, rng: random.Random, number: int) -> None:
    """Work for add, checkout and gc that takes long enough to be caught holding the lock."""
    make_tree(
        root,
        {f"data{number}/f{i:04d}.bin": rng.randbytes(rng.randint(1, 4000)) for i in range(1500)},
    )


def kill_holders(place: Path, command: str, rounds: int) -> None:
    root = new_repo(place / "repo")
    rng = random.Random(401)
    waits = []
    for number in range(rounds):
        prepare_holders(root, rng, number)
        if command == "add":
            args: tuple[str, ...] = ("add", f"data{number}")
        elif command == "checkout":
            ok(repro(root, "add", f"data{number}"))
            shutil.rmtree(root / f"data{number}")
            args = ("checkout",)
        else:
            ok(repro(root, "add", f"data{number}"))
            git(root, "rm", "-q", "-f", f"data{number}.repro")
            shutil.rmtree(root / f"data{number}")
            args = ("gc", "-f", "--grace", "0")
        pid, held = kill_while_locked(root, args)
        assert f"pid {pid}" in held, "the dead holder's PID should still be in the lock file"
        assert state_problems(root) == []
        started = time.monotonic()
        after = repro(root, *args, env=repro_env(REPRO_LOCK_TIMEOUT="2"))
        waits.append(time.monotonic() - started)
        assert after.returncode == 0, f"after kill -9 of {args}: {after.stderr}"
        assert LOCKED not in after.stderr
        assert state_problems(root) == []
        assert leftover_temps(root, cache_of(root)) == []
    ok(repro(root, "status", "--check"))
    print(
        f"FIGURE C4/{command}: {rounds} lock holders killed with kill -9: the next command"
        f" proceeded every time (slowest {max(waits):.2f} s, lock timeout 2 s), 0 invariant"
        " violations"
    )


@pytest.mark.parametrize("command", ["add", "checkout", "gc"])
def test_a_lock_holder_killed_with_kill_9_never_blocks_the_next_command(
    place: Path, command: str
) -> None:
    kill_holders(place, command, rounds=1)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["add", "checkout", "gc"])
def test_ten_lock_holders_killed_with_kill_9(place: Path, command: str) -> None:
    kill_holders(place, command, rounds=10)


# --- C5: two clones push the same objects to one remote at once ----------------------------


def race_pushes(place: Path, remote: RemoteUnderTest, rounds: int, large: int) -> Counter[str]:
    first = new_repo(place / "a")
    ok(repro(first, *remote.add_args()))
    git(first, "commit", "-q", "-m", "remote", ".repro/config.yaml")
    rng = random.Random(501)
    outcome: Counter[str] = Counter()
    second = place / "b"
    for number in range(rounds):
        new_dataset(first, rng, f"push round {number}\n", large=large)
        ok(repro(first, "add", "data", "model.bin"))
        git(first, "add", "-A")
        git(first, "commit", "-q", "-m", f"round {number}")
        shutil.rmtree(second, ignore_errors=True)
        shutil.copytree(first, second, symlinks=True)  # a clone with the same cache
        pushes = [start(root, "push", "-j", "4") for root in (first, second)]
        for code, stderr in (finish(p) for p in pushes):
            assert code == 0, f"round {number}: push exited {code}: {stderr}"
            outcome["pushes"] += 1
        wanted = tracked_oids(first)
        assert wanted <= remote_oids(remote.view), "a pushed object is missing on the remote"
        assert_remote_valid(remote.view)
        outcome["objects"] = len(remote_oids(remote.view))
        outcome["rounds"] += 1
    clone = place / "fresh"
    git(place, "clone", "-q", str(first), str(clone))
    ok(repro(clone, "pull"))
    assert data_of(clone) == data_of(first)
    return outcome


def data_of(root: Path) -> dict[str, bytes]:
    """The tracked bytes of `data/` and `model.bin`."""
    return {
        rel: data
        for rel, data in workspace_files(root).items()
        if rel == "model.bin" or rel.startswith("data/")
    }


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_clones_pushing_the_same_objects_at_once_both_succeed(
    place: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "local":
        view = LocalView(place / "store")
        remote = RemoteUnderTest("local", str(place / "store"), (), view)
    else:
        remote = request.getfixturevalue("s3_remote")
    rounds, large = (3, 2 * MiB) if kind == "local" else (1, 256 << 10)  # moto is slow
    outcome = race_pushes(place, remote, rounds, large)
    print(
        f"FIGURE C5/{kind}: {outcome['rounds']} rounds of 2 clones pushing the same objects at"
        f" once: {outcome['pushes']} pushes succeeded, {outcome['objects']} remote objects, all"
        " valid, none missing; a fresh clone pulled them"
    )


# --- K4: remote gc racing a clone that pushes -----------------------------------------------


def race_remote_gc(place: Path, rounds: int, seed: int) -> int:
    """Clone B adds and pushes new data while clone A runs `gc -r -f` (default grace); only
    then does B commit and push its Git commit. Return how many objects B pushed."""
    rng = random.Random(seed)
    bare = place / "origin.git"
    git(place, "init", "-q", "--bare", "-b", "main", str(bare))
    first = new_repo(place / "a")
    ok(repro(first, "remote", "add", "-d", "origin", str(place / "store")))
    git(first, "commit", "-q", "-m", "remote", ".repro/config.yaml")
    git(first, "remote", "add", "origin", str(bare))
    git(first, "push", "-q", "origin", "main")
    second = place / "b"
    git(place, "clone", "-q", str(bare), str(second))
    pushed = 0
    for number in range(rounds):
        files = {f"r{number}/f{i}.bin": rng.randbytes(rng.randint(1, 200_000)) for i in range(3)}
        make_tree(second, files)
        ok(repro(second, "add", f"r{number}"))
        pusher = start(second, "push")
        time.sleep(rng.uniform(0, 0.3))
        collector = start(first, "gc", "-r", "origin", "-f")  # the default grace period
        for name, (code, stderr) in (("push", finish(pusher)), ("gc", finish(collector))):
            assert code == 0, f"round {number}: {name} exited {code}: {stderr}"
        git(second, "add", "-A")  # B's Git commit is pushed after A's gc, as teams do
        git(second, "commit", "-q", "-m", f"round {number}")
        git(second, "push", "-q", "origin", "main")
        pushed += len(files) + 1  # its files and the folder's manifest
    fresh = place / "fresh"
    git(place, "clone", "-q", str(bare), str(fresh))
    ok(repro(fresh, "pull"))  # every object any commit names is still on the remote
    assert (
        workspace_files(fresh).items()
        >= {k: v for k, v in workspace_files(second).items() if k.startswith("r")}.items()
    )
    return pushed


def test_remote_gc_racing_a_push_spares_what_the_pusher_commits_next(place: Path) -> None:
    pushed = race_remote_gc(place, 3, 801)
    print(f"FIGURE K4: 3 races of gc -r -f against a push: {pushed} objects pushed, 0 missing")


@pytest.mark.slow
def test_fifty_remote_gc_races(place: Path) -> None:
    pushed = race_remote_gc(place, 50, 802)
    print(f"FIGURE K4: 50 races of gc -r -f against a push: {pushed} objects pushed, 0 missing")


# --- C6: run -j2 with parallel stages -------------------------------------------------------

STAGE_SCRIPT = """\
import sys, time, yaml
i, pause = sys.argv[1], float(sys.argv[2])
if i == "join":
    parts = [open(f"out{n}.txt").read() for n in range(4)]
    open("join.txt", "w").write("".join(parts))
else:
    value = yaml.safe_load(open("params.yaml"))[f"k{i}"]
    began = time.time()
    time.sleep(pause)
    open(f"out{i}.txt", "w").write(str(value) * 1000)
    with open("stages.log", "a") as log:  # not an output: repro.lock does not see it
        log.write(f"{i} {began} {time.time()}\\n")
"""


def overlapped(root: Path) -> bool:
    """Whether two stages of the last run were running at the same moment (stages.log)."""
    lines = (root / "stages.log").read_text().splitlines()
    spans = [tuple(map(float, line.split()[1:])) for line in lines]
    (root / "stages.log").unlink()
    return any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :])


def pipeline_repo(root: Path) -> Path:
    """Four independent stages that sleep, then write an output; a join stage needs all four."""
    new_repo(root)
    stages = {
        f"s{i}": {
            "cmd": f"{sys.executable} stage.py {i} {0.2 + 0.15 * (i % 2)}",
            "params": [f"k{i}"],
            "outs": [f"out{i}.txt"],
        }
        for i in range(4)
    }
    stages["join"] = {
        "cmd": f"{sys.executable} stage.py join 0",
        "deps": [f"out{i}.txt" for i in range(4)],
        "outs": ["join.txt"],
    }
    make_tree(
        root,
        {
            "repro.yaml": yaml.safe_dump({"stages": stages}, sort_keys=False),
            "params.yaml": "k0: 1\nk1: 1\nk2: 1\nk3: 1\n",
            "stage.py": STAGE_SCRIPT,
        },
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    return root


_HANDLERS: list[Callable[[str, tuple[Any, ...]], None]] = []
_HOOKED: list[bool] = []


def _dispatch(event: str, args: tuple[Any, ...]) -> None:
    for handler in list(_HANDLERS):
        handler(event, args)


@contextlib.contextmanager
def audit_events(handler: Callable[[str, tuple[Any, ...]], None]) -> Iterator[None]:
    """Call `handler` for every audit event of this process while the block runs."""
    if not _HOOKED:
        sys.addaudithook(_dispatch)  # audit hooks cannot be removed: it idles when unused
        _HOOKED.append(True)
    _HANDLERS.append(handler)
    try:
        yield
    finally:
        _HANDLERS.remove(handler)


@functools.cache
def click_command() -> Any:
    from reprocli.cli.app import app

    return typer.main.get_command(app)


def run_in_process(root: Path, *args: str) -> typer.testing.Result:
    from reprocli.cli.app import app

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", lambda _: click_command())
        patch.chdir(root)
        return CliRunner().invoke(app, list(args), catch_exceptions=False)


@dataclass
class LockWatch:
    publishes: list[tuple[int, str]] = field(default_factory=list)
    in_place_writes: list[str] = field(default_factory=list)
    reads: int = 0
    unreadable: list[str] = field(default_factory=list)


def _target(path: Any, dir_fd: Any) -> str:
    """The absolute path an audited rename writes: `path`, relative to `dir_fd` when given
    (workspace files are published through folder descriptors: core/folders.py)."""
    name = os.fsdecode(path)
    if isinstance(dir_fd, int) and dir_fd >= 0:
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
    return name


def watched_run(root: Path, *args: str) -> tuple[typer.testing.Result, LockWatch]:
    """Run `repro ARGS` in-process, watching repro.lock: who publishes it and how, and
    whether a reader polling it all along ever sees anything but a whole, valid lock."""
    from reprocli.pipeline import lockfile

    lock = str(root / "repro.lock")
    watch = LockWatch()
    stop = threading.Event()

    def on_event(event: str, event_args: tuple[Any, ...]) -> None:
        if event == "os.rename" and _target(event_args[1], event_args[3]) == lock:
            watch.publishes.append((threading.get_ident(), os.fsdecode(event_args[0])))
        elif event == "open" and event_args[0] is not None:
            path = os.fsdecode(event_args[0]) if isinstance(event_args[0], str | bytes) else ""
            mode, flags = event_args[1], event_args[2] if len(event_args) > 2 else 0
            writes = (isinstance(mode, str) and set(mode) & set("wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)
            )
            if path == lock and writes:
                watch.in_place_writes.append(threading.current_thread().name)

    def poll() -> None:
        while not stop.is_set():
            try:
                data = Path(lock).read_bytes()
            except FileNotFoundError:
                continue
            watch.reads += 1
            try:
                lockfile.decode(data)
            except Exception as exc:
                watch.unreadable.append(f"{exc!r}: {data[:80]!r}")

    reader = threading.Thread(target=poll, name="reader")
    reader.start()
    try:
        with audit_events(on_event):
            result = run_in_process(root, *args)
    finally:
        stop.set()
        reader.join()
    return result, watch


def test_parallel_stages_never_interleave_writes_to_repro_lock(place: Path) -> None:
    parallel = pipeline_repo(place / "parallel")
    serial = pipeline_repo(place / "serial")
    main = threading.get_ident()
    publishes = reads = 0
    for change in (None, ("k1: 1\nk2: 1", "k1: 2\nk2: 3")):  # all four stages, then two
        if change is not None:
            for root in (parallel, serial):
                params = root / "params.yaml"
                params.write_text(params.read_text().replace(*change))
        result, watch = watched_run(parallel, "run", "-j", "2")
        assert result.exit_code == 0, result.output
        ok(repro(serial, "run", "-j", "1"))
        assert watch.publishes, "repro.lock was not published by rename"
        assert {thread for thread, _ in watch.publishes} == {main}, "a worker wrote repro.lock"
        assert not watch.in_place_writes, f"repro.lock opened for writing: {watch.in_place_writes}"
        assert not watch.unreadable, f"a reader saw a partial lock: {watch.unreadable[:3]}"
        assert (parallel / "repro.lock").read_bytes() == (serial / "repro.lock").read_bytes()
        assert overlapped(parallel), "-j 2 ran the stages one after the other"
        (serial / "stages.log").unlink()
        publishes += len(watch.publishes)
        reads += watch.reads
    print(
        f"FIGURE C6: 2 runs of `run -j 2` (4, then 2 parallel stages, and a join): stages"
        f" overlapped; {publishes} publishes"
        f" of repro.lock, all atomic renames from the scheduling thread; {reads} concurrent reads,"
        " all whole and valid; bytes identical to -j 1 every time"
    )


# --- C7: a cache shared by two projects ---------------------------------------------------


def shared_pair(place: Path) -> tuple[Path, Path, Path]:
    shared = place / "shared-cache"
    first = new_repo(place / "a", dir=str(shared))
    second = new_repo(place / "b", dir=str(shared))
    return first, second, shared


def age_all(cache: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    for path in (cache / "objects").rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))


def test_gc_of_a_shared_cache_needs_the_other_projects_and_keeps_what_they_name(
    place: Path,
) -> None:
    first, second, shared = shared_pair(place)
    make_tree(first, {"mine.bin": b"only project A uses this\n"})
    make_tree(second, {"theirs.bin": b"project B committed this long ago\n"})
    ok(repro(first, "add", "mine.bin"))
    ok(repro(second, "add", "theirs.bin"))
    git(second, "commit", "-q", "-m", "B's data")
    (first / "mine.bin.repro").unlink()  # garbage in A, and nobody else names it
    git(first, "rm", "-q", "--cached", "mine.bin.repro")
    age_all(shared)  # B has not touched its object for hours: its mtime protects nothing
    before = set(cache_objects(shared))

    refused = repro(first, "gc", "-f")
    assert refused.returncode == 2 and "shared" in refused.stderr, refused.stderr
    assert "--project" in refused.stderr and set(cache_objects(shared)) == before
    ok(repro(first, "gc", "--dry"))  # looking is always allowed

    ok(repro(first, "gc", "-f", "--project", str(second)))
    theirs = xxhash.xxh3_128_hexdigest(b"project B committed this long ago\n")
    mine = xxhash.xxh3_128_hexdigest(b"only project A uses this\n")
    assert before - set(cache_objects(shared)) == {mine}, "gc deleted more than A's garbage"
    assert theirs in set(cache_objects(shared))
    assert not state_problems(second, shared)


def test_gc_in_one_project_keeps_an_object_the_other_just_reused(place: Path) -> None:
    first, second, shared = shared_pair(place)
    payload = random.Random(701).randbytes(300_000)
    make_tree(second, {"copy.bin": payload})
    ok(repro(second, "add", "copy.bin"))
    git(second, "rm", "-q", "-f", "copy.bin.repro")  # garbage for everyone now ...
    age_all(shared)  # ... and old
    make_tree(second, {"again.bin": payload})
    ok(repro(second, "add", "again.bin"))  # reuses the old object: it must count as fresh

    ok(repro(first, "gc", "-f", "--project", "."))  # default grace; A's user forgot B

    assert not state_problems(second, shared), "gc in A deleted what B just re-added"


def test_gc_looping_in_one_project_never_breaks_the_other(place: Path) -> None:
    """B adds new and reused data while A runs gc -f (default grace) over and over."""
    first, second, shared = shared_pair(place)
    rng = random.Random(702)
    payloads = [rng.randbytes(rng.randint(1000, 200_000)) for _ in range(6)]
    for i, payload in enumerate(payloads):  # every payload becomes old garbage
        make_tree(second, {f"seed{i}.bin": payload})
    ok(repro(second, "add", *[f"seed{i}.bin" for i in range(len(payloads))]))
    for i in range(len(payloads)):
        git(second, "rm", "-q", "-f", f"seed{i}.bin.repro")
    age_all(shared)
    stop = threading.Event()
    gcs: list[tuple[int, str]] = []

    def collect() -> None:
        while not stop.is_set():
            gcs.append(finish(start(first, "gc", "-f", "--project", ".")))

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        for round_ in range(3):
            make_tree(
                second,
                {
                    f"r{round_}/reused.bin": payloads[round_],
                    f"r{round_}/new.bin": rng.randbytes(50_000),
                },
            )
            code, stderr = finish(start(second, "add", f"r{round_}"))
            assert code == 0, stderr
    finally:
        stop.set()
        collector.join()
    assert all(code == 0 for code, _ in gcs), gcs
    assert not state_problems(second, shared)
    print(
        f"FIGURE C7: {len(gcs)} gc runs in project A during 3 adds in project B (shared cache,"
        " new and reused old objects): 0 objects B names were deleted"
    )


def test_gc_waiting_for_confirmation_spares_an_object_reused_meanwhile(place: Path) -> None:
    from reprocli.operations.gc import gc
    from reprocli.operations.scope import Revisions
    from reprocli.project import Project

    first, second, shared = shared_pair(place)
    payload = random.Random(703).randbytes(100_000)
    make_tree(second, {"copy.bin": payload})
    ok(repro(second, "add", "copy.bin"))
    git(second, "rm", "-q", "-f", "copy.bin.repro")
    age_all(shared)

    def confirm(_: object) -> bool:  # the user reads the prompt; meanwhile, in project B:
        make_tree(second, {"again.bin": payload})
        ok(repro(second, "add", "again.bin"))
        return True

    gc(Project.discover(first), Revisions(), confirm=confirm, others=[])

    assert not state_problems(second, shared)
