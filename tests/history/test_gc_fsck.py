"""`repro gc` and `repro fsck` (DESIGN §2, §4 invariants 2 and 4; RELIABILITY E and K).

gc: what it keeps (workspace, index, HEAD, the revisions asked for, run records whose outputs
it keeps), what it refuses (no terminal, unreadable pointers, missing manifests), that `--dry`
lists exactly what a real run deletes, the grace period, and remotes (a folder and S3).
fsck: corrupt, misnamed, invalid and missing objects, bad pointers and locks, `--repair`
followed by the pull that brings the bytes back, and remotes.

Expected object sets are computed from file bytes with xxhash and from pointers read with
`git show`, never with repro's own code; "old" objects are made old with os.utime.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import xxhash
import yaml

from tests.builders import commit, git, make_tree
from tests.conftest import Cli
from tests.remote import conftest as remotes
from tests.remote.conftest import (
    LocalView,
    RemoteUnderTest,
    RemoteView,
    assert_cache_valid,
    cache_path,
    cache_root,
    clone,
    configure,
    object_key,
    overwrite,
)

# The S3 fixtures of tests/remote (a moto server on loopback), requested by name by `remote`.
aws_env = remotes.aws_env
s3_server = remotes.s3_server
s3_admin = remotes.s3_admin
s3_url = remotes.s3_url
s3_remote = remotes.s3_remote

PY = shlex.quote(sys.executable)
HOUR = 3600.0


def oid(data: bytes | str) -> str:
    """The object id of `data` (xxh3-128), computed without repro."""
    return xxhash.xxh3_128_hexdigest(data.encode() if isinstance(data, str) else data)


def dataset(n: int) -> dict[str, str | bytes]:
    """Version `n` of the tracked data: `data/shared.csv` is the same in every version."""
    return {
        "data/shared.csv": "shared by every version\n",
        "data/part.csv": f"part,{n}\n",
        "data/sub/deep.txt": f"deep {n}\n",
        "model.bin": f"model {n}".encode() + bytes(range(256)),
    }


def pointer_at(root: Path, rev: str, file: str) -> str:
    """The oid the pointer `file` records at `rev` (`git show`; rev "" is the index)."""
    text = git(root, "show", f"{rev}:{file}")
    return str(yaml.safe_load(text)["outs"][0]["oid"])


def version_oids(root: Path, rev: str, n: int) -> set[str]:
    """Every object version `n` (committed at `rev`) needs: its files and data/'s manifest."""
    return {oid(content) for content in dataset(n).values()} | {pointer_at(root, rev, "data.repro")}


OBJECT_NAME = re.compile(r"[0-9a-f]{32}(?:\.dir)?")


def stored(root: Path) -> set[str]:
    """Every object (a file named like one, in its fan-out folder) in the project's cache."""
    objects = cache_root(root) / "objects"
    return {
        prefix.name + name
        for prefix in (objects.iterdir() if objects.is_dir() else ())
        if prefix.is_dir()
        for name in os.listdir(prefix)
        if OBJECT_NAME.fullmatch(prefix.name + name) and (prefix / name).is_file()
    }


def on_remote(remote: RemoteUnderTest | RemoteView) -> set[str]:
    """Every object on a remote, read without repro."""
    view = remote.view if isinstance(remote, RemoteUnderTest) else remote
    found = set()
    for key in view.files():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "objects" and OBJECT_NAME.fullmatch(parts[1] + parts[2]):
            found.add(parts[1] + parts[2])
    return found


def age(root: Path, seconds: float = 2 * HOUR, *, part: str = "") -> None:
    """Make every object and run record in the cache (or in its folder `part`) `seconds` old,
    so that gc may consider them."""
    then = time.time() - seconds
    for top in [part] if part else ["objects", "runs"]:
        for folder, _, names in os.walk(cache_root(root) / top):
            for name in names:
                os.utime(Path(folder) / name, (then, then))


def gc_json(cli: Cli, *args: str) -> dict[str, dict[str, Any]]:
    """`repro gc ARGS --json` as {where: store report}."""
    doc = json.loads(cli("gc", *args, "--json").stdout)
    assert doc["version"] == 1
    return {store["where"]: store for store in doc["stores"]}


