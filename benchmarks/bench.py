#!/usr/bin/env python3
"""Benchmarks for repro, side by side with plain-Unix baselines and, optionally, DVC.

Workloads (benchmarks/README.md explains each one):

* ``big``: 2 files × 512 MiB of incompressible bytes;
* ``small``: 100,000 files × 1 KiB in 100 folders;
* ``coldstart``: start-up latency of ``--version``, ``--help`` and ``status`` in a tiny repo;
* ``sparse``: peak memory while adding a 10 GiB sparse file (repro only).

For big and small, every tool run starts from a fresh Git repository holding freshly
generated data, and times ``init``, ``add data``, a no-op ``status``, ``status`` after one
file is edited, and ``checkout`` after the data folder is deleted; the restored tree is then
compared byte for byte with what was generated. Baselines (creating the files from Python,
``cat`` of every file, ``cp -r`` of the tree) run on the same data in a folder of their own.

The page cache is warm: dropping it needs root. Data is written just before each run, and
``sync`` runs (untimed) before every timed command, so each command pays for its own writes
only. Peak memory is the peak RSS reported by ``/usr/bin/time -f %M`` (the largest process
in the command's tree). Without /usr/bin/time, ``os.wait4`` is used instead; its figures then
include the harness's own RSS, since Python starts children with vfork.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000

BLOCK = random.Random(0).randbytes(MIB)
"""Every file is cut from this block, each MiB stamped with (file, piece): cheap to write,
incompressible within a file, and deterministic, so checkouts can be verified."""
EDIT = b"\xff edited (bench)"
TIME_BIN = "/usr/bin/time"
GIT_CONFIG = (
    ("user.name", "repro bench"),
    ("user.email", "bench@example.com"),
    ("commit.gpgsign", "false"),
)
TOOL_ENV = {"DVC_NO_ANALYTICS": "1"}  # otherwise DVC spawns a reporting daemon per command
CLEAN_MARKER = "up to date"  # both tools print it for a clean status ...
MODIFIED_MARKER = "modified"  # ... and this once a file changed
SPARSE_SIZE = 10 * GIB
RSS_LIMIT_MB = 150
REPO_ROOT = Path(__file__).resolve().parent.parent
STEPS = ("init", "add", "status (no-op)", "status (1 edit)", "checkout")
ALL_WORKLOADS = ("big", "small", "coldstart")
WORKLOAD_CHOICES = (*ALL_WORKLOADS, "sparse", "all")


class BenchError(Exception):
    """A command failed, or a tool gave a wrong answer: reported, never hidden."""


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


# --- running and timing commands ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement: wall-clock seconds and peak RSS in MB (None when not measured)."""

    seconds: float
    rss_mb: float | None = None


def run(argv: Sequence[str], cwd: Path) -> tuple[Sample, str]:
    """Run `argv` in `cwd`; return its time, peak RSS and output. Raise BenchError on failure."""
    use_time = os.access(TIME_BIN, os.X_OK)
    with tempfile.NamedTemporaryFile(prefix="bench-out-") as out:
        rss_file = Path(out.name + ".rss")
        wrapped = [TIME_BIN, "-f", "%M", "-o", str(rss_file), *argv] if use_time else list(argv)
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                wrapped, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            raise BenchError(f"cannot run `{' '.join(argv)}`: {exc}") from exc
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    peak_kib = _read_time_output(rss_file) if use_time else usage.ru_maxrss
    if proc.returncode != 0:
        raise BenchError(
            f"`{' '.join(argv)}` in {cwd} exited with {proc.returncode}:\n{output.strip()}"
        )
    return Sample(seconds, peak_kib * KIB / MB), output


def _read_time_output(path: Path) -> int:
    """The peak RSS in KiB that /usr/bin/time wrote (its last line; earlier ones are notes)."""
    try:
        lines = path.read_text().split()
    finally:
        path.unlink(missing_ok=True)
    return int(lines[-1])


