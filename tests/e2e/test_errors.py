"""Bad input through the `repro` command: one `error:` line, exit 2, and nothing changed.

DESIGN §2: errors are one clear line on stderr (plus an optional hint), exit code 2, and a
Python traceback only with -v. DESIGN §4 invariants 3 and 5: a refused command loses or
changes nothing, and no pointer or manifest can make repro write outside the repository.
"""

from __future__ import annotations

import os
import stat
import subprocess
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
import xxhash
from typer.testing import CliRunner

from tests.builders import commit, git, make_tree
from tests.conftest import Cli, Result

INTERNAL = {".repro/lock"}
INTERNAL_DIRS = (".git/", ".repro/state/", ".repro/tmp/")


# --- helpers ------------------------------------------------------------------------------


def _state(root: Path) -> dict[str, tuple[str, bytes | str, int]]:
    """Every file, symlink and folder under `root` (bytes, link target, mode), minus internals.

    The cache is included: a refused command must not add objects either.
    """
    found: dict[str, tuple[str, bytes | str, int]] = {}
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel in INTERNAL or (rel + "/").startswith(INTERNAL_DIRS):
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path), 0)
            elif stat.S_ISDIR(st.st_mode):
                if not rel.startswith(".repro/"):  # empty cache folders are harmless
                    found[rel + "/"] = ("dir", b"", 0)
            else:
                found[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode))
    return found


