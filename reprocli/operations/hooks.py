"""`repro hooks install|uninstall`: Git hooks that keep data in step with Git.

- post-checkout, post-merge, post-rewrite → `repro checkout` (data follows `git checkout`,
  `git pull`, a finished rebase);
- pre-push → `repro push` (data reaches the remote before the commits that name it);
- pre-commit → `repro status --check` (no commit whose pointers disagree with the data).

Hooks go where Git runs them: `git rev-parse --git-path hooks`, which honours
`core.hooksPath` and, in a linked worktree, names the common hooks folder. Each stub is a
few lines of sh carrying a marker line, so that install upgrades its own stubs and never
touches anybody else's: a hook already there is renamed `<hook>.pre-repro` and run first,
with the same arguments and standard input, and `uninstall` puts it back.

What a hook does is decided in Python (`decide`), by `repro hooks run HOOK ARGS...`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reprocli.core import atomic, folders, gitrepo, yamlio
from reprocli.errors import InvalidFileError, UsageError
from reprocli.project import Project

MARKER = "# installed by repro, hook format 1"
CHAINED = ".pre-repro"
HOOKS = {
    "pre-commit": "status",
    "pre-push": "push",
    "post-checkout": "checkout",
    "post-merge": "checkout",
    "post-rewrite": "checkout",
}
READS_STDIN = {"pre-push", "post-rewrite"}
SKIP_ENV = "REPRO_NO_HOOKS"

Action = Literal["status", "push", "checkout"]


@dataclass(frozen=True, slots=True)
class HookChange:
    """What install or uninstall did to one hook file."""

    hook: str
    path: Path
    action: str  # installed, upgraded, chained, removed, restored, absent, foreign


def hooks_dir(project: Project) -> Path:
    """Where Git looks for this repository's hooks."""
    if project.git is None:
        raise UsageError("hooks need Git (this project was made with --no-scm)")
    rel = project.git.run("rev-parse", "--git-path", "hooks").strip()
    return (project.root / rel).absolute()


def stub(hook: str, python: str = sys.executable) -> str:
    """The hook script: run the chained hook first, then `repro hooks run HOOK`."""
    py = shlex.quote(python)
    lines = [
        "#!/bin/sh",
        MARKER,
        "# `repro hooks uninstall` removes it and restores the hook it replaced, if any.",
        f'chained="$0{CHAINED}"',
    ]
    if hook in READS_STDIN:
        lines += [
            'input=$(mktemp "${TMPDIR:-/tmp}/repro-hook.XXXXXX") || exit 2',
            "trap 'rm -f \"$input\"' EXIT",
            'cat > "$input"',
            'if [ -x "$chained" ]; then "$chained" "$@" < "$input" || exit $?; fi',
        ]
    else:
        lines.append('if [ -x "$chained" ]; then "$chained" "$@" || exit $?; fi')
    lines += [
        f'[ -n "${gitrepo.HOOK_GUARD}" ] && exit 0  # repro ran this git: it handles the data',
        f'[ "${SKIP_ENV}" = 1 ] && exit 0',
        f"if [ -x {py} ] && {py} -c 'import reprocli' 2>/dev/null; then",
        f'    {py} -m reprocli hooks run {hook} "$@"',
        "elif command -v repro >/dev/null 2>&1; then",
        f'    repro hooks run {hook} "$@"',
        "else",
        f'    echo "repro {hook} hook: repro is not installed (pip install repro, or repro hooks uninstall)" >&2',
        "    exit 2" if hook in ("pre-push", "pre-commit") else "    exit 0",
        "fi",
    ]
    return "\n".join(lines) + "\n"


