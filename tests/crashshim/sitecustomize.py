"""Crash-point shim for the crash tests (RELIABILITY building block 1); inert unless asked.

Loaded only when a test puts `tests/crashshim` on PYTHONPATH. It counts filesystem events
seen by a Python audit hook (open for writing, rename/replace, link, symlink, chmod,
remove/unlink, truncate, mkdir, rmdir, shutil.copyfile, and starting a subprocess):

- `REPRO_TEST_CRASH_AT=N`: the process kills itself with SIGKILL at the N-th event, so
  nothing (no finally, no atexit) runs after it: what a power cut or `kill -9` leaves.
- `REPRO_TEST_CRASH_COUNT=FILE`: report mode; the total number of events is written to
  FILE when the process exits.

Both variables are removed from the environment at start-up so that child processes
(git) never inherit them. Set PYTHONDONTWRITEBYTECODE=1 as well, or bytecode caches
written by the import system would count as events and make the numbering unstable.
"""

from __future__ import annotations

import os
import signal
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_EVENTS = frozenset(
    {
        "os.rename",  # also raised by os.replace
        "os.link",
        "os.symlink",
        "os.chmod",  # also os.fchmod
        "os.remove",  # also os.unlink
        "os.truncate",  # also os.ftruncate
        "os.mkdir",
        "os.rmdir",
        "shutil.copyfile",
        "subprocess.Popen",
    }
)


def _is_write_open(args: tuple[object, ...]) -> bool:
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else None
    if isinstance(flags, int) and flags > 0:
        return bool(flags & _WRITE_FLAGS)
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _install() -> None:
    crash_at_text = os.environ.pop("REPRO_TEST_CRASH_AT", None)
    report_file = os.environ.pop("REPRO_TEST_CRASH_COUNT", None)
    if crash_at_text is None and report_file is None:
        return
    crash_at = int(crash_at_text) if crash_at_text else 0
    state = {"count": 0, "active": True}

    def hook(event: str, args: tuple[object, ...]) -> None:
        if not state["active"]:
            return
        if event == "open":
            if not _is_write_open(args):
                return
        elif event not in _EVENTS:
            return
        state["count"] += 1
        if crash_at and state["count"] == crash_at:
            state["active"] = False
            os.kill(os.getpid(), signal.SIGKILL)

    if report_file is not None:
        import atexit

        def report() -> None:
            state["active"] = False
            with open(report_file, "w", encoding="ascii") as handle:
                handle.write(f"{state['count']}\n")

        atexit.register(report)
    sys.addaudithook(hook)


_install()
