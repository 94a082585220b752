"""kill -9 at the filesystem events of the commands test_crash.py leaves out (RELIABILITY A1, A2).

tests/functional/test_crash.py enumerates crash points of `add`, `commit` and `checkout` in
copy and hardlink mode. This file adds, with the same shim (building block 1) and the same
invariant checker (`check_state` and its parts):

- A1: `add` of a folder of 500 small files beside a large file, and a re-`add` of changed data;
- A2: `checkout` in symlink and reflink mode (reflink falls back to copy on filesystems
  without it), `pull` from a folder remote and from S3 (moto on loopback), `push` to a folder
  remote, `gc`, `remote add` and `remote modify` (config rewrite), `run` (repro.lock update)
  and `hooks install`.

Each scenario lives in a folder holding the repository (`repo/`) and, where it needs one, a
folder remote (`remote/`, configured as `../remote` so that a copy of the folder is a
self-contained world). After each kill: the invariant checker, `repro fsck`, and the
scenario's own rule ("each config / hook / lock entry is old or new", "the remote holds only
whole objects and complete manifests"); then the recovery command must complete and leave
what an uninterrupted run leaves. The fast tier kills a seeded sample of points
(REPRO_TEST_SEED changes the sample); `-m slow` kills at every point.

Each test prints a `FIGURE …` line (shown with `-s`; also appended to $REPRO_FIGURES).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import stat
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from reprocli.operations.hooks import MARKER
from reprocli.pipeline import lockfile
from tests.builders import git, make_tree
from tests.functional.test_crash import (
    build_project,
    cache_objects,
    check_cache,
    check_pointers,
    check_workspace,
    file_oid,
    leftover_temps,
    ok,
    repro,
    repro_env,
    setup_checkout,
)
from tests.functional.test_crash import (
    workspace_files as _workspace_files,
)
from tests.remote.conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    s3_admin,
    s3_client,
    s3_server,
)

__all__ = ["s3_admin", "s3_server"]  # fixtures, used through request.getfixturevalue

SEED = int(os.environ.get("REPRO_TEST_SEED", "20250611"))
FAST_POINTS = int(os.environ.get("REPRO_CRASH_FAST_POINTS", "2"))  # per scenario, fast tier
SLOW_SLOTS = 8  # test items per scenario in the slow tier, so that xdist can spread them
PY = sys.executable


# --- figures ---------------------------------------------------------------------------------


def emit_figure(line: str, record: Callable[[str, object], None] | None = None) -> None:
    """Publish one figure: stdout (seen with -s), the junit report, and $REPRO_FIGURES."""
    print(f"FIGURE {line}")
    if record is not None:
        record("figure", line)
    target = os.environ.get("REPRO_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


@pytest.fixture
def figure(record_property: Callable[[str, object], None]) -> Callable[[str], None]:
    """emit_figure, bound to the test's junit properties."""
    return lambda line: emit_figure(line, record_property)


# --- looking at a scenario's world -----------------------------------------------------------


def wait_for_orphans(root: Path, timeout: float = 20) -> None:
    """Wait until no process works inside `root` (a stage command, or git, that repro started
    before it was killed keeps running: the checks must not race with it)."""
    deadline = time.monotonic() + timeout
    prefix = str(root)
    while time.monotonic() < deadline:
        with os.scandir("/proc") as entries:
            pids = [e.name for e in entries if e.name.isdigit() and int(e.name) != os.getpid()]
        busy = False
        for pid in pids:
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd == prefix or cwd.startswith(prefix + os.sep):
                busy = True
                break
        if not busy:
            return
        time.sleep(0.02)
    raise AssertionError(f"a process still works in {root} {timeout} s after the kill")


def workspace_files(root: Path) -> dict[str, bytes]:
    """test_crash.workspace_files, with links into the repository's own cache made relative
    to the root, so that copies of one world compare equal."""
    prefix = f"symlink -> {root}{os.sep}".encode()
    return {
        rel: b"symlink -> <root>/" + data[len(prefix) :] if data.startswith(prefix) else data
        for rel, data in _workspace_files(root).items()
    }