def dry_listing(text: str) -> dict[str, set[str]]:
    """`gc --dry` output as {where: {object ids it would delete}}."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"would delete (.+): objects/([0-9a-f]{2})/(\S+)", line)
        if match:
            found.setdefault(match[1], set()).add(match[2] + match[3])
    return found


def tree(root: Path) -> dict[str, bytes]:
    """The tracked data of the workspace: data/ and model.bin, as {path: bytes}."""
    found = {}
    for folder, _, names in os.walk(root / "data"):
        for name in names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    if (root / "model.bin").exists():
        found["model.bin"] = (root / "model.bin").read_bytes()
    return found


def expected_tree(n: int) -> dict[str, bytes]:
    """What `tree` reads when version `n` is checked out."""
    return {k: v.encode() if isinstance(v, str) else v for k, v in dataset(n).items()}


@dataclass
class History:
    """Three committed versions: v1 (annotated tag), v2 (branch `exp`, no tag), v3 (main, HEAD)."""

    root: Path
    v1: set[str]
    v2: set[str]
    v3: set[str]

    @property
    def everything(self) -> set[str]:
        return self.v1 | self.v2 | self.v3


def commit_version(root: Path, cli: Cli, n: int) -> str:
    """Write version `n`, `repro add` it and commit; return the commit."""
    make_tree(root, dataset(n))
    cli("add", "data", "model.bin")
    return commit(root, f"data v{n}")


@pytest.fixture
def history(repo: Path, cli: Cli) -> History:
    """The three versions in one cache; every object old enough for gc."""
    commit_version(repo, cli, 1)
    git(repo, "tag", "-a", "v1", "-m", "release 1")  # annotated: gc must peel it
    commit_version(repo, cli, 2)
    git(repo, "branch", "exp")
    commit_version(repo, cli, 3)
    found = History(
        repo,
        version_oids(repo, "v1", 1),
        version_oids(repo, "exp", 2),
        version_oids(repo, "HEAD", 3),
    )
    assert stored(repo) == found.everything
    age(repo)
    return found


# --- gc: what it keeps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "kept"),
    [
        ((), ("v3",)),
        (("--all-tags",), ("v1", "v3")),
        (("--all-branches",), ("v2", "v3")),
        (("--all-commits",), ("v1", "v2", "v3")),
        (("--all-tags", "--all-branches"), ("v1", "v2", "v3")),
    ],
)
def test_gc_keeps_exactly_what_the_chosen_revisions_reach(
    history: History, cli: Cli, flags: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    want = set().union(*(getattr(history, v) for v in kept))
    cli("gc", "-f", "--grace", "0", *flags)

    assert stored(history.root) == want
    assert_cache_valid(history.root)
    # every kept revision checks out offline, byte for byte (RELIABILITY K1)
    names = {"v1": "v1", "v2": "exp", "v3": "main"}
    for version in kept:
        cli("checkout", names[version])
        assert tree(history.root) == expected_tree(int(version[1]))


def test_all_branches_keeps_what_only_a_remote_tracking_branch_names(
    history: History, cli: Cli
) -> None:
    root = history.root
    git(root, "update-ref", "refs/remotes/origin/exp", "exp")  # as a fetch would leave it
    git(root, "branch", "-q", "-D", "exp")  # v2 is now named by origin/exp only

    cli("gc", "-f", "--grace", "0", "--all-branches")
    assert stored(root) == history.v2 | history.v3

    cli("gc", "-f", "--grace", "0")  # without --all-branches, a remote branch keeps nothing
    assert stored(root) == history.v3


def test_gc_keeps_uncommitted_workspace_data_and_what_the_index_stages(
    history: History, cli: Cli
) -> None:
    root = history.root
    make_tree(root, dataset(4))
    cli("add", "data", "model.bin")  # staged, not committed
    v4 = {oid(c) for c in dataset(4).values()} | {pointer_at(root, "", "data.repro")}
    make_tree(root, {"model.bin": b"model 5, never committed"})
    cli("add", "model.bin")
    git(root, "reset", "-q", "--", "model.bin.repro")  # model 5 in the workspace only
    staged_model = pointer_at(root, "", "model.bin.repro")
    assert staged_model == oid(dataset(3)["model.bin"])
    git(root, "add", "data.repro")
    os.remove(root / "data.repro")  # data v4 in the index only
    age(root)

    cli("gc", "-f", "--grace", "0")
    model4 = oid(dataset(4)["model.bin"])  # neither committed, staged nor in the workspace
    assert stored(root) == history.v3 | (v4 - {model4}) | {oid(b"model 5, never committed")}


def test_gc_keeps_a_detached_head_that_index_and_workspace_moved_away_from(
    history: History, cli: Cli
) -> None:
    root = history.root
    git(root, "checkout", "-q", "--detach", "v1")
    git(root, "tag", "-d", "v1")  # now only HEAD names v1
    pointers = ("data.repro", "model.bin.repro")
    make_tree(root, dataset(4))
    cli("add", "data", "model.bin")
    staged = {name: (root / name).read_bytes() for name in pointers}
    make_tree(root, dataset(5))
    cli("add", "data", "model.bin")
    v5 = {oid(c) for c in dataset(5).values()} | {pointer_at(root, "", "data.repro")}
    workspace = {name: (root / name).read_bytes() for name in pointers}
    for name in pointers:  # the index holds v4, the workspace v5, HEAD v1
        (root / name).write_bytes(staged[name])
    git(root, "add", *pointers)
    for name in pointers:
        (root / name).write_bytes(workspace[name])
    v4 = {oid(c) for c in dataset(4).values()} | {pointer_at(root, "", "data.repro")}
    age(root)

    cli("gc", "-f", "--grace", "0")  # main (v3) and exp (v2) are not asked for
    assert stored(root) == history.v1 | v4 | v5


def test_gc_keeps_objects_younger_than_the_grace_period(history: History, cli: Cli) -> None:
    garbage = history.everything - history.v3
    young = sorted(garbage)[:2]
    now = time.time()
    for oid_ in young:
        os.utime(cache_path(history.root, oid_), (now, now))

    store = gc_json(cli, "-f")[str(cache_root(history.root))]  # default grace: 1 hour
    assert sorted(store["deleted"]) == sorted(garbage - set(young))
    assert store["recent_kept"] == 2
    assert stored(history.root) == history.v3 | set(young)

    age(history.root, 30)
    assert gc_json(cli, "-f", "--grace", "60")[str(cache_root(history.root))]["deleted"] == []
    gc_json(cli, "-f", "--grace", "10")
    assert stored(history.root) == history.v3


def test_a_manifest_kept_for_its_age_keeps_its_old_files(repo: Path, cli: Cli) -> None:
    make_tree(repo, {"data/a.txt": "a\n", "data/b.txt": "b\n"})
    cli("add", "data")
    age(repo)  # a.txt and b.txt (and the first manifest) are old now
    (repo / "data" / "c.txt").write_text("c\n")
    cli("add", "data")
    young_manifest = pointer_at(repo, "", "data.repro")
    (repo / "data.repro").unlink()  # nothing references either version any more
    git(repo, "rm", "-q", "--cached", "--ignore-unmatch", "data.repro")

    gc_json(cli, "-f")  # default grace: the young manifest stays, and so must its files

    files = {oid("a\n"), oid("b\n"), oid("c\n")}
    assert {young_manifest} | files <= stored(repo)
    assert_cache_valid(repo)


def test_gc_dry_lists_exactly_what_a_real_run_deletes(history: History, cli: Cli) -> None:
    before = stored(history.root)
    dry = cli("gc", "--dry", "--grace", "0", "--all-tags")
    listed = dry_listing(dry.stdout)
    assert list(listed) == [str(cache_root(history.root))]
    assert stored(history.root) == before  # dry deletes nothing
    doc = json.loads(cli("gc", "--dry", "--grace", "0", "--all-tags", "--json").stdout)
    assert (doc["dry"], doc["done"]) == (True, False)
    assert doc["stores"][0]["deleted"] == sorted(listed[str(cache_root(history.root))])
    assert stored(history.root) == before

    doc = json.loads(cli("gc", "-f", "--grace", "0", "--all-tags", "--json").stdout)
    assert (doc["dry"], doc["done"]) == (False, True)
    deleted = before - stored(history.root)
    assert deleted == listed[str(cache_root(history.root))] == history.v2 - history.v1 - history.v3


def test_gc_without_a_terminal_or_force_refuses_and_deletes_nothing(
    history: History, cli: Cli
) -> None:
    before = stored(history.root)
    result = cli("gc", "--grace", "0", expect=2)
    assert result.stderr.splitlines()[0].startswith("error: gc deletes objects")
    assert "-f" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert stored(history.root) == before


def in_a_terminal(root: Path, *args: str, answer: bytes) -> tuple[int, str]:
    """Run `repro ARGS` in a subprocess whose stdin, stdout and stderr are a pseudo-terminal,
    typing `answer`; return the exit code and everything it printed."""
    import pty
    import subprocess

    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reprocli", *args],
        cwd=root,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        close_fds=True,
    )
    os.close(secondary)
    os.write(main, answer)
    output = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    return proc.wait(timeout=60), output.decode(errors="replace")


def test_gc_in_a_terminal_asks_and_deletes_only_on_yes(history: History, cli: Cli) -> None:
    before = stored(history.root)
    garbage = len(before - history.v3)
    code, text = in_a_terminal(history.root, "gc", "--grace", "0", answer=b"n\n")
    assert code == 0
    assert f"delete {garbage} object(s)" in text and "[y/N]" in text
    assert "nothing deleted" in text
    assert stored(history.root) == before

    code, text = in_a_terminal(history.root, "gc", "--grace", "0", answer=b"y\n")
    assert code == 0 and f"deleted {garbage} object(s)" in text
    assert stored(history.root) == history.v3


def test_gc_deletes_only_files_named_like_objects(history: History, cli: Cli) -> None:
    cache = cache_root(history.root)
    some = sorted(history.v1 - history.v3)[0]
    strays = [
        cache / "objects" / some[:2] / "README",
        cache / "objects" / "README",
        cache / "objects" / some[:2] / (some[2:] + ".tmp"),
        cache / "objects" / "zz" / some[2:],
        cache / "objects" / some[:2] / "nested" / some[2:],
        cache / "tmp" / "foo.tmp",
        cache / "README",
    ]
    for path in strays:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an object\n")
    age(history.root)

    cli("gc", "-f", "--grace", "0")
    assert stored(history.root) == history.v3
    assert all(path.read_bytes() == b"not an object\n" for path in strays)


def test_gc_keeps_stage_outputs_and_their_run_records_only_when_kept(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    make_tree(
        repo,
        {
            "repro.yaml": (
                f"stages:\n  train:\n    cmd: {PY} train.py\n"
                "    deps: [train.py]\n    params: [lr]\n    outs: [model.txt]\n"
            ),
            "train.py": (
                "import yaml\n"
                f"open({str(log)!r}, 'a').write('ran\\n')\n"
                "lr = yaml.safe_load(open('params.yaml'))['lr']\n"
                "open('model.txt', 'w').write(f'model lr={lr}\\n')\n"
            ),
            "params.yaml": "lr: 1\n",
        },
    )
    cli("run")
    git(repo, "add", "-A")
    commit(repo, "lr 1")
    (repo / "params.yaml").write_text("lr: 2\n")
    cli("run")
    commit(repo, "lr 2")
    first, second = oid("model lr=1\n"), oid("model lr=2\n")
    assert {first, second} <= stored(repo)
    runs = cache_root(repo) / "runs"
    assert len(list(runs.glob("*/*"))) == 2
    age(repo)

    cli("gc", "-f", "--grace", "0", "--all-commits")  # both kept, both run records too
    assert {first, second} <= stored(repo)
    assert len(list(runs.glob("*/*"))) == 2

    age(repo, 0, part="runs")
    cli("gc", "-f")  # default grace: lr=1's young run record still keeps its output
    assert {first, second} <= stored(repo)
    age(repo)
    cli("gc", "-f", "--grace", "0")  # lr=1 is only in history now
    assert second in stored(repo) and first not in stored(repo)
    assert len(list(runs.glob("*/*"))) == 1
    assert (repo / "model.txt").read_text() == "model lr=2\n"

    # lr=1 runs again: its output and run record are gone
    (repo / "params.yaml").write_text("lr: 1\n")
    cli("run")
    assert log.read_text().split() == ["ran"] * 3
    assert (repo / "model.txt").read_text() == "model lr=1\n"
    age(repo)
    cli("gc", "-f", "--grace", "0")  # the workspace's repro.lock (uncommitted) keeps lr=1
    assert {first, second} <= stored(repo)
    # the kept one restores without running
    (repo / "params.yaml").write_text("lr: 2\n")
    cli("run")
    assert log.read_text().split() == ["ran"] * 3
    assert (repo / "model.txt").read_text() == "model lr=2\n"


# --- gc: what makes it stop -----------------------------------------------------------------


def test_gc_aborts_on_an_unreadable_pointer_in_a_revision_it_was_asked_to_keep(
    history: History, cli: Cli
) -> None:
    root = history.root
    git(root, "checkout", "-q", "-b", "damaged", "v1")
    (root / "model.bin.repro").write_text("version: 1\nouts: [this is not a pointer\n")
    git(root, "commit", "-q", "-am", "damaged pointer")
    git(root, "tag", "bad")
    git(root, "checkout", "-q", "-f", "main")
    git(root, "branch", "-q", "-D", "damaged")
    before = stored(root)

    result = cli("gc", "-f", "--grace", "0", "--all-tags", expect=2)
    assert result.stderr.startswith("error: ")
    assert "model.bin.repro" in result.stderr.splitlines()[0]
    assert stored(root) == before
    # a pointer outside the revisions asked for does not matter
    cli("gc", "-f", "--grace", "0")
    assert stored(root) == history.v3


def test_gc_aborts_on_an_unreadable_workspace_pointer(history: History, cli: Cli) -> None:
    before = stored(history.root)
    (history.root / "data.repro").write_text("outs: 3\n")
    result = cli("gc", "-f", "--grace", "0", expect=2)
    assert "data.repro" in result.stderr.splitlines()[0]
    assert stored(history.root) == before


def test_gc_aborts_when_a_kept_manifest_is_missing(history: History, cli: Cli) -> None:
    manifest = pointer_at(history.root, "v1", "data.repro")
    os.remove(cache_path(history.root, manifest))
    before = stored(history.root)

    result = cli("gc", "-f", "--grace", "0", "--all-tags", expect=2)
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and manifest in first
    assert "deletes nothing" in first
    assert stored(history.root) == before
    cli("gc", "-f", "--grace", "0")  # v1 not asked for: its manifest does not matter
    assert stored(history.root) == history.v3


def test_gc_with_an_unknown_remote_deletes_nothing(history: History, cli: Cli) -> None:
    before = stored(history.root)
    result = cli("gc", "-f", "--grace", "0", "-r", "nosuch", expect=2)
    assert "nosuch" in result.stderr.splitlines()[0]
    assert stored(history.root) == before


# --- gc on remotes --------------------------------------------------------------------------


@pytest.fixture
def folder_remote(tmp_path: Path) -> RemoteUnderTest:
    """A directory remote (an absolute path, so that clones reach it too)."""
    root = tmp_path / "remote-store"
    return RemoteUnderTest("local", str(root), (), LocalView(root))


@pytest.fixture(params=["folder", "s3"])
def remote(request: pytest.FixtureRequest) -> RemoteUnderTest:
    """A directory remote and an S3 remote on the loopback moto server."""
    found: RemoteUnderTest = request.getfixturevalue(f"{request.param}_remote")
    return found


def push_history(history: History, remote: RemoteUnderTest, cli: Cli) -> History:
    """Make `remote` the default remote `origin` and push every version to it."""
    configure(cli, history.root, remote)
    cli("push", "--all-commits")
    assert on_remote(remote) == history.everything
    return history


@pytest.fixture
def pushed(history: History, remote: RemoteUnderTest, cli: Cli) -> History:
    """`history` with every version pushed to the default remote `origin`."""
    return push_history(history, remote, cli)


STRAY = b"not an object\n"


def put_stray(remote: RemoteUnderTest, key: str) -> None:
    """Store a file that is not an object on the remote (as a person or another tool might)."""
    if remote.kind == "local":
        path = Path(remote.url) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(STRAY)
    else:
        remote.view.write(key, STRAY)


def test_gc_r_spares_recent_remote_objects_then_cleans_the_remote(
    pushed: History, remote: RemoteUnderTest, cli: Cli
) -> None:
    put_stray(remote, "README")
    put_stray(remote, "objects/ab/notes.txt")
    want_gone = pushed.v2 - pushed.v1 - pushed.v3

    # Just pushed (by another clone, say, whose Git commit is not pushed yet): spared.
    stores = gc_json(cli, "-f", "--all-tags", "-r", "origin")  # default grace: one hour
    assert stores["origin"]["deleted"] == []
    assert stores["origin"]["recent_kept"] == len(want_gone)
    assert on_remote(remote) == pushed.everything
    assert stored(pushed.root) == pushed.v1 | pushed.v3  # the cache's objects are old

    dry = dry_listing(cli("gc", "--dry", "--grace", "0", "--all-tags", "-r", "origin").stdout)
    assert dry == {"origin": want_gone}
    assert on_remote(remote) == pushed.everything

    stores = gc_json(cli, "-f", "--grace", "0", "--all-tags", "-r", "origin")
    assert set(stores["origin"]["deleted"]) == want_gone
    assert on_remote(remote) == pushed.v1 | pushed.v3
    assert remote.view.read("README") == STRAY
    assert remote.view.read("objects/ab/notes.txt") == STRAY
    assert_remote_valid_objects(remote)


def assert_remote_valid_objects(remote: RemoteUnderTest) -> None:
    """Every object on the remote hashes to its name (stray files aside)."""
    for name in on_remote(remote):
        assert oid(remote.view.read(object_key(name))) == name.removesuffix(".dir"), name


def test_gc_r_then_a_fresh_clone_gets_every_kept_revision(
    history: History,
    folder_remote: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pushed = push_history(history, folder_remote, cli)
    cli("gc", "-f", "--grace", "0", "--all-tags", "-r", "origin")
    mate = clone(pushed.root, tmp_path / "mate")
    monkeypatch.chdir(mate)
    cli("pull")
    assert tree(mate) == expected_tree(3)
    cli("fetch", "--all-tags")
    cli("checkout", "v1")  # offline now: everything came with the fetch
    assert tree(mate) == expected_tree(1)
    cli("checkout", "main")
    git(mate, "branch", "exp", "origin/exp")
    result = cli("fetch", "--all-branches", expect=2)  # exp (v2) was collected
    assert result.stderr.startswith("error: ")


def test_gc_r_keeps_what_remote_run_records_name_so_a_clone_restores_it(
    repo: Path,
    folder_remote: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "runs.log"
    configure(cli, repo, folder_remote)
    make_tree(
        repo,
        {
            "repro.yaml": f"stages:\n  s:\n    cmd: {PY} make.py\n    deps: [make.py, n.txt]\n"
            "    outs: [out.txt]\n",
            "make.py": f"open({str(log)!r}, 'a').write('ran\\n')\n"
            "open('out.txt', 'w').write('out ' + open('n.txt').read())\n",
            "n.txt": "1\n",
        },
    )
    cli("run")
    git(repo, "add", "-A")
    commit(repo, "n=1")
    (repo / "n.txt").write_text("2\n")
    cli("run")
    commit(repo, "n=2")
    cli("push", "--run-cache", "--all-commits")
    age(repo)

    cli("gc", "-f", "--grace", "0", "-r", "origin")
    assert oid("out 1\n") not in stored(repo)  # no local record or pointer keeps it
    assert oid("out 1\n") in on_remote(folder_remote)  # the remote's record does

    mate = clone(repo, tmp_path / "mate")
    monkeypatch.chdir(mate)
    cli("pull", "--run-cache")
    (mate / "n.txt").write_text("1\n")
    cli("run")
    assert (mate / "out.txt").read_text() == "out 1\n"
    assert log.read_text().split() == ["ran", "ran"]  # restored, not run again


# --- fsck -----------------------------------------------------------------------------------


def fsck_json(cli: Cli, *args: str, expect: int = 0) -> dict[str, Any]:
    """`repro fsck ARGS --json`."""
    doc: dict[str, Any] = json.loads(cli("fsck", *args, "--json", expect=expect).stdout)
    assert doc["version"] == 1
    return doc


def flip(path: Path) -> None:
    """Change one byte of a (read-only) object file in place."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    overwrite(path, bytes(data))


