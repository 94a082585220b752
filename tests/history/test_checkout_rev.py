"""`repro checkout REV` (move Git and data) and `repro checkout REV -- PATH` (roll paths back).

What a test observes is read without repro: bytes on disk, `git rev-parse HEAD`, the branch,
`git diff --cached`, repro.lock parsed as plain YAML, and the objects in the cache folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.builders import git, make_tree, read_tree
from tests.conftest import Cli
from tests.history.conftest import (
    EXTRA,
    V1_DATA,
    V2_DATA,
    Tagged,
    branch,
    cache_file,
    head,
    lock_out_oid,
    oid,
    pointer_oid,
    refused,
    show,
    staged,
    stale_stages,
    workspace_files,
)


def _without(files: dict[str, bytes], *prefixes: str) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not k.startswith(prefixes)}


def _lock_stage(root: Path, rev: str | None = None) -> dict[str, object]:
    """Stage `train` of repro.lock, in the workspace or at `rev`, parsed as plain YAML."""
    data = (root / "repro.lock").read_bytes() if rev is None else show(root, rev, "repro.lock")
    return dict(yaml.safe_load(data)["stages"]["train"])


def _add_remote(cli: Cli, root: Path, storage: Path) -> None:
    """A default directory remote, committed (the config is tracked), holding every tag's data."""
    cli("remote", "add", "-d", "storage", str(storage))
    git(root, "commit", "-q", "-a", "-m", "add a remote")
    cli("push", "--all-tags")


def _v1_only_objects(root: Path) -> list[str]:
    """The objects v1 needs that v2 does not: its data manifest, a and b, and its model."""
    return [
        pointer_oid(root, "v1", "data.repro"),
        oid(V1_DATA["a.csv"]),
        oid(V1_DATA["b.csv"]),
        lock_out_oid(root, "v1", "models/model.txt"),
    ]


# --- repro checkout REV -----------------------------------------------------------------------