def git(repo: Path, *args: str) -> None:
    """Run one Git command in `repo`."""
    run(["git", *args], repo)


def fresh_repo(path: Path) -> Path:
    """An empty Git repository at `path`, with a local identity for commits."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    git(path, "init", "-q")
    for key, value in GIT_CONFIG:
        git(path, "config", key, value)
    return path


def commit_all(repo: Path) -> None:
    """Commit whatever the tools wrote (pointers, .gitignore, config)."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")


# --- results --------------------------------------------------------------------------------


@dataclass(slots=True)
class Results:
    """The samples of one workload: column (a tool, "baseline") → step → samples."""

    title: str
    samples: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, column: str, step: str, sample: Sample) -> None:
        self.samples.setdefault(column, {}).setdefault(step, []).append(sample)
        rss = "" if sample.rss_mb is None else f", {sample.rss_mb:.0f} MB"
        log(f"  {column:8} {step:20} {sample.seconds:8.3f} s{rss}")

    def seconds(self, column: str, step: str) -> float | None:
        """The median time of a step, or None when it was not measured."""
        found = self.samples.get(column, {}).get(step)
        return statistics.median(s.seconds for s in found) if found else None

    def rss(self, column: str, step: str) -> float | None:
        """The highest peak RSS seen for a step, or None."""
        found = self.samples.get(column, {}).get(step, [])
        values = [s.rss_mb for s in found if s.rss_mb is not None]
        return max(values) if values else None

    def runs(self) -> int:
        """How many samples the steps have (the smallest count)."""
        return min((len(v) for steps in self.samples.values() for v in steps.values()), default=0)


def measure(results: Results, column: str, step: str, argv: Sequence[str], cwd: Path) -> str:
    """Sync pending writes (untimed), then time one command into `results`; return its output."""
    os.sync()
    sample, output = run(argv, cwd)
    results.add(column, step, sample)
    return output


def expect(output: str, marker: str, what: str) -> None:
    """Fail loudly when a status did not report what the benchmark just did."""
    if marker not in output:
        raise BenchError(f"{what}: expected {marker!r} in the output, got:\n{output.strip()}")


# --- data -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """A data tree: relative file paths and sizes, and where `edit_one` changes bytes."""

    name: str
    title: str
    files: tuple[tuple[str, int], ...]
    edit_offset: int
    disk_needed: int


def big_workload() -> Workload:
    files = tuple((f"big-{i}.bin", 512 * MIB) for i in range(2))
    return Workload("big", "2 files × 512 MiB", files, 256 * MIB, 3 * GIB)


def small_workload() -> Workload:
    files = tuple((f"d{d:03d}/f{i:04d}.bin", KIB) for d in range(100) for i in range(1000))
    return Workload("small", "100,000 files × 1 KiB in 100 folders", files, 0, 2 * GIB)


DATA_WORKLOADS = {"big": big_workload, "small": small_workload}


def chunks(index: int, size: int) -> Iterator[bytes]:
    """The content of file number `index`, one MiB at a time."""
    for piece, offset in enumerate(range(0, size, MIB)):
        length = min(MIB, size - offset)
        yield struct.pack("<QQ", index, piece) + BLOCK[16:length]


def generate(workload: Workload, root: Path) -> float:
    """Write the workload under `root` with plain Python (no fsync); return the seconds taken."""
    start = time.perf_counter()
    for folder in sorted({os.path.dirname(rel) for rel, _ in workload.files}):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index, (rel, size) in enumerate(workload.files):
        with open(root / rel, "wb", buffering=0) as handle:
            for chunk in chunks(index, size):
                handle.write(chunk)
    return time.perf_counter() - start


def edit_one(workload: Workload, root: Path) -> None:
    """Overwrite a few bytes of the first file in place (same size, new content)."""
    with open(root / workload.files[0][0], "r+b") as handle:
        handle.seek(workload.edit_offset)
        handle.write(EDIT)


