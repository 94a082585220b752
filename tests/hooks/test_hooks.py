"""`repro hooks install|uninstall|run` driven by real Git (ECOSYSTEM §1–2, DESIGN §2).

Hooks are installed in-process (so the stubs name this interpreter, `sys.executable`), then
`git checkout`, `git commit`, `git push`, `git worktree add`, `git merge` and `git rebase`
run as subprocesses and fire them exactly as they would for a user. What the tests observe
(data bytes, hook files, a bare repository, a directory remote, log files written by
foreign hooks) is read without going through repro.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import xxhash
import yaml

from reprocli.core.gitrepo import HOOK_GUARD
from reprocli.errors import UsageError
from reprocli.operations import hooks as hooks_op
from tests.builders import commit, git, make_tree, read_tree
from tests.conftest import Cli

PY = sys.executable
PRE_COMMIT = str(Path(PY).with_name("pre-commit"))
THIS_CHECKOUT = Path(__file__).resolve().parents[2]
ALL_HOOKS = ("pre-commit", "pre-push", "post-checkout", "post-merge", "post-rewrite")
ZERO = "0" * 40

V1: dict[str, bytes] = {"a.bin": b"\x00\x01v1" * 100, "sub/b.txt": b"b1\n"}
V2: dict[str, bytes] = {"a.bin": b"\x00\x02v2" * 100, "c.txt": b"c2\n"}


# --- helpers ------------------------------------------------------------------------------


def run_git(
    root: Path,
    *args: str,
    expect: int | None = 0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run git (and so its hooks) in `root`; check the exit code and that no hook crashed."""
    result = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    if expect is not None:
        assert result.returncode == expect, (
            f"git {' '.join(args)}: exit {result.returncode}, expected {expect}\n{output}"
        )
    return result


def hooks_dir(root: Path) -> Path:
    """Where Git itself says this work tree's hooks are."""
    rel = git(root, "rev-parse", "--git-path", "hooks").strip()
    return (root / rel).resolve()


def data(root: Path) -> dict[str, bytes]:
    return read_tree(root / "data")


