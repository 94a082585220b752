"""`python -m reprocli` runs the `repro` command."""

import sys

try:
    from reprocli.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads repro: one line, no traceback
    sys.stderr.write("error: interrupted\n")
    raise SystemExit(130) from None

main()