def verify(workload: Workload, root: Path, what: str) -> None:
    """Check that `root` holds exactly the generated files, byte for byte."""
    found = {
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, names in os.walk(root)
        for name in names
    }
    expected = {rel for rel, _ in workload.files}
    if found != expected:
        extra, missing = sorted(found - expected)[:3], sorted(expected - found)[:3]
        raise BenchError(f"{what}: wrong files (extra {extra}, missing {missing})")
    for index, (rel, size) in enumerate(workload.files):
        with open(root / rel, "rb", buffering=0) as handle:
            same = all(handle.read(len(chunk)) == chunk for chunk in chunks(index, size))
            if not same or handle.read(1):
                raise BenchError(f"{what}: {rel} does not hold the bytes that were added")


def allocated_bytes(top: Path) -> int:
    """Disk space really used by the files under `top` (holes excluded)."""
    if top.is_file():
        return top.stat().st_blocks * 512
    return sum(
        os.lstat(os.path.join(folder, name)).st_blocks * 512
        for folder, _, names in os.walk(top)
        for name in names
    )


# --- tools ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tool:
    """A data versioning command line: how to call it and set up a repository for it."""

    name: str
    exe: str
    init_args: tuple[str, ...]
    setup: tuple[tuple[str, ...], ...] = ()

    def argv(self, *args: str) -> list[str]:
        return [self.exe, *args]

    def init(self, repo: Path, results: Results | None = None) -> None:
        """Initialise `repo` (timed as "init" when `results` is given), then configure it."""
        argv = self.argv(*self.init_args)
        if results is None:
            run(argv, repo)
        else:
            measure(results, self.name, "init", argv, repo)
        for args in self.setup:
            run(self.argv(*args), repo)


def repro_tool(exe: str) -> Tool:
    return Tool("repro", exe, ("init",))


def dvc_tool(exe: str) -> Tool:
    # Both tools then `git add` what they write (repro's autostage is on by default).
    return Tool("dvc", exe, ("init", "-q"), (("config", "core.autostage", "true"),))


def default_repro() -> str:
    """The `repro` next to the running Python (a venv), else the first one on PATH."""
    beside = Path(sys.executable).with_name("repro")
    if beside.exists():
        return str(beside)
    found = shutil.which("repro")
    if found is None:
        raise SystemExit("cannot find `repro`: pass --repro PATH")
    return found


# --- workloads ------------------------------------------------------------------------------


def check_space(folder: Path, needed_bytes: int, needed_inodes: int = 0) -> None:
    """Refuse to start a workload that would fill the disk."""
    info = os.statvfs(folder)
    free, inodes = info.f_bavail * info.f_frsize, info.f_favail
    log(f"free space in {folder}: {free / GIB:.1f} GiB, {inodes:,} inodes")
    if free < needed_bytes or inodes < needed_inodes:
        raise BenchError(
            f"not enough space in {folder}: need {needed_bytes / GIB:.1f} GiB and "
            f"{needed_inodes:,} inodes"
        )


