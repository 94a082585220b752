"""Shared fixtures: an isolated environment, a Git repository, a project, and the CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.builders import git


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read the developer's HOME, Git config or cloud credentials."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.setenv("REPRO_GLOBAL_CONFIG_DIR", str(home / "repro-global"))
    monkeypatch.setenv("REPRO_SYSTEM_CONFIG_DIR", str(home / "repro-system"))
    monkeypatch.setenv("NO_COLOR", "1")
    for name in list(os.environ):
        if name.startswith(("GIT_DIR", "GIT_INDEX", "GIT_WORK_TREE", "AWS_", "FSSPEC_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Git repository, made the working directory."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def repo(git_repo: Path) -> Path:
    """A Git repository with `repro init` done (and committed)."""
    from reprocli.operations.init import init

    init(git_repo)
    git(git_repo, "commit", "-q", "-m", "init")
    return git_repo


@dataclass
class Result:
    """The outcome of one CLI call."""

    exit_code: int
    stdout: str
    stderr: str


Cli = Callable[..., Result]


@pytest.fixture
def cli() -> Cli:
    """Run `repro ARGS` in-process; fail on an unexpected exit code or any traceback."""
    from reprocli.cli.app import app

    runner = CliRunner()

    def run(*args: str, expect: int = 0, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        outcome = Result(result.exit_code, result.stdout, result.stderr)
        assert "Traceback" not in outcome.stderr, outcome.stderr
        assert outcome.exit_code == expect, (
            f"repro {' '.join(args)}: exit {outcome.exit_code}, expected {expect}\n"
            f"stdout: {outcome.stdout}\nstderr: {outcome.stderr}"
        )
        return outcome

    return run


def run_repro(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed `repro` entry point in a subprocess."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "reprocli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