def _git_state(root: Path) -> tuple[str, str, str]:
    """HEAD, the index (with staged blob ids) and the status of the working tree."""
    head = subprocess.run(
        ["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout
    return head, git(root, "ls-files", "-s"), git(root, "status", "--porcelain", "-uall")


def _error_line(result: Result, *names: str) -> str:
    """The single `error:` line of a refused command, checked to name every one of `names`."""
    assert result.exit_code == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.split("\n")
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one error line, got:\n{result.stderr}"
    others = [line for line in lines if line and not line.startswith(("error: ", "hint: "))]
    assert others == [], f"unexpected stderr lines:\n{result.stderr}"
    for name in names:
        assert name in errors[0], f"{name!r} not named in: {errors[0]}"
    raw = [c for c in result.stderr if c != "\n" and unicodedata.category(c) == "Cc"]
    assert raw == [], f"raw control characters in the error output: {result.stderr!r}"
    assert result.stdout == "", result.stdout
    return errors[0]


def _refused(cli: Cli, root: Path, *args: str, names: tuple[str, ...]) -> str:
    """Run `repro ARGS` expecting a refusal naming `names`; require that nothing changed."""
    before, git_before = _state(root), _git_state(root) if (root / ".git").exists() else None
    line = _error_line(cli(*args, expect=2), *names)
    assert _state(root) == before, "a refused command changed the workspace or cache"
    if git_before is not None:
        assert _git_state(root) == git_before, "a refused command changed Git's index or HEAD"
    return line


def _oid(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def _put_object(root: Path, data: bytes, suffix: str = "") -> str:
    """Write an object into the project cache by hand (as a crafted clone or pull could)."""
    oid = _oid(data) + suffix
    folder = root / ".repro/cache/objects" / oid[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / oid[2:]
    if not path.exists():
        path.write_bytes(data)
        os.chmod(path, 0o444)
    return oid


def _write_pointer(
    root: Path, file: str, path: str, oid: str, size: int, nfiles: int | None = None
) -> None:
    text = f"version: 1\nouts:\n- path: {path}\n  hash: xxh3-128\n  oid: {oid}\n  size: {size}\n"
    if nfiles is not None:
        text += f"  nfiles: {nfiles}\n"
    (root / file).write_text(text)


def _cache_file(root: Path, oid: str) -> Path:
    return root / ".repro/cache/objects" / oid[:2] / oid[2:]


def _pointer_oid(root: Path, file: str) -> str:
    for line in (root / file).read_text().splitlines():
        if line.strip().startswith("oid: "):
            return line.split(": ", 1)[1]
    raise AssertionError(f"no oid in {file}")


@pytest.fixture
def tracked(repo: Path, cli: Cli) -> Path:
    """A project with a tracked folder `data/` and a tracked file `model.bin`, committed."""
    make_tree(
        repo, {"data/a.csv": "1,2\n", "data/sub/b.csv": "3,4\n", "model.bin": b"\x00model\xff"}
    )
    cli("add", "data", "model.bin")
    commit(repo, "data v1")
    return repo


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An empty folder next to the repository, which no command may write into."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


# --- no project ---------------------------------------------------------------------------


@pytest.fixture
def plain_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "x.csv").write_text("1\n")
    monkeypatch.chdir(folder)
    return folder


def test_init_refuses_a_folder_that_is_not_a_git_repository(plain_dir: Path, cli: Cli) -> None:
    line = _refused(cli, plain_dir, "init", names=(str(plain_dir),))
    assert "not a Git repository" in line
    assert not (plain_dir / ".repro").exists()


@pytest.mark.parametrize(
    "command", [["add", "x.csv"], ["status"], ["commit"], ["checkout"]], ids=" ".join
)
def test_data_commands_refuse_a_folder_that_is_not_a_git_repository(
    plain_dir: Path, cli: Cli, command: list[str]
) -> None:
    line = _refused(cli, plain_dir, *command, names=(str(plain_dir),))
    assert "not a Git repository" in line


@pytest.mark.parametrize(
    "command", [["add", "x.csv"], ["status"], ["commit"], ["checkout"]], ids=" ".join
)
def test_data_commands_refuse_a_git_repository_without_repro_init(
    git_repo: Path, cli: Cli, command: list[str]
) -> None:
    (git_repo / "x.csv").write_text("1\n")
    line = _refused(cli, git_repo, *command, names=(str(git_repo),))
    assert "not a repro project" in line
    assert not (git_repo / ".repro").exists()


# --- repro add: refused targets -----------------------------------------------------------


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_add_refuses_a_path_outside_the_repository(
    repo: Path, cli: Cli, outside: Path, form: str
) -> None:
    target = outside / "data.csv"
    target.write_text("1\n")
    arg = "../outside/data.csv" if form == "relative" else str(target)
    line = _refused(cli, repo, "add", arg, names=("data.csv",))
    assert "outside" in line
    assert sorted(p.name for p in outside.iterdir()) == ["data.csv"]


@pytest.mark.parametrize("path", [".repro", ".repro/config.yaml", ".repro/cache"])
def test_add_refuses_a_path_inside_the_repro_folder(repo: Path, cli: Cli, path: str) -> None:
    (repo / ".repro/cache").mkdir(exist_ok=True)
    _refused(cli, repo, "add", path, names=(path,))


def test_add_refuses_a_missing_path(repo: Path, cli: Cli) -> None:
    line = _refused(cli, repo, "add", "nope.csv", names=("nope.csv",))
    assert "no such file" in line


def test_add_refuses_a_missing_path_among_good_ones_and_adds_none_of_them(
    repo: Path, cli: Cli
) -> None:
    (repo / "good.csv").write_text("1\n")
    _refused(cli, repo, "add", "good.csv", "nope.csv", names=("nope.csv",))
    assert not (repo / "good.csv.repro").exists()


@pytest.mark.parametrize("path", ["notes.txt", "src", "src/main.py"])
def test_add_refuses_a_path_already_tracked_by_git(repo: Path, cli: Cli, path: str) -> None:
    make_tree(repo, {"notes.txt": "hello\n", "src/main.py": "print(1)\n"})
    git(repo, "add", "notes.txt", "src/main.py")
    commit(repo, "code")
    line = _refused(cli, repo, "add", path, names=(path,))
    assert "Git" in line


def test_add_refuses_a_pointer_file(tracked: Path, cli: Cli) -> None:
    line = _refused(cli, tracked, "add", "model.bin.repro", names=("model.bin.repro",))
    assert "pointer" in line


def test_add_refuses_a_folder_that_holds_a_pointer_file(repo: Path, cli: Cli) -> None:
    # Without autostage the nested pointer is not in Git's index, so only repro can object.
    (repo / ".repro/config.local.yaml").write_text("core:\n  autostage: false\n")
    make_tree(repo, {"outer/inner.bin": "inner\n", "outer/other.csv": "1\n"})
    cli("add", "outer/inner.bin")
    _refused(cli, repo, "add", "outer", names=("outer/inner.bin.repro",))
    assert not (repo / "outer.repro").exists()


def _link_to_file(root: Path, outside: Path) -> str:
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside / "secret.txt", root / "link.txt")
    return "link.txt"


def _link_to_folder(root: Path, outside: Path) -> str:
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside, root / "linkdir")
    return "linkdir"


def _link_inside_folder(root: Path, outside: Path) -> str:
    make_tree(root, {"data/a.csv": "1\n"})
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside / "secret.txt", root / "data/secret.txt")
    return "data"


