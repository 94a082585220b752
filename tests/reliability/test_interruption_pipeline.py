"""A stage killed, and `repro run` killed during a stage (RELIABILITY A6).

The pipeline: `first` → `slow`, plus an independent `other`. After a clean run is committed,
the input of `first` changes, so `first` and then `slow` must run again. `slow` writes half
its output folder, tells the test its PID, and waits at a gate the test never opens. Then:

- the stage's process is killed: `repro run` exits 1 naming the stage, with no traceback;
- `repro run` itself is killed with SIGKILL: the stage it started lives on (its own session,
  as Ctrl-C handling needs), does not hold the repository lock, and is killed by the test.

Either way `repro.lock` keeps `slow`'s old record (and `first`'s new one: it finished), the
half-written output is recorded nowhere (neither the lock nor the run-cache), the cache stays
valid, and the next `repro run` runs exactly `slow` — nothing else — and ends up to date.
(Ctrl-C during a stage is tests/pipeline/test_run.py's.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reprocli.pipeline import lockfile
from tests.builders import git, make_tree
from tests.functional.test_crash import check_cache, ok, repro, repro_env
from tests.reliability.test_interruption_crash import figure, wait_for_orphans
from tests.reliability.test_interruption_signals import lock_is_free

__all__ = ["figure"]  # fixture

PY = sys.executable
PIPELINE = f"""\
stages:
  first:
    cmd: {PY} src/first.py
    deps: [src/first.py, data/raw.csv]
    outs: [data/first.txt]
  slow:
    cmd: {PY} src/slow.py
    deps: [src/slow.py, data/first.txt]
    outs: [data/slow]
  other:
    cmd: {PY} src/other.py
    deps: [src/other.py]
    outs: [data/other.txt]
