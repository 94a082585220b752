"""The stat cache: (inode, size, mtime_ns, ctime_ns, mode) of a file → its object id.

It lets status and add skip re-hashing unchanged files. Git's "racy" rule applies: a file
whose timestamps fall within RACY_WINDOW_NS of the moment its entry was recorded could
still change without its stat changing, so such entries are never stored (it is hashed
again next time). The cache is only an accelerator: losing it costs time, never data.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from reprocli.core.hashing import ObjectId

# Kernel file timestamps come from a coarse clock (one tick, at most 10 ms); filesystems
# that store whole seconds (FAT, some network mounts) need a two-second window.
SCHEMA_VERSION = 1
RACY_WINDOW_NS = 20_000_000
COARSE_WINDOW_NS = 2_000_000_000

Row = tuple[str, int, int, int, int, int, ObjectId]
"""path, ino, size, mtime_ns, ctime_ns, mode, oid"""


def lookup(row: Row | None, st: os.stat_result) -> ObjectId | None:
    """The cached oid when `row` matches `st` exactly, else None."""
    if (
        row is not None
        and row[3] == st.st_mtime_ns
        and row[2] == st.st_size
        and row[1] == st.st_ino
        and row[4] == st.st_ctime_ns
        and row[5] == st.st_mode
    ):
        return row[6]
    return None


def is_racy(st: os.stat_result, recorded_ns: int) -> bool:
    """Whether a file could change without its stat changing, as seen at `recorded_ns`."""
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    window = COARSE_WINDOW_NS if newest % 1_000_000_000 == 0 else RACY_WINDOW_NS
    return newest >= recorded_ns - window


class StatCache:
    """A SQLite table keyed by repository-relative path; opened lazily, safe to lose."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError:
                # A damaged cache is rebuilt, not repaired: it only ever saves time.
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):  # written by another repro: start afresh
            db.close()
            self.path.unlink()
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, ino INT, size INT,"
            " mtime_ns INT, ctime_ns INT, mode INT, oid TEXT) WITHOUT ROWID"
        )
        return db

    def load(self, prefix: str) -> dict[str, Row]:
        """Every entry for `prefix` itself or below it (`prefix/...`), keyed by path."""
        try:
            rows = self._connect().execute(
                "SELECT path, ino, size, mtime_ns, ctime_ns, mode, oid FROM stat"
                " WHERE path = ? OR (path >= ? AND path < ?)",
                (prefix, prefix + "/", prefix + "0"),  # "0" sorts right after "/"
            )
            return {row[0]: row for row in rows}
        except sqlite3.DatabaseError:
            return {}

    def store(self, entries: Iterable[tuple[str, os.stat_result, ObjectId]], now_ns: int) -> None:
        """Record entries whose stat is not racy at `now_ns`; silently skip when busy."""
        rows = [
            (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, oid)
            for path, st, oid in entries
            if not is_racy(st, now_ns)
        ]
        if not rows:
            return
        try:
            db = self._connect()
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.OperationalError:
            # Another repro process holds the database: the entries are only an accelerator.
            with contextlib.suppress(sqlite3.Error):
                self._connect().execute("ROLLBACK")

    def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            self._db.close()
            self._db = None