def _file_under_linked_folder(root: Path, outside: Path) -> str:
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside, root / "linkdir")
    return "linkdir/secret.txt"


@pytest.mark.parametrize(
    ("setup", "named"),
    [
        (_link_to_file, "link.txt"),
        (_link_to_folder, "linkdir"),
        (_link_inside_folder, "secret.txt"),
        (_file_under_linked_folder, "linkdir"),
    ],
    ids=[
        "link to a file",
        "link to a folder",
        "link inside a folder",
        "file under a linked folder",
    ],
)
def test_add_refuses_a_symlink(
    repo: Path, cli: Cli, outside: Path, setup: Callable[[Path, Path], str], named: str
) -> None:
    target = setup(repo, outside)
    line = _refused(cli, repo, "add", target, names=(named,))
    assert "symlink" in line
    assert not (repo / f"{target}.repro").exists()
    assert [p.name for p in outside.iterdir()] == ["secret.txt"]


@pytest.mark.parametrize("path", ["data/a.csv", "data/sub", "data/sub/b.csv"])
def test_add_refuses_data_inside_already_tracked_data(tracked: Path, cli: Cli, path: str) -> None:
    line = _refused(cli, tracked, "add", path, names=(path,))
    assert "inside tracked data data" in line


def test_add_refuses_two_paths_where_one_holds_the_other(repo: Path, cli: Cli) -> None:
    make_tree(repo, {"raw/a.csv": "1\n"})
    _refused(cli, repo, "add", "raw", "raw/a.csv", names=("raw/a.csv",))


def test_add_refuses_a_file_name_that_is_not_utf8_naming_its_folder(repo: Path, cli: Cli) -> None:
    make_tree(repo, {"raw/good.csv": "1\n"})
    with open(os.path.join(os.fsencode(repo / "raw"), b"bad-\xff.csv"), "wb") as handle:
        handle.write(b"2\n")
    line = _refused(cli, repo, "add", "raw", names=("raw",))
    assert "internal error" not in line


_ODD_NAMES = {
    "newline": "new\nline.csv",
    "backslash": "back\\slash.csv",
    "NEL": "c1\x85control.csv",
    "C1 control": "c1\x80control.csv",
}


@pytest.mark.parametrize(
    ("target", "rel"),
    [
        *[pytest.param("raw", f"raw/{n}", id=f"in a folder, {i}") for i, n in _ODD_NAMES.items()],
        pytest.param("raw", "raw/.git", id="in a folder, a .git file"),
        *[pytest.param(n, n, id=f"top level, {i}") for i, n in _ODD_NAMES.items()],
    ],
)
def test_a_name_add_accepts_can_be_checked_out_again(
    repo: Path, cli: Cli, target: str, rel: str
) -> None:
    """`repro add` must refuse a name up front, or store it so that status and checkout work."""
    make_tree(repo, {rel: b"content\n", "raw/plain.csv": b"x"})
    added = _invoke("add", target)
    if added.exit_code != 0:
        _error_line(added)
        assert not (repo / f"{target}.repro").exists()
        return
    commit(repo, "data")
    cli("status", "--check")
    (repo / rel).unlink()
    cli("checkout")
    assert (repo / rel).read_bytes() == b"content\n"
    cli("status", "--check")


# --- malformed pointers -------------------------------------------------------------------