def is_ours(path: Path) -> bool:
    """Whether the hook file at `path` was written by repro."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return MARKER.encode() in head


def install(project: Project, hooks: Sequence[str] = tuple(HOOKS)) -> list[HookChange]:
    """Install the stubs, chaining any foreign hook already there (idempotent).

    Safe to kill at any point: a foreign hook is first linked (or copied) to HOOK.pre-repro,
    then the stub, already executable, is renamed over HOOK; so HOOK is always the old hook
    or the new stub, and running install again completes an interrupted one."""
    folder = hooks_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    project.tmp_dir.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temps(folder)  # a killed install's copy of a foreign hook
    for hook in hooks:  # every refusal before the first change
        path = folder / hook
        chained = folder / (hook + CHAINED)
        if (
            os.path.lexists(path)
            and not is_ours(path)
            and os.path.lexists(chained)
            and not _same_hook(path, chained)
        ):
            raise UsageError(
                f"{path}: a hook is there and so is {chained.name}; refusing to overwrite either",
                hint=f"merge them by hand, or remove {chained}",
            )
    changes = []
    for hook in hooks:
        path = folder / hook
        chained = folder / (hook + CHAINED)
        if os.path.lexists(path) and not is_ours(path):
            if not os.path.lexists(chained):  # else an interrupted install already kept it
                _keep_foreign(path, chained)
            action = "chained"
        else:
            action = "upgraded" if os.path.lexists(path) else "installed"
        atomic.write_bytes(
            path, stub(hook).encode(), tmp_dir=project.tmp_dir, mode=0o755, exact_mode=True
        )
        changes.append(HookChange(hook, path, action))
    return changes


def _keep_foreign(path: Path, chained: Path) -> None:
    """Give the foreign hook at `path` its second name `chained`, without moving it away:
    a hard link, or where there are none a copy (mode and times kept) published by rename."""
    try:
        os.link(path, chained, follow_symlinks=False)
        return
    except FileExistsError as exc:  # appeared since install looked: never overwrite it
        raise atomic.storage_error(exc, "cannot keep the hook", path) from exc
    except OSError:
        pass  # no hard link here (some network and FUSE mounts, protected_hardlinks): copy
    tmp = path.parent / atomic.temp_name()
    try:
        shutil.copy2(path, tmp, follow_symlinks=False)  # a symlink stays a symlink
        if not tmp.is_symlink():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.rename(tmp, chained)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise atomic.storage_error(exc, "cannot keep the hook", path) from exc


def _same_hook(path: Path, chained: Path) -> bool:
    """Whether `chained` is what `_keep_foreign` made of the hook at `path` (an install killed
    before its stub replaced the hook): the same file, or a copy with the same mode and bytes."""
    try:
        a, b = os.lstat(path), os.lstat(chained)
        if os.path.samestat(a, b):
            return True
        if a.st_mode != b.st_mode:
            return False
        if stat.S_ISLNK(a.st_mode):
            return os.readlink(path) == os.readlink(chained)
        return stat.S_ISREG(a.st_mode) and path.read_bytes() == chained.read_bytes()
    except OSError:
        return False


def uninstall(project: Project, hooks: Sequence[str] = tuple(HOOKS)) -> list[HookChange]:
    """Remove repro's stubs and put back the hooks they replaced; leave foreign hooks alone."""
    folder = hooks_dir(project)
    changes = []
    for hook in hooks:
        path = folder / hook
        chained = folder / (hook + CHAINED)
        if not os.path.lexists(path):
            changes.append(HookChange(hook, path, "absent"))
            continue
        if not is_ours(path):
            changes.append(HookChange(hook, path, "foreign"))
            continue
        if os.path.lexists(chained):
            os.replace(chained, path)
            changes.append(HookChange(hook, path, "restored"))
        else:
            path.unlink()
            changes.append(HookChange(hook, path, "removed"))
    return changes


def decide(root: Path, hook: str, args: Sequence[str], env: Mapping[str, str]) -> Action | None:
    """What `repro hooks run HOOK ARGS` should do here, or None to do nothing.

    Nothing when repro itself ran the git command, when REPRO_NO_HOOKS=1, for a
    post-checkout of files (flag 0) or onto the same commit (a new branch), and for a
    post-checkout while a rebase, merge or cherry-pick is under way (its intermediate
    checkouts are not states the user asked for; post-rewrite and post-merge, which Git runs
    when the operation completes, bring the data along)."""
    if hook not in HOOKS:
        raise UsageError(f"unknown hook {hook!r} (known: {', '.join(HOOKS)})")
    if env.get(gitrepo.HOOK_GUARD) or env.get(SKIP_ENV) == "1":
        return None
    if hook == "post-checkout" and not args:
        # Run by the pre-commit tool, which passes Git's arguments in the environment and
        # uses this one hook id for post-checkout, post-merge and post-rewrite.
        if env.get("PRE_COMMIT_REWRITE_COMMAND") or "PRE_COMMIT_IS_SQUASH_MERGE" in env:
            return "checkout"
        old, new = env.get("PRE_COMMIT_FROM_REF", ""), env.get("PRE_COMMIT_TO_REF", "")
        flag = env.get("PRE_COMMIT_CHECKOUT_TYPE", "1")
        args = [old, new, flag] if old and new else ["unknown-from", "unknown-to", flag]
    if hook == "post-checkout":
        flag = args[2] if len(args) >= 3 else env.get("PRE_COMMIT_CHECKOUT_TYPE", "1")
        if flag != "1":
            return None
        if len(args) >= 2 and args[0] == args[1]:
            return None  # `git checkout -b new`: same commit, same pointers, nothing to do
        if _in_progress(root):
            return None  # post-merge / post-rewrite run once it has finished
    return HOOKS[hook]  # type: ignore[return-value]


def _in_progress(root: Path) -> bool:
    """Whether a rebase, merge or cherry-pick is under way in the repository at `root`."""
    repo = gitrepo.GitRepo(root)
    git_dir = root / repo.run("rev-parse", "--git-dir").strip()
    return any(
        (git_dir / name).exists()
        for name in ("rebase-merge", "rebase-apply", "MERGE_HEAD", "CHERRY_PICK_HEAD")
    )