def file_state(path: Path) -> bytes:
    """A file's bytes with its permission bits in front (an exec bit is part of a hook)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return f"symlink -> {os.readlink(path)}".encode()
    return f"mode {stat.S_IMODE(st.st_mode):o}\n".encode() + path.read_bytes()


def files_under(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """{relative path: file_state} of every file under `folder` (none if it is missing)."""
    found: dict[str, bytes] = {}
    if not folder.is_dir():
        return found
    for here, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in names:
            path = Path(here) / name
            found[path.relative_to(folder).as_posix()] = file_state(path)
    return found


def config_files(root: Path) -> dict[str, bytes]:
    """The tracked and the local config."""
    return {
        rel: (root / rel).read_bytes()
        for rel in (".repro/config.yaml", ".repro/config.local.yaml")
        if (root / rel).exists()
    }


def hook_files(root: Path) -> dict[str, bytes]:
    """Every file in .git/hooks, with its mode."""
    return files_under(root / ".git" / "hooks")


def remote_files(base: Path) -> dict[str, bytes]:
    """The objects of the folder remote at `base/remote` (its temp folder left out)."""
    return files_under(base / "remote", skip=("tmp",))


def remote_problems(remote: Path) -> list[str]:
    """Every remote object hashes to its name and every remote manifest's files are there."""
    problems: list[str] = []
    objects = cache_objects(remote)
    for oid, path in objects.items():
        if file_oid(path) != oid.removesuffix(".dir"):
            problems.append(f"remote object {oid}: content does not hash to its name")
        elif oid.endswith(".dir"):
            children = {e["oid"] for e in json.loads(path.read_bytes())}
            if children - set(objects):
                problems.append(
                    f"remote manifest {oid} lacks {len(children - set(objects))} file(s)"
                )
    return problems


def remote_temps(remote: Path) -> list[str]:
    tmp = remote / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


# --- scenarios -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What a scenario's setup may need from the test session (the S3 endpoint)."""

    s3_endpoint: str = ""

    def env(self) -> dict[str, str]:
        if not self.s3_endpoint:
            return {}
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


@dataclass(frozen=True)
class Scenario:
    """A command to kill, how to build its world, and what must hold around the kill.

    - `extras`: files outside the workspace the command may change; after a kill each one
      holds its old or its new bytes (git's lock-file rule), never a third state;
    - `recover`: the command a user runs next (default: the same one again);
    - `stage_outputs`: workspace files may be absent after a kill if their bytes are cached
      (`run` removes a stage's outputs before running it), and repro.lock is judged entry by
      entry: each stage's record is its old one or its new one.
    """

    name: str
    setup: Callable[[Path, World], None]
    command: tuple[str, ...]
    extras: Callable[[Path], dict[str, bytes]] = lambda base: {}
    recover: Callable[[Path], tuple[str, ...]] | None = None
    check: Callable[[Path], list[str]] = lambda base: []
    stage_outputs: bool = False
    compare_git_status: bool = True
    needs_s3: bool = False
    known_bugs: tuple[tuple[str, str], ...] = ()  # (regex over a problem, KNOWN_BUGS key)
    other_temps: Callable[[Path], list[str]] = lambda base: []  # e.g. a folder remote's


def repo_of(base: Path) -> Path:
    return base / "repo"


def setup_add_many(base: Path, world: World) -> None:
    """A1: a folder of 500 small files and a 6 MB file, nothing added yet."""
    root = repo_of(base)
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    rng = random.Random(11)
    files: dict[str, str | bytes] = {
        f"data/d{i % 7}/f{i:03d}.csv": f"{i},{rng.random()}\n" for i in range(500)
    }
    files["big.bin"] = rng.randbytes(6 << 20)
    make_tree(root, files)
    ok(repro(root, "init", "-q"))
    git(root, "commit", "-q", "-m", "init")


def setup_readd(base: Path, world: World) -> None:
    """A1: tracked data changed in place, then `add` of the same paths again."""
    root = repo_of(base)
    build_project(root)
    ok(repro(root, "add", "-q", "data", "model.bin"))
    git(root, "commit", "-q", "-m", "data v1")
    (root / "data" / "f05.txt").write_text("changed\n")
    (root / "data" / "f08.txt").unlink()
    (root / "data" / "sub" / "more.txt").write_text("more\n")
    with open(root / "model.bin", "r+b") as handle:
        handle.seek(2 << 20)
        handle.write(b"\x00" * 8192)


def setup_checkout_in(kind: str) -> Callable[[Path, World], None]:
    def setup(base: Path, world: World) -> None:
        setup_checkout(kind)(repo_of(base))

    return setup