def bench_baselines(workload: Workload, results: Results, folder: Path) -> None:
    """Create the files from Python, then `cat` them all and `cp -r` the tree."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    created = generate(workload, folder / "data")
    results.add("baseline", "create (Python)", Sample(created))
    cat = "find data -type f -print0 | xargs -0 cat > /dev/null"
    measure(results, "baseline", "cat", ["sh", "-c", cat], folder)
    measure(results, "baseline", "cp -r", ["cp", "-r", "data", "data-copy"], folder)
    start = time.perf_counter()
    os.sync()
    results.add("baseline", "sync after cp", Sample(time.perf_counter() - start))
    shutil.rmtree(folder)


def bench_tool(tool: Tool, workload: Workload, results: Results, folder: Path) -> None:
    """One full lifecycle of `tool` on the workload, in a fresh repository."""
    repo = fresh_repo(folder)
    data = repo / "data"
    generate(workload, data)
    tool.init(repo, results)
    measure(results, tool.name, "add", tool.argv("add", "data"), repo)
    commit_all(repo)
    status = tool.argv("status")
    output = measure(results, tool.name, "status (no-op)", status, repo)
    expect(output, CLEAN_MARKER, f"{tool.name} status after add")
    edit_one(workload, data)
    output = measure(results, tool.name, "status (1 edit)", status, repo)
    expect(output, MODIFIED_MARKER, f"{tool.name} status after an edit")
    shutil.rmtree(data)
    measure(results, tool.name, "checkout", tool.argv("checkout"), repo)
    verify(workload, data, f"{tool.name} checkout")
    shutil.rmtree(repo)


def bench_data(
    results: Results, workload: Workload, tools: Sequence[Tool], repeat: int, root: Path
) -> None:
    """Baselines and each tool's lifecycle, interleaved, `repeat` times."""
    check_space(root, workload.disk_needed, 3 * len(workload.files))
    for round_ in range(1, repeat + 1):
        log(f"[{workload.name}] round {round_}/{repeat}")
        bench_baselines(workload, results, root / f"{workload.name}-baseline")
        for tool in tools:
            bench_tool(tool, workload, results, root / f"{workload.name}-{tool.name}")


COLD_COMMANDS = (("--version", ("--version",)), ("--help", ("--help",)), ("status", ("status",)))


def bench_coldstart(results: Results, tools: Sequence[Tool], runs: int, root: Path) -> None:
    """Median start-up latency of quick commands in a repository tracking one tiny file."""
    for tool in tools:
        repo = fresh_repo(root / f"coldstart-{tool.name}")
        tool.init(repo)
        (repo / "data").mkdir()
        (repo / "data" / "hello.txt").write_text("hello\n")
        run(tool.argv("add", "data"), repo)
        commit_all(repo)
        for label, args in COLD_COMMANDS:
            run(tool.argv(*args), repo)  # warm-up: bytecode compiled, files in page cache
            for _ in range(runs):
                results.add(tool.name, label, run(tool.argv(*args), repo)[0])
        shutil.rmtree(repo)
    for _ in range(runs):
        results.add("python", "-c pass", run([sys.executable, "-c", "pass"], root)[0])


def bench_sparse(results: Results, repro: Tool, root: Path) -> None:
    """Peak memory of add, status and checkout of a 10 GiB file that is one big hole."""
    repo = fresh_repo(root / "sparse")
    repro.init(repo)
    target = repo / "sparse.bin"
    with open(target, "wb") as handle:
        handle.truncate(SPARSE_SIZE)
    measure(results, "baseline", "cat", ["sh", "-c", "cat sparse.bin > /dev/null"], repo)
    measure(results, repro.name, "add", repro.argv("add", "sparse.bin"), repo)
    commit_all(repo)
    output = measure(results, repro.name, "status (no-op)", repro.argv("status"), repo)
    expect(output, CLEAN_MARKER, "repro status after adding a sparse file")
    target.unlink()
    measure(results, repro.name, "checkout", repro.argv("checkout"), repo)
    size = target.stat().st_size
    if size != SPARSE_SIZE:
        raise BenchError(f"checkout of the sparse file gave {size} bytes, not {SPARSE_SIZE}")
    results.notes.append(
        f"disk used: cache {allocated_bytes(repo / '.repro') / MIB:.1f} MiB, "
        f"checked-out file {allocated_bytes(target) / MIB:.1f} MiB (apparent size 10 GiB)"
    )
    shutil.rmtree(repo)


# --- profiling ------------------------------------------------------------------------------

