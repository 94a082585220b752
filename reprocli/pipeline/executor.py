"""Running stages: a ready queue, `-j` workers, streamed output, and clean interruption.

The scheduler is dynamic: a stage starts as soon as every stage it needs has finished (not
by topological generations), at most `jobs` at a time. Only the calling thread decides and
records; worker threads only run commands. A failure stops new starts; running stages
finish and are recorded; stages downstream of the failure never start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

Task = Callable[[], int]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to the stages: the ones that failed (with exit codes) and never started."""

    failed: dict[str, int]
    not_started: tuple[str, ...]


class Shell:
    """Runs stage commands in a shell; with `prefix`, each output line is tagged with the stage."""

    def __init__(
        self, *, prefix: bool, write: Callable[[str], None] | None = None, to_stderr: bool = False
    ) -> None:
        self.prefix = prefix
        self.to_stderr = to_stderr  # keep stdout for one JSON document (`run --json`)
        self.write = write or (_write_stderr if to_stderr else _write_stdout)
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(self, name: str, commands: tuple[str, ...], cwd: Path, env: dict[str, str]) -> int:
        """Run the commands one after another; return the first non-zero exit code, or 0."""
        for command in commands:
            code = self._one(name, command, cwd, env)
            if code != 0:
                return code
        return 0

    def _one(self, name: str, command: str, cwd: Path, env: dict[str, str]) -> int:
        if self.prefix:
            out: int | None = subprocess.PIPE
        else:
            out = sys.stderr.fileno() if self.to_stderr else None
        process = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if self.prefix else None,
            start_new_session=True,  # Ctrl-C reaches repro, which stops the whole group
        )
        with self._lock:
            self._running.add(process)
        try:
            if process.stdout is not None:
                with process.stdout:
                    for raw in process.stdout:
                        self.write(f"[{name}] {raw.decode('utf-8', 'replace').rstrip()}\n")
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def stop_all(self) -> None:
        """Terminate every running command (and its children), then wait for them."""
        with self._lock:
            running = list(self._running)
        for process in running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def execute(
    order: list[str],
    needs: dict[str, set[str]],
    start: Callable[[str], Task | None],
    finish: Callable[[str, int], None],
    *,
    jobs: int,
    shell: Shell,
) -> Outcome:
    """Run `order` respecting `needs`; `start` returns a task (or None: nothing to run) and
    `finish` records a finished task. Both are called on this thread only."""
    pending = list(order)
    done: set[str] = set()
    failed: dict[str, int] = {}
    blocked: set[str] = set()
    running: dict[Future[int], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            while pending or running:
                progressed = False
                for name in list(pending):
                    if failed or len(running) >= jobs:
                        break
                    wanted = needs.get(name, set()) & set(order)
                    if wanted & (blocked | set(failed)):
                        pending.remove(name)
                        blocked.add(name)
                        progressed = True
                        continue
                    if not wanted <= done:
                        continue
                    pending.remove(name)
                    progressed = True
                    task = start(name)
                    if task is None:
                        done.add(name)
                    else:
                        running[pool.submit(task)] = name
                if failed and not running:
                    break
                if not running:
                    if not progressed:
                        break  # nothing can start: everything left waits on a failure
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    code = future.result()
                    finish(name, code)
                    if code == 0:
                        done.add(name)
                    else:
                        failed[name] = code
        except BaseException:
            shell.stop_all()
            for future in running:
                future.cancel()
            raise
    not_started = tuple(n for n in order if n not in done and n not in failed)
    return Outcome(failed, not_started)