def set_data(root: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(root / "data", ignore_errors=True)
    make_tree(root / "data", dict(files))


def make_versions(root: Path, cli: Cli) -> None:
    """`data/` tracked by repro: V1 committed and tagged v1, then V2 on main, tagged v2."""
    set_data(root, V1)
    cli("add", "data")
    commit(root, "data v1")
    git(root, "tag", "v1")
    set_data(root, V2)
    cli("commit")
    commit(root, "data v2")
    git(root, "tag", "v2")
    assert data(root) == V2


def install_json(cli: Cli) -> dict[str, str]:
    """`repro hooks install --json` as {hook: action}."""
    doc = json.loads(cli("hooks", "install", "--json").stdout)
    return {entry["hook"]: entry["action"] for entry in doc["hooks"]}


def object_path(store: Path, content: bytes) -> Path:
    oid = xxhash.xxh3_128_hexdigest(content)
    return store / "objects" / oid[:2] / oid[2:]


def write_hook(path: Path, body: str) -> bytes:
    """An executable sh script; returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path.read_bytes()


@pytest.fixture
def versioned(repo: Path, cli: Cli) -> Path:
    """The `repo` fixture with two data versions (no hooks yet)."""
    make_versions(repo, cli)
    return repo


@pytest.fixture
def hooked(versioned: Path, cli: Cli) -> Path:
    """`versioned` with repro's hooks installed."""
    cli("hooks", "install")
    return versioned


@pytest.fixture
def origin(versioned: Path, tmp_path: Path) -> Path:
    """A bare repository added as the Git remote `origin`."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(versioned, "remote", "add", "origin", str(bare))
    return bare


@pytest.fixture
def logged(hooked: Path, tmp_path: Path) -> Iterator[Path]:
    """Stubs that log each time they start Python (a wrapper around this interpreter);
    yields the log file."""
    log = tmp_path / "python-calls.log"
    wrapper = tmp_path / "bin" / "logging-python"
    write_hook(wrapper, f'echo "$*" >> {shlex.quote(str(log))}\nexec {shlex.quote(PY)} "$@"\n')
    for hook in ALL_HOOKS:
        path = hooks_dir(hooked) / hook
        text = path.read_text()
        assert shlex.quote(PY) in text
        path.write_text(text.replace(shlex.quote(PY), shlex.quote(str(wrapper))))
    log.write_text("")
    yield log


# --- install, uninstall, upgrade ----------------------------------------------------------


def test_install_writes_executable_stubs_where_git_looks(versioned: Path, cli: Cli) -> None:
    assert install_json(cli) == dict.fromkeys(ALL_HOOKS, "installed")
    folder = hooks_dir(versioned)
    assert folder == (versioned / ".git" / "hooks").resolve()
    for hook in ALL_HOOKS:
        path = folder / hook
        text = path.read_text()
        assert text.startswith("#!/bin/sh\n")
        assert hooks_op.MARKER in text
        assert f"{shlex.quote(PY)} -m reprocli hooks run {hook}" in text
        assert os.stat(path).st_mode & 0o111 == 0o111
        subprocess.run(["sh", "-n", str(path)], check=True)  # valid sh
    assert not list(folder.glob("*" + hooks_op.CHAINED))
    assert git(versioned, "status", "--porcelain") == ""


def test_reinstall_upgrades_its_own_stubs_and_chains_nothing(versioned: Path, cli: Cli) -> None:
    cli("hooks", "install")
    folder = hooks_dir(versioned)
    first = {hook: (folder / hook).read_bytes() for hook in ALL_HOOKS}
    # an older stub of ours: same marker, different body
    (folder / "pre-push").write_text(f"#!/bin/sh\n{hooks_op.MARKER}\nexec repro-old pre-push\n")

    assert install_json(cli) == dict.fromkeys(ALL_HOOKS, "upgraded")
    assert {hook: (folder / hook).read_bytes() for hook in ALL_HOOKS} == first
    assert not list(folder.glob("*" + hooks_op.CHAINED))


def test_reinstall_keeps_the_chained_hook_not_our_stub(versioned: Path, cli: Cli) -> None:
    folder = hooks_dir(versioned)
    original = write_hook(folder / "pre-commit", "exit 0\n")
    assert install_json(cli)["pre-commit"] == "chained"
    assert install_json(cli)["pre-commit"] == "upgraded"
    assert (folder / "pre-commit.pre-repro").read_bytes() == original
    assert sorted(p.name for p in folder.glob("*" + hooks_op.CHAINED)) == ["pre-commit.pre-repro"]

    cli("hooks", "uninstall")
    assert (folder / "pre-commit").read_bytes() == original


def test_uninstall_restores_the_replaced_hook_byte_exact(versioned: Path, cli: Cli) -> None:
    folder = hooks_dir(versioned)
    original = b"#!/bin/sh\r\n# user's hook, CRLF and no final newline\r\nexit 0"
    (folder / "post-checkout").write_bytes(original)
    os.chmod(folder / "post-checkout", 0o700)
    (folder / "pre-rebase").write_bytes(b"#!/bin/sh\nexit 0\n")  # not one of ours

    assert install_json(cli)["post-checkout"] == "chained"
    doc = json.loads(cli("hooks", "uninstall", "--json").stdout)
    actions = {entry["hook"]: entry["action"] for entry in doc["hooks"]}
    assert actions == {**dict.fromkeys(ALL_HOOKS, "removed"), "post-checkout": "restored"}

    assert (folder / "post-checkout").read_bytes() == original
    assert stat.S_IMODE(os.stat(folder / "post-checkout").st_mode) == 0o700
    assert (folder / "pre-rebase").read_bytes() == b"#!/bin/sh\nexit 0\n"
    for hook in ALL_HOOKS:
        if hook != "post-checkout":
            assert not (folder / hook).exists()
    assert not list(folder.glob("*" + hooks_op.CHAINED))

    doc = json.loads(cli("hooks", "uninstall", "--json").stdout)
    assert {e["hook"]: e["action"] for e in doc["hooks"]} == {
        **dict.fromkeys(ALL_HOOKS, "absent"),
        "post-checkout": "foreign",
    }
    assert (folder / "post-checkout").read_bytes() == original


def test_install_refuses_when_hook_and_pre_repro_both_exist(versioned: Path, cli: Cli) -> None:
    folder = hooks_dir(versioned)
    hook = write_hook(folder / "pre-commit", "echo mine\n")
    chained = write_hook(folder / "pre-commit.pre-repro", "echo older\n")

    result = cli("hooks", "install", expect=2)
    assert "pre-commit.pre-repro" in result.stderr
    assert (folder / "pre-commit").read_bytes() == hook
    assert (folder / "pre-commit.pre-repro").read_bytes() == chained


def test_refused_install_changes_no_hook(versioned: Path, cli: Cli) -> None:
    folder = hooks_dir(versioned)
    mine = write_hook(folder / "pre-commit", "echo mine\n")
    write_hook(folder / "post-checkout", "echo mine\n")
    write_hook(folder / "post-checkout.pre-repro", "echo older\n")
    before = sorted(p.name for p in folder.iterdir())

    cli("hooks", "install", expect=2)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "pre-commit").read_bytes() == mine


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_core_hooks_path_is_honoured(versioned: Path, cli: Cli, tmp_path: Path, where: str) -> None:
    target = tmp_path / "shared-hooks" if where == "absolute" else versioned / ".githooks"
    value = str(target) if where == "absolute" else ".githooks"
    git(versioned, "config", "core.hooksPath", value)

    doc = json.loads(cli("hooks", "install", "--json").stdout)
    assert {Path(e["path"]).parent.resolve() for e in doc["hooks"]} == {target.resolve()}
    assert sorted(p.name for p in target.iterdir()) == sorted(ALL_HOOKS)
    assert not any((versioned / ".git" / "hooks" / hook).exists() for hook in ALL_HOOKS)

    run_git(versioned, "checkout", "-q", "v1")  # Git runs them from there
    assert data(versioned) == V1


# --- what the hooks do --------------------------------------------------------------------


def test_branch_checkout_brings_the_data_along(hooked: Path, cli: Cli) -> None:
    run_git(hooked, "checkout", "-q", "v1")
    assert data(hooked) == V1
    run_git(hooked, "checkout", "-q", "main")
    assert data(hooked) == V2
    run_git(hooked, "checkout", "-q", "-b", "old", "v1")
    assert data(hooked) == V1
    cli("status", "--check")


def test_file_checkout_leaves_the_data_alone(hooked: Path, cli: Cli) -> None:
    run_git(hooked, "checkout", "v1", "--", "data.repro")
    assert data(hooked) == V2  # post-checkout ran with flag 0: no data checkout
    cli("status", "--check", expect=1)
    cli("checkout")  # what the hook would have done: it would have made a difference
    assert data(hooked) == V1


def test_checkout_keeps_unrecorded_data_edits(hooked: Path) -> None:
    (hooked / "data" / "a.bin").write_bytes(b"edited")
    result = run_git(hooked, "checkout", "-q", "v1", expect=None)
    assert "data/a.bin" in result.stderr  # repro says what it left alone
    assert data(hooked)["a.bin"] == b"edited"


def test_new_branch_carries_unrecorded_data_edits_silently(hooked: Path) -> None:
    (hooked / "data" / "c.txt").write_text("edited\n")
    result = run_git(hooked, "checkout", "-q", "-b", "feature", expect=None)
    assert data(hooked) == {**V2, "c.txt": b"edited\n"}
    assert git(hooked, "branch", "--show-current").strip() == "feature"
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr


def test_missing_repro_blocks_push_but_not_checkout(
    versioned: Path, origin: Path, tmp_path: Path
) -> None:
    folder = hooks_dir(versioned)
    for hook in ALL_HOOKS:  # stubs whose interpreter is gone, with no `repro` on PATH
        write_hook(folder / hook, "")
        (folder / hook).write_text(hooks_op.stub(hook, python=str(tmp_path / "gone" / "python")))
    no_repro = {"PATH": os.pathsep.join(["/usr/bin", "/bin"])}
    assert shutil.which("repro", path=no_repro["PATH"]) is None

    result = run_git(versioned, "push", "-q", "origin", "main", env=no_repro, expect=1)
    assert "repro is not installed" in result.stderr
    assert git(origin, "branch", "--list") == ""
    result = run_git(versioned, "checkout", "-q", "v1", env=no_repro)
    assert "repro is not installed" in result.stderr
    assert data(versioned) == V2


def test_fast_forward_merge_brings_the_data_along(hooked: Path) -> None:
    run_git(hooked, "checkout", "-q", "-b", "behind", "v1")
    assert data(hooked) == V1
    run_git(hooked, "merge", "-q", "--ff-only", "main")  # post-merge
    assert data(hooked) == V2


def test_merge_commit_brings_the_data_along(hooked: Path, cli: Cli) -> None:
    run_git(hooked, "checkout", "-q", "-b", "topic", "v1")
    (hooked / "code.py").write_text("x = 1\n")
    git(hooked, "add", "code.py")
    run_git(hooked, "commit", "-q", "-m", "code")
    run_git(hooked, "merge", "-q", "--no-edit", "main")  # data.repro comes from main
    assert "data.repro" not in git(hooked, "diff", "--name-only", "main", "HEAD")
    assert data(hooked) == V2
    cli("status", "--check")


def test_rebase_brings_the_data_along(hooked: Path, cli: Cli) -> None:
    run_git(hooked, "checkout", "-q", "-b", "topic", "v1")
    (hooked / "code.py").write_text("x = 1\n")
    git(hooked, "add", "code.py")
    run_git(hooked, "commit", "-q", "-m", "code")
    assert data(hooked) == V1
    run_git(hooked, "rebase", "-q", "main")
    assert data(hooked) == V2
    cli("status", "--check")


def test_pre_commit_blocks_unrecorded_data_then_allows_it(hooked: Path, cli: Cli) -> None:
    head = git(hooked, "rev-parse", "HEAD")
    (hooked / "data" / "c.txt").write_text("edited\n")
    (hooked / "code.py").write_text("x = 1\n")
    git(hooked, "add", "code.py")

    blocked = run_git(hooked, "commit", "-m", "edit", expect=1)
    assert "data" in blocked.stdout + blocked.stderr
    assert git(hooked, "rev-parse", "HEAD") == head

    cli("commit")
    run_git(hooked, "commit", "-q", "-m", "edit")
    assert git(hooked, "rev-parse", "HEAD") != head
    assert set(git(hooked, "show", "--name-only", "--format=", "HEAD").split()) == {
        "code.py",
        "data.repro",
    }


def test_pre_push_pushes_data_to_the_default_remote(
    hooked: Path, origin: Path, cli: Cli, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    cli("remote", "add", "-d", "store", str(store))
    commit(hooked, "remote")
    assert not store.exists()

    run_git(hooked, "push", "-q", "origin", "main")
    for content in V2.values():
        assert object_path(store, content).is_file()
    assert list(store.glob("objects/*/*.dir"))  # the directory's manifest too
    assert git(origin, "rev-parse", "main") == git(hooked, "rev-parse", "main")


def test_pre_push_without_default_remote_warns_and_lets_the_push_through(
    hooked: Path, origin: Path
) -> None:
    result = run_git(hooked, "push", "-q", "origin", "main")
    assert "no default remote" in result.stderr
    assert git(origin, "rev-parse", "main") == git(hooked, "rev-parse", "main")


def test_existing_hooks_run_first_with_the_same_arguments_and_stdin(
    versioned: Path, origin: Path, cli: Cli, tmp_path: Path
) -> None:
    folder = hooks_dir(versioned)
    store, log = tmp_path / "store", tmp_path / "user-hooks.log"
    qlog = shlex.quote(str(log))
    write_hook(
        folder / "pre-push",
        f'echo "pre-push args: $*" >> {qlog}\n'
        f'while read -r line; do echo "pre-push stdin: $line" >> {qlog}; done\n'
        f'echo "pre-push objects so far: $(find {shlex.quote(str(store))} -type f 2>/dev/null | wc -l)" >> {qlog}\n',
    )
    write_hook(
        folder / "post-checkout",
        f'echo "post-checkout args: $*" >> {qlog}\n'
        f'echo "post-checkout c.txt: $(cat data/c.txt 2>/dev/null || echo gone)" >> {qlog}\n',
    )
    actions = install_json(cli)
    assert actions["pre-push"] == actions["post-checkout"] == "chained"
    cli("remote", "add", "-d", "store", str(store))
    commit(versioned, "remote")
    main = git(versioned, "rev-parse", "main").strip()

    run_git(versioned, "push", "-q", "origin", "main")
    assert object_path(store, V2["a.bin"]).is_file()  # repro pushed after the user's hook
    lines = log.read_text().splitlines()
    assert lines == [
        f"pre-push args: origin {origin}",
        f"pre-push stdin: refs/heads/main {main} refs/heads/main {ZERO}",
        "pre-push objects so far: 0",  # ran before repro push
    ]

    log.write_text("")
    v1 = git(versioned, "rev-parse", "v1^{commit}").strip()
    run_git(versioned, "checkout", "-q", "v1")
    assert log.read_text().splitlines() == [
        f"post-checkout args: {main} {v1} 1",
        "post-checkout c.txt: c2",  # data not yet checked out: the user's hook ran first
    ]
    assert data(versioned) == V1


def test_a_failing_existing_hook_blocks_commit_and_push(
    versioned: Path, origin: Path, cli: Cli, tmp_path: Path
) -> None:
    folder = hooks_dir(versioned)
    write_hook(folder / "pre-commit", "echo 'user: no' >&2\nexit 3\n")
    write_hook(folder / "pre-push", "cat >/dev/null\necho 'user: no push' >&2\nexit 1\n")
    cli("hooks", "install")
    store = tmp_path / "store"
    cli("remote", "add", "-d", "store", str(store))
    head = git(versioned, "rev-parse", "HEAD")

    result = run_git(versioned, "commit", "-q", "-am", "remote", expect=1)
    assert "user: no" in result.stderr
    assert git(versioned, "rev-parse", "HEAD") == head

    result = run_git(versioned, "push", "-q", "origin", "main", expect=1)
    assert "user: no push" in result.stderr
    assert not store.exists()  # repro push never ran
    assert git(origin, "branch", "--list") == ""


def test_linked_worktree_uses_the_common_hooks_and_syncs_its_own_data(
    git_repo: Path, cli: Cli, tmp_path: Path
) -> None:
    # one cache for both work trees (cache.dir is honoured from untracked config only)
    make_tree(
        tmp_path / "home" / "repro-global",
        {"config.yaml": f"version: 1\ncache:\n  dir: {tmp_path / 'shared-cache'}\n"},
    )
    cli("init")
    commit(git_repo, "init")
    make_versions(git_repo, cli)
    cli("hooks", "install")
    run_git(git_repo, "checkout", "-q", "v1")
    assert data(git_repo) == V1

    wt = tmp_path / "wt"
    run_git(git_repo, "worktree", "add", "-q", str(wt), "main")  # post-checkout in wt
    assert data(wt) == V2
    assert data(git_repo) == V1
    assert hooks_dir(wt) == hooks_dir(git_repo)

    actions = json.loads(cli("-C", str(wt), "hooks", "install", "--json").stdout)["hooks"]
    assert {a["action"] for a in actions} == {"upgraded"}
    assert {Path(a["path"]).parent.resolve() for a in actions} == {hooks_dir(git_repo)}
    assert not (Path(git(wt, "rev-parse", "--absolute-git-dir").strip()) / "hooks").exists()

    run_git(wt, "checkout", "-q", "--detach", "v1")
    assert data(wt) == V1
    run_git(wt, "checkout", "-q", "main")
    assert data(wt) == V2
    assert data(git_repo) == V1


def test_repro_checkout_does_not_reenter_repro_from_the_hook(
    hooked: Path, cli: Cli, logged: Path
) -> None:
    run_git(hooked, "checkout", "-q", "v1")  # control: the logging stub does run repro
    assert "-m reprocli hooks run post-checkout" in logged.read_text()
    assert data(hooked) == V1

    logged.write_text("")
    cli("checkout", "main")  # runs `git checkout` with REPRO_RUNNING_GIT=1
    assert data(hooked) == V2
    assert logged.read_text() == ""


def test_repro_no_hooks_disables_every_hook(hooked: Path, cli: Cli, logged: Path) -> None:
    off = {"REPRO_NO_HOOKS": "1"}
    run_git(hooked, "checkout", "-q", "v1", env=off)
    assert data(hooked) == V2
    (hooked / "data" / "c.txt").write_text("edited\n")
    run_git(hooked, "commit", "-q", "--allow-empty", "-m", "unchecked", env=off)
    assert logged.read_text() == ""


def test_hooks_do_nothing_in_a_git_repository_without_repro(git_repo: Path) -> None:
    make_tree(git_repo, {"f.txt": "1\n"})
    git(git_repo, "add", "f.txt")
    git(git_repo, "commit", "-q", "-m", "one")
    for hook in ALL_HOOKS:  # repro's stubs, in a repository that never ran `repro init`
        write_hook(hooks_dir(git_repo) / hook, hooks_op.stub(hook).removeprefix("#!/bin/sh\n"))
    run_git(git_repo, "checkout", "-q", "-b", "other")
    (git_repo / "f.txt").write_text("2\n")
    run_git(git_repo, "commit", "-q", "-am", "two")
    assert not (git_repo / ".repro").exists()


# --- decide(): what `repro hooks run HOOK ARGS` does ---------------------------------------


@pytest.mark.parametrize(
    ("hook", "args", "env", "expected"),
    [
        ("post-checkout", ["a" * 40, "b" * 40, "1"], {}, "checkout"),
        ("post-checkout", ["a" * 40, "b" * 40, "0"], {}, None),
        ("post-checkout", [], {"PRE_COMMIT_CHECKOUT_TYPE": "1"}, "checkout"),
        ("post-checkout", [], {"PRE_COMMIT_CHECKOUT_TYPE": "0"}, None),
        ("post-merge", ["0"], {}, "checkout"),
        ("post-rewrite", ["amend"], {}, "checkout"),
        ("pre-commit", [], {}, "status"),
        ("pre-push", ["origin", "/x"], {}, "push"),
        ("pre-push", ["origin", "/x"], {"REPRO_NO_HOOKS": "1"}, None),
        ("pre-push", ["origin", "/x"], {"REPRO_NO_HOOKS": "0"}, "push"),
        ("post-checkout", ["a" * 40, "b" * 40, "1"], {"REPRO_NO_HOOKS": "1"}, None),
        ("post-checkout", ["a" * 40, "b" * 40, "1"], {HOOK_GUARD: "1"}, None),
        ("pre-commit", [], {HOOK_GUARD: "1"}, None),
    ],
)
def test_decide(
    git_repo: Path, hook: str, args: list[str], env: dict[str, str], expected: str | None
) -> None:
    assert hooks_op.decide(git_repo, hook, args, env) == expected


@pytest.mark.parametrize(
    "marker", ["rebase-merge/", "rebase-apply/", "MERGE_HEAD", "CHERRY_PICK_HEAD"]
)
def test_decide_does_nothing_while_a_rebase_or_merge_is_under_way(
    git_repo: Path, marker: str
) -> None:
    checkout_args = ["a" * 40, "b" * 40, "1"]
    assert hooks_op.decide(git_repo, "post-checkout", checkout_args, {}) == "checkout"
    path = git_repo / ".git" / marker.rstrip("/")
    if marker.endswith("/"):
        path.mkdir()
    else:
        path.write_text("0" * 40 + "\n")
    assert hooks_op.decide(git_repo, "post-checkout", checkout_args, {}) is None
    assert hooks_op.decide(git_repo, "post-checkout", ["a" * 40, "b" * 40, "0"], {}) is None
    # Git runs post-merge and post-rewrite once the operation has completed (MERGE_HEAD or
    # rebase-merge/ may still be there): they must bring the data along.
    assert hooks_op.decide(git_repo, "post-merge", ["0"], {}) == "checkout"
    assert hooks_op.decide(git_repo, "post-rewrite", ["rebase"], {}) == "checkout"
    assert hooks_op.decide(git_repo, "pre-push", ["origin", "/x"], {}) == "push"  # unaffected
    assert hooks_op.decide(git_repo, "pre-commit", [], {}) == "status"


def test_decide_rejects_an_unknown_hook(repo: Path, cli: Cli) -> None:
    with pytest.raises(UsageError):
        hooks_op.decide(repo, "pre-rebase", [], {})
    assert "unknown hook" in cli("hooks", "run", "pre-rebase", expect=2).stderr


def test_hooks_run_post_checkout_skips_file_checkouts_and_rebases(
    versioned: Path, cli: Cli
) -> None:
    git(versioned, "checkout", "-q", "v1")  # no hooks installed: data still V2
    assert data(versioned) == V2
    cli("hooks", "run", "post-checkout", "x" * 40, "y" * 40, "0")
    assert data(versioned) == V2
    (versioned / ".git" / "rebase-merge").mkdir()
    cli("hooks", "run", "post-checkout", "x" * 40, "y" * 40, "1")
    assert data(versioned) == V2
    (versioned / ".git" / "rebase-merge").rmdir()
    cli("hooks", "run", "post-checkout", "x" * 40, "y" * 40, "1")
    assert data(versioned) == V1


# --- --pre-commit-tool --------------------------------------------------------------------

INDENTED = """\
# project hooks
default_stages: [pre-commit]
repos:
  # lint and format
  - repo: https://github.com/astral-sh/ruff-pre-commit
    rev: v0.6.0
    hooks:
      - id: ruff  # lint
      - id: ruff-format

  - repo: https://github.com/pre-commit/pre-commit-hooks
    rev: v4.6.0
    hooks:
      - id: check-yaml
ci:
  skip: [ruff]  # no network there
"""

SAMPLE = """\
# See https://pre-commit.com for more information
# See https://pre-commit.com/hooks.html for more hooks
repos:
-   repo: https://github.com/pre-commit/pre-commit-hooks
    rev: v3.2.0
    hooks:
    -   id: trailing-whitespace
    -   id: end-of-file-fixer
"""

IDS = ["repro-status", "repro-push", "repro-checkout"]


def validate(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRE_COMMIT, "validate-config", str(root / ".pre-commit-config.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )


def hook_ids(root: Path) -> dict[str, list[str]]:
    """{repo: [hook ids]} of the project's .pre-commit-config.yaml."""
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    return {r["repo"]: [h["id"] for h in r["hooks"]] for r in config["repos"]}


def is_subsequence(lines: list[str], within: list[str]) -> bool:
    rest = iter(within)
    return all(line in rest for line in lines)


def test_pre_commit_tool_creates_the_config(repo: Path, cli: Cli) -> None:
    doc = json.loads(cli("hooks", "install", "--pre-commit-tool", "--json").stdout)
    path = repo / ".pre-commit-config.yaml"
    assert doc["changed"] is True and Path(doc["pre_commit_config"]) == path
    assert hook_ids(repo) == {"local": IDS}
    assert validate(repo).returncode == 0, validate(repo).stderr
    assert not any((hooks_dir(repo) / hook).exists() for hook in ALL_HOOKS)  # no .git/hooks

    before = path.read_bytes()
    assert "already runs repro's hooks" in cli("hooks", "install", "--pre-commit-tool").stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("existing", [INDENTED, SAMPLE], ids=["indented", "sample-config"])
def test_pre_commit_tool_inserts_into_an_existing_config(
    repo: Path, cli: Cli, existing: str
) -> None:
    path = repo / ".pre-commit-config.yaml"
    path.write_text(existing)
    before_ids = hook_ids(repo)

    cli("hooks", "install", "--pre-commit-tool")
    text = path.read_text()
    assert is_subsequence(existing.splitlines(), text.splitlines())  # comments and all kept
    assert hook_ids(repo) == {**before_ids, "local": IDS}
    result = validate(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    if existing is INDENTED:
        assert yaml.safe_load(text)["ci"] == {"skip": ["ruff"]}

    doc = json.loads(cli("hooks", "install", "--pre-commit-tool", "--json").stdout)
    assert doc["changed"] is False
    assert path.read_text() == text


def test_pre_commit_tool_sees_repros_hooks_from_another_repo(repo: Path, cli: Cli) -> None:
    existing = (
        "repos:\n  - repo: https://example.com/repro\n    rev: v0.1.0\n    hooks:\n"
        + "".join(f"      - id: {i}\n" for i in IDS)
    )
    (repo / ".pre-commit-config.yaml").write_text(existing)
    cli("hooks", "install", "--pre-commit-tool")
    assert (repo / ".pre-commit-config.yaml").read_text() == existing


def test_pre_commit_tool_handles_a_comment_before_an_unindented_list(repo: Path, cli: Cli) -> None:
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n# lint\n- repo: https://github.com/pre-commit/pre-commit-hooks\n"
        "  rev: v4.6.0\n  hooks:\n  - id: check-yaml\n"
    )
    cli("hooks", "install", "--pre-commit-tool")
    result = validate(repo)
    assert result.returncode == 0, result.stdout
    assert hook_ids(repo)["local"] == IDS


def test_pre_commit_tool_fills_an_empty_inline_repos_list(repo: Path, cli: Cli) -> None:
    (repo / ".pre-commit-config.yaml").write_text("repos: []  # none yet\n")
    cli("hooks", "install", "--pre-commit-tool")
    result = validate(repo)
    assert result.returncode == 0, result.stdout
    assert hook_ids(repo)["local"] == IDS
    assert "# none yet" in (repo / ".pre-commit-config.yaml").read_text()


def test_pre_commit_tool_refuses_to_rewrite_an_inline_repos_list(repo: Path, cli: Cli) -> None:
    existing = "repos: [{repo: meta, hooks: [{id: identity}]}]\n"
    (repo / ".pre-commit-config.yaml").write_text(existing)
    stderr = cli("hooks", "install", "--pre-commit-tool", expect=2).stderr
    assert stderr.startswith(
        "error: .pre-commit-config.yaml: `repos:` is written as an inline list"
    )
    assert (repo / ".pre-commit-config.yaml").read_text() == existing


# --- the real pre-commit tool -------------------------------------------------------------


def pre_commit(root: Path, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PRE_COMMIT, *args], cwd=root, capture_output=True, text=True, timeout=600, check=False
    )
    assert "Traceback" not in result.stdout + result.stderr
    if expect is not None:
        assert result.returncode == expect, result.stdout + result.stderr
    return result