def _tracked_with_remote(base: Path, url: str, world: World, *options: str) -> Path:
    """build_project with data added, committed and pushed to the default remote `url`."""
    root = repo_of(base)
    build_project(root)
    ok(repro(root, "add", "-q", "data", "model.bin"))
    ok(repro(root, "remote", "add", "-d", "origin", url, *options))
    git(root, "add", ".repro/config.yaml")
    git(root, "commit", "-q", "-m", "data v1")
    ok(repro(root, "push", "-q", env=repro_env(**world.env())))
    return root


def _as_fresh_clone(root: Path) -> None:
    """Drop the cache, the stat cache and the data: what a clone has before `pull`."""
    shutil.rmtree(root / ".repro" / "cache")
    shutil.rmtree(root / ".repro" / "state", ignore_errors=True)
    shutil.rmtree(root / "data")
    (root / "model.bin").unlink()


def setup_pull_local(base: Path, world: World) -> None:
    _as_fresh_clone(_tracked_with_remote(base, "../remote", world))


def setup_pull_s3(base: Path, world: World) -> None:
    bucket = f"crash-{uuid.uuid4().hex[:12]}"
    s3_client(world.s3_endpoint).create_bucket(Bucket=bucket)
    root = _tracked_with_remote(
        base, f"s3://{bucket}/store", world, "-o", f"endpoint_url={world.s3_endpoint}"
    )
    _as_fresh_clone(root)


def setup_push(base: Path, world: World) -> None:
    """v1 is on the remote; v2 (some files changed, one added) is committed, not pushed."""
    root = _tracked_with_remote(base, "../remote", world)
    (root / "data" / "f02.txt").write_text("v2\n")
    (root / "data" / "sub" / "v2.txt").write_text("new in v2\n")
    with open(root / "model.bin", "r+b") as handle:
        handle.write(b"v2")
    ok(repro(root, "commit", "-q"))
    git(root, "commit", "-q", "-a", "-m", "data v2")


def check_push(base: Path) -> list[str]:
    return remote_problems(base / "remote")


def setup_gc(base: Path, world: World) -> None:
    """v1 committed, then v2: v1's changed files and its manifest are garbage."""
    root = repo_of(base)
    build_project(root)
    ok(repro(root, "add", "-q", "data", "model.bin"))
    git(root, "commit", "-q", "-m", "data v1")
    for i in range(0, 29, 3):
        (root / f"data/sub/f{i:02d}.txt").write_text(f"v2 {i}\n")
    with open(root / "model.bin", "r+b") as handle:
        handle.write(b"v2")
    ok(repro(root, "commit", "-q"))
    git(root, "commit", "-q", "-a", "-m", "data v2")


def cache_listing(base: Path) -> dict[str, bytes]:
    """The names of the cache's objects (gc's effect), as pseudo-files."""
    return {f"cache:{oid}": b"" for oid in cache_objects(repo_of(base) / ".repro" / "cache")}


def check_gc(base: Path) -> list[str]:
    """Every object HEAD and the workspace need is still there (gc deletes only garbage)."""
    root = repo_of(base)
    objects = cache_objects(root / ".repro" / "cache")
    problems = []
    for pointer in ("data.repro", "model.bin.repro"):
        oid = str(yaml.safe_load((root / pointer).read_text())["outs"][0]["oid"])
        needed = [oid]
        if oid.endswith(".dir") and oid in objects:
            needed += [e["oid"] for e in json.loads(objects[oid].read_bytes())]
        lost = [n for n in needed if n not in objects]
        if lost:
            problems.append(f"gc deleted {len(lost)} object(s) {pointer} needs: {lost[:3]}")
    return problems


def setup_remote_add(base: Path, world: World) -> None:
    root = repo_of(base)
    build_project(root)
    (base / "remote").mkdir()


def recover_remote_add(base: Path) -> tuple[str, ...]:
    """Rerunning `remote add` after it finished is an error; a user would list the remotes."""
    text = (repo_of(base) / ".repro" / "config.yaml").read_text()
    if "origin" in text:
        return ("remote", "list")
    return REMOTE_ADD


def setup_remote_modify(base: Path, world: World) -> None:
    root = repo_of(base)
    build_project(root)
    ok(repro(root, "remote", "add", "-d", "origin", "../remote", "-o", "jobs=4"))
    ok(repro(root, "remote", "add", "backup", "../backup"))
    git(root, "add", ".repro/config.yaml")
    git(root, "commit", "-q", "-m", "remotes")


