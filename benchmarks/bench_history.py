#!/usr/bin/env python3
"""History benchmarks: `repro log`, `repro metrics show --all-commits`, `repro checkout REV --
PATH`, whole-tree `repro checkout REV` and `repro diff REV REV`, next to DVC and plain tools.

    python benchmarks/bench_history.py [--quick] [--dvc PATH] [--repeat N] [--workdir DIR]
                                       [--profile] [--keep] [--json FILE]

Two workloads (benchmarks/README.md, "History", explains them):

* ``history``: 500 commits (50 with --quick) of
  - a file tracked with ``repro add`` whose content changes at every commit (``repro commit``
    then ``git commit``), for ``repro log FILE``;
  - a one-stage pipeline (``repro.yaml``: a cached output ``model.bin`` and ``metrics:
    [metrics.json]``) re-run at every commit after a parameter changed (``repro run`` then
    ``git commit``), for ``repro log model.bin`` (a stage output recorded in repro.lock) and
    ``repro metrics show --all-commits``; the same pipeline as ``dvc.yaml``, built with ``dvc
    repro`` at every commit, for ``dvc metrics show --all-commits``.
  DVC has no ``log``; ``git log -p`` of the pointer (or of repro.lock) is shown as the floor.
* ``data``: 100,000 files × 1 KiB in 100 folders (10,000 with --quick), committed as three
  versions tagged v1, v1.2 (1 % of the files changed) and v2 (another 1 % changed, 0.1 %
  deleted, 0.1 % added), once with repro and once with DVC. Timed: restoring ``data`` from
  v1.2 after deleting it (``repro checkout v1.2 -- data`` / ``git checkout v1.2 -- data.dvc
  && dvc checkout data``) against ``cp -r`` of the same number of files; the whole-tree
  switch v2 → v1 and back (``repro checkout v1`` / ``git checkout v1 && dvc checkout``), and
  the same switch after deleting ``data``; ``repro diff v1 v2`` / ``dvc diff v1 v2``.

Building the histories is setup, never timed: every commit is made with the tools' own
commands. Every timed command is checked (versions listed, rows shown, files restored byte
for byte, changes reported), and ``sync`` runs (untimed) before each one, as in bench.py.
Run it with the Python that has reprocli installed when using --profile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pstats
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import (
    BLOCK,
    GIB,
    KIB,
    TOOL_ENV,
    BenchError,
    Results,
    Target,
    Tool,
    _at_most,
    _ratio,
    check_space,
    default_repro,
    dvc_tool,
    format_targets,
    log,
    machine_info,
    measure,
    repro_tool,
    source_id,
)

GIT_IDENTITY = ("-c", "user.name=repro bench", "-c", "user.email=bench@example.com")
BRANCH = "main"
SECONDS_TARGET = 2.0  # log and metrics show over 500 commits
CP_TARGET = 2.0  # checkout REV -- PATH within 2x of cp -r

TRAIN_SH = """\
seed=$(sed -n 's/^seed: //p' params.yaml)
printf 'model %s\\n' "$seed" > model.bin
printf '{"step": %s, "loss": %s.5}\\n' "$seed" "$seed" > metrics.json
"""
REPRO_YAML = """\
stages:
  train:
    cmd: sh train.sh
    deps: [train.sh]
    params: [seed]
    outs: [model.bin]
    metrics: [metrics.json]
"""
DVC_YAML = """\
stages:
  train:
    cmd: sh train.sh
    deps: [train.sh]
    params: [seed]
    outs: [model.bin]
    metrics:
    - metrics.json:
        cache: false
