"""Integrity of the cache and safety of the workspace (RELIABILITY groups E and F).

Already covered elsewhere, and not repeated here:
- E1 one flipped or truncated object never materialised by a copy checkout, and one damaged
  hardlinked object never reported up to date (tests/functional/test_invariants.py); fsck
  finds one flipped, truncated, emptied or extended object (tests/history/test_gc_fsck.py);
- E2 fsck finds one misnamed file object (test_gc_fsck.py);
- E3 a malformed pointer (status, checkout, commit) and a malformed config are exit 2
  naming the file (tests/e2e/test_errors.py); gc aborts on an unreadable pointer in the
  workspace or in a tag it keeps (test_gc_fsck.py);
- E4 a same-size edit with the old mtime put back, and edits in the racy window, of a
  tracked file (test_invariants.py); E5 status after a deleted object (test_invariants.py);
- F1 checkout (also of a revision) keeps unsaved edits (test_invariants.py,
  tests/history/test_checkout_rev.py); F2 untracked files in tracked folders
  (test_invariants.py); F3 a pull with a corrupt or missing remote object changes nothing
  (tests/remote/test_faults.py); F5 a workspace file hardlinked outside (test_invariants.py);
  F6 temp files after kill -9 at sampled events of checkout (tests/functional/test_crash.py).

Here: E1 many random corruptions at once in copy, hardlink and symlink mode; E2 swapped
objects and a manifest under another manifest's name; E3 gc refuses on every kind of
malformed pointer, lock, config or manifest; E4 same-size edits in tracked folders and
replaced inodes; E5 push after a deleted object; F3 a pull over an older workspace with
an object missing on the remote; F4 in-place edits of linked checkouts; F6 random-time
kills during a copy checkout of a large file. Main tests print `FIGURE Ex/Fx: …` lines.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import xxhash

from tests.builders import commit, git, make_tree, read_tree
from tests.conftest import Cli
from tests.functional.test_crash import (
    TEMP_PREFIX,
    cache_objects,
    check_cache,
    file_oid,
    leftover_temps,
    repro_env,
    set_link_type,
)
from tests.reliability.test_remote_faults import (
    as_plain_user,
    cache_problems,
    invoke,
    one_error_line,
)
from tests.remote import conftest as remotes
from tests.remote.conftest import (
    RemoteUnderTest,
    cache_oids,
    cache_path,
    clone,
    configure,
    manifest_children,
    object_key,
    pointer_oid,
)

local_remote = remotes.local_remote

DAMAGES = ("flip", "truncate", "empty", "append")


# --- helpers --------------------------------------------------------------------------------


def damage(path: Path, how: str, rng: random.Random) -> None:
    """Corrupt a (read-only) cache object in place, keeping its name and its mtime."""
    st = path.stat()
    data = path.read_bytes()
    if how == "flip" and data:
        at = rng.randrange(len(data))
        data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
    elif how == "truncate" and len(data) > 1:
        data = data[: rng.randrange(1, len(data))]
    elif how == "empty" and data:
        data = b""
    else:
        data += b"\n"
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:  # in place: a hardlinked workspace file changes too
        handle.truncate(0)
        handle.write(data)
    os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def random_tree(rng: random.Random, count: int) -> dict[str, bytes]:
    """`count` files of random bytes (1 byte..256 KB, log-uniform) in data/, and model.bin."""
    files = {
        f"data/{'sub/' if i % 3 == 0 else ''}f{i:03}.bin": rng.randbytes(
            int(math.exp(rng.uniform(0, math.log(256 << 10))))
        )
        for i in range(count)
    }
    files["model.bin"] = rng.randbytes(300_000)
    return files


def workspace(root: Path) -> dict[str, bytes]:
    """data/ and model.bin as {repository path: bytes} (links followed)."""
    found = (
        {f"data/{k}": v for k, v in read_tree(root / "data").items()}
        if (root / "data").is_dir()
        else {}
    )
    if (root / "model.bin").exists():
        found["model.bin"] = (root / "model.bin").read_bytes()
    return found


def fsck(cli: Cli, *args: str, expect: int = 0) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli("fsck", *args, "--json", expect=expect).stdout)
    return doc


def flagged(doc: dict[str, Any]) -> set[str]:
    """Every object an fsck report calls corrupt or invalid."""
    return {p["object"] for p in doc["corrupt"]} | {p["subject"] for p in doc["invalid"]}


def tracked_tree(repo: Path, cli: Cli, seed: int, count: int = 40) -> dict[str, bytes]:
    """Random data/ and model.bin, added and committed; return their bytes."""
    files = random_tree(random.Random(seed), count)
    make_tree(repo, files)
    cli("add", "data", "model.bin")
    commit(repo, "data")
    return files


def file_objects(repo: Path) -> dict[str, str]:
    """{repository path: object id} of every tracked file (data/'s files and model.bin)."""
    found = {
        f"data/{path}": oid
        for path, oid in manifest_children(repo, pointer_oid(repo, "data.repro")).items()
    }
    found["model.bin"] = pointer_oid(repo, "model.bin.repro")
    return found


# --- E1: random corruptions in the cache ----------------------------------------------------


def test_every_injected_corruption_is_found_and_none_is_materialised_in_copy_mode(
    repo: Path, cli: Cli
) -> None:
    rng = random.Random(51)
    set_link_type(repo, "copy")
    files = tracked_tree(repo, cli, 51)
    objects = file_objects(repo)
    unique = sorted(set(objects.values()))
    victims = rng.sample(unique, 16)
    hows: dict[str, str] = {}
    for index, oid in enumerate(victims):
        hows[oid] = DAMAGES[index % len(DAMAGES)]
        damage(cache_path(repo, oid), hows[oid], rng)
        if file_oid(cache_path(repo, oid)) == oid:  # an empty object emptied: no damage
            del hows[oid]
    assert len(hows) >= 15

    found = flagged(fsck(cli, expect=1))
    assert found == set(hows), found ^ set(hows)

    shutil.rmtree(repo / "data")
    (repo / "model.bin").unlink()
    result = cli("checkout", expect=2)
    line = one_error_line(result, "corrupt")
    assert any(oid in line for oid in hows), line
    assert "fsck" in result.stderr or "pull" in result.stderr, result.stderr
    materialised = workspace(repo)
    wrong = [path for path, data in materialised.items() if data != files[path]]
    assert wrong == [], f"materialised with wrong bytes: {wrong}"
    bad_paths = {path for path, oid in objects.items() if oid in hows}
    assert not (bad_paths & set(materialised))
    assert leftover_temps(repo, repo / ".repro" / "cache") == []
    assert "up to date" not in cli("status").stdout
    cli("status", "--check", expect=1)
    print(
        f"FIGURE E1 (copy): {len(hows)} injected corruptions ({len(victims)} of {len(unique)} "
        f"file objects flipped, truncated, emptied or extended): {len(found)} found by fsck "
        f"(100%), 0 false alarms; copy checkout materialised {len(materialised)} intact "
        f"files and 0 with wrong bytes; status never up to date"
    )


@pytest.mark.parametrize("link_type", ["hardlink", "symlink"])
def test_status_never_calls_damaged_linked_bytes_up_to_date_and_fsck_finds_them(
    repo: Path, cli: Cli, link_type: str
) -> None:
    rng = random.Random(52)
    set_link_type(repo, link_type)
    tracked_tree(repo, cli, 52, count=24)
    shutil.rmtree(repo / "data")
    (repo / "model.bin").unlink()
    cli("checkout")
    time.sleep(0.05)  # out of the racy window: status may now trust and record stats
    cli("status", "--check")
    objects = file_objects(repo)
    rounds = []
    for victim_path in rng.sample(sorted(objects), 8):
        oid = objects[victim_path]
        path = cache_path(repo, oid)
        how = DAMAGES[len(rounds) % len(DAMAGES)]
        before = path.read_bytes()
        damage(path, how, rng)
        if path.read_bytes() == before:
            continue
        report = json.loads(cli("status", "--json").stdout)
        states = {d["path"]: d["state"] for d in report["data"]}
        top = "model.bin" if victim_path == "model.bin" else "data"
        assert states[top] != "up_to_date", (victim_path, how, states)
        assert oid in flagged(fsck(cli, expect=1))
        cli("status", "--check", expect=1)
        rounds.append(how)
        # put the object back (the test's own bytes), then the workspace is fine again
        os.chmod(path, 0o644)
        path.write_bytes(before)
        os.chmod(path, 0o444)
    assert len(rounds) >= 6
    print(
        f"FIGURE E1 ({link_type}): {len(rounds)} corruptions of linked objects "
        f"({', '.join(sorted(set(rounds)))}): status never up to date, fsck found 100%"
    )


# --- E2: misnamed objects ---------------------------------------------------------------------


def test_swapped_objects_are_found_refused_by_checkout_and_never_pushed(
    repo: Path, cli: Cli, local_remote: RemoteUnderTest
) -> None:
    set_link_type(repo, "copy")
    configure(cli, repo, local_remote)
    make_tree(
        repo,
        {
            "one/a.csv": "a\n",
            "one/b.csv": "b, a longer file\n",
            "two/c.csv": "c\n",
            "two/d.csv": "d\n",
            "two/e.csv": "e\n",
        },
    )
    cli("add", "one", "two")
    commit(repo, "data")
    one, two = pointer_oid(repo, "one.repro"), pointer_oid(repo, "two.repro")
    a, b = manifest_children(repo, one)["a.csv"], manifest_children(repo, one)["b.csv"]
    # Valid content under another object's name: two files swapped; two's manifest replaced
    # by one's (a valid manifest, whose files are all in the cache).
    swaps = {a: cache_path(repo, b).read_bytes(), b: cache_path(repo, a).read_bytes()}
    swaps[two] = cache_path(repo, one).read_bytes()
    for oid, data in swaps.items():
        path = cache_path(repo, oid)
        os.chmod(path, 0o644)
        path.write_bytes(data)
        os.chmod(path, 0o444)

    assert flagged(fsck(cli, expect=1)) == set(swaps)
    shutil.rmtree(repo / "one")
    shutil.rmtree(repo / "two")
    result = cli("checkout", expect=2)
    one_error_line(result, "corrupt")
    assert not (repo / "two").exists(), "two/ was checked out from one's manifest"
    assert not (repo / "one" / "a.csv").exists() and not (repo / "one" / "b.csv").exists()

    result = cli("push", expect=2)
    one_error_line(result, "corrupt")
    on_remote = remotes.remote_oids(local_remote.view)
    assert not (on_remote & set(swaps)), "a misnamed object was uploaded"
    remotes.assert_remote_valid(local_remote.view)


# --- E3: malformed files make gc refuse -----------------------------------------------------


MALFORMED: dict[str, tuple[str, str]] = {
    # name: (file, new content; {oid} is model.bin's object id)
    "pointer truncated": (
        "model.bin.repro",
        "version: 1\nouts:\n- path: model.bin\n  oid: {oid}\n  si",
    ),
    "pointer cut mid-line": ("data.repro", "version: 1\nouts:\n- path: da"),
    "pointer size not a number": (
        "model.bin.repro",
        "version: 1\nouts:\n- path: model.bin\n  hash: xxh3-128\n  oid: {oid}\n  size: big\n",
    ),
    "pointer outs a mapping": ("model.bin.repro", "version: 1\nouts: {{path: model.bin}}\n"),
    "pointer oid a list": (
        "model.bin.repro",
        "version: 1\nouts:\n- path: model.bin\n  hash: xxh3-128\n  oid: [{oid}]\n  size: 1\n",
    ),
    "pointer unknown version": (
        "model.bin.repro",
        "version: 7\nouts:\n- path: model.bin\n  hash: xxh3-128\n  oid: {oid}\n  size: 1\n",
    ),
    "pointer empty": ("model.bin.repro", ""),
    "pointer binary": ("model.bin.repro", "\x00\x01\x02 not yaml"),
    "lock syntax": ("repro.lock", "version: 1\nstages:\n  train: [cmd\n"),
    "lock wrong types": ("repro.lock", "version: 1\nstages:\n  train:\n    cmd: 3\n    outs: x\n"),
    "lock unknown version": ("repro.lock", "version: 9\nstages: {{}}\n"),
    "config syntax": (".repro/config.yaml", "version: 1\ncore: [remote\n"),
    "config wrong types": (".repro/config.yaml", "version: 1\ncore: 5\n"),
    "config unknown version": (".repro/config.yaml", "version: 42\n"),
    "local config wrong types": (".repro/config.local.yaml", "version: 1\ncache: [1, 2]\n"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_gc_refuses_while_any_file_it_reads_is_malformed_and_deletes_nothing(
    repo: Path, cli: Cli, case: str
) -> None:
    make_tree(repo, {"data/a.csv": "a\n", "data/b.csv": "b\n", "model.bin": b"model v1"})
    cli("add", "data", "model.bin")
    commit(repo, "v1")
    make_tree(repo, {"data/a.csv": "a2\n", "model.bin": b"model v2"})
    cli("add", "data", "model.bin")
    commit(repo, "v2")  # v1's objects are garbage now
    then = time.time() - 7200
    for path in cache_objects(repo / ".repro" / "cache").values():
        os.utime(path, (then, then))
    before = cache_oids(repo)
    file, content = MALFORMED[case]
    (repo / file).write_text(content.format(oid=pointer_oid(repo, "model.bin.repro")))

    result = invoke("gc", "-f", "--grace", "0")
    assert result.exit_code == 2, result
    line = one_error_line(result, file)
    if "syntax" in case or case == "pointer truncated":  # the parser knows where it stopped
        assert re.search(re.escape(file) + r":\d+: ", line), line
    assert cache_oids(repo) == before, f"gc deleted objects despite {file}"


def test_gc_refuses_a_pointer_naming_a_manifest_that_hashes_right_but_does_not_parse(
    repo: Path, cli: Cli
) -> None:
    make_tree(repo, {"data/a.csv": "a\n", "data/b.csv": "b\n"})
    cli("add", "data")
    commit(repo, "data")
    children = set(manifest_children(repo, pointer_oid(repo, "data.repro")).values())
    # Entries unsorted: well named (it hashes to its name) but not a valid manifest.
    entries = sorted(
        json.loads(cache_path(repo, pointer_oid(repo, "data.repro")).read_bytes()),
        key=lambda e: e["path"],
        reverse=True,
    )
    bad = json.dumps(entries, separators=(",", ":")).encode()
    bad_oid = xxhash.xxh3_128_hexdigest(bad) + ".dir"
    path = cache_path(repo, bad_oid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bad)
    os.chmod(path, 0o444)
    pointer = repo / "data.repro"
    pointer.write_text(pointer.read_text().replace(pointer_oid(repo, "data.repro"), bad_oid))
    then = time.time() - 7200
    for obj in cache_objects(repo / ".repro" / "cache").values():
        os.utime(obj, (then, then))

    result = invoke("gc", "-f", "--grace", "0")
    assert result.exit_code == 2, result
    line = one_error_line(result, "data.repro")
    assert "manifest" in line, line
    assert children <= cache_oids(repo), "gc deleted the files of a manifest it could not read"


# --- E4: the racy stat cache ------------------------------------------------------------------


def same_size_edit(path: Path, how: str) -> None:
    """Change a file's bytes, keeping its size and putting its mtime back."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0x20
    if how == "in place":
        with open(path, "r+b") as handle:
            handle.write(bytes(data[:1]))
    else:  # as editors save: a new file renamed over the old one (a new inode)
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(bytes(data))
        os.replace(tmp, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("how", ["in place", "new inode"])
@pytest.mark.parametrize("where", ["file in a tracked dir", "tracked file"])
def test_a_same_size_edit_with_the_old_mtime_is_detected(
    repo: Path, cli: Cli, how: str, where: str
) -> None:
    make_tree(repo, {"data/a.csv": "a,1\n", "data/b.csv": "b,2\n", "model.bin": b"model"})
    time.sleep(0.05)  # out of the racy window: the stat cache records these
    cli("add", "data", "model.bin")
    cli("status", "--check")
    cli("status", "--check")
    target = repo / ("data/a.csv" if where.startswith("file in") else "model.bin")
    same_size_edit(target, how)
    top = "data" if where.startswith("file in") else "model.bin"
    result = cli("status", expect=0)
    assert f"{top}: modified" in result.stdout, result.stdout
    cli("status", "--check", expect=1)


def test_edits_within_the_same_timestamp_tick_in_a_tracked_dir_are_detected(
    repo: Path, cli: Cli
) -> None:
    path = repo / "data" / "a.csv"
    make_tree(repo, {"data/a.csv": "0000\n", "data/b.csv": "b\n"})
    cli("add", "data")
    missed = 0
    for round_ in range(10):
        path.write_bytes(f"{round_:04d}\n".encode())
        cli("commit", "data")
        cli("status", "--check")  # what status records now is within the racy window
        with open(path, "r+b") as handle:
            handle.write(b"X")
        missed += "data: modified" not in cli("status").stdout
    assert missed == 0


# --- E5: the stat cache names an object no longer in the cache --------------------------------


def test_push_notices_an_object_deleted_from_the_cache_after_status_recorded_it(
    repo: Path, cli: Cli, local_remote: RemoteUnderTest
) -> None:
    configure(cli, repo, local_remote)
    make_tree(repo, {"data/a.csv": "a\n", "data/b.csv": "b\n", "model.bin": b"model"})
    time.sleep(0.05)
    cli("add", "data", "model.bin")
    commit(repo, "data")
    cli("status", "--check")
    lost = manifest_children(repo, pointer_oid(repo, "data.repro"))["a.csv"]
    cache_path(repo, lost).unlink()

    result = cli("push", expect=2)
    one_error_line(result, lost)
    on_remote = remotes.remote_oids(local_remote.view)
    assert pointer_oid(repo, "data.repro") not in on_remote
    assert lost not in on_remote
    cli("status", "--check", expect=1)
    cli("commit")  # the workspace still has the bytes: they go back into the cache
    cli("push")
    assert remotes.remote_oids(local_remote.view) == cache_oids(repo)


# --- F3: a pull that cannot get everything changes nothing ------------------------------------


def data_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """{path: (bytes, inode)} of the workspace's files outside .git/ and .repro/, pointers
    aside (Git changes those): replaced files show as a new inode, even with equal bytes."""
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in (".git", ".repro") or path.suffix == ".repro" or not path.is_file():
            continue
        found[rel.as_posix()] = (path.read_bytes(), path.stat().st_ino)
    return found


def test_a_pull_with_an_object_missing_on_the_remote_leaves_an_older_workspace_as_it_was(
    repo: Path,
    cli: Cli,
    local_remote: RemoteUnderTest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(cli, repo, local_remote)
    make_tree(repo, {"data/a.csv": "a1\n", "data/b.csv": "b1\n", "model.bin": b"m1"})
    cli("add", "data", "model.bin")
    commit(repo, "v1")
    cli("push")
    mate = clone(repo, tmp_path / "mate")
    monkeypatch.chdir(mate)
    cli("pull")
    make_tree(repo, {"data/a.csv": "a2\n", "data/c.csv": "c2\n", "model.bin": b"m2"})
    (repo / "data/b.csv").unlink()
    monkeypatch.chdir(repo)
    cli("add", "data", "model.bin")
    commit(repo, "v2")
    cli("push")
    lost = manifest_children(repo, pointer_oid(repo, "data.repro"))["c.csv"]
    local_remote.view.delete(object_key(lost))

    monkeypatch.chdir(mate)
    git(mate, "pull", "-q", "--ff-only")
    before = data_files(mate)
    result = cli("pull", expect=2)
    one_error_line(result, lost)
    after = data_files(mate)
    assert after == before, "a pull that could not fetch everything changed the workspace"
    assert not cache_problems(mate)


# --- F4: in-place edits of linked checkouts ---------------------------------------------------


def append_as_plain_user(path: Path) -> subprocess.CompletedProcess[str]:
    """`echo edit >> path` by a process that file modes apply to (not root's override)."""
    return subprocess.run(
        as_plain_user(["sh", "-c", 'echo "in-place edit" >> "$1"', "sh", str(path)]),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("link_type", ["hardlink", "symlink"])
def test_an_in_place_edit_of_a_linked_checkout_cannot_change_the_cache(
    repo: Path, cli: Cli, link_type: str
) -> None:
    set_link_type(repo, link_type)
    make_tree(repo, {"data/a.csv": "a\n", "data/b.csv": "b\n", "model.bin": b"model"})
    cli("add", "data", "model.bin")
    commit(repo, "data")
    shutil.rmtree(repo / "data")
    (repo / "model.bin").unlink()
    cli("checkout")
    objects = {oid: p.read_bytes() for oid, p in cache_objects(repo / ".repro" / "cache").items()}

    for target in (repo / "data/a.csv", repo / "model.bin"):
        edit = append_as_plain_user(target)
        assert edit.returncode != 0, f"{target.name}: an in-place edit went through"
        assert "ermission denied" in edit.stderr
    assert {
        oid: p.read_bytes() for oid, p in cache_objects(repo / ".repro" / "cache").items()
    } == objects

    # What editors do (write a new file, rename it over) breaks the link instead.
    for target in (repo / "data/a.csv", repo / "model.bin"):
        new = target.with_name(target.name + ".new")
        new.write_bytes(target.read_bytes() + b"edited\n")
        os.replace(new, target)
    result = cli("status")
    assert "data: modified" in result.stdout and "model.bin: modified" in result.stdout
    cli("commit")
    assert not check_cache(repo / ".repro" / "cache")
    for oid, data in objects.items():
        assert cache_path(repo, oid).read_bytes() == data
    assert (repo / "model.bin").read_bytes() == b"modeledited\n"


def test_an_in_place_edit_of_a_pulled_hardlinked_file_cannot_change_the_cache(
    repo: Path,
    cli: Cli,
    local_remote: RemoteUnderTest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(cli, repo, local_remote)
    make_tree(repo, {"model.bin": b"model"})
    cli("add", "model.bin")
    commit(repo, "model")
    cli("push")
    mate = clone(repo, tmp_path / "mate")
    monkeypatch.chdir(mate)
    set_link_type(mate, "hardlink")
    cli("pull")
    oid = pointer_oid(mate, "model.bin.repro")
    edit = append_as_plain_user(mate / "model.bin")
    assert edit.returncode != 0 or cache_path(mate, oid).read_bytes() == b"model"
    assert file_oid(cache_path(mate, oid)) == oid


# --- F6: temp files after random kills during a large copy checkout ---------------------------


def test_random_kills_during_a_large_copy_checkout_leave_no_stray_temp_files(
    repo: Path, cli: Cli
) -> None:
    rng = random.Random(66)
    set_link_type(repo, "copy")
    big = rng.randbytes(48 << 20)
    make_tree(repo, {"models/big.bin": big, "models/small.txt": "small\n"})
    cli("add", "models")
    commit(repo, "big")

    def checkout() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "reprocli", "checkout"],
            cwd=repo,
            env=repro_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def temps() -> dict[str, int]:
        """Temp files of checkouts, anywhere they may be: {path: size}."""
        found = {}
        for folder in (repo / ".repro" / "tmp", repo / "models"):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    if entry.name.startswith(TEMP_PREFIX):
                        with contextlib.suppress(FileNotFoundError):
                            found[entry.path] = entry.stat().st_size
        return found

    kills = stray = partial = kept_by_status = 0
    biggest = 0
    for _ in range(8):
        shutil.rmtree(repo / "models", ignore_errors=True)
        old = set(temps())
        with checkout() as proc:
            while proc.poll() is None and not set(temps()) - old:
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.015))  # somewhere inside the copy
            proc.send_signal(signal.SIGKILL)
            kills += proc.wait(30) == -signal.SIGKILL
        left = temps()
        biggest = max([biggest, *left.values()])
        assert all(Path(p).parent == repo / ".repro" / "tmp" for p in left), left
        target = repo / "models" / "big.bin"
        partial += target.exists() and target.read_bytes() != big  # never under its name
        looked = invoke("status")  # a read-only command: it may leave the temps alone
        assert looked.exit_code == 0, looked
        kept_by_status += bool(left) and set(temps()) == set(left)
        untracked = git(repo, "status", "--porcelain", "--untracked-files=all")
        assert ".repro-tmp" not in untracked, untracked
        rerun = invoke("checkout")  # the interrupted command again: it cleans up
        assert rerun.exit_code == 0, rerun
        assert (repo / "models" / "big.bin").read_bytes() == big
        stray += len(leftover_temps(repo, repo / ".repro" / "cache"))
    assert (partial, stray) == (0, 0)
    assert kills >= 4
    print(
        f"FIGURE F6: {kills} kill -9 at random points of a copy checkout of a 48 MiB file: "
        f"0 partial files under their final name; partial temps (up to {biggest >> 20} MiB) "
        f"only in .repro/tmp and ignored by git; 0 left after the rerun ({kept_by_status} "
        f"were still there after a `status` in between)"
    )