@pytest.fixture
def v1(repo: Path, cli: Cli) -> Path:
    """One committed version of the data."""
    commit_version(repo, cli, 1)
    return repo


def test_fsck_of_a_healthy_cache_passes(v1: Path, cli: Cli) -> None:
    doc = fsck_json(cli)
    assert doc["where"] == str(cache_root(v1))
    assert doc["objects"] == len(stored(v1)) == 5  # 4 files + 1 manifest
    assert (doc["corrupt"], doc["invalid"], doc["missing"], doc["repaired"]) == ([], [], [], [])
    assert ": ok" in cli("fsck").stderr
    assert cli("fsck", "-j", "1").exit_code == 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "append"])
def test_fsck_finds_a_damaged_cache_object(v1: Path, cli: Cli, damage: str) -> None:
    victim = oid(dataset(1)["model.bin"])
    path = cache_path(v1, victim)
    data = path.read_bytes()
    if damage == "flip":
        flip(path)
    else:
        overwrite(path, {"truncate": data[:10], "empty": b"", "append": data + b"\0"}[damage])

    doc = fsck_json(cli, expect=1)
    assert [c["object"] for c in doc["corrupt"]] == [victim]
    assert doc["invalid"] == [] and doc["repaired"] == []
    text = cli("fsck", expect=1)
    assert f"corrupt  {victim}" in text.stdout
    assert "damaged" in text.stderr