PRE_COMMIT_CONFIG = ".pre-commit-config.yaml"
_HOOK_IDS = ("repro-status", "repro-push", "repro-checkout")


def pre_commit_block(indent: str) -> str:
    """The `repo: local` entry running repro's hooks with the repro already installed."""
    entries = [
        ("repro-status", "repro status --check", "repro status --check", "[pre-commit]"),
        ("repro-push", "repro push", "repro push", "[pre-push]"),
        (
            "repro-checkout",
            "repro checkout",
            "repro hooks run post-checkout",
            "[post-checkout, post-merge, post-rewrite]",
        ),
    ]
    lines = [f"{indent}- repo: local", f"{indent}  hooks:"]
    for hook_id, name, entry, stages in entries:
        lines += [
            f"{indent}    - id: {hook_id}",
            f"{indent}      name: {name}",
            f"{indent}      entry: {entry}",
            f"{indent}      language: system",
            f"{indent}      pass_filenames: false",
            f"{indent}      always_run: true",
            f"{indent}      require_serial: true",
            f"{indent}      stages: {stages}",
        ]
    return "\n".join(lines) + "\n"


def configure_pre_commit(project: Project) -> tuple[Path, bool]:
    """Add repro's hooks to the project's .pre-commit-config.yaml (kept as written: the block
    is inserted as text, so comments and layout survive); return (file, whether it changed)."""
    path = project.root / PRE_COMMIT_CONFIG
    project.tmp_dir.mkdir(parents=True, exist_ok=True)
    header = (
        "# repro's hooks; install them with:\n"
        "#   pre-commit install --hook-type pre-commit --hook-type pre-push "
        "--hook-type post-checkout --hook-type post-merge --hook-type post-rewrite\n"
    )
    try:  # never through a link: its target's bytes would land in a tracked file
        text = folders.read_bytes(project.root, PRE_COMMIT_CONFIG, limit=yamlio.MAX_BYTES).decode()
    except FileNotFoundError:
        folders.write_bytes(
            project.root,
            PRE_COMMIT_CONFIG,
            (header + "repos:\n" + pre_commit_block("  ")).encode(),
            tmp_dir=project.tmp_dir,
        )
        return path, True
    except UnicodeDecodeError:
        raise InvalidFileError(f"{PRE_COMMIT_CONFIG}: is not UTF-8 text") from None
    value, root = yamlio.compose(text.encode(), where=PRE_COMMIT_CONFIG)
    if value is None:
        value = {}
    if not isinstance(value, dict) or not isinstance(value.get("repos") or [], list):
        raise InvalidFileError(f"{PRE_COMMIT_CONFIG}: expected a mapping with a `repos:` list")
    present: set[str] = set()
    for repo in value.get("repos") or []:
        hooks = repo.get("hooks") if isinstance(repo, dict) else None
        if hooks is not None and not isinstance(hooks, list):
            raise InvalidFileError(f"{PRE_COMMIT_CONFIG}: a repo's `hooks:` must be a list")
        for hook in hooks or []:
            hook_id = hook.get("id") if isinstance(hook, dict) else None
            if not isinstance(hook_id, str | None):
                raise InvalidFileError(f"{PRE_COMMIT_CONFIG}: a hook's `id:` must be text")
            present.add(hook_id or "")
    if present.issuperset(_HOOK_IDS):
        return path, False
    if text and not text.endswith("\n"):
        text += "\n"
    lines = text.splitlines(keepends=True)
    seq = yamlio.child(root, "repos")
    if (
        seq is None
        or (yamlio.is_flow(seq) and not value.get("repos"))
        or not yamlio.is_sequence(seq)
    ):
        if seq is not None:  # `repos: []` or a bare `repos:`: our block becomes the list
            key_line = seq.start_mark.line
            line = lines[key_line]
            rest = line[seq.end_mark.column :] if seq.end_mark.line == key_line else "\n"
            head = line[: seq.start_mark.column].rstrip()
            lines[key_line] = head + (rest if rest.strip() else "\n")
            at = key_line + 1
        else:
            lines.append("repos:\n")
            at = len(lines)
        lines[at:at] = [pre_commit_block("  ")]
    elif yamlio.is_flow(seq):
        raise UsageError(
            f"{PRE_COMMIT_CONFIG}: `repos:` is written as an inline list; "
            "repro will not rewrite it",
            hint="add the entries `repro hooks install --pre-commit-tool` writes by hand "
            "(see docs/ci.md)",
        )
    else:
        indent = " " * seq.start_mark.column
        end = seq.end_mark
        at = end.line if end.column == 0 else end.line + 1
        lines[at:at] = [pre_commit_block(indent)]
    new = "".join(lines)
    folders.write_bytes(project.root, PRE_COMMIT_CONFIG, new.encode(), tmp_dir=project.tmp_dir)
    return path, True