PHASES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # command -> (label, file suffix, function name): cumulative time of that function
    "add": (
        ("whole command (cli.main)", "reprocli/cli/__init__.py", "main"),
        ("operations.add.add", "reprocli/operations/add.py", "add"),
        ("scan: scandir + stat", "reprocli/core/workspace.py", "scan"),
        ("ingest: read, hash, write objects", "reprocli/core/objects.py", "ingest"),
        ("  read the file", "reprocli/core/hashing.py", "read_small"),
        ("  xxh3-128", "reprocli/core/hashing.py", "oid_of_bytes"),
        ("  already cached? (knows)", "reprocli/core/objects.py", "knows"),
        ("  write object temp file", "reprocli/core/objects.py", "_write_new"),
        ("flush: syncfs + rename", "reprocli/core/objects.py", "flush"),
        ("  syncfs", "reprocli/core/atomic.py", "sync_filesystem"),
        ("  rename into place", "reprocli/core/objects.py", "publish"),
        ("stat cache write (SQLite)", "reprocli/core/stat_cache.py", "save"),
        ("manifest encode", "reprocli/core/manifest.py", "encode"),
        ("git add", "reprocli/core/gitrepo.py", "add"),
    ),
    "status": (
        ("whole command (cli.main)", "reprocli/cli/__init__.py", "main"),
        ("operations.status.status", "reprocli/operations/status.py", "status"),
        ("find pointers", "reprocli/project.py", "pointers"),
        ("workspace.snapshot", "reprocli/core/workspace.py", "snapshot"),
        ("  scan: scandir + stat", "reprocli/core/workspace.py", "scan"),
        ("  stat cache read (SQLite)", "reprocli/core/stat_cache.py", "load"),
        ("  stat cache lookup per file", "reprocli/core/stat_cache.py", "lookup"),
        ("  hash changed files", "reprocli/core/hashing.py", "hash_file"),
        ("  stat cache write (SQLite)", "reprocli/core/stat_cache.py", "save"),
        ("  manifest encode", "reprocli/core/manifest.py", "encode"),
        ("objects present? (missing)", "reprocli/core/objects.py", "missing"),
        ("manifest decode", "reprocli/core/manifest.py", "decode"),
        ("diff manifests", "reprocli/operations/status.py", "diff_entries"),
    ),
    "checkout": (
        ("whole command (cli.main)", "reprocli/cli/__init__.py", "main"),
        ("operations.checkout.checkout", "reprocli/operations/checkout.py", "checkout"),
        ("plan", "reprocli/operations/checkout.py", "plan"),
        ("apply", "reprocli/operations/checkout.py", "apply"),
        ("  make folders", "reprocli/operations/checkout.py", "_make_dirs"),
        ("  place one file (Linker.place)", "reprocli/core/links.py", "place"),
        ("    copy + verify hash", "reprocli/core/links.py", "_copy_verified"),
        ("stat cache write (SQLite)", "reprocli/core/stat_cache.py", "save"),
    ),
}


def profile_repro(root: Path, python: str, results: Results | None) -> str:
    """cProfile each repro step of the small workload's lifecycle; summarise each one."""
    workload = small_workload()
    check_space(root, workload.disk_needed, 3 * len(workload.files))
    repo = fresh_repo(root / "profile")
    generate(workload, repo / "data")
    run([python, "-m", "reprocli", "init"], repo)
    reports = [profile_step("add", ("add", "data"), python, repo, results)]
    commit_all(repo)
    reports.append(profile_step("status (no-op)", ("status",), python, repo, results))
    edit_one(workload, repo / "data")
    reports.append(profile_step("status (1 edit)", ("status",), python, repo, results))
    shutil.rmtree(repo / "data")
    reports.append(profile_step("checkout", ("checkout",), python, repo, results))
    shutil.rmtree(repo)
    return "\n\n".join(reports)


def profile_step(
    step: str, args: tuple[str, ...], python: str, repo: Path, results: Results | None
) -> str:
    """Run one repro command under cProfile and summarise it."""
    stats_file = repo.parent / "repro.prof"
    os.sync()
    run([python, "-m", "cProfile", "-o", str(stats_file), "-m", "reprocli", *args], repo)
    plain = results.seconds("repro", step) if results else None
    try:
        return summarise_profile(stats_file, step, PHASES.get(args[0], ()), plain)
    finally:
        stats_file.unlink()


