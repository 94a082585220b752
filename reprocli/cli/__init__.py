"""The `repro` command line: the only home of typer and rich."""

from __future__ import annotations

import sys
from typing import NoReturn


def redeliver_lost_interrupts() -> None:
    """Make a Ctrl-C that lands inside a callback Python cannot raise from (a weakref or
    import-lock callback: "Exception ignored in …") interrupt the command anyway, instead of
    printing a traceback and being lost."""
    import _thread
    import threading

    default = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # Raised again in the main thread once this hook has returned (raised in here,
            # Python would ignore it once more), where repro's own handler reports it.
            threading.Timer(0.01, _thread.interrupt_main).start()
        else:
            default(unraisable)

    sys.unraisablehook = hook


def main() -> None:
    """Entry point of the `repro` console script and `python -m reprocli`."""
    redeliver_lost_interrupts()
    try:
        if sys.argv[1:] in (["--version"], ["-V"]):
            # The one answer that needs no command-line framework: keep it instant.
            from reprocli import __version__

            print(f"repro {__version__}")
            return
        from reprocli.cli import app as cli_app

        cli_app.OWN_PROCESS = True
        cli_app.app(prog_name="repro")
    except KeyboardInterrupt:
        # Ctrl-C before the error boundary runs (importing typer, building the app: 0.1-0.4 s
        # of every command) or after it: the same one line as from inside a command.
        interrupted()


def interrupted() -> NoReturn:
    """Report a Ctrl-C the way every command does: `error: interrupted`, exit code 130."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not add a traceback
    sys.stderr.write("error: interrupted\n")
    sys.stderr.flush()
    raise SystemExit(130)