"""


# --- plumbing -------------------------------------------------------------------------------


def sh(argv: Sequence[str], cwd: Path) -> str:
    """Run an untimed setup command; fail loudly; return its stdout."""
    proc = subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise BenchError(
            f"`{' '.join(argv)}` in {cwd} exited with {proc.returncode}:\n"
            f"{proc.stdout}{proc.stderr}".strip()
        )
    return proc.stdout


def git(repo: Path, *args: str) -> str:
    return sh(["git", *GIT_IDENTITY, *args], repo)


def new_repo(path: Path, tool: Tool) -> Path:
    """An empty Git repository on branch `main`, initialised for `tool`."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", BRANCH)
    git(path, "config", "commit.gpgsign", "false")
    tool.init(path)
    return path


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def ensure_clean(repo: Path, what: str) -> None:
    """A history step must leave nothing unstaged or untracked behind."""
    dirty = git(repo, "status", "--porcelain")
    if dirty.strip():
        raise BenchError(f"{what}: the work tree is not clean after building:\n{dirty}")


@dataclass(frozen=True, slots=True)
class Timer:
    """Times commands into `results`, with the page cache warmed first unless `cold`.

    This VM pages out page cache that was not touched for about a minute (a DAMON `pageout`
    scheme: age ≥ 12 × 5 s), so files written or read a round earlier are read from disk
    again. Before each timed command the files it will read are read once, untimed (`warm`:
    the repository's .git, its cache, its data; or `rerun`: the same command run once);
    `--cold` skips that.
    """

    results: Results
    cold: bool = False

    def __call__(
        self,
        column: str,
        step: str,
        argv: Sequence[str],
        cwd: Path,
        *,
        warm: Sequence[Path] = (),
        rerun: bool = False,
    ) -> str:
        if not self.cold:
            if rerun:
                sh(argv, cwd)
            read_all(warm)
        return measure(self.results, column, step, argv, cwd)


def read_all(folders: Sequence[Path]) -> None:
    """Read every file under `folders` (missing ones are skipped) into the page cache."""
    for folder in folders:
        for parent, _, names in os.walk(folder):
            for name in names:
                with open(os.path.join(parent, name), "rb", buffering=0) as handle:
                    while handle.read(1 << 20):
                        pass


def tool_files(tool: Tool, repo: Path) -> list[Path]:
    """What a checkout or diff of `repo` reads: .git, the tool's cache, the data folder."""
    cache = repo / (".dvc" if tool.name == "dvc" else ".repro") / "cache"
    return [repo / ".git", cache, repo / "data"]


# --- the history workload -------------------------------------------------------------------


def build_file_history(repro: Tool, repo: Path, commits: int) -> None:
    """`repro add f.txt`, then `repro commit f.txt` + `git commit` after each change."""
    new_repo(repo, repro)
    target = repo / "f.txt"
    for i in range(commits):
        target.write_text(f"version {i}\n" + "x" * (i % 97) + "\n")
        sh(repro.argv("add" if i == 0 else "commit", "-q", "f.txt"), repo)
        commit(repo, f"f.txt version {i}")
        if i % 100 == 99:
            log(f"  [file history] {i + 1}/{commits} commits")
    ensure_clean(repo, "file history")


def build_pipeline_history(tool: Tool, repo: Path, commits: int) -> None:
    """A one-stage pipeline re-run at each commit with a new `seed` parameter."""
    new_repo(repo, tool)
    (repo / "train.sh").write_text(TRAIN_SH)
    is_dvc = tool.name == "dvc"
    if is_dvc:
        # With autostage, DVC 3.67 sometimes left the previous metrics.json in Git's index
        # with the new file's stat, so `git add -A` skipped it (4 of 500 commits had a stale
        # metrics.json while dvc.lock had the new one). Let Git alone stage here.
        sh(tool.argv("config", "core.autostage", "false"), repo)
    (repo / ("dvc.yaml" if is_dvc else "repro.yaml")).write_text(DVC_YAML if is_dvc else REPRO_YAML)
    rerun = ("repro", "-q") if is_dvc else ("run", "-q")
    for i in range(commits):
        (repo / "params.yaml").write_text(f"seed: {i}\n")
        sh(tool.argv(*rerun), repo)
        commit(repo, f"train with seed {i}")
        if i % 100 == 99:
            log(f"  [{tool.name} pipeline history] {i + 1}/{commits} commits")
    ensure_clean(repo, f"{tool.name} pipeline history")