def drive_pre_commit_stages(root: Path, cli: Cli, store: Path) -> None:
    """Commit the config, make two data versions, then exercise repro-status, repro-push and
    repro-checkout through the installed pre-commit."""
    git(root, "add", ".pre-commit-config.yaml")
    git(root, "commit", "-q", "-m", "pre-commit config")
    make_versions(root, cli)
    pre_commit(
        root,
        "install",
        "--hook-type",
        "pre-commit",
        "--hook-type",
        "pre-push",
        "--hook-type",
        "post-checkout",
    )
    assert "pre-commit" in (hooks_dir(root) / "post-checkout").read_text()

    # pre-commit stage: blocks unrecorded data, passes once recorded
    (root / "data" / "c.txt").write_text("edited\n")
    blocked = run_git(root, "commit", "-q", "--allow-empty", "-m", "edit", expect=1)
    assert "repro status --check" in blocked.stdout + blocked.stderr
    pre_commit(root, "run", "--all-files", "--hook-stage", "pre-commit", expect=1)
    cli("commit")
    run_git(root, "commit", "-q", "-m", "edit")
    v3 = {**V2, "c.txt": b"edited\n"}

    # post-checkout stage: branch checkouts move data, file checkouts do not
    run_git(root, "checkout", "-q", "v1")
    assert data(root) == V1
    run_git(root, "checkout", "-q", "main")
    assert data(root) == v3
    run_git(root, "checkout", "v1", "--", "data.repro")
    assert data(root) == v3
    # the same hook run by hand: pre-commit passes the flag as PRE_COMMIT_CHECKOUT_TYPE
    refs = ["--from-ref", "v1", "--to-ref", "HEAD", "--checkout-type", "1"]
    pre_commit(root, "run", "--hook-stage", "post-checkout", *refs)
    assert data(root) == V1
    git(root, "checkout", "-q", "HEAD", "--", "data.repro")
    cli("checkout")
    assert data(root) == v3

    # pre-push stage: data reaches the directory remote with the push
    cli("remote", "add", "-d", "store", str(store))
    run_git(root, "commit", "-q", "-am", "remote")
    bare = store.parent / "origin.git"
    git(root, "init", "-q", "--bare", str(bare))
    git(root, "remote", "add", "origin", str(bare))
    run_git(root, "push", "-q", "origin", "main")
    assert object_path(store, b"edited\n").is_file()
    assert git(bare, "rev-parse", "main") == git(root, "rev-parse", "main")