def test_fsck_finds_a_misnamed_object(v1: Path, cli: Cli) -> None:
    model = cache_path(v1, oid(dataset(1)["model.bin"]))
    part = oid(dataset(1)["data/part.csv"])
    overwrite(cache_path(v1, part), model.read_bytes())  # valid bytes, wrong name

    assert [c["object"] for c in fsck_json(cli, "-j", "1", expect=1)["corrupt"]] == [part]


def test_fsck_finds_an_invalid_manifest_that_hashes_to_its_name(v1: Path, cli: Cli) -> None:
    bad = b'[{"path": "../escape", "oid": "00000000000000000000000000000000", "size": 1}]'
    name = oid(bad) + ".dir"
    path = cache_path(v1, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bad)

    doc = fsck_json(cli, expect=1)
    assert doc["corrupt"] == []
    assert [i["subject"] for i in doc["invalid"]] == [name]
    repaired = fsck_json(cli, "--repair")
    assert repaired["repaired"] == [name]
    assert not path.exists()
    fsck_json(cli)


def test_fsck_lists_missing_objects_without_failing(v1: Path, cli: Cli) -> None:
    os.remove(cache_path(v1, oid(dataset(1)["model.bin"])))
    os.remove(cache_path(v1, oid(dataset(1)["data/part.csv"])))

    doc = fsck_json(cli)
    assert {m["path"] for m in doc["missing"]} == {"model.bin", "data"}
    text = cli("fsck")
    assert "missing  model.bin" in text.stdout and "missing  data" in text.stdout