def check_config(base: Path) -> list[str]:
    """The config still parses: every command reads it first."""
    result = repro(repo_of(base), "remote", "list")
    if result.returncode != 0:
        return [f"`repro remote list` exits {result.returncode}: {result.stderr.strip()}"]
    return []


PIPELINE = f"""\
stages:
  prepare:
    cmd: {PY} src/prepare.py
    deps: [src/prepare.py, data/raw.csv]
    outs: [data/prepared]
  train:
    cmd: {PY} src/train.py
    deps: [src/train.py, data/prepared]
    outs: [models/model.bin]
  evaluate:
    cmd: {PY} src/evaluate.py
    deps: [src/evaluate.py, models/model.bin]
    metrics: [metrics.json]
"""

STAGE_SCRIPTS = {
    "prepare": (
        "import pathlib\n"
        "rows = open('data/raw.csv').read().split()\n"
        "out = pathlib.Path('data/prepared'); out.mkdir(parents=True, exist_ok=True)\n"
        "for i, row in enumerate(rows):\n"
        "    (out / f'part{i}.csv').write_text(row * 100 + '\\n')\n"
    ),
    "train": (
        "import pathlib\n"
        "parts = sorted(pathlib.Path('data/prepared').iterdir())\n"
        "pathlib.Path('models').mkdir(exist_ok=True)\n"
        "pathlib.Path('models/model.bin').write_bytes(b''.join(p.read_bytes() for p in parts) * 50)\n"
    ),
    "evaluate": (
        "import json, pathlib\n"
        "size = pathlib.Path('models/model.bin').stat().st_size\n"
        "pathlib.Path('metrics.json').write_text(json.dumps({'size': size}) + '\\n')\n"
    ),
}


def setup_run(base: Path, world: World) -> None:
    """A three-stage pipeline run and committed once, then its input changed: all three rerun."""
    root = repo_of(base)
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    ok(repro(root, "init", "-q"))
    files: dict[str, str | bytes] = {f"src/{n}.py": s for n, s in STAGE_SCRIPTS.items()}
    files["repro.yaml"] = PIPELINE
    files["data/raw.csv"] = "a\nb\nc\n"
    make_tree(root, files)
    ok(repro(root, "run", "-q"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline v1")
    (root / "data" / "raw.csv").write_text("a\nb\nc\nd\ne\n")


def setup_hooks(base: Path, world: World) -> None:
    """A foreign post-checkout hook to chain, and an outdated repro pre-commit stub to upgrade."""
    root = repo_of(base)
    build_project(root)
    hooks = root / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "post-checkout").write_text("#!/bin/sh\necho 'the team hook'\n")
    os.chmod(hooks / "post-checkout", 0o755)
    (hooks / "pre-commit").write_text(f"#!/bin/sh\n{MARKER}\necho 'an older repro stub'\n")
    os.chmod(hooks / "pre-commit", 0o755)


def check_hooks(base: Path) -> list[str]:
    """The foreign hook's bytes survive under one of its two names."""
    hooks = repo_of(base) / ".git" / "hooks"
    names = ("post-checkout", "post-checkout.pre-repro")
    if not any((hooks / n).is_file() and "the team hook" in (hooks / n).read_text() for n in names):
        return ["the foreign post-checkout hook is gone"]
    return []


REMOTE_ADD = ("remote", "add", "-d", "origin", "../remote")

# Bugs pinned by xfail tests in test_interruption_bugs.py: a crash state one of them explains is
# counted, not failed, so that the enumeration keeps checking everything else. When a bug is
# fixed its xfail test passes (strict: that fails the run), and its entry here must go.
KNOWN_BUGS: dict[str, str] = {}


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("add-500-files", setup_add_many, ("add", "data", "big.bin")),
        Scenario("re-add", setup_readd, ("add", "data", "model.bin")),
        Scenario("checkout-symlink", setup_checkout_in("symlink"), ("checkout",)),
        Scenario("checkout-reflink", setup_checkout_in("reflink,copy"), ("checkout",)),
        Scenario("pull-local", setup_pull_local, ("pull",)),
        Scenario("pull-s3", setup_pull_s3, ("pull",), needs_s3=True),
        Scenario(
            "push-local",
            setup_push,
            ("push",),
            extras=remote_files,
            check=check_push,
            other_temps=lambda base: [f"remote/tmp/{n}" for n in remote_temps(base / "remote")],
        ),
        Scenario(
            "gc",
            setup_gc,
            ("gc", "-f", "--grace", "0"),
            extras=cache_listing,
            check=check_gc,
        ),
        Scenario(
            "remote-add",
            setup_remote_add,
            REMOTE_ADD,
            extras=lambda base: config_files(repo_of(base)),
            recover=recover_remote_add,
            check=check_config,
            compare_git_status=False,
        ),
        Scenario(
            "remote-modify",
            setup_remote_modify,
            ("remote", "modify", "origin", "url", "../elsewhere"),
            extras=lambda base: config_files(repo_of(base)),
            check=check_config,
            compare_git_status=False,
        ),
        Scenario("run", setup_run, ("run",), stage_outputs=True),
        Scenario(
            "hooks-install",
            setup_hooks,
            ("hooks", "install"),
            extras=lambda base: hook_files(repo_of(base)),
            check=check_hooks,
        ),
    )
}
A1_SCENARIOS = ("add-500-files", "re-add")


