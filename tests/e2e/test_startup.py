"""Start-up stays light (DESIGN §6: CLI start-up a small fraction of DVC's).

Each check runs a fresh interpreter with `-X importtime` and reads which modules it loaded;
a failure prints the chain of imports that pulled the offender in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.builders import make_tree
from tests.conftest import Cli

HEAVY = ("git", "fsspec", "s3fs", "networkx", "pydantic", "rich.progress", "botocore")
HISTORY_AND_REMOTES = ("git", "fsspec", "networkx", "s3fs")
FRAMEWORK = ("typer", "click", "rich")


@dataclass(frozen=True)
class Imported:
    """One line of `-X importtime`: a module and how deep in the import chain it was loaded."""

    name: str
    depth: int


def parse_importtime(stderr: str) -> list[Imported]:
    """The modules listed by `-X importtime`, in its order (a module after its children)."""
    found: list[Imported] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        field = line.rsplit("|", 1)[1]
        name = field.strip()
        found.append(Imported(name, (len(field) - len(field.lstrip(" ")) - 1) // 2))
    return found


def chain(imports: list[Imported], index: int) -> str:
    """`a -> b -> c`: who imported the module at `index` (parents are listed after children)."""
    names = [imports[index].name]
    depth = imports[index].depth
    for later in imports[index + 1 :]:
        if later.depth < depth:
            names.append(later.name)
            depth = later.depth
            if depth == 0:
                break
    return " -> ".join(reversed(names))


def matches(module: str, banned: tuple[str, ...]) -> bool:
    return any(module == b or module.startswith(b + ".") for b in banned)


def offenders(stderr: str, banned: tuple[str, ...]) -> list[str]:
    """The import chain of each top-most banned module that was loaded."""
    imports = parse_importtime(stderr)
    chains = [chain(imports, i) for i, item in enumerate(imports) if matches(item.name, banned)]
    # Report each banned package once, by its shortest chain (where it first came in).
    shortest: dict[str, str] = {}
    for text in chains:
        top = next(part for part in text.split(" -> ") if matches(part, banned))
        key = next(b for b in banned if top == b or top.startswith(b + "."))
        if key not in shortest or len(text) < len(shortest[key]):
            shortest[key] = text
    return sorted(shortest.values())


def run_python(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_not_imported(result: subprocess.CompletedProcess[str], banned: tuple[str, ...]) -> None:
    assert "import time:" in result.stderr, "no -X importtime output: the check saw nothing"
    found = offenders(result.stderr, banned)
    assert not found, "imported at start-up:\n" + "\n".join(found)


def test_the_importtime_parser_reports_the_chain_of_an_offender() -> None:
    result = run_python("-c", "import json")
    found = offenders(result.stderr, ("json.decoder",))
    assert found and found[0].startswith("json -> json.decoder"), found


def test_importing_the_cli_loads_no_heavy_library(tmp_path: Path) -> None:
    result = run_python("-c", "import reprocli.cli.app", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_not_imported(result, HEAVY)


def test_help_loads_no_heavy_library(tmp_path: Path) -> None:
    result = run_python("-m", "reprocli", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout
    assert_not_imported(result, HEAVY)


def test_version_does_not_import_the_command_line_framework(tmp_path: Path) -> None:
    result = run_python("-m", "reprocli", "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("repro ")
    assert_not_imported(result, FRAMEWORK + HEAVY)


def test_the_repro_console_script_version_does_not_import_typer(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "repro"
    if not script.is_file():
        pytest.skip(f"no console script at {script}")
    result = subprocess.run(
        [str(script), "--version"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("repro ")
    assert_not_imported(result, FRAMEWORK + HEAVY)


def test_status_in_a_project_loads_neither_history_nor_remote_libraries(
    repo: Path, cli: Cli
) -> None:
    make_tree(repo, {"data/a.csv": "1\n", "data/sub/b.csv": "2\n", "model.bin": b"\x00"})
    cli("add", "data", "model.bin")
    (repo / "data/a.csv").write_text("changed\n")

    result = run_python("-m", "reprocli", "status", cwd=repo)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "data: modified" in result.stdout
    assert_not_imported(result, HISTORY_AND_REMOTES)