def check_log(output: str, commits: int, what: str) -> None:
    versions = json.loads(output)["versions"]
    if len(versions) != commits:
        raise BenchError(f"{what}: {len(versions)} versions listed, expected {commits}")


def check_repro_metrics(output: str, commits: int) -> None:
    rows = json.loads(output)["revisions"]
    steps = sorted(row["metrics"]["metrics.json"]["step"] for row in rows if row["commit"])
    if len(rows) != commits + 1 or steps != list(range(commits)):
        raise BenchError(
            f"repro metrics show --all-commits: {len(rows)} rows (expected {commits + 1} with "
            f"the workspace), steps {steps[:5]}…"
        )


def check_dvc_metrics(output: str, commits: int) -> None:
    revs = json.loads(output)
    steps = sorted(
        rev["data"]["metrics.json"]["data"]["step"]
        for name, rev in revs.items()
        if name != "workspace"
    )
    if len(revs) != commits + 1 or steps != list(range(commits)):
        raise BenchError(
            f"dvc metrics show --all-commits: {len(revs)} revisions (expected {commits + 1}), "
            f"steps {steps[:5]}…"
        )


def bench_history(
    timed: Timer, tools: dict[str, Tool], repos: dict[str, Path], commits: int, repeat: int
) -> None:
    """`repro log` (file, stage output), `metrics show --all-commits`; each checked once, then
    timed `repeat` times, tools interleaved."""
    repro, dvc = tools["repro"], tools.get("dvc")
    files, pipe, dvc_pipe = repos["file"], repos["pipeline"], repos.get("dvc-pipeline")
    log_file = f"log f.txt ({commits} versions)"
    log_stage = f"log model.bin ({commits}, stage out)"
    metrics = f"metrics show --all-commits ({commits})"
    # Checked (and warmed up: bytecode, page cache) once, untimed.
    check_log(sh(repro.argv("log", "--json", "f.txt"), files), commits, "repro log f.txt")
    check_log(sh(repro.argv("log", "--json", "model.bin"), pipe), commits, "repro log model.bin")
    check_repro_metrics(sh(repro.argv("metrics", "show", "--all-commits", "--json"), pipe), commits)
    dvc_wrong = None  # reported after the rounds, so that repro's figures are not lost
    if dvc and dvc_pipe:
        output = sh(dvc.argv("metrics", "show", "--all-commits", "--json"), dvc_pipe)
        try:
            check_dvc_metrics(output, commits)
        except BenchError as exc:
            dvc_wrong = exc
    git_log = ["git", "log", "-p", "--format=%H %ct %an %s"]
    for round_ in range(1, repeat + 1):
        log(f"[history] round {round_}/{repeat}")
        timed("repro", log_file, repro.argv("log", "f.txt"), files, rerun=True)
        timed("baseline", log_file, [*git_log, "--", "f.txt.repro"], files, rerun=True)
        timed("repro", log_stage, repro.argv("log", "model.bin"), pipe, rerun=True)
        timed("baseline", log_stage, [*git_log, "--", "repro.lock"], pipe, rerun=True)
        timed("repro", metrics, repro.argv("metrics", "show", "--all-commits"), pipe, rerun=True)
        timed("baseline", metrics, [*git_log, "--", "metrics.json"], pipe, rerun=True)
        if dvc and dvc_pipe:
            argv = dvc.argv("metrics", "show", "--all-commits")
            timed("dvc", metrics, argv, dvc_pipe, rerun=True)
    if dvc_wrong is not None:
        raise dvc_wrong


# --- the data workload ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tree:
    """A version of the data folder: relative path → (file number, generation)."""

    files: dict[str, tuple[int, int]]


