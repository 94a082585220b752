"""Everything the CLI prints: results on stdout, messages and progress on stderr.

Plain text by default (fast to import); rich is loaded only to draw progress on a terminal.
`--json` prints one document with a `version` key and sorted keys.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprocli.core.progress import SILENT, Progress


@dataclass(slots=True)
class Options:
    """The global options of one invocation."""

    directory: Path | None = None
    quiet: bool = False
    verbose: int = 0
    json: bool = False


def out(text: str = "") -> None:
    """Print a line of the command's result on stdout."""
    sys.stdout.write(text + "\n")


def note(opts: Options, text: str) -> None:
    """Print a message for the human on stderr (silenced by -q)."""
    if not opts.quiet:
        sys.stderr.write(text + "\n")


def one_line(text: str) -> str:
    """`text` with control characters escaped, so that it prints as exactly one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def error(message: str, *, hint: str | None = None) -> None:
    """Print one error line (and an optional hint) on stderr."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {one_line(hint)}\n")


def emit_json(payload: dict[str, Any]) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps({"version": 1, **payload}, indent=2, sort_keys=True) + "\n")


def warn(opts: Options, text: str) -> None:
    """Print a warning line on stderr (silenced by -q)."""
    if not opts.quiet:
        sys.stderr.write(f"warning: {one_line(text)}\n")


def cell(value: Any) -> str:
    """A value as a table shows it: numbers as written, absent as `-`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return one_line(str(value))


def table(headers: list[str], rows: list[list[str]], *, markdown: bool = False) -> None:
    """Print rows under headers: aligned columns, or a Markdown table (for a pull request)."""
    if markdown:

        def md(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out(md(headers))
        out("|" + "|".join("---" for _ in headers) + "|")
        for row in rows:
            out(md(row))
        return
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def size(n: int) -> str:
    """A byte count for humans: 1.5 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _wants_progress(opts: Options) -> bool:
    if opts.quiet or opts.json or os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


class _RichProgress:
    """A Progress drawing one transient rich bar on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task: Any = None
        self.running = False

    def start(self, description: str, total: int | None = None) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        if not self.running:
            self.bar.start()
            self.running = True
        self.task = self.bar.add_task(description, total=total)

    def advance(self, amount: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, amount)

    def finish(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None

    def close(self) -> None:
        if self.running:
            self.bar.stop()
            self.running = False


@contextlib.contextmanager
def progress(opts: Options) -> Iterator[Progress]:
    """A Progress for long work: a bar on a terminal, nothing otherwise."""
    if not _wants_progress(opts):
        yield SILENT
        return
    bar = _RichProgress()
    try:
        yield bar
    finally:
        bar.close()