def summarise_profile(
    stats_file: Path, step: str, phases: Sequence[tuple[str, str, str]], plain: float | None
) -> str:
    """Phases (cumulative time of known functions) and the top functions by self time."""
    stats = pstats.Stats(str(stats_file))
    table = stats.stats  # type: ignore[attr-defined]  # (file, line, name) -> (cc, nc, tt, ct, _)
    total = stats.total_tt  # type: ignore[attr-defined]
    unprofiled = "" if plain is None else f"; unprofiled median {plain:.2f} s"
    lines = [f"profile of repro {step} (small workload): {total:.2f} s under cProfile{unprofiled}"]
    for label, suffix, name in phases:
        cumulative = sum(
            row[3]
            for (file, _, func), row in table.items()
            if func == name and file.endswith(suffix)
        )
        lines.append(f"  {label:36} {cumulative:7.2f} s  {cumulative / total:6.1%}")
    lines.append("  top self time:")
    by_self = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:10]
    for (file, line, func), (_, calls, self_time, _, _) in by_self:
        where = func if file == "~" else f"{_short(file)}:{line}({func})"
        lines.append(f"    {self_time:7.2f} s  {calls:>9,} calls  {where}")
    return "\n".join(lines)


def _short(file: str) -> str:
    for anchor in ("site-packages/", "reprocli/", "lib/python"):
        if anchor in file:
            return file[file.index(anchor) :].removeprefix("site-packages/")
    return file


# --- report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One goal the project is judged against, and whether this run met it."""

    goal: str
    value: str
    met: bool | None  # None: not measured in this run


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


def _at_most(goal: str, value: float | None, limit: float, unit: str) -> Target:
    return _target(goal, value, unit, None if value is None else value <= limit)


def _at_least(goal: str, value: float | None, limit: float, unit: str) -> Target:
    return _target(goal, value, unit, None if value is None else value >= limit)


def _target(goal: str, value: float | None, unit: str, met: bool | None) -> Target:
    return Target(goal, "not measured" if value is None else f"{value:.2f}{unit}", met)


