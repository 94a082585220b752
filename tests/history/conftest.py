"""History fixtures: a project with two tagged versions of its data and of a one-stage pipeline.

    init ── v1 ──────────── v2 (main)
            data/ a b sub/c  data/ a' sub/c d     (b deleted, a modified, d added)
            lr: 0.1          lr: 0.2
            models/model.txt, metrics.json        made by stage `train` from data/ and lr
                             extra.bin            tracked at v2 only

`notes.txt` is a plain Git file that differs between the tags. Every snapshot is the whole
workspace outside .git/ and .repro/ (data, pointers, .gitignore files, repro.lock, metrics),
so comparing one with the disk checks code and data together.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import xxhash
import yaml

from tests.builders import git, make_tree
from tests.conftest import Cli, Result

PY = shlex.quote(sys.executable)

REPRO_YAML = f"""\
stages:
  train:
    cmd: {PY} src/train.py
    deps:
    - src/train.py
    - data
    params:
    - lr
    outs:
    - models/model.txt
    metrics:
    - metrics.json
"""

TRAIN_PY = """\
import json, pathlib, yaml
lr = yaml.safe_load(open("params.yaml"))["lr"]
files = sorted(p for p in pathlib.Path("data").rglob("*") if p.is_file())
text = "".join(p.read_text() for p in files)
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/model.txt").write_text(f"lr={lr} rows={text.split()}\\n")
pathlib.Path("metrics.json").write_text(json.dumps({"rows": len(files), "lr": lr}) + "\\n")
"""

V1_DATA = {"a.csv": b"a1\n", "b.csv": b"b1\n", "sub/c.csv": b"c1\n"}
V2_DATA = {"a.csv": b"a2 longer\n", "sub/c.csv": b"c1\n", "d.csv": b"d2\n"}
EXTRA = b"\x00extra v2 only\xff"


def oid(data: bytes) -> str:
    """The object id of `data` (xxh3-128), computed without repro."""
    return xxhash.xxh3_128_hexdigest(data)


def workspace_files(root: Path) -> dict[str, bytes]:
    """Every file of the workspace outside .git/ and .repro/, as {path: bytes}."""
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", ".repro")]
        for name in names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def head(root: Path) -> str:
    """The commit HEAD points at."""
    return git(root, "rev-parse", "HEAD").strip()


def branch(root: Path) -> str | None:
    """The branch checked out, or None when HEAD is detached."""
    result = subprocess.run(
        ["git", "symbolic-ref", "-q", "--short", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None


def staged(root: Path) -> set[str]:
    """Paths staged in Git's index (compared with HEAD)."""
    return set(git(root, "diff", "--cached", "--name-only").split())


def show(root: Path, rev: str, path: str) -> bytes:
    """The bytes of `path` at `rev`, straight from Git."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def pointer_oid(root: Path, rev: str, file: str) -> str:
    """The `oid` a pointer file records at `rev`."""
    return str(yaml.safe_load(show(root, rev, file))["outs"][0]["oid"])


def cache_file(root: Path, object_id: str) -> Path:
    """Where the object `object_id` lives in the project's cache."""
    return root / ".repro/cache/objects" / object_id[:2] / object_id[2:]


def stale_stages(cli: Cli) -> dict[str, list[str]]:
    """`repro status --json`: the reasons of each stale stage, by name."""
    report = json.loads(cli("status", "--json").stdout)
    return {s["name"]: s["reasons"] for s in report["stages"] if s["stale"]}


def state(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """Every file and link under `root` with its bytes and mode, cache included, minus Git's
    and repro's scratch folders: what a refused command must leave exactly as it was."""
    found: dict[str, tuple[str, bytes | str, int]] = {}
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        if rel_folder == ".":
            dirs[:] = [d for d in dirs if d != ".git"]
        elif rel_folder == ".repro":
            dirs[:] = [d for d in dirs if d not in ("state", "tmp")]
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel == ".repro/lock":
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path), 0)
            else:
                found[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode))
    return found


def git_state(root: Path) -> tuple[str, str, str]:
    """HEAD (and its branch), the index with staged blob ids, and `git status`."""
    return (
        f"{head(root)} {branch(root)}",
        git(root, "ls-files", "-s"),
        git(root, "status", "--porcelain", "-uall"),
    )


