"""`repro diff [A [B]]` and `repro log PATH` over the two tagged versions.

Expected object ids are computed here from the bytes (xxh3-128) or read from the pointers and
repro.lock that Git holds, never asked of repro.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.builders import git, make_tree
from tests.conftest import Cli
from tests.history.conftest import (
    EXTRA,
    PY,
    TRAIN_PY,
    V1_DATA,
    V2_DATA,
    Tagged,
    cache_file,
    lock_out_oid,
    oid,
    pointer_oid,
    refused,
)


def _diff(cli: Cli, *args: str) -> dict[str, Any]:
    result = json.loads(cli("diff", "--json", *args).stdout)
    assert isinstance(result, dict)
    return result


def _log(cli: Cli, *args: str) -> list[dict[str, Any]]:
    report = json.loads(cli("log", "--json", *args).stdout)
    assert report["version"] == 1
    versions = report["versions"]
    assert isinstance(versions, list)
    return versions


def _side(data: bytes) -> dict[str, Any]:
    return {"oid": oid(data), "size": len(data)}


def _v1_to_v2(tagged: Tagged) -> list[dict[str, Any]]:
    """The data changes from v1 to v2, as `repro diff --json` lists them."""
    model1, model2 = tagged.v1["models/model.txt"], tagged.v2["models/model.txt"]
    return [
        {
            "path": "data/a.csv",
            "kind": "modified",
            "old": _side(V1_DATA["a.csv"]),
            "new": _side(V2_DATA["a.csv"]),
        },
        {"path": "data/b.csv", "kind": "deleted", "old": _side(V1_DATA["b.csv"]), "new": None},
        {"path": "data/d.csv", "kind": "added", "old": None, "new": _side(V2_DATA["d.csv"])},
        {"path": "extra.bin", "kind": "added", "old": None, "new": _side(EXTRA)},
        {
            "path": "models/model.txt",
            "kind": "modified",
            "old": _side(model1),
            "new": _side(model2),
        },
    ]


# --- repro diff ---------------------------------------------------------------------------------


def test_diff_between_tags_lists_each_changed_file_inside_tracked_dirs(
    tagged: Tagged, cli: Cli
) -> None:
    report = _diff(cli, "v1", "v2")
    assert report == {
        "version": 1,
        "old": "v1",
        "new": "v2",
        "changes": _v1_to_v2(tagged),
        "opaque": [],
    }


def test_diff_text_shows_kind_path_and_sizes_and_a_summary(tagged: Tagged, cli: Cli) -> None:
    result = cli("diff", "v1", "v2")
    assert result.stdout.splitlines() == [
        "modified  data/a.csv  (3 B → 10 B)",
        "deleted   data/b.csv  (3 B)",
        "added     data/d.csv  (3 B)",
        f"added     extra.bin  ({len(EXTRA)} B)",
        "modified  models/model.txt  "
        f"({len(tagged.v1['models/model.txt'])} B → {len(tagged.v2['models/model.txt'])} B)",
    ]
    assert "v1 → v2: 2 added, 2 modified, 1 deleted" in result.stderr


def test_diff_the_other_way_swaps_added_and_deleted(tagged: Tagged, cli: Cli) -> None:
    swap = {"added": "deleted", "deleted": "added", "modified": "modified"}
    expected = [
        {"path": c["path"], "kind": swap[c["kind"]], "old": c["new"], "new": c["old"]}
        for c in _v1_to_v2(tagged)
    ]
    assert _diff(cli, "v2", "v1")["changes"] == expected


def test_diff_defaults_to_head_against_the_workspace_with_uncommitted_edits(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    result = cli("diff")
    assert result.stdout == ""
    assert "no data changes between HEAD and workspace" in result.stderr

    (root / "data/a.csv").write_bytes(b"edited\n")
    (root / "data/sub/c.csv").unlink()
    make_tree(root, {"data/sub/new.csv": b"new\n", "fresh.bin": b"fresh\n"})
    cli("add", "fresh.bin")  # tracked now, not yet committed
    report = _diff(cli)
    assert (report["old"], report["new"]) == ("HEAD", "workspace")
    assert report["changes"] == [
        {
            "path": "data/a.csv",
            "kind": "modified",
            "old": _side(V2_DATA["a.csv"]),
            "new": _side(b"edited\n"),
        },
        {"path": "data/sub/c.csv", "kind": "deleted", "old": _side(b"c1\n"), "new": None},
        {"path": "data/sub/new.csv", "kind": "added", "old": None, "new": _side(b"new\n")},
        {"path": "fresh.bin", "kind": "added", "old": None, "new": _side(b"fresh\n")},
    ]


def test_diff_with_one_revision_compares_it_with_the_workspace(tagged: Tagged, cli: Cli) -> None:
    report = _diff(cli, "v1")
    assert (report["old"], report["new"]) == ("v1", "workspace")
    assert report["changes"] == _v1_to_v2(tagged)  # the workspace holds v2


def test_diff_compares_a_dir_whose_manifest_is_not_cached_as_a_whole(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    manifest = pointer_oid(root, "v1", "data.repro")
    cache_file(root, manifest).unlink()

    report = _diff(cli, "v1", "v2")
    assert report["opaque"] == ["data"]
    assert [c["path"] for c in report["changes"]] == ["data", "extra.bin", "models/model.txt"]
    assert report["changes"][0] == {
        "path": "data",
        "kind": "modified",
        "old": {"oid": manifest, "size": sum(map(len, V1_DATA.values()))},
        "new": {
            "oid": pointer_oid(root, "v2", "data.repro"),
            "size": sum(map(len, V2_DATA.values())),
        },
    }
    result = cli("diff", "v1", "v2")
    assert "warning: data: compared as a whole (its manifest is not in the cache)" in result.stderr
    assert "modified  data  (9 B → 16 B)" in result.stdout.splitlines()


@pytest.mark.parametrize("args", [["nosuch"], ["v1", "nosuch"], ["nosuch", "v2"]], ids=" ".join)
def test_diff_refuses_an_unknown_revision(tagged: Tagged, cli: Cli, args: list[str]) -> None:
    refused(cli, tagged.root, "diff", *args, names=("unknown revision 'nosuch'",))


# --- repro log ----------------------------------------------------------------------------------


def test_log_of_a_tracked_dir_lists_each_version_newest_first_with_refs(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    versions = _log(cli, "data")
    assert [v["commit"] for v in versions] == [tagged.v2_sha, tagged.v1_sha]
    assert [v["refs"] for v in versions] == [["main", "v2"], ["v1"]]
    assert [v["message"] for v in versions] == [
        "v2: new data, new model",
        "v1: first data and model",
    ]
    assert [v["oid"] for v in versions] == [
        pointer_oid(root, "v2", "data.repro"),
        pointer_oid(root, "v1", "data.repro"),
    ]
    assert [(v["size"], v["nfiles"]) for v in versions] == [(16, 3), (9, 3)]
    assert all(v["lineage"] is None for v in versions)

    text = cli("log", "data").stdout
    assert f"commit {tagged.v2_sha[:12]} (main, v2)" in text
    assert f"    data: {pointer_oid(root, 'v1', 'data.repro')}  9 B, 3 files" in text


def test_log_lists_only_commits_where_the_version_changed(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    (root / "notes.txt").write_text("notes only\n")
    git(root, "commit", "-q", "-a", "-m", "notes only")
    (root / "data/d.csv").write_bytes(b"d3\n")
    cli("commit", "data")
    git(root, "commit", "-q", "-a", "-m", "v3: only d changes")
    v3 = git(root, "rev-parse", "HEAD").strip()

    assert [v["commit"] for v in _log(cli, "data")] == [v3, tagged.v2_sha, tagged.v1_sha]
    assert [v["commit"] for v in _log(cli, "data/d.csv")] == [v3, tagged.v2_sha]
    assert [v["commit"] for v in _log(cli, "data/a.csv")] == [tagged.v2_sha, tagged.v1_sha]
    assert [v["commit"] for v in _log(cli, "data/sub/c.csv")] == [tagged.v1_sha]


def test_log_of_a_file_inside_a_tracked_dir_gives_its_own_oid(tagged: Tagged, cli: Cli) -> None:
    versions = _log(cli, "data/a.csv")
    assert [(v["oid"], v["size"]) for v in versions] == [
        (oid(V2_DATA["a.csv"]), len(V2_DATA["a.csv"])),
        (oid(V1_DATA["a.csv"]), len(V1_DATA["a.csv"])),
    ]
    sub = _log(cli, "data/sub")
    assert [(v["commit"], v["size"], v["nfiles"]) for v in sub] == [(tagged.v1_sha, 3, 1)]


def test_log_of_a_deleted_file_shows_when_it_stopped_being_tracked(
    tagged: Tagged, cli: Cli
) -> None:
    versions = _log(cli, "data/b.csv")
    assert [(v["commit"], v["oid"]) for v in versions] == [
        (tagged.v2_sha, None),
        (tagged.v1_sha, oid(V1_DATA["b.csv"])),
    ]
    assert "    data/b.csv: no longer tracked" in cli("log", "data/b.csv").stdout


def test_log_of_a_stage_output_shows_its_lineage(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    versions = _log(cli, "models/model.txt")
    assert [v["oid"] for v in versions] == [
        lock_out_oid(root, "v2", "models/model.txt"),
        lock_out_oid(root, "v1", "models/model.txt"),
    ]
    assert [v["oid"] for v in versions] == [
        oid(tagged.v2["models/model.txt"]),
        oid(tagged.v1["models/model.txt"]),
    ]
    for version, rev, lr in ((versions[0], "v2", 0.2), (versions[1], "v1", 0.1)):
        assert version["lineage"] == {
            "stage": "train",
            "cmd": f"{PY} src/train.py",
            "deps": [
                {
                    "path": "data",
                    "oid": pointer_oid(root, rev, "data.repro"),
                    "size": sum(map(len, (V1_DATA if rev == "v1" else V2_DATA).values())),
                },
                {"path": "src/train.py", "oid": oid(TRAIN_PY.encode()), "size": len(TRAIN_PY)},
            ],
            "params": {"params.yaml": {"lr": lr}},
        }

    text = cli("log", "models/model.txt").stdout
    assert "    made by stage 'train': " in text
    assert f"      dep   data  {pointer_oid(root, 'v1', 'data.repro')}" in text
    assert "      param params.yaml:lr = 0.1" in text
    assert "      param params.yaml:lr = 0.2" in text


def test_log_after_a_committed_rollback_shows_the_old_version_as_the_newest(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    cli("checkout", "v1", "--", "models/model.txt")
    git(root, "commit", "-q", "-m", "roll the model back to v1")
    rollback = git(root, "rev-parse", "HEAD").strip()

    versions = _log(cli, "models/model.txt")
    assert [v["commit"] for v in versions] == [rollback, tagged.v2_sha, tagged.v1_sha]
    assert [v["refs"] for v in versions] == [["main"], ["v2"], ["v1"]]
    assert versions[0]["oid"] == versions[2]["oid"] == oid(tagged.v1["models/model.txt"])
    assert versions[0]["lineage"]["params"] == {"params.yaml": {"lr": 0.1}}


def test_log_rev_walks_the_history_of_another_revision(tagged: Tagged, cli: Cli) -> None:
    assert [v["commit"] for v in _log(cli, "data", "--rev", "v1")] == [tagged.v1_sha]
    assert [v["commit"] for v in _log(cli, "data.repro")] == [tagged.v2_sha, tagged.v1_sha]


def test_log_notes_a_version_inside_a_dir_whose_manifest_is_not_cached(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    manifest = pointer_oid(root, "v1", "data.repro")
    cache_file(root, manifest).unlink()
    versions = _log(cli, "data/a.csv")
    assert [v["oid"] for v in versions] == [oid(V2_DATA["a.csv"]), None]
    assert manifest in versions[1]["note"]
    assert "not in the cache" in versions[1]["note"]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["nosuch"], ("nosuch", "never tracked")),
        (["notes.txt"], ("notes.txt", "never tracked")),
        (["extra.bin", "--rev", "v1"], ("extra.bin", "never tracked", "v1")),
        (["data", "--rev", "nosuch"], ("unknown revision 'nosuch'",)),
    ],
    ids=" ".join,
)
def test_log_refuses_a_path_never_tracked_or_an_unknown_revision(
    tagged: Tagged, cli: Cli, args: list[str], names: tuple[str, ...]
) -> None:
    refused(cli, tagged.root, "log", *args, names=names)


def test_log_into_a_pipe_whose_reader_has_gone_stops_quietly(tagged: Tagged) -> None:
    """`repro log PATH | head -1`: when the reader has left, repro stops without an error
    line or a traceback and exits 141, as git does."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before repro writes a byte
    try:
        writer = subprocess.run(
            [sys.executable, "-m", "reprocli", "log", "data"],
            cwd=tagged.root,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert writer.stderr == ""
    assert writer.returncode == 141