def _plus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _millis(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def evaluate(all_results: dict[str, Results]) -> list[Target]:
    """Check the measured medians against the project's performance targets."""
    empty = Results("")
    big = all_results.get("big", empty)
    small = all_results.get("small", empty)
    cold = all_results.get("coldstart", empty)
    sparse = all_results.get("sparse", empty)

    big_add = big.seconds("repro", "add")
    cat_cp = _plus(big.seconds("baseline", "cat"), big.seconds("baseline", "cp -r"))
    small_add = small.seconds("repro", "add")
    noop = small.seconds("repro", "status (no-op)")
    peaks = [r.rss("repro", step) for r in (big, sparse) for step in STEPS]
    peak = max((p for p in peaks if p is not None), default=None)
    return [
        _at_most("big: add ≤ 1.5× (cat + cp -r)", _ratio(big_add, cat_cp), 1.5, "×"),
        _at_least(
            "big: add ≥ 3× faster than dvc", _ratio(big.seconds("dvc", "add"), big_add), 3, "×"
        ),
        _at_most(
            "small: add ≤ 1.3× creating the files",
            _ratio(small_add, small.seconds("baseline", "create (Python)")),
            1.3,
            "×",
        ),
        _at_least(
            "small: add faster than dvc", _ratio(small.seconds("dvc", "add"), small_add), 1, "×"
        ),
        _at_most("small: no-op status < 1 s", noop, 1, " s"),
        _at_least(
            "small: no-op status ≥ 8× faster than dvc",
            _ratio(small.seconds("dvc", "status (no-op)"), noop),
            8,
            "×",
        ),
        _at_most(
            "small: status after one edit < 1.5 s",
            small.seconds("repro", "status (1 edit)"),
            1.5,
            " s",
        ),
        _at_most("peak RSS < 150 MB on big and sparse", peak, RSS_LIMIT_MB, " MB"),
        _at_most(
            "repro --version < 100 ms", _millis(cold.seconds("repro", "--version")), 100, " ms"
        ),
        *(
            _at_most(
                f"repro {label} ≤ 1/3 of dvc's",
                _ratio(cold.seconds("repro", label), cold.seconds("dvc", label)),
                1 / 3,
                "×",
            )
            for label in ("--help", "status")
        ),
    ]


def _cell(value: float | None, width: int, decimals: int, suffix: str = "") -> str:
    return ("—" if value is None else f"{value:.{decimals}f}{suffix}").rjust(width)


def format_results(results: Results) -> str:
    """A table of medians per step: time and peak RSS per tool, and dvc/repro."""
    header = (
        f"{'step':20} {'repro s':>9} {'RSS MB':>7} {'dvc s':>9} {'RSS MB':>7} {'dvc/repro':>10}"
    )
    lines = [f"== {results.title} (median of {results.runs()} run(s))", header]
    steps = [s for s in (*STEPS, *(label for label, _ in COLD_COMMANDS)) if _has_step(results, s)]
    for step in steps:
        repro, dvc = results.seconds("repro", step), results.seconds("dvc", step)
        lines.append(
            f"{step:20} {_cell(repro, 9, 3)} {_cell(results.rss('repro', step), 7, 0)} "
            f"{_cell(dvc, 9, 3)} {_cell(results.rss('dvc', step), 7, 0)} "
            f"{_cell(_ratio(dvc, repro), 10, 1, '×')}"
        )
    lines.extend(_baseline_lines(results))
    lines.extend(f"note: {note}" for note in results.notes)
    return "\n".join(lines)


def _has_step(results: Results, step: str) -> bool:
    return any(step in results.samples.get(tool, {}) for tool in ("repro", "dvc"))


def _baseline_lines(results: Results) -> list[str]:
    lines = []
    baseline = results.samples.get("baseline", {})
    if baseline:
        parts = [f"{step} {results.seconds('baseline', step):.3f} s" for step in baseline]
        lines.append("baselines: " + " · ".join(parts))
    add = results.seconds("repro", "add")
    cat_cp = _plus(results.seconds("baseline", "cat"), results.seconds("baseline", "cp -r"))
    for name, base in (
        ("cat + cp -r", cat_cp),
        ("create (Python)", results.seconds("baseline", "create (Python)")),
    ):
        ratio = _ratio(add, base)
        if ratio is not None:
            lines.append(f"repro add / {name} = {ratio:.2f}×")
    python = results.seconds("python", "-c pass")
    if python is not None:
        lines.append(f"floor: python -c pass {python * 1000:.0f} ms")
    return lines


def format_targets(targets: Sequence[Target]) -> str:
    marks = {True: "met", False: "MISSED", None: "n/a"}
    lines = ["== targets"]
    lines.extend(f"{marks[t.met]:7} {t.goal:45} {t.value}" for t in targets)
    return "\n".join(lines)


def machine_info(tools: Sequence[Tool]) -> dict[str, str]:
    """What the numbers were measured on and with."""
    info = {
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "memory_gib": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GIB:.1f}",
        "python": platform.python_version(),
    }
    for tool in tools:
        version = run(tool.argv("--version"), REPO_ROOT)[1].strip()
        info[tool.name] = version.removeprefix(f"{tool.name} ")
    info["repro_source"] = source_id()
    return info