# --- preparing and killing -----------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A scenario's world before the command, and what an uninterrupted run leaves."""

    scenario: Scenario
    world: World
    template: Path
    before: dict[str, bytes]
    after: dict[str, bytes]
    extras_before: dict[str, bytes]
    extras_after: dict[str, bytes]
    objects_after: frozenset[str]
    lock_before: dict[str, Any]
    lock_after: dict[str, Any]
    git_status: str
    status_code: int
    events: int
    duration: float  # seconds an uninterrupted run took (with the shim counting)
    env: dict[str, str] = field(default_factory=dict)


_PREPARED: dict[str, Prepared] = {}


def read_lock(root: Path) -> dict[str, Any]:
    path = root / "repro.lock"
    return dict(lockfile.decode(path.read_bytes())) if path.exists() else {}


def prepare(
    scenario: Scenario | str, factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Prepared:
    """Build the scenario's world once per worker, and run the command once uninterrupted."""
    if isinstance(scenario, str):
        scenario = SCENARIOS[scenario]
    name = scenario.name
    if name in _PREPARED:
        return _PREPARED[name]
    world = World(request.getfixturevalue("s3_server") if scenario.needs_s3 else "")
    env = world.env()
    base = factory.mktemp(f"crash-{name}")
    template = base / "template"
    scenario.setup(template, world)
    reference = base / "reference"
    shutil.copytree(template, reference, symlinks=True)
    root = repo_of(reference)
    report = base / "count"
    started = time.monotonic()
    result = repro(
        root, *scenario.command, env=repro_env(REPRO_TEST_CRASH_COUNT=str(report), **env)
    )
    duration = time.monotonic() - started
    assert result.returncode == 0, f"repro {' '.join(scenario.command)}: {result.stderr}"
    events = int(report.read_text())
    assert events > 0
    wait_for_orphans(reference)
    prepared = Prepared(
        scenario,
        world,
        template,
        before=workspace_files(repo_of(template)),
        after=workspace_files(root),
        extras_before=scenario.extras(template),
        extras_after=scenario.extras(reference),
        objects_after=frozenset(cache_objects(root / ".repro" / "cache")),
        lock_before=read_lock(repo_of(template)),
        lock_after=read_lock(root),
        git_status=git(root, "status", "--porcelain"),
        status_code=repro(root, "status", "--check", env=repro_env(**env)).returncode,
        events=events,
        duration=duration,
        env=env,
    )
    assert (prepared.before, prepared.extras_before) != (prepared.after, prepared.extras_after), (
        "the command changes nothing: a useless scenario"
    )
    assert not unexplained(scenario, check_cache(root / ".repro" / "cache"))
    assert not leftover_temps(root, root / ".repro" / "cache")
    assert not scenario.check(reference)
    _PREPARED[name] = prepared
    return prepared


def workspace_problems(prepared: Prepared, root: Path, now: dict[str, bytes]) -> list[str]:
    """check_workspace, with the exceptions `run` is allowed (see Scenario.stage_outputs)."""
    before, after = dict(prepared.before), dict(prepared.after)
    if not prepared.scenario.stage_outputs:
        return check_workspace(now, before, after)
    for files in (now, before, after):
        files.pop("repro.lock", None)
    objects = cache_objects(root / ".repro" / "cache")
    problems = []
    for problem in check_workspace(now, before, after):
        rel = problem.split(":", 1)[0]
        if rel not in now and rel in before and _oid_of(before[rel]) in objects:
            continue  # an output removed before its stage ran, its bytes safe in the cache
        problems.append(problem)
    return problems


def _oid_of(data: bytes) -> str:
    import xxhash

    return str(xxhash.xxh3_128_hexdigest(data))


def lock_problems(prepared: Prepared, root: Path) -> list[str]:
    """Each stage's record in repro.lock is its old one or its new one, its outputs cached."""
    if not prepared.scenario.stage_outputs:
        return []
    try:
        now = read_lock(root)
    except Exception as exc:
        return [f"repro.lock does not parse: {exc}"]
    objects = cache_objects(root / ".repro" / "cache")
    problems = []
    for stage in sorted(now.keys() | prepared.lock_before.keys() | prepared.lock_after.keys()):
        entry = now.get(stage)
        if entry not in (prepared.lock_before.get(stage), prepared.lock_after.get(stage)):
            problems.append(f"repro.lock: stage {stage!r} is neither its old nor its new record")
        elif entry is not None:
            missing = [o.path for o in entry.outs if o.cache and o.oid not in objects]
            if missing:
                problems.append(f"repro.lock: stage {stage!r} names outputs not cached: {missing}")
    return problems


def fsck_problems(root: Path, env: dict[str, str]) -> list[str]:
    result = repro(root, "fsck", env=repro_env(**env))
    if result.returncode != 0:
        return [
            f"`repro fsck` exits {result.returncode}: {(result.stdout + result.stderr).strip()[-400:]}"
        ]
    return []


def fresh_copy(prepared: Prepared, workdir: Path, name: str) -> Path:
    """A private copy of the scenario's world, as it is before the command."""
    base = workdir / name
    shutil.copytree(prepared.template, base, symlinks=True)
    return base


def state_problems(prepared: Prepared, base: Path) -> list[str]:
    """The invariant checker right after an interruption, plus the scenario's rules and fsck."""
    scenario = prepared.scenario
    root = repo_of(base)
    cache = root / ".repro" / "cache"
    return (
        check_cache(cache)
        + check_pointers(root, cache, prepared.before)
        + workspace_problems(prepared, root, workspace_files(root))
        + lock_problems(prepared, root)
        + check_workspace(scenario.extras(base), prepared.extras_before, prepared.extras_after)
        + scenario.check(base)
        + fsck_problems(root, prepared.env)
    )


def recovery_problems(prepared: Prepared, base: Path, **env: str) -> Iterator[str]:
    """Run the recovery command; the result must be what an uninterrupted run leaves, and
    the recovery must leave no temp file behind."""
    scenario = prepared.scenario
    root = repo_of(base)
    cache = root / ".repro" / "cache"
    command = scenario.recover(base) if scenario.recover else scenario.command
    rerun = repro(root, *command, env=repro_env(**prepared.env, **env))
    wait_for_orphans(base)
    if rerun.returncode != 0:
        yield f"recovery `repro {' '.join(command)}` exited {rerun.returncode}: {rerun.stderr.strip()}"
        return
    after_rerun = (
        check_workspace(workspace_files(root), prepared.after, prepared.after)
        + check_workspace(scenario.extras(base), prepared.extras_after, prepared.extras_after)
        + check_cache(cache)
        + check_pointers(root, cache, {})
        + scenario.check(base)
    )
    if prepared.scenario.stage_outputs and read_lock(root) != prepared.lock_after:
        after_rerun.append("repro.lock differs from an uninterrupted run's")
    missing = sorted(prepared.objects_after - set(cache_objects(cache)))
    if missing:
        after_rerun.append(f"{len(missing)} object(s) an uninterrupted run caches are missing")
    for problem in after_rerun:
        yield f"after the recovery: {problem}"
    status = repro(root, "status", "--check", env=repro_env(**prepared.env))
    if status.returncode != prepared.status_code:
        yield f"after the recovery, status --check exited {status.returncode}: {status.stdout}{status.stderr}"
    leftovers = leftover_temps(root, cache)
    if leftovers:
        yield f"after the recovery, temp files remain: {leftovers[:5]}"
    remote_leftovers = scenario.other_temps(base)
    if remote_leftovers:
        yield f"after the recovery, temp files remain on the remote: {remote_leftovers[:5]}"
    if scenario.compare_git_status:
        git_status = git(root, "status", "--porcelain")
        if git_status != prepared.git_status:
            yield f"after the recovery, git status is {git_status!r}, not {prepared.git_status!r}"


def crash_and_recover(prepared: Prepared, n: int, workdir: Path) -> Iterator[str]:
    """Kill the command at event `n`, check the state, run the recovery, check the result."""
    base = fresh_copy(prepared, workdir, f"crash-{n}")
    count = workdir / f"count-{n}"
    crashed = repro(
        repo_of(base),
        *prepared.scenario.command,
        env=repro_env(
            REPRO_TEST_CRASH_AT=str(n), REPRO_TEST_CRASH_COUNT=str(count), **prepared.env
        ),
    )
    wait_for_orphans(base)
    finished_early = crashed.returncode == 0 and count.is_file() and int(count.read_text()) < n
    if crashed.returncode != -signal.SIGKILL and not finished_early:
        yield f"exit {crashed.returncode} instead of being killed: {crashed.stderr.strip()}"
    for problem in state_problems(prepared, base):
        yield f"after the kill: {problem}"
    yield from recovery_problems(prepared, base)
    shutil.rmtree(base)


def known_bug(scenario: Scenario, problem: str) -> str | None:
    """The KNOWN_BUGS key that explains `problem` (a crash_and_recover line), if any."""
    for pattern, bug in scenario.known_bugs:
        if re.search(pattern, problem):
            return bug
    return None


def unexplained(scenario: Scenario, problems: list[str]) -> list[str]:
    return [p for p in problems if known_bug(scenario, p) is None]


@dataclass
class Tally:
    """What a run of crash points found: violations, and states explained by known bugs."""

    points: int = 0
    failures: list[str] = field(default_factory=list)
    known: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        text = f"{len(self.failures)} violations"
        if self.known:
            text += "; known bugs: " + ", ".join(
                f"{bug} at {count} point(s)" for bug, count in sorted(self.known.items())
            )
        return text


def run_points(prepared: Prepared, points: list[int], workdir: Path) -> Tally:
    tally = Tally(points=len(points))
    for n in points:
        bugs = set()
        for problem in crash_and_recover(prepared, n, workdir):
            bug = known_bug(prepared.scenario, problem)
            if bug is None:
                tally.failures.append(f"kill at event {n} of {prepared.events}: {problem}")
            else:
                bugs.add(bug)
        tally.known.update(bugs)
    return tally


def sample(name: str, events: int, k: int = FAST_POINTS) -> list[int]:
    """A seeded sample of crash points (REPRO_TEST_SEED picks another one)."""
    rng = random.Random(f"{SEED}-{name}")
    return sorted(rng.sample(range(1, events + 1), min(k, events)))


def slow_run_requested(request: pytest.FixtureRequest) -> bool:
    expr = request.config.option.markexpr or ""
    return "slow" in expr and "not slow" not in expr


def row(name: str) -> str:
    return "A1" if name in A1_SCENARIOS else "A2"


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_9_at_sampled_crash_points_leaves_a_state_the_next_command_completes(
    name: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    figure: Callable[[str], None],
) -> None:
    prepared = prepare(name, tmp_path_factory, request)
    points = sample(name, prepared.events)
    tally = run_points(prepared, points, tmp_path)
    figure(
        f"{row(name)} {name}: {len(points)} sampled of K={prepared.events} crash points"
        f" (seed {SEED}), {tally.summary()}"
    )
    assert not tally.failures, f"seed {SEED}:\n" + "\n".join(tally.failures)


@pytest.mark.slow
@pytest.mark.parametrize("slot", range(SLOW_SLOTS))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_9_at_every_crash_point_leaves_a_state_the_next_command_completes(
    name: str,
    slot: int,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    figure: Callable[[str], None],
) -> None:
    if not slow_run_requested(request):
        pytest.skip("full crash enumeration: run with -m slow")
    prepared = prepare(name, tmp_path_factory, request)
    points = list(range(1 + slot, prepared.events + 1, SLOW_SLOTS))
    tally = run_points(prepared, points, tmp_path)
    figure(
        f"{row(name)} {name} (every point, slot {slot + 1}/{SLOW_SLOTS}): {len(points)} of"
        f" K={prepared.events} crash points, {tally.summary()}"
    )
    assert not tally.failures, "\n".join(tally.failures)