@pytest.mark.parametrize(
    ("file", "content"),
    [
        ("data.repro", "version: 1\nouts:\n- path: data\n  oid: nothex\n"),
        ("model.bin.repro", "version: 99\n"),
        (
            "model.bin.repro",
            "version: 1\nouts:\n- path: ../escape\n  hash: xxh3-128\n"
            "  oid: f4d0497cf9394caab34d1a3ab2bece70\n  size: 3\n",
        ),
        ("repro.lock", "version: 1\nstages: [1, 2\n"),
    ],
)
def test_fsck_fails_on_an_invalid_pointer_or_lock_and_repair_leaves_it(
    v1: Path, cli: Cli, file: str, content: str
) -> None:
    (v1 / file).write_text(content)
    doc = fsck_json(cli, expect=1)
    assert [i["subject"] for i in doc["invalid"]] == [file]
    assert fsck_json(cli, "--repair", expect=1)["repaired"] == []
    assert (v1 / file).read_text() == content  # fsck never touches the workspace
    assert stored(v1) == version_oids(v1, "HEAD", 1)


def test_fsck_repair_then_pull_restores_the_bytes(
    repo: Path, folder_remote: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, repo, folder_remote)
    commit_version(repo, cli, 1)
    cli("push")
    manifest = pointer_at(repo, "HEAD", "data.repro")
    model, part = oid(dataset(1)["model.bin"]), oid(dataset(1)["data/part.csv"])
    for victim in (model, part, manifest):
        flip(cache_path(repo, victim))
    workspace = tree(repo)

    doc = fsck_json(cli, "--repair")  # everything damaged was dropped: exit 0
    assert {c["object"] for c in doc["corrupt"]} == {model, part, manifest}
    assert sorted(doc["repaired"]) == sorted({model, part, manifest})
    assert not ({model, part, manifest} & stored(repo))
    assert tree(repo) == workspace  # the workspace is untouched
    assert {m["path"] for m in fsck_json(cli)["missing"]} == {"model.bin", "data"}

    cli("pull")
    assert stored(repo) == version_oids(repo, "HEAD", 1)
    assert_cache_valid(repo)
    assert tree(repo) == expected_tree(1)
    doc = fsck_json(cli)
    assert (doc["corrupt"], doc["missing"]) == ([], [])