def _truncate(text: str, outside: Path) -> str:
    return text[: len(text) // 2]


def _version_2(text: str, outside: Path) -> str:
    return text.replace("version: 1", "version: 2")


def _absolute(text: str, outside: Path) -> str:
    return text.replace("path: model.bin", f"path: {outside / 'model.bin'}")


def _dotdot(text: str, outside: Path) -> str:
    return text.replace("path: model.bin", "path: ../outside/model.bin")


def _control_character(text: str, outside: Path) -> str:
    return text.replace("hash: xxh3-128", "hash: xxh3-128\x07")


def _bad_oid(text: str, outside: Path) -> str:
    oid = next(line for line in text.splitlines() if "oid:" in line).split(": ")[1]
    return text.replace(oid, oid.upper())


@pytest.mark.parametrize(
    "corrupt",
    [_truncate, _version_2, _absolute, _dotdot, _bad_oid, _control_character],
    ids=[
        "truncated",
        "version 2",
        "absolute path",
        "dotdot path",
        "uppercase oid",
        "control character",
    ],
)
@pytest.mark.parametrize(
    "command",
    [["status"], ["checkout"], ["checkout", "--force"], ["commit"], ["commit", "model.bin"]],
    ids=" ".join,
)
def test_a_malformed_pointer_is_refused_naming_the_pointer_file(
    tracked: Path,
    cli: Cli,
    outside: Path,
    corrupt: Callable[[str, Path], str],
    command: list[str],
) -> None:
    pointer = tracked / "model.bin.repro"
    pointer.write_text(corrupt(pointer.read_text(), outside))
    if command[0] == "checkout":
        (tracked / "model.bin").unlink()  # a checkout that read the pointer would restore it
    else:
        (tracked / "model.bin").write_bytes(b"changed")  # a commit would re-record it
    _refused(cli, tracked, *command, names=("model.bin.repro",))
    assert list(outside.iterdir()) == []


# --- crafted manifests and paths ----------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "../escaped",
        "{outside}/escaped",
        ".git/hooks/post-checkout",
        "../.git/hooks/post-checkout",
        "sub/../../escaped",
    ],
    ids=["dotdot", "absolute", "nested .git", "repository .git", "dotdot inside"],
)
@pytest.mark.parametrize(
    ("command", "make_dir"),
    [
        (["checkout"], False),
        (["checkout", "--force"], False),
        (["checkout"], True),
        (["status"], True),
    ],
    ids=["checkout", "checkout --force", "checkout over a folder", "status"],
)
def test_a_cached_manifest_whose_entries_escape_is_refused_and_nothing_is_written(
    repo: Path, cli: Cli, outside: Path, entry: str, command: list[str], make_dir: bool
) -> None:
    path = entry.replace("{outside}", str(outside))
    payload = b"#!/bin/sh\necho pwned\n"
    file_oid = _put_object(repo, payload)
    manifest = (
        f'[{{"exec":true,"oid":"{file_oid}","path":"{path}","size":{len(payload)}}}]'
    ).encode()
    tree_oid = _put_object(repo, manifest, ".dir")
    _write_pointer(repo, "evil.repro", "evil", tree_oid, len(payload), nfiles=1)
    if make_dir:
        make_tree(repo, {"evil/other.txt": "mine\n"})
    _refused(cli, repo, *command, names=("evil.repro", tree_oid))
    assert list(outside.iterdir()) == []
    assert not (repo.parent / "escaped").exists()
    assert not (repo / ".git/hooks/post-checkout").exists()
    assert make_dir or not (repo / "evil").exists()


@pytest.mark.parametrize(
    ("file", "path"),
    [
        (".repro.repro", ".repro"),
        ("evil.repro", ".repro"),
        (".repro/cache.repro", "cache"),
    ],
)
@pytest.mark.parametrize("force", [False, True], ids=["checkout", "checkout --force"])
def test_a_pointer_whose_data_is_a_folder_of_repro_itself_is_refused(
    tracked: Path, cli: Cli, file: str, path: str, force: bool
) -> None:
    """An empty manifest there would otherwise make checkout delete the cache."""
    tree_oid = _put_object(tracked, b"[]", ".dir")
    (tracked / file).parent.mkdir(parents=True, exist_ok=True)
    _write_pointer(tracked, file, path, tree_oid, 0, nfiles=0)
    _refused(cli, tracked, "checkout", *(["--force"] if force else []), names=(file,))
    assert _cache_file(tracked, _pointer_oid(tracked, "model.bin.repro")).is_file()
    assert _cache_file(tracked, _pointer_oid(tracked, "data.repro")).is_file()