@pytest.fixture
def pre_commit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "pre-commit-home"
    monkeypatch.setenv("PRE_COMMIT_HOME", str(home))
    return home


def test_real_pre_commit_with_local_unsupported_hooks(
    repo: Path, cli: Cli, tmp_path: Path, pre_commit_home: Path
) -> None:
    """The three stages through pre-commit itself, running this interpreter (no install)."""
    repro = f"{shlex.quote(PY)} -m reprocli"
    hooks = [
        ("repro-status", "repro status --check", f"{repro} status --check", "[pre-commit]"),
        ("repro-push", "repro push", f"{repro} push", "[pre-push]"),
        ("repro-checkout", "repro checkout", f"{repro} hooks run post-checkout", "[post-checkout]"),
    ]
    config = "repos:\n  - repo: local\n    hooks:\n" + "".join(
        f"      - id: {i}\n        name: {n}\n        entry: {e}\n"
        "        language: unsupported\n        pass_filenames: false\n"
        f"        always_run: true\n        require_serial: true\n        stages: {s}\n"
        for i, n, e, s in hooks
    )
    (repo / ".pre-commit-config.yaml").write_text(config)
    assert validate(repo).returncode == 0
    drive_pre_commit_stages(repo, cli, tmp_path / "store")


@pytest.mark.slow
def test_real_pre_commit_with_this_checkout_as_hook_repository(
    repo: Path, cli: Cli, tmp_path: Path, pre_commit_home: Path
) -> None:
    """`.pre-commit-hooks.yaml` as published: pre-commit pip-installs repro at `rev`
    (this checkout's HEAD) into its own venv, from PyPI; slow and needs the network."""
    rev = git(THIS_CHECKOUT, "rev-parse", "HEAD").strip()
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {THIS_CHECKOUT}\n    rev: {rev}\n    hooks:\n"
        + "".join(f"      - id: {i}\n" for i in IDS)
    )
    started = time.monotonic()
    pre_commit(repo, "install-hooks")
    print(f"pre-commit install-hooks: {time.monotonic() - started:.1f} s")
    assert list(pre_commit_home.glob("repo*/py_env-*"))
    drive_pre_commit_stages(repo, cli, tmp_path / "store")