def error_line(result: Result, *names: str) -> str:
    """The one `error:` line of a refused command (exit 2, nothing on stdout), naming `names`."""
    assert result.exit_code == 2, result
    lines = [line for line in result.stderr.split("\n") if line]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one error line, got:\n{result.stderr}"
    others = [line for line in lines if not line.startswith(("error: ", "hint: "))]
    assert others == [], f"unexpected stderr lines:\n{result.stderr}"
    assert not [c for c in result.stderr if c != "\n" and unicodedata.category(c) == "Cc"]
    assert result.stdout == "", result.stdout
    for name in names:
        assert name in errors[0], f"{name!r} not named in: {errors[0]}"
    return errors[0]


def refused(cli: Cli, root: Path, *args: str, names: tuple[str, ...] = ()) -> str:
    """Run `repro ARGS`, expect exit 2 with one error line naming `names`, and nothing changed:
    not the workspace, not the cache, not Git's HEAD, index or work tree."""
    before, git_before = state(root), git_state(root)
    line = error_line(cli(*args, expect=2), *names)
    assert git_state(root) == git_before, "a refused command changed Git's HEAD or index"
    assert state(root) == before, "a refused command changed the workspace or the cache"
    return line


def lock_out_oid(root: Path, rev: str, path: str) -> str:
    """The oid repro.lock at `rev` records for the output `path` of stage `train`."""
    outs = yaml.safe_load(show(root, rev, "repro.lock"))["stages"]["train"]["outs"]
    return str(next(o["oid"] for o in outs if o["path"] == path))


@dataclass
class Tagged:
    """A committed project at v2 on `main`, with v1 tagged before it; snapshots of both."""

    root: Path
    v1: dict[str, bytes]
    v2: dict[str, bytes]
    v1_sha: str
    v2_sha: str


def build_tagged(root: Path, cli: Cli) -> Tagged:
    """Commit v1 and v2 of the data and pipeline into `root` (which has `repro init` done)."""
    make_tree(
        root,
        {
            "repro.yaml": REPRO_YAML,
            "params.yaml": "lr: 0.1\n",
            "src/train.py": TRAIN_PY,
            "notes.txt": "v1 notes\n",
            **{f"data/{k}": v for k, v in V1_DATA.items()},
        },
    )
    cli("add", "data")
    cli("run")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "v1: first data and model")
    git(root, "tag", "v1")
    v1 = workspace_files(root)

    (root / "data/b.csv").unlink()
    make_tree(
        root,
        {
            "params.yaml": "lr: 0.2\n",
            "notes.txt": "v2 notes\n",
            "extra.bin": EXTRA,
            **{f"data/{k}": v for k, v in V2_DATA.items()},
        },
    )
    cli("commit", "data")
    cli("add", "extra.bin")
    cli("run")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "v2: new data, new model")
    git(root, "tag", "v2")
    v2 = workspace_files(root)
    assert git(root, "status", "--porcelain") == ""
    return Tagged(root, v1, v2, git(root, "rev-parse", "v1").strip(), head(root))


def _isolate(mp: pytest.MonkeyPatch, home: Path) -> None:
    """The environment of tests/conftest.py's `isolated_env`, for the session-wide template."""
    home.mkdir()
    mp.setenv("HOME", str(home))
    mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        mp.setenv(f"GIT_{who}_NAME", "Test")
        mp.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    mp.setenv("REPRO_GLOBAL_CONFIG_DIR", str(home / "repro-global"))
    mp.setenv("REPRO_SYSTEM_CONFIG_DIR", str(home / "repro-system"))
    mp.setenv("NO_COLOR", "1")
    for name in list(os.environ):
        if name.startswith(("GIT_DIR", "GIT_INDEX", "GIT_WORK_TREE", "AWS_", "FSSPEC_")):
            mp.delenv(name, raising=False)
    mp.delenv("CI", raising=False)


@pytest.fixture(scope="session")
def tagged_template(tmp_path_factory: pytest.TempPathFactory) -> Tagged:
    """The two-version project, built once per session (two pipeline runs cost the most)."""
    from typer.testing import CliRunner

    from reprocli.cli.app import app
    from reprocli.operations.init import init

    base = tmp_path_factory.mktemp("tagged-template")
    runner = CliRunner()

    def run(*args: str, expect: int = 0, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == expect, (args, result.stdout, result.stderr)
        return Result(result.exit_code, result.stdout, result.stderr)

    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, base / "home")
        root = base / "repo"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        mp.chdir(root)
        init(root)
        git(root, "commit", "-q", "-m", "init")
        return build_tagged(root, run)


@pytest.fixture
def tagged(tagged_template: Tagged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tagged:
    """The two-version project, at v2 on `main`, clean: this test's own copy, made cwd."""
    root = tmp_path / "repo"
    shutil.copytree(tagged_template.root, root, symlinks=True)
    monkeypatch.chdir(root)
    return replace(tagged_template, root=root)