@pytest.mark.parametrize(
    ("file", "path"),
    [(".repro/config.yaml.repro", "config.yaml"), ("evil.repro", ".repro/config.yaml")],
)
def test_a_pointer_whose_data_is_a_file_of_repro_itself_is_refused(
    tracked: Path, cli: Cli, file: str, path: str
) -> None:
    payload = b"core:\n  autostage: false\n"
    oid = _put_object(tracked, payload)
    _write_pointer(tracked, file, path, oid, len(payload))
    _refused(cli, tracked, "checkout", "--force", names=(file,))


@pytest.mark.parametrize("force", [False, True], ids=["checkout", "checkout --force"])
def test_checkout_refuses_to_write_through_a_symlinked_folder_above_a_pointer(
    repo: Path, cli: Cli, outside: Path, force: bool
) -> None:
    make_tree(repo, {"sub/x.bin": b"mine\n"})
    cli("add", "sub/x.bin")
    commit(repo, "x")
    # The folder is replaced by a link to a folder outside that holds a copy of the pointer.
    (outside / "x.bin.repro").write_bytes((repo / "sub/x.bin.repro").read_bytes())
    for name in ("x.bin", "x.bin.repro", ".gitignore"):
        (repo / "sub" / name).unlink()
    (repo / "sub").rmdir()
    os.symlink(outside, repo / "sub")
    line = _refused(cli, repo, "checkout", *(["--force"] if force else []), names=("sub",))
    assert "symlink" in line
    assert [p.name for p in outside.iterdir()] == ["x.bin.repro"]


@pytest.mark.parametrize("force", [False, True], ids=["checkout", "checkout --force"])
def test_checkout_refuses_to_write_through_a_symlink_inside_tracked_data(
    tracked: Path, cli: Cli, outside: Path, force: bool
) -> None:
    for file in (tracked / "data/sub").iterdir():
        file.unlink()
    (tracked / "data/sub").rmdir()
    os.symlink(outside, tracked / "data/sub")
    _refused(cli, tracked, "checkout", *(["--force"] if force else []), names=("data/sub",))
    assert list(outside.iterdir()) == []


# --- the cache ----------------------------------------------------------------------------


def _flip_bytes(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.chmod(path, 0o444)


def test_checkout_refuses_a_corrupt_cached_file_and_does_not_create_it(
    tracked: Path, cli: Cli
) -> None:
    oid = _pointer_oid(tracked, "model.bin.repro")
    _flip_bytes(_cache_file(tracked, oid))
    (tracked / "model.bin").unlink()
    _refused(cli, tracked, "checkout", names=(oid,))
    assert not (tracked / "model.bin").exists()


def test_checkout_refuses_a_corrupt_object_inside_a_folder_and_does_not_create_it(
    tracked: Path, cli: Cli
) -> None:
    oid = _oid(b"1,2\n")
    _flip_bytes(_cache_file(tracked, oid))
    (tracked / "data/a.csv").unlink()
    _refused(cli, tracked, "checkout", "data", names=(oid,))
    assert not (tracked / "data/a.csv").exists()


def test_checkout_refuses_a_corrupt_manifest(tracked: Path, cli: Cli) -> None:
    oid = _pointer_oid(tracked, "data.repro")
    _flip_bytes(_cache_file(tracked, oid))
    for path in sorted((tracked / "data").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tracked / "data").rmdir()
    _refused(cli, tracked, "checkout", names=(oid,))
    assert not (tracked / "data").exists()


def test_checkout_refuses_an_object_missing_from_the_cache(tracked: Path, cli: Cli) -> None:
    oid = _pointer_oid(tracked, "model.bin.repro")
    _cache_file(tracked, oid).unlink()
    (tracked / "model.bin").unlink()
    line = _refused(cli, tracked, "checkout", names=("model.bin", oid))
    assert "not in the cache" in line
    assert not (tracked / "model.bin").exists()


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["status"], ["add", "new.csv"], ["checkout"], ["commit"]], ids=" ".join
)
def test_an_unknown_option_in_the_tracked_config_is_refused(
    tracked: Path, cli: Cli, command: list[str]
) -> None:
    (tracked / "new.csv").write_text("1\n")
    config = tracked / ".repro/config.yaml"
    config.write_text(config.read_text() + "  bogus: 1\n")
    _refused(cli, tracked, *command, names=(".repro/config.yaml", "core.bogus"))