def test_decide_reads_the_pre_commit_tools_environment(git_repo: Path) -> None:
    """Under the pre-commit tool, one hook id serves post-checkout, post-merge and
    post-rewrite; Git's arguments arrive as PRE_COMMIT_* variables."""
    (git_repo / ".git" / "rebase-merge").mkdir()  # still there while post-rewrite runs
    rewrite = {"PRE_COMMIT_REWRITE_COMMAND": "rebase"}
    assert hooks_op.decide(git_repo, "post-checkout", [], rewrite) == "checkout"
    merge = {"PRE_COMMIT_IS_SQUASH_MERGE": "0"}
    assert hooks_op.decide(git_repo, "post-checkout", [], merge) == "checkout"
    (git_repo / ".git" / "rebase-merge").rmdir()
    same = {"PRE_COMMIT_FROM_REF": "a" * 40, "PRE_COMMIT_TO_REF": "a" * 40}
    assert hooks_op.decide(git_repo, "post-checkout", [], same) is None
    moved = {"PRE_COMMIT_FROM_REF": "a" * 40, "PRE_COMMIT_TO_REF": "b" * 40}
    assert hooks_op.decide(git_repo, "post-checkout", [], moved) == "checkout"
    files = {**moved, "PRE_COMMIT_CHECKOUT_TYPE": "0"}
    assert hooks_op.decide(git_repo, "post-checkout", [], files) is None