def test_checkout_of_a_tag_then_back_to_the_branch_round_trips_every_byte(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    result = cli("checkout", "v1")
    assert head(root) == tagged.v1_sha
    assert branch(root) is None  # a tag detaches HEAD, as `git checkout v1` does
    assert workspace_files(root) == tagged.v1
    assert git(root, "status", "--porcelain") == ""
    assert "HEAD is now at v1" in result.stderr
    cli("status", "--check")  # data and pipeline match v1's pointers and lock

    cli("checkout", "main")
    assert head(root) == tagged.v2_sha
    assert branch(root) == "main"  # a branch stays a branch
    assert workspace_files(root) == tagged.v2
    assert git(root, "status", "--porcelain") == ""
    cli("status", "--check")


def test_checkout_rev_removes_data_not_tracked_there_but_keeps_its_bytes_in_the_cache(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    result = cli("checkout", "v1", "--json")
    report = json.loads(result.stdout)
    assert (report["revision"], report["commit"]) == ("v1", tagged.v1_sha)
    assert report["removed"] == ["extra.bin"]
    assert not (root / "extra.bin").exists()
    assert git(root, "status", "--porcelain", "--ignored", "--", "extra.bin") == ""
    assert git(root, "status", "--porcelain") == ""
    assert cache_file(root, oid(EXTRA)).read_bytes() == EXTRA

    cli("checkout", "v2")
    assert (root / "extra.bin").read_bytes() == EXTRA


def test_checkout_rev_refuses_to_remove_data_with_uncommitted_edits(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    (root / "extra.bin").write_bytes(b"edited, not committed\n")
    line = refused(cli, root, "checkout", "v1", names=("extra.bin", "uncommitted"))
    assert "would overwrite" in line
    assert head(root) == tagged.v2_sha

    cli("checkout", "v1", "--force")
    assert head(root) == tagged.v1_sha
    assert workspace_files(root) == tagged.v1


@pytest.mark.parametrize("how", ["modified", "staged"])
def test_checkout_rev_refuses_when_git_has_uncommitted_changes(
    tagged: Tagged, cli: Cli, how: str
) -> None:
    root = tagged.root
    (root / "notes.txt").write_text("my notes\n")
    if how == "staged":
        git(root, "add", "notes.txt")
    line = refused(cli, root, "checkout", "v1", names=("notes.txt", "uncommitted"))
    assert "1 file" in line
    assert head(root) == tagged.v2_sha
    assert (root / "notes.txt").read_text() == "my notes\n"


@pytest.mark.parametrize("path", ["data/a.csv", "models/model.txt"])
def test_checkout_rev_never_overwrites_uncommitted_data_edits(
    tagged: Tagged, cli: Cli, path: str
) -> None:
    root = tagged.root
    (root / path).write_text("unsaved work\n")
    line = refused(cli, root, "checkout", "v1", names=(path,))
    assert "uncommitted change" in line
    assert head(root) == tagged.v2_sha
    assert (root / path).read_text() == "unsaved work\n"


def test_checkout_rev_force_overwrites_uncommitted_data_edits(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    (root / "data/a.csv").write_text("unsaved work\n")
    cli("checkout", "--force", "v1")
    assert head(root) == tagged.v1_sha
    assert workspace_files(root) == tagged.v1


def test_checkout_rev_fetches_missing_objects_from_the_default_remote(
    tagged: Tagged, cli: Cli, tmp_path: Path
) -> None:
    root = tagged.root
    _add_remote(cli, root, tmp_path / "storage")
    missing = _v1_only_objects(root)
    for object_id in missing:
        cache_file(root, object_id).unlink()

    cli("checkout", "v1")
    assert head(root) == tagged.v1_sha
    assert workspace_files(root) == tagged.v1
    assert all(cache_file(root, o).is_file() for o in missing)
    assert cache_file(root, oid(V1_DATA["a.csv"])).read_bytes() == V1_DATA["a.csv"]


def test_checkout_rev_without_the_objects_and_no_remote_changes_nothing(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    cache_file(root, oid(V1_DATA["b.csv"])).unlink()
    line = refused(cli, root, "checkout", "v1", names=("data", "not in the cache"))
    assert oid(V1_DATA["b.csv"]) in line
    assert head(root) == tagged.v2_sha


def test_checkout_rev_refused_by_git_moves_nothing(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    make_tree(root, {"README.md": "read me\n"})
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "readme")
    cli("checkout", "v1")
    (root / "README.md").write_text("my own, untracked\n")  # `git checkout main` must refuse
    refused(cli, root, "checkout", "main")
    assert head(root) == tagged.v1_sha
    assert _without(workspace_files(root), "README.md") == tagged.v1


def test_checkout_rev_refused_by_git_names_the_file_in_the_way(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    make_tree(root, {"README.md": "read me\n"})
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "readme")
    cli("checkout", "v1")
    (root / "README.md").write_text("my own, untracked\n")
    refused(cli, root, "checkout", "main", names=("README.md",))


@pytest.fixture
def moved_out_of_git(tagged: Tagged, cli: Cli) -> Tagged:
    """`big.bin` and `table/` were plain Git files at tag `g`; since, repro tracks them."""
    root = tagged.root
    make_tree(root, {"big.bin": "small enough for git\n", "table/x.csv": "x\n"})
    git(root, "add", "big.bin", "table")
    git(root, "commit", "-q", "-m", "files in git")
    git(root, "tag", "g")
    git(root, "rm", "-r", "-q", "--cached", "big.bin", "table")
    make_tree(root, {"big.bin": "grown too big for git\n"})
    cli("add", "big.bin", "table")
    git(root, "commit", "-q", "-m", "track them with repro")
    return tagged


def test_checkout_rev_keeps_files_that_git_tracks_at_rev(
    moved_out_of_git: Tagged, cli: Cli
) -> None:
    root = moved_out_of_git.root
    cli("checkout", "g")
    assert (root / "big.bin").read_text() == "small enough for git\n"
    assert (root / "table/x.csv").read_text() == "x\n"
    assert git(root, "status", "--porcelain") == ""


def test_checkout_rev_replaces_a_git_file_that_rev_tracks_with_repro(
    moved_out_of_git: Tagged, cli: Cli
) -> None:
    root = moved_out_of_git.root
    git(root, "checkout", "-q", "g")  # plain Git: HEAD has big.bin in Git
    cli("checkout", "main")
    assert (root / "big.bin").read_text() == "grown too big for git\n"
    assert git(root, "status", "--porcelain") == ""


# --- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["nosuch"], ("nosuch", "neither a tracked path nor a known revision")),
        (["nosuch", "--"], ("unknown revision 'nosuch'",)),
        (["nosuch", "--", "data"], ("unknown revision 'nosuch'",)),
        (["v1", "v2", "--", "data"], ("only one revision", "v1", "v2")),
        (["v1", "--", "extra.bin"], ("extra.bin", "not tracked by repro at v1")),
        (["--", "v1"], ("v1", "not tracked by repro")),
        (["data", "v1"], ("v1", "not tracked by repro")),
    ],
    ids=" ".join,
)
def test_checkout_refuses_bad_arguments_and_changes_nothing(
    tagged: Tagged, cli: Cli, args: list[str], names: tuple[str, ...]
) -> None:
    refused(cli, tagged.root, "checkout", *args, names=names)
    assert head(tagged.root) == tagged.v2_sha


def test_checkout_refuses_a_name_that_is_both_a_revision_and_a_tracked_path(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    git(root, "branch", "data", "v1")
    refused(
        cli, root, "checkout", "data", names=("'data'", "is both a revision and a tracked path")
    )
    cli("checkout", "data", "--")  # `--` says which: the branch
    assert (head(root), branch(root)) == (tagged.v1_sha, "data")


@pytest.mark.parametrize("args", [["data", "extra.bin"], ["--", "data", "extra.bin"]], ids=" ".join)
def test_checkout_of_tracked_paths_restores_them_from_the_pointers(
    tagged: Tagged, cli: Cli, args: list[str]
) -> None:
    root = tagged.root
    (root / "data/a.csv").unlink()
    (root / "extra.bin").unlink()
    cli("checkout", *args)
    assert read_tree(root / "data") == V2_DATA
    assert (root / "extra.bin").read_bytes() == EXTRA
    assert head(root) == tagged.v2_sha
    assert staged(root) == set()


def test_checkout_rev_dashdash_without_paths_moves_head(tagged: Tagged, cli: Cli) -> None:
    cli("checkout", "v1", "--")
    assert head(tagged.root) == tagged.v1_sha
    assert workspace_files(tagged.root) == tagged.v1


# --- repro checkout REV -- PATH: roll back, staged ---------------------------------------------


@pytest.mark.parametrize(
    "args", [["v1", "--", "data"], ["v1", "--", "data.repro"], ["v1", "data/"]], ids=" ".join
)
def test_rollback_restores_pointer_and_bytes_staged_and_head_stays(
    tagged: Tagged, cli: Cli, args: list[str]
) -> None:
    root = tagged.root
    result = cli("checkout", *args)
    assert "staged" in result.stderr
    assert (head(root), branch(root)) == (tagged.v2_sha, "main")
    assert staged(root) == {"data.repro"}
    assert (root / "data.repro").read_bytes() == show(root, "v1", "data.repro")
    assert read_tree(root / "data") == V1_DATA
    # Everything else is still v2.
    assert _without(workspace_files(root), "data") == _without(tagged.v2, "data")


def test_rollback_keeps_unrelated_git_changes_out_of_the_index(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    (root / "notes.txt").write_text("work in progress\n")
    cli("checkout", "v1", "--", "data")
    assert staged(root) == {"data.repro"}
    assert git(root, "status", "--porcelain", "notes.txt") == " M notes.txt\n"


def test_rollback_of_a_stage_output_brings_back_its_lock_record_and_every_output(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    cli("checkout", "v1", "--", "models/model.txt")
    assert (head(root), branch(root)) == (tagged.v2_sha, "main")
    assert staged(root) == {"repro.lock", "metrics.json"}
    assert _lock_stage(root) == _lock_stage(root, "v1")
    assert (root / "models/model.txt").read_bytes() == tagged.v1["models/model.txt"]
    assert (root / "metrics.json").read_bytes() == tagged.v1["metrics.json"]  # uncached output
    assert read_tree(root / "data") == V2_DATA  # its inputs stay as they are today

    # The lock now says v1's inputs made the model; today's inputs differ: the stage is stale.
    reasons = " ".join(stale_stages(cli)["train"])
    assert "data" in reasons
    assert "lr" in reasons
    cli("status", "--check", expect=1)


def test_rollback_refuses_to_overwrite_uncommitted_data_edits(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    (root / "data/a.csv").write_text("unsaved work\n")
    refused(cli, root, "checkout", "v1", "--", "data", names=("data/a.csv", "uncommitted"))

    cli("checkout", "--force", "v1", "--", "data")
    assert read_tree(root / "data") == V1_DATA
    assert staged(root) == {"data.repro"}


def test_rollback_refuses_to_overwrite_uncommitted_metrics(tagged: Tagged, cli: Cli) -> None:
    root = tagged.root
    (root / "metrics.json").write_text('{"rows": 99}\n')
    refused(
        cli, root, "checkout", "v1", "--", "models/model.txt", names=("metrics.json", "uncommitted")
    )
    assert (root / "models/model.txt").read_bytes() == tagged.v2["models/model.txt"]


def test_rollback_fetches_missing_objects_from_the_default_remote(
    tagged: Tagged, cli: Cli, tmp_path: Path
) -> None:
    root = tagged.root
    _add_remote(cli, root, tmp_path / "storage")
    model = lock_out_oid(root, "v1", "models/model.txt")
    cache_file(root, model).unlink()
    cli("checkout", "v1", "--", "models/model.txt")
    assert (root / "models/model.txt").read_bytes() == tagged.v1["models/model.txt"]
    assert head(root) == git(root, "rev-parse", "main").strip()


def test_rollback_of_a_file_inside_a_tracked_dir_restores_only_that_file(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    cli("checkout", "v1", "--", "data/b.csv")
    assert read_tree(root / "data") == {**V2_DATA, "b.csv": V1_DATA["b.csv"]}


def test_rollback_of_an_uncached_stage_output_brings_back_its_stage(
    tagged: Tagged, cli: Cli
) -> None:
    root = tagged.root
    cli("checkout", "v1", "--", "metrics.json")
    assert (root / "metrics.json").read_bytes() == tagged.v1["metrics.json"]
    assert _lock_stage(root) == _lock_stage(root, "v1")
    assert staged(root) == {"repro.lock", "metrics.json"}