def test_an_unknown_option_in_the_local_config_is_refused(tracked: Path, cli: Cli) -> None:
    (tracked / ".repro/config.local.yaml").write_text("cache:\n  colour: red\n")
    _refused(cli, tracked, "status", names=(".repro/config.local.yaml", "cache.colour"))


def test_an_unknown_link_type_is_refused(tracked: Path, cli: Cli) -> None:
    (tracked / ".repro/config.local.yaml").write_text("cache:\n  type: teleport\n")
    (tracked / "model.bin").unlink()
    _refused(cli, tracked, "checkout", names=(".repro/config.local.yaml", "teleport"))


@pytest.mark.parametrize("command", [["status"], ["add", "new.csv"]], ids=" ".join)
def test_cache_dir_in_the_tracked_config_is_refused(
    tracked: Path, cli: Cli, tmp_path: Path, command: list[str]
) -> None:
    (tracked / "new.csv").write_text("1\n")
    elsewhere = tmp_path / "elsewhere"
    config = tracked / ".repro/config.yaml"
    config.write_text(config.read_text() + f"cache:\n  dir: {elsewhere}\n")
    line = _refused(cli, tracked, *command, names=(".repro/config.yaml", "cache.dir"))
    assert "tracked" in line
    assert not elsewhere.exists()


def test_a_malformed_config_is_refused_naming_its_line(tracked: Path, cli: Cli) -> None:
    config = tracked / ".repro/config.yaml"
    config.write_text(config.read_text() + "core:\n  autostage: false\n")
    _refused(cli, tracked, "status", names=(".repro/config.yaml:4", "duplicate"))


# --- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_a_bad_dash_c_directory_is_refused(repo: Path, cli: Cli, kind: str) -> None:
    target = repo / "nowhere"
    if kind == "a file":
        target.write_text("x\n")
    _refused(cli, repo, "-C", str(target), "status", names=("-C", str(target)))
    assert Path.cwd() == repo


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["frobnicate"], "frobnicate"),
        (["add", "--bogus", "x"], "--bogus"),
        (["--bogus", "status"], "--bogus"),
        (["status", "--check=maybe"], "--check"),
        (["add"], "Missing argument"),
    ],
    ids=[
        "unknown command",
        "unknown flag",
        "unknown global flag",
        "flag with a value",
        "missing argument",
    ],
)
def test_the_command_line_framework_refuses_bad_usage_with_exit_2(
    repo: Path, cli: Cli, args: list[str], named: str
) -> None:
    (repo / "x").write_text("1\n")
    before = _state(repo)
    result = cli(*args, expect=2)
    assert named.lower() in result.stderr.lower()
    assert result.stdout == ""
    assert _state(repo) == before


def _invoke(*args: str) -> Result:
    from reprocli.cli.app import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize(
    "flags", [[], ["-q"], ["-v"], ["add", "-v"]], ids=["plain", "-q", "-v", "add -v"]
)
def test_an_error_shows_no_traceback_below_vv(repo: Path, flags: list[str]) -> None:
    args = [*flags, "nope.csv"] if flags[:1] == ["add"] else [*flags, "add", "nope.csv"]
    result = _invoke(*args)
    _error_line(result, "nope.csv")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args", [["-vv", "add", "nope.csv"], ["add", "-vv", "nope.csv"]], ids=" ".join
)
def test_vv_adds_a_traceback_before_the_error_line(repo: Path, args: list[str]) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "UsageError" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: nope.csv: no such file or directory"]
    assert result.stderr.index("Traceback") < result.stderr.index("error: ")


def test_an_internal_error_is_one_line_and_a_traceback_only_with_v(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprocli.operations import status as status_module

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(status_module, "status", explode)
    quiet = _invoke("status")
    line = _error_line(quiet)
    assert "internal error" in line and "RuntimeError" in line
    assert "Traceback" not in quiet.stderr
    loud = _invoke("-v", "status")
    assert loud.exit_code == 2
    assert "Traceback (most recent call last)" in loud.stderr
    assert "RuntimeError: boom" in loud.stderr