def source_id() -> str:
    """The repro source measured: Git revision, plus a digest of reprocli/ when it is dirty.

    The digest shows when someone edited the package while a benchmark was running.
    """
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not head.endswith("-dirty"):
        return head or "unknown"
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "reprocli").rglob("*.py")):
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return f"{head}+{digest.hexdigest()[:8]}"


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workload",
        nargs="+",
        choices=WORKLOAD_CHOICES,
        default=["all"],
        help="which workloads to run (all = big small coldstart; sparse only on request)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds of big and small")
    parser.add_argument("--cold-runs", type=int, default=10, help="runs per cold-start command")
    parser.add_argument("--repro", default=None, help="the repro executable")
    parser.add_argument("--dvc", default=None, help="a dvc executable, to compare with")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile repro add/status/checkout on the small workload (run bench.py "
        "with the Python that has reprocli installed)",
    )
    return parser.parse_args(argv)


def selected(names: Sequence[str]) -> list[str]:
    chosen = [w for name in names for w in (ALL_WORKLOADS if name == "all" else (name,))]
    return list(dict.fromkeys(chosen))


def run_workload(
    name: str, tools: Sequence[Tool], args: argparse.Namespace, root: Path, results: Results
) -> None:
    if name in DATA_WORKLOADS:
        bench_data(results, DATA_WORKLOADS[name](), tools, args.repeat, root)
    elif name == "coldstart":
        bench_coldstart(results, tools, args.cold_runs, root)
    else:
        check_space(root, GIB)
        bench_sparse(results, tools[0], root)


def run_all(
    names: Sequence[str], tools: Sequence[Tool], args: argparse.Namespace, root: Path
) -> tuple[dict[str, Results], list[str]]:
    """Run each workload; a failure is recorded and the next workload still runs."""
    all_results: dict[str, Results] = {}
    errors: list[str] = []
    for name in names:
        results = all_results[name] = Results(workload_title(name, args))
        load_before, source_before = os.getloadavg()[0], source_id()
        try:
            run_workload(name, tools, args, root, results)
        except BenchError as exc:
            errors.append(f"{name}: {exc}")
            log(f"[{name}] FAILED: {exc}")
        results.notes.append(
            f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
        if source_id() != source_before:
            results.notes.append(
                f"WARNING: reprocli/ changed during this workload ({source_before} → "
                f"{source_id()}): rounds measured different code"
            )
    return all_results, errors


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = [repro_tool(args.repro or default_repro())]
    if args.dvc:
        tools.append(dvc_tool(args.dvc))
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="repro-bench-", dir=args.workdir))
    os.environ.update(TOOL_ENV, DVC_SITE_CACHE_DIR=str(root / "dvc-site"))
    profile = ""
    try:
        info = machine_info(tools)
        all_results, errors = run_all(selected(args.workload), tools, args, root)
        if args.profile:
            try:
                profile = profile_repro(root, sys.executable, all_results.get("small"))
            except BenchError as exc:
                errors.append(f"profile: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(all_results, info, profile, errors, args.json)
    return 1 if errors else 0


def workload_title(name: str, args: argparse.Namespace) -> str:
    if name in DATA_WORKLOADS:
        return f"{name}: {DATA_WORKLOADS[name]().title}"
    if name == "coldstart":
        return f"coldstart: tiny repository, {args.cold_runs} runs per command"
    return "sparse: one 10 GiB file that is a single hole (repro only)"


def report(
    all_results: dict[str, Results],
    info: dict[str, str],
    profile: str,
    errors: Sequence[str],
    json_path: Path | None,
) -> None:
    """Print the tables, the targets, the profile and any failures; optionally write JSON."""
    targets = evaluate(all_results)
    print(f"{dt.date.today()} · " + " · ".join(f"{k}={v}" for k, v in info.items()))
    print("warm page cache; sync before each timed command; RSS = peak of the largest process\n")
    for results in all_results.values():
        print(format_results(results) + "\n")
    print(format_targets(targets))
    if profile:
        print("\n" + profile)
    for error in errors:
        print(f"\nFAILED {error}")
    if json_path is not None:
        payload = {
            "date": dt.date.today().isoformat(),
            "machine": info,
            "workloads": {name: asdict(r) for name, r in all_results.items()},
            "targets": [asdict(t) for t in targets],
            "errors": list(errors),
        }
        json_path.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
