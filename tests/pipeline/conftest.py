"""Pipeline fixtures: a four-stage chain whose stages log each execution outside the repository.

The chain is the issue's walkthrough in miniature:

    prepare ──▶ featurize ──▶ train ──▶ evaluate
                     │                    ▲
                     └────────────────────┘   (evaluate also reads data/features/test.csv)

Every stage script appends its name to `Chain.log` (in the test's tmp dir, outside the
repository and outside every output) before doing anything else, so a test can count what
really executed — a stage restored from the run-cache leaves no line there.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from reprocli.pipeline import lockfile
from reprocli.pipeline.lockfile import LockEntry
from tests.builders import git, make_tree

PY = shlex.quote(sys.executable)
"""The interpreter stage commands run (it has PyYAML)."""

CHAIN_YAML = f"""\
stages:
  prepare:
    cmd: {PY} src/prepare.py
    deps:
    - src/prepare.py
    - data/raw.csv
    params:
    - prepare.scale
    outs:
    - data/prepared
  featurize:
    cmd: {PY} src/featurize.py
    deps:
    - src/featurize.py
    - data/prepared
    outs:
    - data/features
  train:
    cmd: {PY} src/train.py
    deps:
    - src/train.py
    - data/features/train.csv
    params:
    - train.lr
    - train.epochs
    outs:
    - models/model.json
  evaluate:
    cmd: {PY} src/evaluate.py
    deps:
    - src/evaluate.py
    - models/model.json
    - data/features/test.csv
    metrics:
    - metrics.json
"""

PARAMS_YAML = "prepare:\n  scale: 2\ntrain:\n  lr: 0.1\n  epochs: 3\n"

_SCRIPTS = {
    "prepare": """
        import pathlib, yaml
        p = yaml.safe_load(open("params.yaml"))["prepare"]
        rows = [int(x) for x in open("data/raw.csv").read().split()]
        out = pathlib.Path("data/prepared")
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.csv").write_text("".join(f"{r * p['scale']}\\n" for r in rows[:-1]))
        (out / "test.csv").write_text(f"{rows[-1] * p['scale']}\\n")
        print("prepared", len(rows), "rows")
    """,
    "featurize": """
        import pathlib
        out = pathlib.Path("data/features")
        out.mkdir(parents=True, exist_ok=True)
        for name in ("train.csv", "test.csv"):
            rows = [int(x) for x in open(f"data/prepared/{name}").read().split()]
            (out / name).write_text("".join(f"{r + 1}\\n" for r in rows))
        print("featurized")
    """,
    "train": """
        import json, pathlib, yaml
        p = yaml.safe_load(open("params.yaml"))["train"]
        rows = [int(x) for x in open("data/features/train.csv").read().split()]
        pathlib.Path("models").mkdir(exist_ok=True)
        model = {"weight": sum(rows) * p["lr"] * p["epochs"]}
        pathlib.Path("models/model.json").write_text(json.dumps(model, sort_keys=True) + "\\n")
        print("trained", model)
    """,
    "evaluate": """
        import json, pathlib
        model = json.loads(open("models/model.json").read())
        test = [int(x) for x in open("data/features/test.csv").read().split()]
        score = round(model["weight"] / (1 + sum(test)), 6)
        pathlib.Path("metrics.json").write_text(json.dumps({"score": score}) + "\\n")
        print("score", score)
    """,
}

STAGES = ("prepare", "featurize", "train", "evaluate")


def stage_script(name: str, log: Path, body: str) -> str:
    """A stage script that first appends `name` to `log`, then runs `body`."""
    head = f"with open({str(log)!r}, 'a') as _log:\n    _log.write({name + chr(10)!r})\n"
    return head + textwrap.dedent(body).lstrip("\n")


@dataclass
class Chain:
    """A committed repository holding the four-stage chain, and its execution log."""

    root: Path
    log: Path

    def runs(self) -> list[str]:
        """The stages executed so far, in the order they started."""
        if not self.log.exists():
            return []
        return self.log.read_text().split()

    def lock(self) -> dict[str, LockEntry]:
        """repro.lock, parsed."""
        return read_lock(self.root)

    def set_param(self, old: str, new: str) -> None:
        """Replace one line of params.yaml (e.g. `lr: 0.1` → `lr: 0.3`)."""
        path = self.root / "params.yaml"
        text = path.read_text()
        assert old in text, text
        path.write_text(text.replace(old, new))


def build_chain(root: Path, log: Path) -> Chain:
    """Write the chain into the repository at `root` (which has `repro init` done) and commit."""
    files: dict[str, str | bytes] = {
        "repro.yaml": CHAIN_YAML,
        "params.yaml": PARAMS_YAML,
        "data/raw.csv": "1\n2\n3\n4\n",
    }
    for name, body in _SCRIPTS.items():
        files[f"src/{name}.py"] = stage_script(name, log, body)
    make_tree(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    return Chain(root, log)


@pytest.fixture
def chain(repo: Path, tmp_path: Path) -> Chain:
    """The four-stage chain in a committed repository, nothing run yet."""
    return build_chain(repo, tmp_path / "stages.log")


def write_pipeline(root: Path, text: str) -> None:
    """Write repro.yaml (dedented)."""
    (root / "repro.yaml").write_text(textwrap.dedent(text))


def read_lock(root: Path) -> dict[str, LockEntry]:
    """repro.lock at `root`, parsed (it must exist)."""
    return lockfile.decode((root / "repro.lock").read_bytes())


def workspace_files(root: Path) -> dict[str, bytes]:
    """Every file of the workspace outside .git/ and .repro/, as {path: bytes}."""
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", ".repro")]
        for name in names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def staged(root: Path) -> set[str]:
    """Paths staged in Git's index (compared with HEAD)."""
    return set(git(root, "diff", "--cached", "--name-only").split())


def ignored(root: Path, path: str) -> bool:
    """Whether Git ignores `path`."""
    result = subprocess.run(
        ["git", "check-ignore", "-q", path], cwd=root, capture_output=True, check=False
    )
    return result.returncode == 0