def test_fsck_repair_then_fetch_restores_a_stage_output(
    repo: Path, folder_remote: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, repo, folder_remote)
    make_tree(
        repo,
        {
            "repro.yaml": f"stages:\n  s:\n    cmd: {PY} make.py\n    outs: [out.txt]\n",
            "make.py": "open('out.txt', 'w').write('x' * 64)\n",
        },
    )
    cli("run")
    git(repo, "add", "-A")
    commit(repo, "stage")
    cli("push")
    victim = oid("x" * 64)
    flip(cache_path(repo, victim))

    assert [c["object"] for c in fsck_json(cli, expect=1)["corrupt"]] == [victim]
    cli("fsck", "--repair")
    assert [m["path"] for m in fsck_json(cli)["missing"]] == ["out.txt"]
    cli("fetch")
    assert cache_path(repo, victim).read_bytes() == b"x" * 64
    assert fsck_json(cli)["missing"] == []


def test_fsck_r_finds_and_repairs_damage_on_the_remote(
    repo: Path, remote: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, repo, remote)
    commit_version(repo, cli, 1)
    cli("push")
    manifest = pointer_at(repo, "HEAD", "data.repro")
    model = oid(dataset(1)["model.bin"])
    remote.view.write(object_key(model), b"tampered")
    good_manifest = remote.view.read(object_key(manifest))
    remote.view.write(object_key(manifest), good_manifest[:-1])
    put_stray(remote, "objects/ab/README")

    doc = fsck_json(cli, "-r", "origin", expect=1)
    assert doc["where"] == "remote origin"
    assert doc["objects"] == 5
    assert {c["object"] for c in doc["corrupt"]} == {model, manifest}
    assert doc["missing"] == []
    assert_cache_valid(repo)  # the cache is not what was checked, and is fine

    doc = fsck_json(cli, "-r", "origin", "--repair")
    assert sorted(doc["repaired"]) == sorted({model, manifest})
    assert on_remote(remote.view) == version_oids(repo, "HEAD", 1) - {model, manifest}
    assert remote.view.read("objects/ab/README") == STRAY

    cli("push")  # the cache still has good copies: they go back up
    assert on_remote(remote.view) == version_oids(repo, "HEAD", 1)
    doc = fsck_json(cli, "-r", "origin")
    assert doc["corrupt"] == [] and doc["invalid"] == []