def versions(folders: int, per_folder: int) -> dict[str, Tree]:
    """v1; v1.2 with 1 % of the files changed; v2 with another 1 % changed, 0.1 % deleted and
    0.1 % added."""
    names = [f"d{d:03d}/f{i:04d}.bin" for d in range(folders) for i in range(per_folder)]
    v1 = {name: (index, 0) for index, name in enumerate(names)}
    v12 = {name: (index, 1 if index % 100 == 0 else 0) for name, (index, _) in v1.items()}
    v2 = {
        name: (index, 2 if index % 100 == 50 else gen)
        for name, (index, gen) in v12.items()
        if index % 1000 != 1
    }
    for k in range(len(names) // 1000):
        v2[f"d{k % folders:03d}/new{k:04d}.bin"] = (10_000_000 + k, 0)
    return {"v1": Tree(v1), "v1.2": Tree(v12), "v2": Tree(v2)}


def content(index: int, generation: int) -> bytes:
    """1 KiB cut from bench.py's random block, stamped with the file and its generation."""
    return struct.pack("<QQ", index, generation) + BLOCK[16:KIB]


def write_tree(root: Path, tree: Tree, old: Tree | None = None) -> None:
    """Make `root` hold `tree` (from `old`: only the differences)."""
    before = old.files if old else {}
    for name in before.keys() - tree.files.keys():
        (root / name).unlink()
    for folder in sorted({os.path.dirname(n) for n in tree.files}):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, stamp in tree.files.items():
        if before.get(name) != stamp:
            with open(root / name, "wb", buffering=0) as handle:
                handle.write(content(*stamp))


def verify_tree(root: Path, tree: Tree, what: str) -> None:
    """`root` holds exactly `tree`, byte for byte."""
    found = {
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, names in os.walk(root)
        for name in names
    }
    if found != tree.files.keys():
        extra, missing = (
            sorted(found - tree.files.keys())[:3],
            sorted(tree.files.keys() - found)[:3],
        )
        raise BenchError(f"{what}: wrong files (extra {extra}, missing {missing})")
    for name, stamp in tree.files.items():
        with open(root / name, "rb", buffering=0) as handle:
            if handle.read(KIB + 1) != content(*stamp):
                raise BenchError(f"{what}: {name} does not hold the committed bytes")


def build_data_repo(tool: Tool, repo: Path, trees: dict[str, Tree]) -> None:
    """data/ committed at v1, v1.2 and v2 (tagged), with the tool's add/commit."""
    new_repo(repo, tool)
    data = repo / "data"
    old: Tree | None = None
    for tag, tree in trees.items():
        write_tree(data, tree, old)
        if old is None:
            sh(tool.argv("add", "-q", "data"), repo)
        elif tool.name == "dvc":
            sh(tool.argv("commit", "-q", "-f", "data.dvc"), repo)
        else:
            sh(tool.argv("commit", "-q", "data"), repo)
        commit(repo, f"data {tag}")
        git(repo, "tag", tag)
        old = tree
        log(f"  [{tool.name} data] {tag} committed")
    ensure_clean(repo, f"{tool.name} data")
    sh(tool.argv("checkout", "-q"), repo)  # a no-op; compiles the checkout code's bytecode


def expected_diff(trees: dict[str, Tree]) -> tuple[int, int, int]:
    """(added, deleted, modified) files from v1 to v2."""
    a, b = trees["v1"].files, trees["v2"].files
    modified = sum(1 for name in a.keys() & b.keys() if a[name] != b[name])
    return len(b.keys() - a.keys()), len(a.keys() - b.keys()), modified


def check_repro_diff(output: str, want: tuple[int, int, int]) -> None:
    changes = json.loads(output)["changes"]
    kinds = [c["kind"] for c in changes]
    got = (kinds.count("added"), kinds.count("deleted"), kinds.count("modified"))
    if got != want:
        raise BenchError(f"repro diff v1 v2: (added, deleted, modified) = {got}, expected {want}")


def check_dvc_diff(output: str, want: tuple[int, int, int]) -> None:
    found = json.loads(output)
    files = {  # DVC also lists the directory itself (`data/`) as modified
        kind: [e for e in found.get(kind, []) if not e["path"].endswith("/")]
        for kind in ("added", "deleted", "modified")
    }
    got = (len(files["added"]), len(files["deleted"]), len(files["modified"]))
    if got != want:
        raise BenchError(f"dvc diff v1 v2: (added, deleted, modified) = {got}, expected {want}")


def bench_data(
    timed: Timer,
    tools: dict[str, Tool],
    repos: dict[str, Path],
    trees: dict[str, Tree],
    repeat: int,
) -> None:
    """Restore from v1.2, whole-tree switches and diff, tools interleaved round by round."""
    repro, dvc = tools["repro"], tools.get("dvc")
    rrepo, drepo, base = repos["repro-data"], repos.get("dvc-data"), repos["baseline"]
    rfiles = tool_files(repro, rrepo)
    dfiles = tool_files(dvc, drepo) if dvc and drepo else []
    n = len(trees["v1.2"].files)
    restore = f"checkout v1.2 -- data ({n:,} files)"
    for round_ in range(1, repeat + 1):
        log(f"[data] restore, round {round_}/{repeat}")
        timed("baseline", restore, ["cp", "-r", "data", "data-copy"], base, warm=[base / "data"])
        shutil.rmtree(base / "data-copy")
        shutil.rmtree(rrepo / "data")
        timed("repro", restore, repro.argv("checkout", "v1.2", "--", "data"), rrepo, warm=rfiles)
        verify_tree(rrepo / "data", trees["v1.2"], "repro checkout v1.2 -- data")
        if dvc and drepo:
            shutil.rmtree(drepo / "data")
            script = f"git checkout v1.2 -- data.dvc && {dvc.exe} checkout -q data"
            timed("dvc", restore, ["sh", "-c", script], drepo, warm=dfiles)
            verify_tree(drepo / "data", trees["v1.2"], "dvc checkout of v1.2")
    # Back to v2 (untimed) for the switches.
    git(rrepo, "reset", "-q", "--hard")
    sh(repro.argv("checkout", "-q"), rrepo)
    verify_tree(rrepo / "data", trees["v2"], "repro checkout after git reset --hard")
    if dvc and drepo:
        git(drepo, "reset", "-q", "--hard")
        sh(dvc.argv("checkout", "-q"), drepo)
        verify_tree(drepo / "data", trees["v2"], "dvc checkout after git reset --hard")
    switch = f"checkout v1 (switch from v2, {n:,} files)"
    back = "checkout main (switch back to v2)"
    deleted = "checkout v1 after rm -rf data"
    dvc_switch = "git checkout -q {rev} && " + (dvc.exe if dvc else "dvc") + " checkout -q"
    for round_ in range(1, repeat + 1):
        log(f"[data] switch, round {round_}/{repeat}")
        timed("repro", switch, repro.argv("checkout", "v1"), rrepo, warm=rfiles)
        verify_tree(rrepo / "data", trees["v1"], "repro checkout v1")
        timed("repro", back, repro.argv("checkout", BRANCH), rrepo, warm=rfiles)
        verify_tree(rrepo / "data", trees["v2"], f"repro checkout {BRANCH}")
        shutil.rmtree(rrepo / "data")
        timed("repro", deleted, repro.argv("checkout", "v1"), rrepo, warm=rfiles)
        verify_tree(rrepo / "data", trees["v1"], "repro checkout v1 after rm -rf data")
        sh(repro.argv("checkout", "-q", BRANCH), rrepo)
        if dvc and drepo:
            argv = ["sh", "-c", dvc_switch.format(rev="v1")]
            timed("dvc", switch, argv, drepo, warm=dfiles)
            verify_tree(drepo / "data", trees["v1"], "git checkout v1 && dvc checkout")
            argv = ["sh", "-c", dvc_switch.format(rev=BRANCH)]
            timed("dvc", back, argv, drepo, warm=dfiles)
            verify_tree(drepo / "data", trees["v2"], f"git checkout {BRANCH} && dvc checkout")
            shutil.rmtree(drepo / "data")
            timed("dvc", deleted, ["sh", "-c", dvc_switch.format(rev="v1")], drepo, warm=dfiles)
            verify_tree(drepo / "data", trees["v1"], "dvc checkout v1 after rm -rf data")
            sh(["sh", "-c", dvc_switch.format(rev=BRANCH)], drepo)
    want = expected_diff(trees)
    diff = f"diff v1 v2 ({sum(want):,} changes)"
    check_repro_diff(sh(repro.argv("diff", "--json", "v1", "v2"), rrepo), want)
    if dvc and drepo:
        check_dvc_diff(sh(dvc.argv("diff", "--json", "v1", "v2"), drepo), want)
    for round_ in range(1, repeat + 1):
        log(f"[data] diff, round {round_}/{repeat}")
        timed("repro", diff, repro.argv("diff", "v1", "v2"), rrepo, warm=rfiles)
        if dvc and drepo:
            timed("dvc", diff, dvc.argv("diff", "v1", "v2"), drepo, warm=dfiles)


# --- profiling ------------------------------------------------------------------------------


def profile(python: str, cwd: Path, args: Sequence[str], top: int = 18) -> str:
    """Run one repro command under cProfile; the top functions by cumulative and self time."""
    stats_file = cwd.parent / "history.prof"
    read_all([cwd / ".git", cwd / ".repro", cwd / "data"])
    os.sync()
    start = time.perf_counter()
    sh([python, "-m", "cProfile", "-o", str(stats_file), "-m", "reprocli", *args], cwd)
    wall = time.perf_counter() - start
    stats = pstats.Stats(str(stats_file))
    stats_file.unlink()
    table = stats.stats  # type: ignore[attr-defined]  # (file, line, name) -> (cc, nc, tt, ct, _)
    lines = [f"profile of `repro {' '.join(args)}`: {wall:.2f} s wall under cProfile"]

    def where(key: tuple[str, int, str]) -> str:
        file, line, func = key
        if file == "~":
            return func
        for anchor in ("site-packages/", "reprocli/", "lib/python3"):
            if anchor in file:
                file = file[file.index(anchor) :].removeprefix("site-packages/")
                break
        return f"{file}:{line}({func})"

    imports = max(
        (row[3] for (file, _, func), row in table.items() if func == "_find_and_load"),
        default=0.0,
    )
    lines[0] += f"; imports {imports:.2f} s"
    skip = (
        *("typer/", "click/", "importlib", "reprocli/cli/", "reprocli/__main__", "runpy"),
        *("cProfile", "<string>", "builtins.exec"),
    )
    by_cum = sorted(table.items(), key=lambda item: item[1][3], reverse=True)
    lines.append("  top cumulative (CLI layer, typer and imports left out):")
    shown = [(key, row) for key, row in by_cum if not any(s in where(key) for s in skip)]
    for key, (_, calls, _, cumulative, _) in shown[:top]:
        lines.append(f"    {cumulative:7.3f} s  {calls:>9,} calls  {where(key)}")
    lines.append("  top self time:")
    by_self = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[: top // 2]
    for key, (_, calls, self_time, _, _) in by_self:
        lines.append(f"    {self_time:7.3f} s  {calls:>9,} calls  {where(key)}")
    return "\n".join(lines)


def profile_all(python: str, repos: dict[str, Path], trees: dict[str, Tree]) -> str:
    """cProfile each repro command measured here (after the timed rounds)."""
    reports = []
    if "file" in repos:
        reports += [
            profile(python, repos["file"], ("log", "f.txt")),
            profile(python, repos["pipeline"], ("log", "model.bin")),
            profile(python, repos["pipeline"], ("metrics", "show", "--all-commits")),
        ]
    if "repro-data" not in repos:
        return "\n\n".join(reports)
    reports += [
        profile(python, repos["repro-data"], ("diff", "v1", "v2")),
        profile(python, repos["repro-data"], ("checkout", "v1")),
    ]
    shutil.rmtree(repos["repro-data"] / "data")
    reports.append(profile(python, repos["repro-data"], ("checkout", "v1.2", "--", "data")))
    verify_tree(repos["repro-data"] / "data", trees["v1.2"], "profiled checkout v1.2 -- data")
    return "\n\n".join(reports)


# --- report ---------------------------------------------------------------------------------


def format_table(results: Results) -> str:
    """Median time per step: repro, DVC, their ratio, and the plain-tool baseline."""
    header = (
        f"{'step':42} {'repro s':>8} {'RSS MB':>6} {'dvc s':>8} {'RSS MB':>6} "
        f"{'dvc/repro':>9} {'baseline s':>10} {'repro/base':>10}"
    )
    lines = [f"== {results.title} (median of {results.runs()} run(s))", header]
    steps = list(dict.fromkeys(s for column in results.samples.values() for s in column if column))

    def cell(value: float | None, width: int, fmt: str) -> str:
        return ("—" if value is None else format(value, fmt)).rjust(width)

    def times(value: float | None, width: int) -> str:
        return ("—" if value is None else f"{value:.2f}×").rjust(width)

    for step in steps:
        repro, dvc = results.seconds("repro", step), results.seconds("dvc", step)
        base = results.seconds("baseline", step)
        lines.append(
            f"{step:42} {cell(repro, 8, '.3f')} {cell(results.rss('repro', step), 6, '.0f')} "
            f"{cell(dvc, 8, '.3f')} {cell(results.rss('dvc', step), 6, '.0f')} "
            f"{times(_ratio(dvc, repro), 9)} {cell(base, 10, '.3f')} "
            f"{times(_ratio(repro, base), 10)}"
        )
    lines.extend(f"note: {note}" for note in results.notes)
    return "\n".join(lines)


def evaluate(history: Results, data: Results) -> list[Target]:
    targets = []
    for step in history.samples.get("repro", {}):
        targets.append(
            _at_most(f"{step} < 2 s", history.seconds("repro", step), SECONDS_TARGET, " s")
        )
    for step in data.samples.get("baseline", {}):
        ratio = _ratio(data.seconds("repro", step), data.seconds("baseline", step))
        targets.append(_at_most(f"{step.split(' (')[0]} ≤ 2× cp -r", ratio, CP_TARGET, "×"))
    for step in data.samples.get("dvc", {}):
        ratio = _ratio(data.seconds("dvc", step), data.seconds("repro", step))
        targets.append(
            Target(
                f"{step.split(' (')[0]}: faster than dvc",
                "not measured" if ratio is None else f"{ratio:.2f}×",
                None if ratio is None else ratio > 1,
            )
        )
    for step in history.samples.get("dvc", {}):
        ratio = _ratio(history.seconds("dvc", step), history.seconds("repro", step))
        targets.append(
            Target(
                f"{step.split(' (')[0]}: faster than dvc",
                "not measured" if ratio is None else f"{ratio:.2f}×",
                None if ratio is None else ratio > 1,
            )
        )
    return targets


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="10,000 files and 50 commits (default 100,000, 500)"
    )
    parser.add_argument(
        "--workload",
        nargs="+",
        choices=("history", "data"),
        default=["history", "data"],
        help="which workloads to run (default both)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command (median)")
    parser.add_argument("--repro", default=None, help="the repro executable")
    parser.add_argument("--dvc", default=None, help="a dvc executable, to compare with")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each repro command after timing it"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="do not read a command's files (or run it once) just before timing it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the repositories built")
    return parser.parse_args(argv)


def build_all(
    tools: dict[str, Tool],
    root: Path,
    workloads: Sequence[str],
    commits: int,
    trees: dict[str, Tree],
) -> dict[str, Path]:
    """Every repository the workloads need, built two at a time (setup: nothing is timed
    meanwhile)."""
    repro, dvc = tools["repro"], tools.get("dvc")
    repos: dict[str, Path] = {}
    jobs: list[Callable[[], None]] = []

    def job(name: str, build: Callable[[Path], None]) -> None:
        repos[name] = root / name
        jobs.append(lambda: build(repos[name]))

    if "history" in workloads:
        if dvc:  # the longest job first
            job("dvc-pipeline", lambda path: build_pipeline_history(dvc, path, commits))
        job("file", lambda path: build_file_history(repro, path, commits))
        job("pipeline", lambda path: build_pipeline_history(repro, path, commits))
    if "data" in workloads:
        job("repro-data", lambda path: build_data_repo(repro, path, trees))
        job("baseline", lambda path: write_tree(path / "data", trees["v1.2"]))
        if dvc:
            job("dvc-data", lambda path: build_data_repo(dvc, path, trees))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(build) for build in jobs]:
            future.result()
    log(f"built {len(jobs)} repositories in {time.perf_counter() - start:.0f} s")
    return repos


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    commits, folders, per_folder = (50, 100, 100) if args.quick else (500, 100, 1000)
    tools = {"repro": repro_tool(args.repro or default_repro())}
    if args.dvc:
        tools["dvc"] = dvc_tool(args.dvc)
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="repro-history-", dir=args.workdir))
    os.environ.update(TOOL_ENV, DVC_SITE_CACHE_DIR=str(root / "dvc-site"))
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    # Measure with bytecode caches, as an installed package has them: when the environment
    # forbids writing them (PYTHONDONTWRITEBYTECODE), an editable repro recompiles its
    # modules at every start (~50 ms). The caches go to the work folder, not the sources.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    trees = versions(folders, per_folder)
    nfiles = folders * per_folder
    history = Results(f"history: {commits} commits")
    data = Results(f"data: {nfiles:,} files × 1 KiB in {folders} folders, versions v1, v1.2, v2")
    errors: list[str] = []
    profiled = ""
    info: dict[str, str] = {}
    try:
        info = machine_info(list(tools.values()))
        check_space(root, (2 + 2 * len(tools)) * nfiles * 4 * KIB + GIB, 8 * nfiles)
        source_before = source_id()
        repos = build_all(tools, root, args.workload, commits, trees)
        benches: dict[str, tuple[Results, Callable[[], None]]] = {
            "history": (
                history,
                lambda: bench_history(
                    Timer(history, args.cold), tools, repos, commits, args.repeat
                ),
            ),
            "data": (
                data,
                lambda: bench_data(Timer(data, args.cold), tools, repos, trees, args.repeat),
            ),
        }
        for results, bench in (benches[name] for name in args.workload):
            before = os.getloadavg()[0]
            try:
                bench()
            except BenchError as exc:
                errors.append(f"{results.title}: {exc}")
                log(f"FAILED: {exc}")
            results.notes.append(
                f"1-min load average {before:.1f} before, {os.getloadavg()[0]:.1f} after"
            )
        if source_id() != source_before:
            data.notes.append(
                f"WARNING: reprocli/ changed during the run ({source_before} → {source_id()})"
            )
        if args.profile:
            try:
                profiled = profile_all(sys.executable, repos, trees)
            except BenchError as exc:
                errors.append(f"profile: {exc}")
    except BenchError as exc:
        errors.append(str(exc))
    finally:
        if args.keep:
            log(f"repositories kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    targets = evaluate(history, data)
    print(f"{dt.date.today()} · " + " · ".join(f"{k}={v}" for k, v in info.items()))
    print("warm page cache; sync before each timed command; RSS = peak of the largest process\n")
    for results in (history, data):
        if results.samples:
            print(format_table(results) + "\n")
    print(format_targets(targets))
    if profiled:
        print("\n" + profiled)
    for error in errors:
        print(f"\nFAILED {error}")
    if args.json is not None:
        payload = {
            "date": dt.date.today().isoformat(),
            "machine": info,
            "workloads": {"history": asdict(history), "data": asdict(data)},
            "targets": [asdict(t) for t in targets],
            "errors": errors,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