"""

LOG = "import os\nopen(os.environ['STAGE_LOG'], 'a').write('{name}\\n')\n"
SCRIPTS = {
    "first": "open('data/first.txt', 'w').write(open('data/raw.csv').read().upper())\n",
    "slow": (
        "import os, pathlib, time\n"
        "out = pathlib.Path('data/slow'); out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'part1.txt').write_text(open('data/first.txt').read())\n"
        "pid = os.environ['STAGE_PID']\n"
        "open(pid + '.tmp', 'w').write(str(os.getpid())); os.replace(pid + '.tmp', pid)\n"
        "deadline = time.monotonic() + 120\n"
        "while not os.path.exists(os.environ['STAGE_GATE']) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "(out / 'part2.txt').write_text('done\\n')\n"
    ),
    "other": "open('data/other.txt', 'w').write('other\\n')\n",
}


class Pipeline:
    """The repository, and the files the stages use to talk to the test (outside it)."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.log = tmp / "stages.log"
        self.pid = tmp / "slow.pid"
        self.gate = tmp / "gate"
        self.output = tmp / "run.out"

    def env(self) -> dict[str, str]:
        return repro_env(
            STAGE_LOG=str(self.log), STAGE_PID=str(self.pid), STAGE_GATE=str(self.gate)
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return repro(self.root, "run", *args, env=self.env())

    def ran(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def lock(self) -> dict[str, lockfile.LockEntry]:
        return dict(lockfile.decode((self.root / "repro.lock").read_bytes()))

    def records(self) -> set[str]:
        runs = self.root / ".repro" / "cache" / "runs"
        return {str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file()}

    def start_and_wait_for_slow(self) -> tuple[subprocess.Popen[str], int]:
        """Start `repro run`; return it and the PID of the `slow` stage once it waits."""
        self.pid.unlink(missing_ok=True)
        # Output goes to a file, not a pipe: a stage that outlives repro keeps its copy open.
        with open(self.output, "w") as output:
            process = subprocess.Popen(
                [PY, "-m", "reprocli", "run"],
                cwd=self.root,
                env=self.env(),
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + 60
        while not self.pid.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(
                    f"the slow stage never started: exit {process.returncode}\n{self.output.read_text()}"
                )
            time.sleep(0.02)
        return process, int(self.pid.read_text())


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    """The pipeline run once and committed, then its input changed: first and slow are stale."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    ok(repro(root, "init", "-q"))
    files: dict[str, str | bytes] = {
        f"src/{name}.py": LOG.format(name=name) + body for name, body in SCRIPTS.items()
    }
    files["repro.yaml"] = PIPELINE
    files["data/raw.csv"] = "a,b\n1,2\n"
    make_tree(root, files)
    p = Pipeline(root, tmp_path)
    p.gate.touch()
    ok(p.run())
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    p.gate.unlink()
    p.log.unlink()
    (root / "data" / "raw.csv").write_text("a,b\n1,2\n3,4\n")
    return p


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def check_after_the_kill(
    p: Pipeline, before: dict[str, lockfile.LockEntry], records: set[str]
) -> int:
    """The lock, the run-cache and the cache after the kill; returns the checks made."""
    now = p.lock()
    assert now["slow"] == before["slow"], "the killed stage's lock record changed"
    assert now["other"] == before["other"]
    assert now["first"] != before["first"], "the stage that finished was not recorded"
    assert len(p.records() - records) == 1, "only `first`'s run may enter the run-cache"
    assert not check_cache(p.root / ".repro" / "cache")
    assert (p.root / "data/slow/part1.txt").exists() and not (
        p.root / "data/slow/part2.txt"
    ).exists()
    return 5


def check_the_next_run(p: Pipeline) -> int:
    """The next run runs exactly `slow`, to completion; returns the checks made."""
    p.log.unlink(missing_ok=True)
    p.gate.touch()
    ok(p.run())
    assert p.ran() == ["slow"], f"the next run executed {p.ran()}, not exactly the killed stage"
    assert (p.root / "data/slow/part2.txt").read_text() == "done\n"
    assert p.lock()["slow"].outs[0].nfiles == 2
    status = repro(p.root, "status", "--check", env=p.env())
    assert status.returncode == 0, status.stdout + status.stderr
    return 4


def test_a_killed_stage_fails_the_run_and_leaves_its_lock_record_alone(
    pipeline: Pipeline, figure: Callable[[str], None]
) -> None:
    p = pipeline
    before, records = p.lock(), p.records()
    process, stage = p.start_and_wait_for_slow()
    os.kill(stage, signal.SIGKILL)
    process.wait(timeout=60)
    output = p.output.read_text()

    assert process.returncode == 1, output
    assert "error: stage 'slow' failed with exit code 137" in output, output
    assert "Traceback" not in output, output
    assert lock_is_free(p.root)
    checks = 3 + check_after_the_kill(p, before, records) + check_the_next_run(p)
    figure(f"A6 stage killed mid-run: {checks} checks, 0 violations")


def test_repro_run_killed_mid_stage_leaves_the_lock_and_the_next_run_redoes_only_that_stage(
    pipeline: Pipeline, figure: Callable[[str], None]
) -> None:
    p = pipeline
    before, records = p.lock(), p.records()
    process, stage = p.start_and_wait_for_slow()
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL

    try:
        # A stage runs in its own session (so that Ctrl-C reaches repro, which then stops
        # it): kill -9 of repro leaves it running. It must not hold the repository lock.
        assert alive(stage), "the orphaned stage died with repro"
        assert lock_is_free(p.root), "the orphaned stage holds the repository lock"
        status = repro(p.root, "status", env=repro_env(REPRO_LOCK_TIMEOUT="2"))
        assert status.returncode == 0, status.stderr
    finally:
        os.kill(stage, signal.SIGKILL)
    wait_for_orphans(p.root)
    checks = 4 + check_after_the_kill(p, before, records) + check_the_next_run(p)
    figure(f"A6 repro run killed mid-stage: {checks} checks, 0 violations")
