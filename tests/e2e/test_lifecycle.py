"""The issue's walkthrough, through the `repro` command: init, add, status, commit, checkout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.builders import commit, git, make_tree, read_tree
from tests.conftest import Cli


def test_add_commit_status_checkout_round_trip(git_repo: Path, cli: Cli) -> None:
    cli("init")
    make_tree(
        git_repo, {"data/a.csv": "1\n", "data/sub/b.csv": "2\n", "models/model.pkl": b"\x00\x01"}
    )
    (git_repo / "data/run.sh").write_text("#!/bin/sh\n")
    os.chmod(git_repo / "data/run.sh", 0o755)
    before = read_tree(git_repo / "data")

    cli("add", "data", "models/model.pkl")
    assert (git_repo / "data.repro").is_file()
    assert (git_repo / "models/model.pkl.repro").is_file()
    staged = git(git_repo, "diff", "--cached", "--name-only").split()
    assert {"data.repro", "models/model.pkl.repro", ".gitignore", "models/.gitignore"} <= set(
        staged
    )
    commit(git_repo, "data v1")
    assert "up to date" in cli("status").stdout

    (git_repo / "data/a.csv").write_text("1\nx\n")
    result = cli("status")
    assert "data: modified" in result.stdout
    assert "modified: data/a.csv" in result.stdout.replace("  ", " ")
    cli("status", "--check", expect=1)

    cli("commit")
    cli("status", "--check")
    before["a.csv"] = b"1\nx\n"

    shutil.rmtree(git_repo / "data")
    cli("checkout")
    assert read_tree(git_repo / "data") == before
    assert os.stat(git_repo / "data/run.sh").st_mode & 0o111
    assert not os.stat(git_repo / "data/a.csv").st_mode & 0o111
    cli("status", "--check")
