"""kill -9 at the filesystem events of add, commit and checkout (RELIABILITY A1, A2, F6).

Building block 1: `tests/crashshim/sitecustomize.py` counts filesystem events through an
audit hook and SIGKILLs the process at the N-th one. For each command we run it once in
report mode to learn K, then kill it at a sample of N in 1..K (all of them when K is
small); after each kill the invariant checker must hold, the same command run again must
complete, and the result must equal that of an uninterrupted run (DESIGN §4 invariant 7).

`check_state` is the reusable invariant checker; test_invariants.py uses its parts too.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xxhash
import yaml

from tests.builders import git, make_tree

SHIM_DIR = Path(__file__).resolve().parents[1] / "crashshim"
TEMP_PREFIX = ".repro-tmp-"
OBJECT_NAME = re.compile(r"[0-9a-f]{30}(?:\.dir)?")
SLOTS = 10  # test items per scenario, so that xdist can spread the crash points
SAMPLE = 40  # crash points per scenario when K is large
FULL_BELOW = 60  # crash at every point when K is at most this


# --- running repro -----------------------------------------------------------------------


def repro_env(**extra: str) -> dict[str, str]:
    """os.environ (with the test's isolated HOME and Git settings) plus the crash shim."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIM_DIR), env.get("PYTHONPATH", "")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # bytecode writes would count as events
    env["PYTHONHASHSEED"] = "0"
    env.pop("REPRO_TEST_CRASH_AT", None)
    env.pop("REPRO_TEST_CRASH_COUNT", None)
    env.update(extra)
    return env


def repro(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m reprocli ARGS` in `root` as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "reprocli", *args],
        cwd=root,
        env=env if env is not None else repro_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def count_events(root: Path, args: tuple[str, ...], report: Path) -> int:
    """Run the command in report mode; return how many filesystem events it raised."""
    result = repro(root, *args, env=repro_env(REPRO_TEST_CRASH_COUNT=str(report)))
    assert result.returncode == 0, f"repro {' '.join(args)}: {result.stderr}"
    return int(report.read_text())


# --- the invariant checker -----------------------------------------------------------------


def file_oid(path: Path) -> str:
    """The object id (xxh3-128) of a file's bytes."""
    state = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            state.update(chunk)
    return str(state.hexdigest())


def cache_objects(cache: Path) -> dict[str, Path]:
    """Every file under `cache/objects`, keyed by prefix + name (its object id if well named)."""
    objects = cache / "objects"
    found: dict[str, Path] = {}
    if not objects.is_dir():
        return found
    for prefix in sorted(objects.iterdir()):
        if not prefix.is_dir():
            found[prefix.name] = prefix
            continue
        for path in sorted(prefix.iterdir()):
            found[prefix.name + path.name] = path
    return found


def check_cache(cache: Path) -> list[str]:
    """Every object is well named, read-only and hashes to its name; manifests are complete."""
    problems: list[str] = []
    objects = cache_objects(cache)
    for oid, path in objects.items():
        rel = path.relative_to(cache)
        if len(path.parent.name) != 2 or not OBJECT_NAME.fullmatch(path.name):
            problems.append(f"{rel}: a file that is not an object sits in objects/")
            continue
        if not path.is_file() or path.is_symlink():
            problems.append(f"{rel}: not a regular file")
            continue
        if file_oid(path) != oid.removesuffix(".dir"):
            problems.append(
                f"{rel}: content does not hash to its name (size {path.stat().st_size})"
            )
            continue
        if path.stat().st_mode & 0o222:
            problems.append(f"{rel}: writable (mode {path.stat().st_mode & 0o777:o})")
        if oid.endswith(".dir"):
            problems += check_manifest(oid, path.read_bytes(), objects)
    return problems


def check_manifest(oid: str, data: bytes, objects: dict[str, Path]) -> list[str]:
    """A manifest parses, is sorted, has no duplicates, and all its children are present."""
    try:
        entries = json.loads(data)
    except ValueError as exc:
        return [f"manifest {oid}: does not parse ({exc})"]
    if not isinstance(entries, list):
        return [f"manifest {oid}: not a list"]
    names = [str(e.get("path")) for e in entries if isinstance(e, dict)]
    problems: list[str] = []
    if len(names) != len(entries) or names != sorted(set(names)):
        problems.append(f"manifest {oid}: entries not sorted, not unique or not objects")
    missing = [e["path"] for e in entries if isinstance(e, dict) and e.get("oid") not in objects]
    if missing:
        problems.append(f"manifest {oid}: children missing from the cache: {missing[:5]}")
    return problems


def read_pointer_oid(data: bytes) -> str:
    """The object id a pointer file names."""
    raw = yaml.safe_load(data)
    return str(raw["outs"][0]["oid"])


def workspace_files(root: Path) -> dict[str, bytes]:
    """Every file of the workspace outside .git/ and .repro/, except repro's temp files.

    Symlinks are recorded as `symlink -> target` so that a link never passes for a file.
    """
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d not in (".git", ".repro")]
        for name in names + [d for d in dirs if Path(folder, d).is_symlink()]:
            if name.startswith(TEMP_PREFIX):
                continue
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"symlink -> {os.readlink(path)}".encode()
            else:
                found[rel] = path.read_bytes()
    return found


def check_pointers(root: Path, cache: Path, old: dict[str, bytes]) -> list[str]:
    """Every pointer is the old one or names objects that are all in the cache."""
    problems: list[str] = []
    objects = cache_objects(cache)
    for rel, data in workspace_files(root).items():
        if not rel.endswith(".repro") or old.get(rel) == data:
            continue
        try:
            oid = read_pointer_oid(data)
        except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
            problems.append(f"{rel}: a new pointer that does not parse ({exc!r}): {data[:200]!r}")
            continue
        if oid not in objects:
            problems.append(f"{rel}: names {oid}, which is not in the cache")
        elif oid.endswith(".dir"):
            try:
                children = [e["oid"] for e in json.loads(objects[oid].read_bytes())]
            except (ValueError, KeyError, TypeError):
                continue  # check_cache reports a broken manifest
            absent = [c for c in children if c not in objects]
            if absent:
                problems.append(f"{rel}: {len(absent)} file object(s) of {oid} are missing")
    return problems


def check_workspace(
    now: dict[str, bytes], before: dict[str, bytes], after: dict[str, bytes]
) -> list[str]:
    """Each workspace file holds its old bytes or its new bytes (or is absent where either is)."""
    problems: list[str] = []
    for rel in sorted(now.keys() | before.keys() | after.keys()):
        allowed = {before.get(rel), after.get(rel)}
        if now.get(rel) not in allowed and not _is_partial_gitignore(rel, now, before, after):
            have = "absent" if rel not in now else f"{len(now[rel])} bytes"
            problems.append(
                f"{rel}: is {have}, neither the old content nor the new one"
                f" ({'absent' if rel not in before else f'{len(before[rel])} bytes'} /"
                f" {'absent' if rel not in after else f'{len(after[rel])} bytes'})"
            )
    return problems


def _is_partial_gitignore(
    rel: str, now: dict[str, bytes], before: dict[str, bytes], after: dict[str, bytes]
) -> bool:
    """A .gitignore may be caught between two whole-line updates (one per added path).

    Each update is atomic; what must hold is that it has only old or new lines, whole ones.
    """
    if rel.rsplit("/", 1)[-1] != ".gitignore" or rel not in now:
        return False
    text = now[rel]
    known = set(before.get(rel, b"").splitlines()) | set(after.get(rel, b"").splitlines())
    return (not text or text.endswith(b"\n")) and set(text.splitlines()) <= known


def leftover_temps(root: Path, cache: Path) -> list[str]:
    """Temp files anywhere in the repository, and anything at all in the temp folders."""
    found: list[str] = []
    for folder, dirs, names in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d != ".git"]
        found += [
            str((Path(folder) / n).relative_to(root))
            for n in names + dirs
            if n.startswith(TEMP_PREFIX)
        ]
    for tmp in (root / ".repro" / "tmp", cache / "tmp"):
        if tmp.is_dir():
            found += [str(p) for p in tmp.iterdir() if not p.name.startswith(TEMP_PREFIX)]
    return sorted(set(found))


def check_state(root: Path, before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """The invariant checker: what must hold at any moment, even right after a kill -9.

    - every cache object hashes to its name (and is read-only), manifests are complete;
    - every pointer in the workspace is the old one, or names objects that are present;
    - every workspace file has its old bytes or the bytes the command means to write,
      never a mix, and nothing else changed.
    """
    cache = root / ".repro" / "cache"
    now = workspace_files(root)
    return (
        check_cache(cache)
        + check_pointers(root, cache, before)
        + check_workspace(now, before, after)
    )


# --- scenarios -----------------------------------------------------------------------------


def build_project(root: Path) -> None:
    """A Git repository with repro, a bystander file, and data to track (not yet added)."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    rng = random.Random(7)
    files: dict[str, str | bytes] = {
        f"data/{'sub/' if i % 3 == 0 else ''}f{i:02d}.txt": f"row {i}\n" * (i + 1)
        for i in range(29)
    }
    files["data/empty.txt"] = b""
    files["model.bin"] = rng.randbytes(3 << 20)
    files["src/train.py"] = "print('train')\n"
    make_tree(root, files)
    (root / "data" / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "data" / "run.sh", 0o755)
    git(root, "add", "src")
    ok(repro(root, "init", "-q"))
    git(root, "commit", "-q", "-m", "code")
    (root / "notes.txt").write_text("untracked notes, never touched\n")


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stderr}"


def set_link_type(root: Path, kind: str) -> None:
    (root / ".repro" / "config.local.yaml").write_text(f"version: 1\ncache:\n  type: {kind}\n")


def setup_add(root: Path) -> None:
    build_project(root)


def setup_commit(root: Path) -> None:
    build_project(root)
    ok(repro(root, "add", "-q", "data", "model.bin"))
    git(root, "commit", "-q", "-m", "data v1")
    (root / "data" / "f04.txt").write_text("edited\n")
    (root / "data" / "f07.txt").unlink()
    (root / "data" / "sub" / "new.txt").write_text("a new file\n")
    with open(root / "model.bin", "r+b") as handle:  # same size, new bytes in the middle
        handle.seek(1 << 20)
        handle.write(b"\xff" * 4096)


def setup_checkout(kind: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        build_project(root)
        set_link_type(root, kind)
        ok(repro(root, "add", "-q", "data", "model.bin"))
        git(root, "commit", "-q", "-m", "data v1")
        shutil.rmtree(root / "data")
        (root / "model.bin").unlink()

    return setup


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[Path], None]
    command: tuple[str, ...]


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("add", setup_add, ("add", "data", "model.bin")),
        Scenario("commit", setup_commit, ("commit",)),
        Scenario("checkout-copy", setup_checkout("copy"), ("checkout",)),
        Scenario("checkout-hardlink", setup_checkout("hardlink"), ("checkout",)),
    )
}


@dataclass(frozen=True)
class Prepared:
    """A scenario's repository before the command, and what an uninterrupted run leaves."""

    scenario: Scenario
    template: Path
    before: dict[str, bytes]
    after: dict[str, bytes]
    git_status: str
    events: int


_PREPARED: dict[str, Prepared] = {}


def prepare(name: str, factory: pytest.TempPathFactory) -> Prepared:
    """Build the scenario's template once per worker, and run the command once cleanly."""
    if name in _PREPARED:
        return _PREPARED[name]
    scenario = SCENARIOS[name]
    base = factory.mktemp(f"crash-{name}")
    template = base / "template"
    scenario.setup(template)
    reference = base / "reference"
    shutil.copytree(template, reference, symlinks=True)
    events = count_events(reference, scenario.command, base / "count")
    assert events > 0
    prepared = Prepared(
        scenario,
        template,
        before=workspace_files(template),
        after=workspace_files(reference),
        git_status=git(reference, "status", "--porcelain"),
        events=events,
    )
    assert prepared.before != prepared.after, "the command changes nothing: a useless scenario"
    assert not check_state(reference, prepared.before, prepared.after)
    assert not leftover_temps(reference, reference / ".repro" / "cache")
    _PREPARED[name] = prepared
    return prepared


def crash_points(events: int, sample: int = SAMPLE, full_below: int = FULL_BELOW) -> list[int]:
    """Every event when there are few, else `sample` evenly spaced ones (first and last included)."""
    if events <= full_below:
        return list(range(1, events + 1))
    return sorted({1 + round(i * (events - 1) / (sample - 1)) for i in range(sample)})


def crash_and_recover(prepared: Prepared, n: int, workdir: Path) -> Iterator[str]:
    """Kill the command at event `n`, check the state, rerun it, check the result."""
    root = workdir / f"crash-{n}"
    shutil.copytree(prepared.template, root, symlinks=True)
    cache = root / ".repro" / "cache"
    command = prepared.scenario.command
    count = workdir / f"count-{n}"
    crashed = repro(
        root, *command, env=repro_env(REPRO_TEST_CRASH_AT=str(n), REPRO_TEST_CRASH_COUNT=str(count))
    )
    # A run may raise fewer events than the reference run did (say, the code changed in
    # between): finishing before event n is then no failure, and the checks below still hold.
    finished_early = crashed.returncode == 0 and count.is_file() and int(count.read_text()) < n
    if crashed.returncode != -signal.SIGKILL and not finished_early:
        yield f"exit {crashed.returncode} instead of being killed: {crashed.stderr.strip()}"
    for problem in check_state(root, prepared.before, prepared.after):
        yield f"after the kill: {problem}"
    rerun = repro(root, *command)
    if rerun.returncode != 0:
        yield f"rerun of `repro {' '.join(command)}` exited {rerun.returncode}: {rerun.stderr.strip()}"
        return
    now = workspace_files(root)
    for problem in check_workspace(now, prepared.after, prepared.after):
        yield f"after the rerun: {problem}"
    for problem in check_cache(cache) + check_pointers(root, cache, {}):
        yield f"after the rerun: {problem}"
    status = repro(root, "status", "--check")
    if status.returncode != 0:
        yield f"after the rerun, status --check exited {status.returncode}: {status.stdout}{status.stderr}"
    leftovers = leftover_temps(root, cache)
    if leftovers:
        yield f"after the rerun, temp files remain: {leftovers[:5]}"
    git_status = git(root, "status", "--porcelain")
    if git_status != prepared.git_status:
        yield f"after the rerun, git status is {git_status!r}, not {prepared.git_status!r}"
    shutil.rmtree(root)


def run_crash_points(prepared: Prepared, points: list[int], workdir: Path) -> None:
    failures = [
        f"kill at event {n} of {prepared.events}: {problem}"
        for n in points
        for problem in crash_and_recover(prepared, n, workdir)
    ]
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures)


# --- tests ---------------------------------------------------------------------------------


def test_the_crash_shim_kills_at_the_requested_event_and_counts_events(
    repo: Path, tmp_path: Path
) -> None:
    make_tree(repo, {"data/a.txt": "a\n"})
    events = count_events(repo, ("status",), tmp_path / "status.count")
    killed = repro(repo, "add", "data", env=repro_env(REPRO_TEST_CRASH_AT="1"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (repo / "data.repro").exists()
    total = count_events(repo, ("add", "data"), tmp_path / "add.count")
    assert total > events
    assert (repo / "data.repro").is_file()


@pytest.mark.parametrize("slot", range(SLOTS))
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_kill_9_at_sampled_crash_points_leaves_a_state_the_rerun_completes(
    name: str, slot: int, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    prepared = prepare(name, tmp_path_factory)
    points = crash_points(prepared.events)[slot::SLOTS]
    if not points:
        pytest.skip(f"{name} has only {prepared.events} crash points")
    run_crash_points(prepared, points, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_kill_9_at_every_crash_point_leaves_a_state_the_rerun_completes(
    name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if (
        "slow" not in (request.config.option.markexpr or "")
        or "not slow" in request.config.option.markexpr
    ):
        pytest.skip("full crash enumeration: run with -m slow")
    prepared = prepare(name, tmp_path_factory)
    run_crash_points(prepared, list(range(1, prepared.events + 1)), tmp_path)
