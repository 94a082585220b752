"""The run-cache travels with the objects: `push --run-cache`, `pull --run-cache`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import commit, git
from tests.conftest import Cli
from tests.pipeline.conftest import Chain


def test_a_clone_that_pulls_the_run_cache_restores_outputs_without_running(
    chain: Chain, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("run")
    storage = tmp_path / "storage"
    cli("remote", "add", "-d", "storage", str(storage))
    commit(chain.root, "pipeline and remote")
    # A second experiment whose record only the run-cache keeps once it is reverted.
    chain.set_param("lr: 0.1", "lr: 0.3")
    cli("run")
    chain.set_param("lr: 0.3", "lr: 0.1")
    cli("run")
    assert cli("push", "--run-cache", "--json").exit_code == 0
    assert any((storage / "runs").rglob("*")), "no run-cache record reached the remote"

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(chain.root), str(clone))
    monkeypatch.chdir(clone)
    cli("pull", "--run-cache")
    before = len(chain.runs())
    clone_params = clone / "params.yaml"
    clone_params.write_text(clone_params.read_text().replace("lr: 0.1", "lr: 0.3"))
    result = cli("run")
    assert "restored from the run-cache" in result.stderr
    assert len(chain.runs()) == before, "a stage executed although its run was cached"


def test_push_without_run_cache_sends_no_records(chain: Chain, cli: Cli, tmp_path: Path) -> None:
    cli("run")
    storage = tmp_path / "storage"
    cli("remote", "add", "-d", "storage", str(storage))
    cli("push")
    assert not (storage / "runs").exists()
