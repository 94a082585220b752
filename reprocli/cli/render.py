"""Everything the CLI prints: results on stdout, messages and progress on stderr.

Plain text by default (fast to import); rich is loaded only to draw progress on a terminal.
`--json` prints one document with a `version` key and sorted keys.

Text from a repository (names, values, paths, messages) is a stranger's input, escaped here
for its medium, once (security issue, hole 12): on a terminal every invisible character is
spelled out (`\\x1b`, `\\u202e`), so no escape sequence, carriage return or bidi override acts
and no name breaks a line; in Markdown, characters that would start a link, image, emphasis,
code, math, HTML or a table cell are escaped too; JSON is ASCII. Callers pass raw text; only a
field of a line that keeps tabs (`out`, `note`) needs `one_line`.
"""

from __future__ import annotations

import contextlib
import datetime
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
    """Print one line of the command's result on stdout.

    Invisible characters are spelled out as `one_line` does, except the tab, which some
    results use between fields (`remote list`): a field that may hold one goes through
    `one_line` first.
    """
    sys.stdout.write(_printable(text, keep="\t") + "\n")


def note(opts: Options, text: str) -> None:
    """Print a message for the human on stderr (silenced by -q); escaped as `out` does."""
    if not opts.quiet:
        sys.stderr.write(_printable(text, keep="\t") + "\n")


def one_line(text: str) -> str:
    """`text` as a terminal must show it: every control character (C0, C1, DEL, so ESC and CR
    too), bidi override and other invisible character spelled out as Python writes it
    (`\\x1b`, `\\n`, `\\u202e`), so that it prints as itself on exactly one line."""
    return _printable(text)


def _printable(text: str, keep: str = "") -> str:
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


# CommonMark: a backslash before ASCII punctuation shows it literally. These are the ones that
# open something in a table cell or a line of text: code, emphasis, strikethrough, links and
# images, math (GitHub), a cell boundary, and the backslash itself. `<`, `>` and `&` (HTML
# and entities) become entities. Digits, `.`, `-` and `+` stay, so numbers read as numbers.
_MARKDOWN = str.maketrans(
    {
        **{c: "\\" + c for c in "\\`*_~[]$|"},
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
    }
)


def markdown_text(text: str) -> str:
    """`text` for one line of Markdown (a table cell, a sentence): shown as itself, with nothing
    a renderer acts on (no link, image, HTML, emphasis or extra cell) and no line break."""
    return one_line(text).translate(_MARKDOWN)


def error(message: str, *, hint: str | None = None) -> None:
    """Print one error line (and an optional hint) on stderr."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    if hint:
        sys.stderr.write(f"hint: {one_line(hint)}\n")


def emit_json(payload: dict[str, Any]) -> None:
    """Print one JSON document on stdout: ASCII, every other character a `\\u` escape."""
    document = json.dumps(
        {"version": 1, **payload}, indent=2, sort_keys=True, ensure_ascii=True, default=_iso_date
    )
    sys.stdout.write(document + "\n")


def _iso_date(value: object) -> str:
    """A TOML or YAML date or time (a parameter or metric value) as ISO 8601 text."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


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
    """Print rows under headers: aligned columns, or a Markdown table (for a pull request).

    Cells are raw text (names and values from the repository, `cell()` output): each is
    escaped here for the medium, so every row is one line with the headers' number of cells.
    """
    if markdown:

        def md(cells: list[str]) -> str:
            return "| " + " | ".join(markdown_text(c) for c in cells) + " |"

        out(md(headers))
        out("|" + "|".join("---" for _ in headers) + "|")
        for row in rows:
            out(md(row))
        return
    shown = [[one_line(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in shown) for i in range(len(headers))]
    for row in shown:
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
        from rich.markup import escape

        if self.task is not None:
            self.bar.remove_task(self.task)
        if not self.running:
            self.bar.start()
            self.running = True
        # A description names paths and remotes: shown as written, never as rich markup
        # (`data/[link=…]x` would become a hyperlink, `x[/bold]` a MarkupError).
        self.task = self.bar.add_task(escape(one_line(description)), total=total)

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
