"""The `repro` command line: the only home of typer and rich."""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the `repro` console script and `python -m reprocli`."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        # The one answer that needs no command-line framework: keep it instant.
        from reprocli import __version__

        print(f"repro {__version__}")
        return
    from reprocli.cli.app import app

    app(prog_name="repro")
