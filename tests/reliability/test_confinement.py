"""Path and symlink security on a malicious repository (RELIABILITY G1–G8, DESIGN §4 invariant 5).

Every test here plays a hostile clone: crafted manifests, pointers, stage paths, committed
symlinks, tracked config. Two independent witnesses check that repro stays inside the
repository and out of `.git/`:

- the **sandbox sentinel** (building block 7): the repository is `S/repo` in a temp folder `S`;
  every file, folder and link of `S` outside the repository (with a decoy `S/home/.bashrc`), the
  repository's `.git/hooks`, and every file of `.git/` that Git does not rewrite itself are
  hashed before and compared after;
- an **audit hook** on the in-process CLI: every open-for-writing, rename, link, symlink,
  mkdir, remove, chmod, utime and sqlite connection repro makes is resolved (through symlinks)
  and must land inside the repository and outside `.git/`. Git's own writes happen in child
  processes, which the hook does not see: that is the "except what Git itself wrote" rule.

Bugs found while writing this file are pinned by `xfail(strict=True)` tests whose reason
starts with "BUG:"; each is the minimal reproduction.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import stat
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
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import git, make_tree

PY = sys.executable
PAYLOAD = b"#!/bin/sh\necho pwned > PWNED\n"
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# --- running the CLI in-process, fast ---------------------------------------------------------


@dataclass
class Outcome:
    """One `repro` call: exit code and output (no assertion made yet)."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def clean(self) -> bool:
        """No traceback and no internal error: a ReproError (or success) reached the user."""
        return "Traceback" not in self.stderr and "internal error" not in self.stderr

    def __str__(self) -> str:
        return (
            f"repro {' '.join(self.args)} -> {self.exit_code}\n"
            f"stdout: {self.stdout[-800:]}\nstderr: {self.stderr[-800:]}"
        )


_COMMANDS: dict[int, Any] = {}


def _cached_command(app: Any) -> Any:
    """Typer rebuilds the Click command on every invoke (~70% of an in-process call)."""
    import typer.main

    if id(app) not in _COMMANDS:
        _COMMANDS[id(app)] = typer.main.get_command(app)
    return _COMMANDS[id(app)]


Invoke = Callable[..., Outcome]