def test_fsck_reports_invalid_pointers_also_when_checking_a_remote(
    v1: Path, folder_remote: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, v1, folder_remote)
    cli("push")
    (v1 / "model.bin.repro").write_text("not: [a pointer\n")
    doc = fsck_json(cli, "-r", "origin", expect=1)
    assert [i["subject"] for i in doc["invalid"]] == ["model.bin.repro"]


# --- known bugs -----------------------------------------------------------------------------


def test_gc_keeps_data_whose_pointers_are_stashed(history: History, cli: Cli) -> None:
    root = history.root
    make_tree(root, dataset(4))
    cli("add", "data", "model.bin")
    git(root, "stash")  # the v4 pointers are in the stash only
    cli("checkout", "--force")  # back to v3's bytes; v4 is safe in the cache, or should be
    age(root)

    cli("gc", "-f", "--grace", "0")
    git(root, "stash", "pop")
    cli("checkout")
    assert tree(root) == expected_tree(4)


def test_gc_in_a_project_sharing_the_cache_keeps_what_another_just_added(
    history: History, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared-cache"
    shutil.move(cache_root(history.root), shared)
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    for project in (history.root, other):
        (project / ".repro").mkdir(exist_ok=True)
        (project / ".repro" / "config.local.yaml").write_text(
            yaml.safe_dump({"version": 1, "cache": {"dir": str(shared)}})
        )
    monkeypatch.chdir(other)
    cli("init")
    make_tree(other, {"copy.bin": dataset(1)["model.bin"]})  # v1's model: garbage for history
    cli("add", "copy.bin")  # moments ago, in the other project

    monkeypatch.chdir(history.root)
    cli("gc", "-f", "--project", ".")  # default grace: one hour; B was not named
    monkeypatch.chdir(other)
    assert fsck_json(cli)["missing"] == []


def test_gc_leaves_a_directory_named_like_an_object(history: History, cli: Cli) -> None:
    folder = cache_root(history.root) / "objects" / "ff" / ("f" * 30)
    folder.mkdir(parents=True)
    (folder / "inside").write_bytes(STRAY)
    age(history.root)
    os.utime(folder, (0, 0))

    cli("gc", "-f", "--grace", "0")
    assert (folder / "inside").read_bytes() == STRAY
    assert stored(history.root) == history.v3


def test_fsck_reports_a_directory_named_like_an_object(v1: Path, cli: Cli) -> None:
    folder = cache_root(v1) / "objects" / "ff" / ("f" * 30)
    folder.mkdir(parents=True)
    result = cli("fsck", expect=1)
    assert "ff" + "f" * 30 in result.stdout
