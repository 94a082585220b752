"""`python -m reprocli` runs the `repro` command."""

from reprocli.cli import main

main()
