"""The remote contract, for a folder, memory:// and S3 alike (DESIGN §2 push/fetch/pull, §4).

A teammate's `git clone` + `repro pull` gets the same bytes; only missing objects travel;
`status --remote` tells what is not pushed; `fetch` fills only the cache; `--all-*` widen
the set of pushed revisions; `checkout` fetches what the cache lacks; remotes share the
cache's `objects/ab/cdef…` layout.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.builders import commit, git, make_tree
from tests.conftest import Cli
from tests.remote.conftest import (
    RemoteUnderTest,
    assert_cache_valid,
    assert_remote_valid,
    cache_keys,
    cache_oids,
    clone,
    configure,
    make_dataset,
    object_key,
    pointer_oid,
    remote_oids,
    tree_state,
)

TRACKED = ("data", "model.bin")


def summary(text: str) -> dict[str, int]:
    """The `--json` summary of a transfer."""
    doc = json.loads(text)
    assert doc["version"] == 1
    return {k: doc[k] for k in ("transferred", "already_there", "bytes")}


def test_a_fresh_clone_pulls_identical_bytes_and_exec_bits(
    tracked: Path,
    remote_url: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")
    expected = tree_state(tracked, *TRACKED)

    mate = clone(tracked, tmp_path / "mate")
    monkeypatch.chdir(mate)
    assert not (mate / "data").exists()
    cli("pull")

    assert tree_state(mate, *TRACKED) == expected
    assert expected["data/run.sh"][1] and not expected["data/a.csv"][1]
    assert cache_oids(mate) == cache_oids(tracked)
    assert_cache_valid(mate)
    cli("status", "--check")


def test_a_second_push_transfers_nothing(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    objects = len(cache_oids(tracked))  # 4 files + 1 manifest in data/, and model.bin
    assert objects == 6

    first = summary(cli("push", "--json").stdout)
    assert first["transferred"] == objects and first["already_there"] == 0
    assert first["bytes"] > 0

    second = summary(cli("push", "--json").stdout)
    assert second == {"transferred": 0, "already_there": objects, "bytes": 0}
    assert f"0 pushed, {objects} already there" in cli("push").stderr


def test_only_the_objects_the_remote_lacks_travel(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")
    before = remote_oids(remote_url.view)

    (tracked / "data/new.csv").write_text("new\n")
    cli("add", "data")
    result = summary(cli("push", "--json").stdout)
    new_manifest = pointer_oid(tracked, "data.repro")
    added = remote_oids(remote_url.view) - before
    # The new file and the new manifest travel; the 4 old files and model.bin stay put.
    assert result["transferred"] == 2
    assert result["already_there"] == 5
    assert added == {
        new_manifest,
        next(o for o in cache_oids(tracked) - before if o != new_manifest),
    }
    assert new_manifest.endswith(".dir")

    (tracked / "extra.bin").write_bytes(b"\x00extra\xff")
    cli("add", "extra.bin")
    result = summary(cli("push", "--json").stdout)
    assert result == {"transferred": 1, "already_there": 7, "bytes": 7}
    assert remote_oids(remote_url.view) - before - added == {
        pointer_oid(tracked, "extra.bin.repro")
    }


def test_status_remote_lists_what_is_not_pushed_and_check_exits_1_until_pushed(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)

    text = cli("status", "--remote").stdout
    assert "data: 5 of 5 objects not on remote origin" in text
    assert "model.bin: 1 of 1 objects not on remote origin" in text
    doc = json.loads(cli("status", "--remote", "--json", "--check", expect=1).stdout)
    assert doc["clean"] is False
    assert doc["remote"]["name"] == "origin"
    assert sorted((g["path"], g["missing"], g["total"]) for g in doc["remote"]["missing"]) == [
        ("data", 5, 5),
        ("model.bin", 1, 1),
    ]

    cli("push", "model.bin")
    text = cli("status", "--remote", "--check", expect=1).stdout
    assert "data: 5 of 5 objects not on remote origin" in text
    assert "model.bin" not in text

    cli("push")
    text = cli("status", "--remote", "-r", "origin", "--check").stdout
    assert "remote origin has everything" in text

    # An object deleted behind repro's back is noticed (nothing is trusted from memory).
    remote_url.view.delete(object_key(pointer_oid(tracked, "model.bin.repro")))
    text = cli("status", "--remote", "--check", expect=1).stdout
    assert "model.bin: 1 of 1 objects not on remote origin" in text


def test_fetch_fills_the_cache_without_touching_the_workspace(
    tracked: Path,
    remote_url: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")

    mate = clone(tracked, tmp_path / "mate")
    (mate / "model.bin").write_bytes(b"local work, not committed")
    monkeypatch.chdir(mate)
    result = summary(cli("fetch", "--json").stdout)

    assert result["transferred"] == 6
    assert cache_oids(mate) == cache_oids(tracked)
    assert_cache_valid(mate)
    assert not (mate / "data").exists()
    assert (mate / "model.bin").read_bytes() == b"local work, not committed"
    assert summary(cli("fetch", "--json").stdout)["transferred"] == 0


def test_pull_with_a_path_restores_only_that_path(
    tracked: Path,
    remote_url: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")
    expected = tree_state(tracked, *TRACKED)

    mate = clone(tracked, tmp_path / "mate")
    monkeypatch.chdir(mate)
    cli("pull", "model.bin")
    assert tree_state(mate, "model.bin") == {"model.bin": expected["model.bin"]}
    assert not (mate / "data").exists()
    assert cache_oids(mate) == {pointer_oid(mate, "model.bin.repro")}

    doc = json.loads(cli("pull", "data", "--json").stdout)
    assert (doc["transferred"], doc["already_there"]) == (5, 0)  # 4 files and the manifest
    assert tree_state(mate, *TRACKED) == expected


@pytest.mark.parametrize(
    ("kind", "flag"),
    [
        ("local", "--all-tags"),
        ("memory", "--all-tags"),
        ("s3", "--all-tags"),
        ("local", "--all-branches"),
        ("local", "--all-commits"),
    ],  # which revisions are covered does not depend on the kind of remote
)
def test_all_revision_flags_also_push_the_objects_of_older_revisions(
    repo: Path,
    kind: str,
    flag: str,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    remote_url: RemoteUnderTest = request.getfixturevalue(f"{kind}_remote")
    configure(cli, repo, remote_url)
    make_dataset(repo, "1")
    cli("add", *TRACKED)
    v1 = commit(repo, "data v1")
    if flag == "--all-tags":
        git(repo, "tag", "v1")
    elif flag == "--all-branches":
        git(repo, "branch", "old")
    v1_state = tree_state(repo, *TRACKED)
    v1_objects = cache_oids(repo)

    make_dataset(repo, "2")
    cli("add", *TRACKED)
    commit(repo, "data v2")
    v2_objects = cache_oids(repo) - v1_objects
    assert len(v2_objects) == 6  # every file changed, so v1's objects are v1's alone

    cli("push")
    assert remote_oids(remote_url.view) == v2_objects

    result = summary(cli("push", flag, "--json").stdout)
    assert result["transferred"] == len(v1_objects) == 6
    assert result["already_there"] == 6
    assert remote_oids(remote_url.view) == v1_objects | v2_objects
    assert_remote_valid(remote_url.view)

    mate = clone(repo, tmp_path / "mate")
    git(mate, "checkout", "-q", v1)
    monkeypatch.chdir(mate)
    cli("pull")
    assert tree_state(mate, *TRACKED) == v1_state


def test_checkout_fetches_missing_objects_from_the_default_remote(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")
    expected = tree_state(tracked, *TRACKED)

    shutil.rmtree(tracked / ".repro" / "cache")
    shutil.rmtree(tracked / "data")
    (tracked / "model.bin").unlink()
    cli("checkout")

    assert tree_state(tracked, *TRACKED) == expected
    assert len(cache_oids(tracked)) == 6
    assert_cache_valid(tracked)
    cli("status", "--check")


def test_a_remote_has_the_same_objects_layout_as_the_cache(
    tracked: Path, remote_url: RemoteUnderTest, cli: Cli
) -> None:
    configure(cli, tracked, remote_url)
    cli("push")

    keys = remote_url.view.files()
    assert keys == cache_keys(tracked)
    for key in keys:
        assert re.fullmatch(r"objects/[0-9a-f]{2}/[0-9a-f]{30}(\.dir)?", key), key
    assert object_key(pointer_oid(tracked, "data.repro")) in keys
    assert_remote_valid(remote_url.view)


def test_push_from_a_clone_that_has_not_pulled_everything_succeeds_when_the_remote_has_it(
    tracked: Path,
    remote_url: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A teammate pulls only the model, then pushes (e.g. from the pre-push hook, DESIGN §1):
    # objects absent from the local cache are fine when the remote already has them.
    configure(cli, tracked, remote_url)
    cli("push")
    on_remote = remote_url.view.files()

    mate = clone(tracked, tmp_path / "mate")
    monkeypatch.chdir(mate)
    cli("pull", "model.bin")
    doc = json.loads(cli("push", "--json").stdout)
    assert doc["transferred"] == 0
    assert remote_url.view.files() == on_remote
    cli("status", "--remote", "--check")


def test_empty_files_and_unusual_names_round_trip(
    repo: Path,
    remote_url: RemoteUnderTest,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(cli, repo, remote_url)
    make_tree(
        repo,
        {
            "data/empty.txt": b"",
            "data/with space & #hash%20?.csv": "x\n",
            "data/ünïcødé/naïve.txt": "é\n",
            "data/deep/er/still/leaf.bin": bytes(range(256)) * 3,
            "lonely-empty": b"",
        },
    )
    cli("add", "data", "lonely-empty")
    commit(repo, "odd data")
    cli("push")
    expected = tree_state(repo, "data", "lonely-empty")

    mate = clone(repo, tmp_path / "mate")
    monkeypatch.chdir(mate)
    cli("pull")
    assert tree_state(mate, "data", "lonely-empty") == expected
    assert_cache_valid(mate)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_pushing_hundreds_of_objects_lists_the_remote_and_still_moves_only_what_is_missing(
    tracked: Path, kind: str, cli: Cli, request: pytest.FixtureRequest
) -> None:
    # Above 256 objects, repro lists the fan-out folders instead of asking per object.
    # (Not on S3: moto serves ~100 requests/s.)
    remote: RemoteUnderTest = request.getfixturevalue(f"{kind}_remote")
    configure(cli, tracked, remote)
    make_tree(tracked, {f"many/f{i:03}": f"{i}\n" for i in range(300)})
    cli("add", "many")
    first = summary(cli("push", "--json").stdout)
    assert first["transferred"] == 6 + 301

    lost = sorted(remote_oids(remote.view))[:3]
    for oid in lost:
        remote.view.delete(object_key(oid))
    assert summary(cli("push", "--json").stdout)["transferred"] == 3
    assert remote.view.files() == cache_keys(tracked)
    text = cli("status", "--remote", "--check").stdout
    assert "has everything" in text
