"""The `repro` command line: the only home of typer and rich."""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> None:
    """Entry point of the `repro` console script and `python -m reprocli`."""
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