def make_invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """A function running `repro ARGS` in-process, returning the outcome whatever the exit."""
    import typer.testing

    from reprocli.cli.app import app

    monkeypatch.setattr(typer.testing, "_get_command", _cached_command)
    runner = typer.testing.CliRunner()

    def run(*args: str, input: str | None = None) -> Outcome:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return Outcome(tuple(args), result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run `repro ARGS` in-process and return the outcome, whatever the exit code."""
    return make_invoke(monkeypatch)


# --- the audit witness ------------------------------------------------------------------------

_HANDLERS: list[Callable[[str, tuple[Any, ...]], None]] = []
_HOOKED: list[bool] = []


def _dispatch(event: str, args: tuple[Any, ...]) -> None:
    for handler in list(_HANDLERS):
        handler(event, args)


# event -> (indexes of path arguments, whether the last component is followed)
_PATH_EVENTS: dict[str, tuple[tuple[int, ...], bool]] = {
    "os.rename": ((0, 1), False),  # os.replace raises it too
    "os.link": ((1,), False),
    "os.symlink": ((1,), False),
    "os.remove": ((0,), False),
    "os.rmdir": ((0,), False),
    "os.mkdir": ((0,), False),
    "os.chmod": ((0,), True),
    "os.chown": ((0,), True),
    "os.truncate": ((0,), True),
    "os.utime": ((0,), True),
    "shutil.copyfile": ((1,), True),
    "shutil.rmtree": ((0,), False),
    "sqlite3.connect": ((0,), True),
}


def _resolve(path: object, follow: bool) -> str | None:
    if isinstance(path, int) or path is None:
        return None  # an fd: its open was seen already
    text = os.fsdecode(path)  # type: ignore[arg-type]
    if text in (":memory:", ""):
        return None
    full = os.path.join(os.getcwd(), text)
    if follow:
        return os.path.realpath(full)
    return os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full))


@dataclass
class Witness:
    """Writes repro made (in this process) outside `allowed`, or under `forbidden`."""

    allowed: list[str]
    forbidden: list[str]
    violations: list[str] = field(default_factory=list)
    writes: int = 0

    def check(self, event: str, path: str) -> None:
        if path == os.devnull:  # subprocess plumbing
            return
        self.writes += 1
        inside = any(path == a or path.startswith(a + os.sep) for a in self.allowed)
        under = any(path == f or path.startswith(f + os.sep) for f in self.forbidden)
        if not inside or under:
            self.violations.append(f"{event} {path}")

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        try:
            if event == "open":
                flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
                mode = args[1] if isinstance(args[1], str) else ""
                if flags & WRITE_FLAGS or set(mode) & set("wax+"):
                    path = _resolve(args[0], follow=not flags & getattr(os, "O_NOFOLLOW", 0))
                    if path is not None:
                        self.check(event, path)
                return
            spec = _PATH_EVENTS.get(event)
            if spec is None:
                return
            indexes, follow = spec
            for index in indexes:
                if index < len(args):
                    path = _resolve(args[index], follow)
                    if path is not None:
                        self.check(event, path)
        except Exception as exc:  # an audit hook must never raise into repro
            self.violations.append(f"{event}: witness failed: {exc!r}")


@contextlib.contextmanager
def watching(witness: Witness) -> Iterator[Witness]:
    """Feed every audit event of this process to `witness` while the block runs."""
    if not _HOOKED:
        sys.addaudithook(_dispatch)
        _HOOKED.append(True)
    _HANDLERS.append(witness)
    try:
        yield witness
    finally:
        _HANDLERS.remove(witness)


# --- the sandbox sentinel (building block 7) --------------------------------------------------

# Files Git itself rewrites while repro runs `git status`, `git add`, `git checkout`.
_GIT_OWN = ("index", "index.lock", "objects/", "logs/", "ORIG_HEAD", "FETCH_HEAD", "COMMIT_EDITMSG")


def _fingerprint(root: Path, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, str]:
    """{relative path: kind and content hash} of everything under `root` (links not followed)."""
    found: dict[str, str] = {}
    if not os.path.lexists(root):
        return found
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if skip(rel):
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = "link " + os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = f"dir {stat.S_IMODE(st.st_mode):o}"
            else:
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                found[rel] = f"file {stat.S_IMODE(st.st_mode):o} {digest}"
        dirs[:] = [d for d in dirs if not skip(os.path.relpath(os.path.join(folder, d), root))]
    return found


@dataclass
class Sandbox:
    """`S` (the temp folder) around `S/repo`: what must not change while repro runs."""

    root: Path
    repo: Path

    def outside(self) -> dict[str, str]:
        """Everything in S but the repository; plus the repository's .git/hooks."""
        found = _fingerprint(self.root, lambda rel: rel == "repo" or rel.startswith("repo/"))
        hooks = _fingerprint(self.repo / ".git" / "hooks")
        return found | {f"repo/.git/hooks/{k}": v for k, v in hooks.items()}

    def git_dir(self) -> dict[str, str]:
        """Every file under .git/ except those Git itself rewrites."""
        return _fingerprint(
            self.repo / ".git", lambda rel: rel in _GIT_OWN or rel.startswith(_GIT_OWN[2:4])
        )

    def snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        return self.outside(), self.git_dir()

    def witness(self) -> Witness:
        repo = os.path.realpath(self.repo)
        return Witness(allowed=[repo], forbidden=[os.path.join(repo, ".git")])

    def changes(self, before: tuple[dict[str, str], dict[str, str]]) -> list[str]:
        """What changed outside the repository or in .git/ since `before`."""
        problems = []
        for label, old, new in (
            ("outside the repository", before[0], self.outside()),
            ("under .git/", before[1], self.git_dir()),
        ):
            for rel in sorted(old.keys() | new.keys()):
                if old.get(rel) != new.get(rel):
                    what = (
                        "created" if rel not in old else "removed" if rel not in new else "changed"
                    )
                    problems.append(f"{label}: {rel} {what}")
        return problems


def make_sandbox(tmp_path: Path, repo: Path) -> Sandbox:
    """The project at S/repo, a decoy HOME/.bashrc, and the folders an attack aims at."""
    home = Path(os.environ["HOME"])
    (home / ".bashrc").write_text("# decoy: must never change\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("outside bytes, do not touch\n")
    return Sandbox(tmp_path, repo)


@pytest.fixture
def sandbox(tmp_path: Path, repo: Path) -> Sandbox:
    """The project at S/repo, a decoy HOME/.bashrc, and the folders an attack aims at."""
    return make_sandbox(tmp_path, repo)


@contextlib.contextmanager
def confined(sandbox: Sandbox) -> Iterator[Witness]:
    """Assert that nothing inside the block writes outside the repository or under .git/."""
    before = sandbox.snapshot()
    with watching(sandbox.witness()) as witness:
        yield witness
    problems = sandbox.changes(before) + witness.violations
    assert not problems, "confinement broken:\n" + "\n".join(problems[:40])


# --- crafting objects -------------------------------------------------------------------------


def oid_of(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def put_object(store: Path, data: bytes, suffix: str = "") -> str:
    """Write an object into a cache or folder remote by hand, as a crafted clone could."""
    oid = oid_of(data) + suffix
    path = store / "objects" / oid[:2] / oid[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
        os.chmod(path, 0o444)
    return oid


def pointer_text(path: str, oid: str, size: int, nfiles: int | None = None) -> str:
    text = f"version: 1\nouts:\n- path: {json.dumps(path)}\n  hash: xxh3-128\n  oid: {oid}\n"
    text += f"  size: {size}\n"
    if nfiles is not None:
        text += f"  nfiles: {nfiles}\n"
    return text


def cache_dir(repo: Path) -> Path:
    return repo / ".repro" / "cache"


def with_remote(repo: Path, invoke: Invoke) -> Path:
    """A folder remote `S/remote` (default), committed in the tracked config."""
    remote = repo.parent / "remote"
    remote.mkdir(exist_ok=True)
    outcome = invoke("remote", "add", "-d", "origin", "../remote")
    assert outcome.exit_code == 0, outcome
    git(repo, "commit", "-q", "-m", "remote", ".repro/config.yaml")
    return remote


# --- G1: hostile manifest entries -------------------------------------------------------------

REFUSE = "refuse"  # checkout and pull must exit 2
CONFINE = "confine"  # a legal (if odd) tree: exit 0 or 2, and every write lands inside `evil/`

# Paths that break the rules of a manifest entry: relative, POSIX, no empty, `.`, `..` or
# `.git` component, no control character, valid UTF-8.
_BAD_PATHS = [
    "../x",
    "../../x",
    "../../../../../../tmp/x",
    "a/../../x",
    "a/../x",
    "a/b/../../../x",
    "..",
    "../",
    "a/..",
    "/etc/x",
    "/x",
    "//x",
    "///x",
    "/",
    "\\x",
    "C:\\x",
    "C:\\Windows\\x",
    "a\\..\\x",
    "..\\x",
    "\\\\server\\share\\x",
    "a\\b",
    "",
    ".",
    "./a",
    "a/./b",
    "a/.",
    "a//b",
    "a/",
    "a/b/",
    "a\x00b",
    "\x00",
    "a\nb",
    "\n",
    "a\rb",
    "a\tb",
    "\x1b[31mred",
    "a\x7fb",
    "a\x85b",
    "a\x9bb",
    "\ud800",
    "a\udc80b",
    ".git",
    ".git/",
    ".git/hooks/post-checkout",
    ".git/config",
    "a/.git/hooks/x",
    "a/.git",
    ".GIT/hooks/post-checkout",
    ".Git/config",
    "a/.gIt/x",
    "../.git/hooks/post-checkout",
    "../.repro/config.yaml",
]

# Odd but legal names: checkout may write them (inside `evil/` only) or refuse them cleanly.
_ODD_PATHS = [
    ".repro/config.yaml",
    ".repro/cache/objects/00/x",
    "x.repro",
    ".gitignore",
    "...",
    "..a",
    "a..",
    ".. ",
    " ..",
    ".git ",
    ".git.",
    "git~1/config",
    ".g\u200cit/config",  # HFS+ ignores U+200C: `.git` there, not here
    ".g\u0456t/config",  # Cyrillic i
    "\uff0e\uff0e/x",  # fullwidth dots
    "\u2024\u2024/x",  # one-dot leaders
    "a\u2215..\u2215x",  # division slash
    "C:/x",
    "c:x",
    "-rf",
    "--output=f",
    "a\u2028b",
    "\u202etxt.exe",
    "~/x",
    "$HOME/x",
    "*",
    "a b/c d",
    "n" * 255,
    "n" * 256,
    "/".join(["d" * 200] * 25),  # 5,000 bytes
    "\U0001f600/\U0001f4a9",
]


@dataclass(frozen=True)
class ManifestCase:
    """A crafted manifest (its exact bytes) and what checkout and pull must do with it."""

    id: str
    data: bytes
    expect: str
    nfiles: int = 1
    bug: str | None = None


def _entry(name: object, data: bytes = PAYLOAD, **override: object) -> dict[str, object]:
    return {"exec": True, "oid": oid_of(data), "path": name, "size": len(data)} | override


def _encode(entries: list[dict[str, object]]) -> bytes:
    text = json.dumps(entries, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.encode("utf-8", "surrogatepass")


def _manifest_cases() -> list[ManifestCase]:
    cases: list[ManifestCase] = []
    for kind, table in ((REFUSE, _BAD_PATHS), (CONFINE, _ODD_PATHS)):
        for index, path in enumerate(table):
            tag = f"{kind}{index:02d}-{path[:24]!r}"
            cases.append(ManifestCase(tag, _encode([_entry(path)]), kind))
    structural = [
        ("duplicate", [_entry("a"), _entry("a")], REFUSE),
        ("duplicate-other-oid", [_entry("a"), _entry("a", PAYLOAD + b"#")], REFUSE),
        ("unsorted", [_entry("b"), _entry("a")], REFUSE),
        ("slash-sorts-after-dash", [_entry("a/b"), _entry("a-b")], REFUSE),
        ("file-and-folder", [_entry("a"), _entry("a/b")], REFUSE),
        ("file-and-deep-folder", [_entry("a"), _entry("a/b/c/d")], REFUSE),
        ("case-collision", [_entry("A"), _entry("a")], CONFINE),
        ("case-collision-folders", [_entry("D/x"), _entry("d/x")], CONFINE),
        ("nfc-nfd-twins", [_entry("caf\u00e9"), _entry("cafe\u0301")], CONFINE),
        ("oid-names-a-manifest", [_entry("a", oid="0" * 32 + ".dir")], REFUSE),
        ("oid-uppercase", [_entry("a", oid=oid_of(PAYLOAD).upper())], REFUSE),
        ("oid-traversal", [_entry("a", oid="../../../../etc/passwd")], REFUSE),
        ("size-negative", [_entry("a", size=-1)], REFUSE),
        ("size-huge", [_entry("a", size=10**30)], CONFINE),
        ("size-wrong", [_entry("a", size=1)], CONFINE),
        ("exec-string", [_entry("a", exec="true")], REFUSE),
        ("extra-key", [_entry("a", mode=0o4755)], REFUSE),
        ("symlink-key", [_entry("a", link="../../outside")], REFUSE),
        ("path-number", [_entry(1)], REFUSE),
        ("path-null", [_entry(None)], REFUSE),
        ("path-list", [_entry(["..", "x"])], REFUSE),
        ("empty", [], CONFINE),
    ]
    cases += [
        ManifestCase(name, _encode(entries), expect, nfiles=len(entries))
        for name, entries, expect in structural
    ]
    good = _encode([_entry("a")])
    raw = [
        ("not-a-list", b'{"a":1}'),
        ("entry-not-object", b'["../x"]'),
        ("invalid-utf8", good.replace(b'"a"', b'"\xff\xfe/x"')),
        ("overlong-utf8-dots", good.replace(b'"a"', b'"\xc0\xae\xc0\xae/x"')),
        ("bom", b"\xef\xbb\xbf" + good),
        ("trailing-garbage", good + b"\n../x"),
        ("deep-nesting", b"[" * 50_000 + b"]" * 50_000),
        ("nan-size", good.replace(b'"size":29', b'"size":NaN')),
        ("float-size", good.replace(b'"size":29', b'"size":29.0')),
        ("dup-json-key", good.replace(b'"path":"a"', b'"path":"a","path":"../x"')),
    ]
    cases += [ManifestCase(name, data, REFUSE) for name, data in raw]
    many = [_entry(f"f{i:05d}") for i in range(2000)] + [_entry("zz/../../x")]
    cases.append(ManifestCase("bad-after-2000-good", _encode(many), REFUSE, nfiles=2001))
    return cases


MANIFEST_CASES = _manifest_cases()
READ_ONLY = (("status",), ("diff",), ("log", "evil"), ("gc", "--dry"), ("fsck",))
G1_COMMANDS = ("pull", *(" ".join(c) for c in READ_ONLY), "checkout", "checkout --force")


def plant_manifest(repo: Path, remote: Path, data: bytes, nfiles: int, name: str = "evil") -> str:
    """A crafted manifest and its files on the remote, and `NAME.repro` committed for it."""
    for child in (PAYLOAD, PAYLOAD + b"#"):
        put_object(remote, child)
    tree = put_object(remote, data, ".dir")
    (repo / f"{name}.repro").write_text(pointer_text(name, tree, len(PAYLOAD), nfiles))
    git(repo, "add", f"{name}.repro")
    git(repo, "commit", "-q", "-m", "crafted")
    return tree


def copy_objects(source: Path, repo: Path) -> None:
    """Put the remote's objects into the cache too (a cache can be crafted as well)."""
    for path in (source / "objects").rglob("*"):
        if path.is_file():
            dest = cache_dir(repo) / path.relative_to(source)
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)


def check_outcomes(outcomes: list[Outcome], refused: list[Outcome], names: tuple[str, ...]) -> None:
    """Every call ends cleanly (exit 0–2, no traceback); each of `refused` is exit 2 naming one
    of `names`."""
    for outcome in outcomes:
        assert outcome.clean, outcome
        assert outcome.exit_code in (0, 1, 2), outcome
    for outcome in refused:
        assert outcome.exit_code == 2, outcome
        assert any(name in outcome.stderr for name in names), outcome


def _g1_param(case: ManifestCase) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_g1_param(c) for c in MANIFEST_CASES])
def test_a_crafted_manifest_is_refused_or_confined_by_every_command(
    sandbox: Sandbox, invoke: Invoke, case: ManifestCase
) -> None:
    repo = sandbox.repo
    remote = with_remote(repo, invoke)
    tree = plant_manifest(repo, remote, case.data, case.nfiles)
    outcomes: list[Outcome] = []
    with confined(sandbox):
        outcomes.append(invoke("pull"))
        copy_objects(remote, repo)  # the test's own write (inside the repository)
        outcomes += [invoke(*args) for args in READ_ONLY]
        outcomes += [invoke("checkout"), invoke("checkout", "--force")]
    writers = [outcomes[0], outcomes[-2], outcomes[-1]]
    check_outcomes(outcomes, writers if case.expect == REFUSE else [], ("evil", tree))
    if case.expect == REFUSE:
        assert not (repo / "evil").exists()
    assert not (sandbox.root / "PWNED").exists()


def test_hostile_entries_below_a_legal_folder_are_refused_as_well(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    """Each bad path again, as `sub/PATH` after a legal entry (the entry-by-entry check)."""
    repo = sandbox.repo
    remote = with_remote(repo, invoke)
    for index, path in enumerate(_BAD_PATHS):
        entries = [_entry(p) for p in sorted(["0-ok", f"sub/{path}"])]
        name = f"evil{index}"
        tree = plant_manifest(repo, remote, _encode(entries), 2, name=name)
        with confined(sandbox):
            pull = invoke("pull", name)
            copy_objects(remote, repo)
            checkout = invoke("checkout", "--force", name)
        check_outcomes([pull, checkout], [pull, checkout], (name, tree))
        assert not (repo / name).exists(), path
        (repo / f"{name}.repro").unlink()
        git(repo, "commit", "-q", "-a", "-m", "drop")


def test_g1_table_has_at_least_100_crafted_manifests() -> None:
    refused = sum(c.expect == REFUSE for c in MANIFEST_CASES)
    total = len(MANIFEST_CASES) + len(_BAD_PATHS)
    print(
        f"\nFIGURE G1: {total} crafted manifests ({refused + len(_BAD_PATHS)} must be refused), "
        f"{len(MANIFEST_CASES)} of them × {len(G1_COMMANDS)} commands ({', '.join(G1_COMMANDS)}): "
        "0 writes outside the sandbox, 0 under .git (asserted per case)"
    )
    assert len(MANIFEST_CASES) >= 100
    assert len({c.id for c in MANIFEST_CASES}) == len(MANIFEST_CASES)


# --- G2: hostile pointer paths, lock paths and stage paths -------------------------------------

_POINTER_PATHS = [
    "../outside/victim.txt",
    "{S}/outside/victim.txt",
    "/etc/passwd",
    ".git/hooks/post-checkout",
    ".git",
    ".GIT/config",
    "sub/../../x",
    "evil/../evil",
    "./evil",
    "evil/",
    "..",
    ".",
    "",
    ".repro",
    ".repro/config.yaml",
    "evil\x00",
    "evil\n",
    "evil\\..\\x",
    "/evil",
    "//evil",
    "EVIL",
    "other",
    "a/evil",
]


@pytest.mark.parametrize("path", _POINTER_PATHS, ids=[repr(p) for p in _POINTER_PATHS])
def test_a_pointer_with_a_hostile_path_is_refused_by_every_command(
    sandbox: Sandbox, invoke: Invoke, path: str
) -> None:
    repo = sandbox.repo
    remote = with_remote(repo, invoke)
    oid = put_object(remote, PAYLOAD)
    copy_objects(remote, repo)
    text = pointer_text(path.format(S=sandbox.root), oid, len(PAYLOAD))
    (repo / "evil.repro").write_text(text)
    git(repo, "add", "evil.repro")
    git(repo, "commit", "-q", "-m", "crafted pointer")
    commands = [
        ("pull",),
        ("checkout",),
        ("checkout", "--force"),
        ("status",),
        ("commit",),
        ("add", "evil"),
        ("gc", "--dry"),
        ("diff",),
        ("log", "evil"),
    ]
    with confined(sandbox):
        outcomes = [invoke(*args) for args in commands]
        fsck = invoke("fsck")
    check_outcomes([*outcomes, fsck], outcomes[:5] + outcomes[6:7], ("evil.repro",))
    assert fsck.exit_code != 0 and "evil.repro" in fsck.stdout + fsck.stderr, fsck
    assert not (sandbox.root / "PWNED").exists()


_LOCK_PATHS = [
    "../x",
    "{S}/outside/victim.txt",
    ".git/hooks/pre-commit",
    ".Git/hooks/pre-commit",
    ".repro/config.yaml",
    ".repro/cache",
    "a/../../x",
    "a\\..\\x",
    "",
    ".",
    "a//b",
    "a\x1b",
]


@pytest.mark.parametrize("path", _LOCK_PATHS, ids=[repr(p) for p in _LOCK_PATHS])
def test_a_lock_output_with_a_hostile_path_is_refused(
    sandbox: Sandbox, invoke: Invoke, path: str
) -> None:
    repo = sandbox.repo
    remote = with_remote(repo, invoke)
    oid = put_object(remote, PAYLOAD)
    copy_objects(remote, repo)
    lock = {
        "version": 1,
        "hash": "xxh3-128",
        "stages": {
            "s": {
                "cmd": "true",
                "outs": [{"path": path.format(S=sandbox.root), "oid": oid, "size": len(PAYLOAD)}],
            }
        },
    }
    (repo / "repro.lock").write_text(json.dumps(lock))  # JSON is YAML
    (repo / "repro.yaml").write_text("stages:\n  s:\n    cmd: 'true'\n    outs: [o]\n")
    git(repo, "add", "repro.lock", "repro.yaml")
    git(repo, "commit", "-q", "-m", "crafted lock")
    commands = [("pull",), ("checkout",), ("checkout", "--force"), ("status",), ("gc", "--dry")]
    with confined(sandbox):
        outcomes = [invoke(*args) for args in commands]
        outcomes += [invoke("fsck"), invoke("log", "o"), invoke("run", "--dry")]
    check_outcomes(outcomes, outcomes[:5], ("repro.lock",))


STAGE_RAN = "STAGE-RAN"
# (field, YAML text of the stage's field) — each must be refused while parsing repro.yaml.
_STAGE_FIELDS = [
    (field, value)
    for field, template in (
        ("outs", "outs: [{v}]"),
        ("metrics", "metrics: [{v}]"),
        ("deps", "deps: [{v}]"),
        ("params", "params: [{{{v}: [lr]}}]"),
    )
    for value in (
        "../x",
        "'{S}/outside/victim.txt'",
        ".git/hooks/pre-commit",
        ".GIT/hooks/pre-commit",
        ".repro/config.yaml",
        "a/../../x",
        "'..'",
        "'a\\..\\x'",
        "'a\\x00'",
    )
    for _ in [template]
] + [
    ("wdir", value)
    for value in ("..", "../outside", "'{S}/outside'", ".git", ".git/hooks", ".repro", "'a/../..'")
]


@pytest.mark.parametrize(
    ("field", "value"), _STAGE_FIELDS, ids=[f"{f}={v}" for f, v in _STAGE_FIELDS]
)
def test_a_stage_path_that_leaves_the_repository_is_refused_before_anything_runs(
    sandbox: Sandbox, invoke: Invoke, field: str, value: str
) -> None:
    repo = sandbox.repo
    marker = sandbox.root / STAGE_RAN
    value = value.format(S=sandbox.root)
    body = {
        "outs": f"outs: [{value}]",
        "metrics": f"metrics: [{value}]",
        "deps": f"deps: [{value}]",
        "params": f"params: [{{{value}: [lr]}}]",
        "wdir": f"wdir: {value}",
    }[field]
    (repo / "params.yaml").write_text("lr: 1\n")
    (repo / "repro.yaml").write_text(
        f"stages:\n  s:\n    cmd: touch {marker}\n    {body}\n", encoding="utf-8"
    )
    git(repo, "add", "repro.yaml", "params.yaml")
    git(repo, "commit", "-q", "-m", "crafted stage")
    commands = [("run",), ("run", "--force"), ("run", "--dry"), ("status",), ("dag",)]
    with confined(sandbox):
        outcomes = [invoke(*args) for args in commands]
    check_outcomes(outcomes, outcomes, ("repro.yaml",))
    assert not marker.exists(), "the stage ran"


# --- G3: symlinks committed in Git ------------------------------------------------------------

TEMPLATE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "NO_COLOR": "1",
}


def template_env(home: Path) -> dict[str, str]:
    """The environment of a module-scoped template project whose HOME is `home`."""
    return TEMPLATE_ENV | {
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "REPRO_GLOBAL_CONFIG_DIR": str(home / "repro-global"),
        "REPRO_SYSTEM_CONFIG_DIR": str(home / "repro-system"),
    }


@contextlib.contextmanager
def template_cli(repo: Path, env: dict[str, str]) -> Iterator[Callable[..., None]]:
    """Inside: `env` set, no Git or cloud variables, `repo` the working directory, and a
    `cli(*args)` that runs repro in-process and asserts exit 0 — for the module-scoped
    templates, which cannot use the function-scoped fixtures."""
    import typer.testing

    from reprocli.cli.app import app

    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        for name in list(os.environ):
            if name.startswith(("GIT_DIR", "GIT_INDEX", "GIT_WORK_TREE", "AWS_", "FSSPEC_")):
                mp.delenv(name)
        mp.setattr(typer.testing, "_get_command", _cached_command)
        mp.chdir(repo)
        runner = typer.testing.CliRunner()

        def cli(*args: str) -> None:
            result = runner.invoke(app, list(args), catch_exceptions=False)
            assert result.exit_code == 0, (args, result.stdout, result.stderr)

        yield cli


STAGE_YAML = """\
stages:
  train:
    cmd: mkdir -p out && cp params.yaml out/result.txt
    deps: [params.yaml]
    params: [lr]
    outs: [out/result.txt]
"""


@pytest.fixture(scope="module")
def g3_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a tracked folder, a tracked file, a hook-like folder and a stage output,
    run, pushed to the folder remote `../remote` (with its run record) and committed."""
    base = tmp_path_factory.mktemp("g3-template")
    repo = base / "repo"
    repo.mkdir()
    with template_cli(repo, template_env(base / "home")) as cli:
        git(repo, "init", "-q", "-b", "main")
        cli("init")
        make_tree(
            repo,
            {
                "data/a.csv": "a\n",
                "data/sub/b.csv": "b\n",
                "model.bin": b"model\x00",
                "hookdir/pre-commit": "#!/bin/sh\nexit 0\n",
                "params.yaml": "lr: 1\n",
                "repro.yaml": STAGE_YAML,
            },
        )
        cli("add", "data", "model.bin", "hookdir")
        cli("run")
        cli("remote", "add", "-d", "origin", "../remote")
        cli("push", "--run-cache")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "project")
    return base


@dataclass(frozen=True)
class Layout:
    """Symlinks a hostile repository commits: `links` maps a path to its target, where
    `{S}` is the sandbox, `{outside}` the relative way from the link's folder to S/outside
    and `{repo}` the relative way to the repository root."""

    id: str
    links: dict[str, str]
    bug: str | None = None


def _rel_outside(link: str) -> str:
    return "../" * (link.count("/") + 1) + "outside"


def _rel_repo(link: str) -> str:
    return "../" * link.count("/") or "./"


def _layouts() -> list[Layout]:
    layouts: list[Layout] = []
    targets = {
        "rel": "{outside}",
        "abs": "{S}/outside",
        "git-hooks": "{repo}.git/hooks",
        "git": "{repo}.git",
        "dangling": "{outside}/missing",
        "chain": "{repo}chain",  # chain -> ../outside, committed too
    }
    for where in ("data", "data/sub", "out", "hookdir"):
        for name, target in targets.items():
            links = {where: target}
            if name == "chain":
                links["chain"] = "{outside}"
            layouts.append(Layout(f"{where}->{name}", links))
    leaf_targets = {
        "victim": "{outside}/victim.txt",
        "victim-abs": "{S}/outside/victim.txt",
        "git-config": "{repo}.git/config",
        "git-hook": "{repo}.git/hooks/post-checkout",
        "dangling": "{outside}/new.txt",
    }
    for where in ("data/a.csv", "model.bin", "out/result.txt", "hookdir/pre-commit"):
        for name, target in leaf_targets.items():
            layouts.append(Layout(f"{where}->{name}", {where: target}))
    internals = {
        ".repro": "{outside}/dotrepro",
        ".repro/cache": "{outside}/cache",
        ".repro/cache/objects": "{outside}/objects",
        ".repro/cache/runs": "{outside}/runs",
        ".repro/state": "{outside}/state",
        ".repro/tmp": "{outside}/tmp",
        ".repro/lock": "{S}/home/.bashrc",
        ".repro/config.local.yaml": "{outside}/victim.txt",
    }
    for where, target in internals.items():
        layouts.append(Layout(f"{where}->outside", {where: target}))
    layouts.append(Layout(".repro->.git", {".repro": "{repo}.git"}))
    files = {
        "model.bin.repro": "{outside}/evil.repro",
        "data.repro": "{repo}.git/config",
        "repro.lock": "{outside}/repro.lock",
        "repro.yaml": "{outside}/repro.yaml",
        "params.yaml": "{outside}/params.yaml",
        ".gitignore": "{outside}/gitignore",
        ".repro/.gitignore": "{outside}/gitignore",
    }
    for where, target in files.items():
        layouts.append(Layout(f"{where}->outside", {where: target}))
    return layouts


LAYOUTS = _layouts()
SECRET_LINE = "SECRET-0f1e-outside-bytes"


def apply_layout(repo: Path, sandbox: Path, layout: Layout) -> None:
    """Replace what is at each link path by the symlink, and commit the links (forced past
    .gitignore, as a hostile repository can)."""
    outside = sandbox / "outside"
    for name in ("dotrepro", "cache", "objects", "runs", "state", "tmp"):
        (outside / name).mkdir(exist_ok=True)
    (outside / "dotrepro" / "config.yaml").write_bytes((repo / ".repro/config.yaml").read_bytes())
    for name in ("repro.lock", "repro.yaml", "params.yaml", "model.bin.repro"):
        copy = "evil.repro" if name == "model.bin.repro" else name
        (outside / copy).write_bytes((repo / name).read_bytes())
    (outside / "gitignore").write_text((repo / ".gitignore").read_text() + SECRET_LINE + "\n")
    (repo / "fresh.bin").write_bytes(b"new data: its .gitignore line is written by add\n")
    for where, target in layout.links.items():
        path = repo / where
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(
            target.format(S=sandbox, outside=_rel_outside(where), repo=_rel_repo(where)), path
        )
        git(repo, "add", "-f", where)
    git(repo, "commit", "-q", "-m", f"hostile layout {layout.id}")


@pytest.fixture
def g3(g3_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """A copy of the template project at S/repo (its remote at S/remote), S/outside, decoys."""
    for name in ("repo", "remote"):
        shutil.copytree(g3_template / name, tmp_path / name, symlinks=True)
    monkeypatch.chdir(tmp_path / "repo")
    (Path(os.environ["HOME"]) / ".bashrc").write_text("# decoy: must never change\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("outside bytes, do not touch\n")
    return Sandbox(tmp_path, tmp_path / "repo")


def _g3_param(layout: Layout) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=layout.bug)] if layout.bug else []
    return pytest.param(layout, id=layout.id, marks=marks)


@pytest.mark.parametrize("layout", [_g3_param(layout) for layout in LAYOUTS])
def test_committed_symlinks_never_lead_a_write_outside_or_into_git(
    g3: Sandbox, invoke: Invoke, layout: Layout
) -> None:
    repo = g3.repo
    apply_layout(repo, g3.root, layout)
    first = next(iter(layout.links))
    commands = [
        ("checkout",),
        ("checkout", "--force"),
        ("pull", "--force"),
        ("add", first),
        ("add", "fresh.bin"),
        ("commit",),
        ("run",),
        ("run", "--force"),
        ("status",),
    ]
    with confined(g3):
        outcomes = [invoke(*args) for args in commands]
    # A link inside tracked data where it needs a folder stops checkout and pull, forced or
    # not, naming the link; every other layout may also end in a replaced link (exit 0).
    refused = outcomes[:3] if first == "data/sub" else []
    check_outcomes(outcomes, refused, ("symlink",))
    assert SECRET_LINE not in git(repo, "diff", "--cached") + git(repo, "diff")


def test_g3_table_has_at_least_50_symlink_layouts() -> None:
    print(
        f"\nFIGURE G3: {len(LAYOUTS)} committed symlink layouts × 9 commands (checkout, "
        "checkout --force, pull, add ×2, commit, run, run --force, status); "
        f"{sum(1 for layout in LAYOUTS if layout.bug)} expose known bugs (xfail)"
    )
    assert len(LAYOUTS) >= 50


# --- minimal reproductions of the confinement bugs above ----------------------------------------


def tracked_model(repo: Path, invoke: Invoke) -> None:
    """`model.bin` added and committed."""
    (repo / "model.bin").write_bytes(b"model v1\n")
    assert invoke("add", "model.bin").exit_code == 0
    git(repo, "commit", "-q", "-m", "model")


def test_a_manifest_path_longer_than_path_max_is_a_clean_error(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    repo = sandbox.repo
    remote = with_remote(repo, invoke)
    plant_manifest(repo, remote, _encode([_entry("/".join(["d" * 200] * 25))]), 1)
    copy_objects(remote, repo)
    outcome = invoke("checkout")
    assert outcome.clean and outcome.exit_code == 2, outcome


@pytest.mark.parametrize("link", [".repro", ".repro/cache", ".repro/state"])
def test_a_committed_symlink_inside_dot_repro_is_not_followed(
    sandbox: Sandbox, invoke: Invoke, link: str
) -> None:
    repo = sandbox.repo
    tracked_model(repo, invoke)
    target = sandbox.root / "outside" / "target"
    if link == ".repro":
        shutil.copytree(repo / ".repro", target, ignore=shutil.ignore_patterns("cache", "state"))
    else:
        target.mkdir()
    shutil.rmtree(repo / link)
    os.symlink(target, repo / link)
    git(repo, "add", "-f", link)
    git(repo, "commit", "-q", "-m", "hostile link")
    (repo / "model.bin").write_bytes(b"model v2\n")
    before = _fingerprint(target)
    outcomes = [invoke("add", "model.bin"), invoke("status")]
    assert _fingerprint(target) == before, "repro wrote through the committed symlink"
    check_outcomes(outcomes, outcomes, (f"{link}: is a symlink",))


def test_a_committed_lock_symlink_never_truncates_its_target(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    repo = sandbox.repo
    tracked_model(repo, invoke)
    bashrc = Path(os.environ["HOME"]) / ".bashrc"
    (repo / ".repro" / "lock").unlink(missing_ok=True)
    os.symlink(bashrc, repo / ".repro" / "lock")
    git(repo, "add", "-f", ".repro/lock")
    git(repo, "commit", "-q", "-m", "hostile lock")
    invoke("checkout")
    assert bashrc.read_text() == "# decoy: must never change\n"


def test_run_never_deletes_through_a_symlinked_output_folder(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    repo = sandbox.repo
    precious = sandbox.root / "outside" / "result.txt"
    precious.write_text("precious bytes outside the repository\n")
    os.symlink("../outside", repo / "out")
    (repo / "repro.yaml").write_text("stages:\n  s:\n    cmd: exit 1\n    outs: [out/result.txt]\n")
    git(repo, "add", "out", "repro.yaml")
    git(repo, "commit", "-q", "-m", "hostile output folder")
    outcome = invoke("run")
    assert precious.exists(), "repro deleted a file outside the repository"
    assert outcome.exit_code == 2 and "symlink" in outcome.stderr, outcome


def test_a_committed_gitignore_symlink_is_not_read_into_the_next_commit(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    repo = sandbox.repo
    secret = sandbox.root / "outside" / "id_rsa"
    secret.write_text(f"-----BEGIN OPENSSH PRIVATE KEY----- {SECRET_LINE}\n")
    (repo / ".gitignore").unlink(missing_ok=True)
    os.symlink(secret, repo / ".gitignore")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "hostile .gitignore")
    (repo / "fresh.bin").write_bytes(b"data\n")
    outcome = invoke("add", "fresh.bin")
    staged = git(repo, "diff", "--cached") + git(repo, "show", ":.gitignore")
    assert SECRET_LINE not in staged
    assert outcome.exit_code == 2 and ".gitignore: is a symlink" in outcome.stderr, outcome


# --- G4: time of check, time of use -------------------------------------------------------------


def _renamed_to(args: tuple[Any, ...]) -> str:
    """The destination of an os.rename audit event, resolving a destination folder fd."""
    dst, dst_fd = os.fsdecode(args[1]), args[3]
    if isinstance(dst_fd, int) and dst_fd >= 0:
        return os.readlink(f"/proc/self/fd/{dst_fd}") + "/" + dst
    return dst


def tracked_tree(repo: Path, invoke: Invoke, n: int) -> None:
    make_tree(repo, {f"data/sub/f{i:04d}": f"{i}\n" for i in range(n)})
    assert invoke("add", "data").exit_code == 0
    git(repo, "commit", "-q", "-m", "data")
    shutil.rmtree(repo / "data")


def test_a_folder_swapped_for_a_symlink_after_the_check_is_not_followed(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    """Deterministic: the swap happens at the first rename into data/sub (audit hook)."""
    repo = sandbox.repo
    tracked_tree(repo, invoke, 4)
    outside = sandbox.root / "outside"
    swapped: list[bool] = []

    def swap(event: str, args: tuple[Any, ...]) -> None:
        if event == "os.rename" and not swapped and "/data/sub/" in _renamed_to(args):
            swapped.append(True)
            os.rename(repo / "data/sub", sandbox.root / "moved")
            os.symlink(outside, repo / "data/sub")

    with watching(swap):  # type: ignore[arg-type]
        invoke("checkout")
    assert swapped
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"], "checkout escaped"


@pytest.mark.slow
def test_a_flipping_folder_never_leads_checkout_outside(sandbox: Sandbox, invoke: Invoke) -> None:
    """A thread flips data/sub between a folder and a symlink 10k times during checkouts."""
    repo = sandbox.repo
    tracked_tree(repo, invoke, 300)
    outside = sandbox.root / "outside"
    stop = threading.Event()
    flips = 0

    def flipper() -> None:
        nonlocal flips
        sub, parked = repo / "data" / "sub", repo / "data" / ".parked"
        while not stop.is_set() and flips < 10_000:
            with contextlib.suppress(OSError):
                if sub.is_symlink():
                    sub.unlink()
                    if parked.exists():
                        os.rename(parked, sub)
                elif sub.is_dir():
                    os.rename(sub, parked)
                    os.symlink(outside, sub)
                flips += 1
            time.sleep(0)

    thread = threading.Thread(target=flipper)
    thread.start()
    runs = 0
    try:
        while flips < 10_000 and runs < 2000:
            invoke("checkout", "--force")
            runs += 1
    finally:
        stop.set()
        thread.join()
    escaped = [p.name for p in outside.iterdir() if p.name != "victim.txt"]
    print(f"\nFIGURE G4: {flips} flips over {runs} checkouts: {len(escaped)} escapes")
    assert escaped == []


# --- G5: cache.dir from a tracked file -----------------------------------------------------------


@pytest.mark.parametrize("value", ["'~'", "..", "../outside", "/", "'{S}/outside'", ".git"])
def test_cache_dir_in_the_tracked_config_is_refused_and_nothing_is_deleted(
    sandbox: Sandbox, invoke: Invoke, value: str
) -> None:
    repo = sandbox.repo
    tracked_model(repo, invoke)
    stray = sandbox.root / "outside" / "00"
    stray.mkdir()
    (stray / ("0" * 30)).write_text("named like an object, not one\n")
    with (repo / ".repro/config.yaml").open("a") as handle:
        handle.write(f"cache:\n  dir: {value.format(S=sandbox.root)}\n")
    git(repo, "commit", "-q", "-a", "-m", "hostile cache.dir")
    with confined(sandbox):
        outcomes = [
            invoke(*args)
            for args in (("gc", "--force", "--grace", "0"), ("pull",), ("add", "model.bin"))
        ]
    check_outcomes(outcomes, outcomes, ("cache.dir",))


def test_a_committed_local_config_cannot_move_the_cache(sandbox: Sandbox, invoke: Invoke) -> None:
    repo = sandbox.repo
    tracked_model(repo, invoke)
    (repo / ".repro/config.local.yaml").write_text("cache:\n  dir: ../outside\n")
    git(repo, "add", "-f", ".repro/config.local.yaml")
    git(repo, "commit", "-q", "-m", "hostile local config")
    (repo / "model.bin").write_bytes(b"model v2\n")
    with confined(sandbox):
        outcome = invoke("add", "model.bin")
    assert outcome.exit_code == 2 and "config.local.yaml: is tracked by Git" in outcome.stderr


# --- G6: option injection -------------------------------------------------------------------------

_INJECTIONS = [
    ("checkout", "--", "-x"),
    ("checkout", "--output=f"),
    ("checkout", "--", "--output=f"),
    ("checkout", "--", "--orphan=f"),
    ("checkout", "--", "--end-of-options"),
    ("checkout", "-", "--"),
    ("checkout", "--upload-pack=touch f", "--", "model.bin"),
    ("log", "--", "--output=f"),
    ("log", "--rev=--output=f", "model.bin"),
    ("log", "--rev", "-Of", "model.bin"),
    ("diff", "--output=f"),
    ("diff", "--", "--output=f"),
    ("diff", "HEAD", "--", "--output=f"),
    ("diff", "--", "--no-index"),
    ("diff", "--", "-p", "--output=f"),
    ("params", "diff", "--", "--output=f"),
    ("metrics", "diff", "--", "--output=f"),
    ("metrics", "show", "--", "--output=f"),
    ("status", "--", "--output=f"),
    ("commit", "--", "--output=f"),
    ("add", "--", "--output=f"),
    ("gc", "--dry", "-r", "--output=f"),
    ("push", "-r", "--output=f"),
    ("pull", "--", "--output=f"),
    ("remote", "add", "--", "-x", "--output=f"),
]


def test_option_like_arguments_never_reach_git_as_options(sandbox: Sandbox, invoke: Invoke) -> None:
    repo = sandbox.repo
    tracked_model(repo, invoke)
    (repo / "params.yaml").write_text("lr: 1\n")
    (repo / "repro.yaml").write_text("stages:\n  s:\n    cmd: 'true'\n    params: [lr]\n")
    git(repo, "add", "params.yaml", "repro.yaml")
    git(repo, "commit", "-q", "-m", "stage")
    with confined(sandbox):
        outcomes = [invoke(*args) for args in _INJECTIONS]
    check_outcomes(outcomes, [o for o in outcomes if o.args[0] != "remote"], ("",))
    created = [p for p in sandbox.root.rglob("*f") if p.name in ("f", "Of")]
    assert created == []
    print(f"\nFIGURE G6: {len(_INJECTIONS)} option-like arguments: 0 files created")


def test_tracked_paths_that_look_like_options_are_passed_after_the_separator(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    repo = sandbox.repo
    names = ["--output=f", "-x", "--end-of-options", "-"]
    for name in names:
        (repo / name).write_bytes(f"{name}\n".encode())
    assert invoke("add", "--", *names).exit_code == 0
    git(repo, "commit", "-q", "-m", "odd names")
    for name in names:
        (repo / name).write_bytes(b"changed\n")
    with confined(sandbox):
        outcomes = [
            invoke("status", "--", *names),
            invoke("diff"),
            invoke("commit", "--", *names),
            invoke("log", "--", names[0]),
            invoke("checkout", "HEAD", "--", names[0]),
            invoke("checkout", "--force", "--", *names),
            invoke("gc", "--dry"),
        ]
    check_outcomes(outcomes, [], ())
    assert [o.exit_code for o in outcomes] == [0] * len(outcomes), "\n".join(map(str, outcomes))
    assert not (repo / "f").exists() and not (sandbox.root / "f").exists()


# --- G7: PATH hijack ------------------------------------------------------------------------------


def hijacked(sandbox: Sandbox, invoke: Invoke) -> tuple[Path, dict[str, str]]:
    """A repository that commits an executable `git` (and `bin/git`) recording each run."""
    repo = sandbox.repo
    tracked_model(repo, invoke)
    marker = sandbox.root / "PWNED"
    script = f'#!/bin/sh\necho "$0 $*" >> {marker}\nexec {shutil.which("git")} "$@"\n'
    for name in ("git", "bin/git"):
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text(script)
        os.chmod(repo / name, 0o755)
    git(repo, "add", "git", "bin/git")
    git(repo, "commit", "-q", "-m", "a git of our own")
    return marker, dict(os.environ, PATH=os.pathsep.join(["", "bin", ".", "/usr/bin", "/bin"]))


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("checkout",),
        ("add", "model.bin"),
        ("hooks", "install"),
        # these load GitPython, which probes for a git when it is imported
        ("log", "model.bin"),
        ("diff", "HEAD"),
        ("gc", "--dry"),
        ("fsck",),
        ("doctor",),
        ("version",),
        ("params", "diff"),
        ("metrics", "show", "--all-commits"),
    ],
    ids=" ".join,
)
def test_a_git_in_the_repository_is_never_run_from_a_relative_path_entry(
    sandbox: Sandbox, invoke: Invoke, args: tuple[str, ...]
) -> None:
    marker, env = hijacked(sandbox, invoke)
    done = subprocess.run(
        [PY, "-m", "reprocli", *args], cwd=sandbox.repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), marker.read_text()


# --- G8: protocols in the tracked config ----------------------------------------------------------


@pytest.mark.parametrize("scheme", ["nosuchproto", "x-evil+ssh", "file+nosuch"])
def test_an_unknown_protocol_in_the_tracked_config_is_refused(
    sandbox: Sandbox, invoke: Invoke, scheme: str
) -> None:
    repo = sandbox.repo
    tracked_model(repo, invoke)
    url = f"{scheme}://{sandbox.root / 'outside'}"
    with (repo / ".repro/config.yaml").open("a") as handle:
        handle.write(f"remotes:\n  origin:\n    url: {json.dumps(url)}\n")
    git(repo, "commit", "-q", "-a", "-m", "hostile remote")
    shutil.rmtree(cache_dir(repo))
    with confined(sandbox):
        outcomes = [invoke(*args) for args in (("pull", "-r", "origin"), ("push", "-r", "origin"))]
    check_outcomes(outcomes, outcomes, ("origin",))


@pytest.mark.parametrize("chain", ["simplecache", "filecache", "blockcache"])
def test_a_chained_protocol_in_the_tracked_config_needs_an_opt_in(
    sandbox: Sandbox, invoke: Invoke, chain: str
) -> None:
    repo = sandbox.repo
    remote = with_remote(repo, invoke)
    tracked_model(repo, invoke)
    assert invoke("push").exit_code == 0
    with (repo / ".repro/config.yaml").open("a") as handle:
        handle.write(f"  chained:\n    url: {chain}::file://{remote}\n")
    git(repo, "commit", "-q", "-a", "-m", "chained remote")
    shutil.rmtree(cache_dir(repo))
    (repo / "model.bin").unlink()
    with confined(sandbox):
        outcome = invoke("pull", "-r", "chained")
    assert outcome.exit_code == 2, outcome


def test_remote_add_refuses_a_chained_url_without_local(sandbox: Sandbox, invoke: Invoke) -> None:
    outcome = invoke("remote", "add", "c", f"simplecache::file://{sandbox.root / 'store'}")
    assert outcome.exit_code == 2, outcome


class _Redirector(http.server.BaseHTTPRequestHandler):
    """Answers every request with a redirect to `target` (set per server)."""

    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target + self.path.rsplit("/", 1)[-1])
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


class _Liar(http.server.BaseHTTPRequestHandler):
    """Serves the same wrong bytes for every object: a foreign server behind a redirect."""

    def do_GET(self) -> None:
        body = b"bytes that do not hash to the name asked for\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 (a random port) in a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("to", ["file", "another host"])
def test_a_redirecting_http_remote_never_gets_foreign_bytes_into_the_cache(
    sandbox: Sandbox, invoke: Invoke, to: str
) -> None:
    repo = sandbox.repo
    tracked_model(repo, invoke)
    oid = oid_of(b"model v1\n")
    shutil.rmtree(cache_dir(repo))
    (repo / "model.bin").unlink()
    secret = sandbox.root / "outside" / "victim.txt"
    with contextlib.ExitStack() as stack:
        if to == "file":
            _Redirector.target = f"file://{secret}?"
        else:
            _Redirector.target = stack.enter_context(http_server(_Liar)) + "/objects/"
        base = stack.enter_context(http_server(_Redirector))
        with (repo / ".repro/config.yaml").open("a") as handle:
            handle.write(f"remotes:\n  web:\n    url: {base}/store\n")
        git(repo, "commit", "-q", "-a", "-m", "a remote that redirects")
        with confined(sandbox):
            outcome = invoke("pull", "-r", "web")
    assert outcome.exit_code == 2 and outcome.clean, outcome
    # aiohttp refuses to follow a redirect to file://; foreign bytes fail their hash
    assert ("corrupt" if to == "another host" else "1 failed") in outcome.stderr, outcome
    assert not (repo / "model.bin").exists()
    stored = [p for p in (cache_dir(repo) / "objects").rglob("*") if p.is_file()]
    assert stored == [], f"foreign bytes in the cache: {stored} (wanted {oid})"


# --- fuzzed manifests through checkout (Figure 6) ---------------------------------------------------

_COMPONENTS = [
    "a", "b", "data", "..", ".", "", ".git", ".GIT", ".Git", ".repro", "hooks", "~", "-rf",
    "\\", "C:", "/etc", "a\x00b", "a\nb", "😀", "\udcff", "x" * 256, "con", " ", "a ",
]  # fmt: skip
_FUZZ_FILES = (PAYLOAD, PAYLOAD + b"#")


@st.composite
def fuzzed_manifests(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A manifest of hostile-looking entries: paths built from dangerous components, some
    entries well-formed, some not, in any order (the parser decides)."""
    entries = []
    for _ in range(draw(st.integers(1, 5))):
        benign = st.sampled_from(["a", "b", "data", "c d", "é"])
        component = st.one_of(benign, benign, benign, st.sampled_from(_COMPONENTS))
        path = "/".join(draw(st.lists(component, min_size=1, max_size=4)))
        if draw(st.integers(0, 4)) == 0:
            path = "/" + path if draw(st.booleans()) else path + "/"
        data = draw(st.sampled_from(_FUZZ_FILES))
        entries.append(_entry(path, data, exec=draw(st.booleans())))
    if draw(st.integers(0, 4)) > 0:
        entries.sort(key=lambda e: str(e["path"]))
    size = sum(int(str(e["size"])) for e in entries)
    return _encode(entries), size, len(entries)  # the pointer agrees with its manifest


def _fuzz_checkouts(
    sandbox: Sandbox, invoke: Invoke, examples: int, *, derandomize: bool = False
) -> Counter[str]:
    """Check out `examples` fuzzed manifests; count how each ended (refused or written)."""
    repo = sandbox.repo
    cache = cache_dir(repo)
    for child in _FUZZ_FILES:
        put_object(cache, child)
    tally: Counter[str] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,  # the fast tier: the same manifests on every machine
        suppress_health_check=list(HealthCheck),
    )
    @given(data=fuzzed_manifests())
    def one(data: tuple[bytes, int, int]) -> None:
        tree = put_object(cache, data[0], ".dir")
        (repo / "evil.repro").write_text(pointer_text("evil", tree, data[1], data[2]))
        with confined(sandbox):
            outcomes = [invoke("checkout", "--force", "evil.repro"), invoke("status")]
        check_outcomes(outcomes, [], ())
        tally["written" if outcomes[0].exit_code == 0 else "refused"] += 1
        target = repo / "evil"
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()

    one()
    return tally


def test_fuzzed_manifests_checked_out_never_write_outside(sandbox: Sandbox, invoke: Invoke) -> None:
    tally = _fuzz_checkouts(sandbox, invoke, 100, derandomize=True)
    print(
        f"\nFIGURE G1-fuzz: {tally.total()} fuzzed manifests through checkout --force and status"
        f" ({tally['refused']} refused, {tally['written']} checked out): 0 writes outside"
    )
    assert tally["written"] > 0, "no fuzzed manifest was ever legal: the strategy is too narrow"


@pytest.mark.slow
def test_thousands_of_fuzzed_manifests_checked_out_never_write_outside(
    sandbox: Sandbox, invoke: Invoke
) -> None:
    tally = _fuzz_checkouts(sandbox, invoke, 3000)
    print(
        f"\nFIGURE G1-fuzz: {tally.total()} fuzzed manifests through checkout --force and status"
        f" ({tally['refused']} refused, {tally['written']} checked out): 0 writes outside"
    )
