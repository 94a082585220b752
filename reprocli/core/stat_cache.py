"""The stat cache: (inode, size, mtime_ns, ctime_ns, mode) of a file → its object id.

It lets status and add skip re-hashing unchanged files. Git's "racy" rule applies: a file
whose timestamps fall within RACY_WINDOW_NS of the moment its entry was recorded could
still change without its stat changing, so such entries are never stored (it is hashed
again next time). The cache is only an accelerator: losing it costs time, never data.

One record per tracked path, stored column-wise (a JSON document in one SQLite row): a
100,000-file directory loads in one read, and when every file still matches, the record's
manifest id is reused without encoding the manifest again.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from reprocli.core.hashing import ObjectId

# Kernel file timestamps come from a coarse clock (one tick, at most 10 ms); filesystems
# that store whole seconds (FAT, some network mounts) need a two-second window.
SCHEMA_VERSION = 2
RACY_WINDOW_NS = 20_000_000
COARSE_WINDOW_NS = 2_000_000_000


def is_racy(st: os.stat_result, recorded_ns: int) -> bool:
    """Whether a file could change without its stat changing, as seen at `recorded_ns`."""
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    window = COARSE_WINDOW_NS if newest % 1_000_000_000 == 0 else RACY_WINDOW_NS
    return newest >= recorded_ns - window


@dataclass(slots=True)
class Record:
    """The files of one tracked path ("" names the path itself when it is a file), by column.

    `manifest` is the directory's manifest id when the record covers every one of its files.
    """

    names: list[str] = field(default_factory=list)
    inos: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)
    ctimes: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    oids: list[str] = field(default_factory=list)
    manifest: str | None = None
    _index: dict[str, int] | None = None

    def index(self) -> dict[str, int]:
        """Position of each name."""
        if self._index is None:
            self._index = dict(zip(self.names, range(len(self.names)), strict=True))
        return self._index

    def lookup(self, name: str, st: os.stat_result) -> ObjectId | None:
        """The recorded oid of `name` when its stat is unchanged, else None."""
        i = self.index().get(name)
        if (
            i is not None
            and self.mtimes[i] == st.st_mtime_ns
            and self.sizes[i] == st.st_size
            and self.inos[i] == st.st_ino
            and self.ctimes[i] == st.st_ctime_ns
            and self.modes[i] == st.st_mode
        ):
            return ObjectId(self.oids[i])
        return None

    def add(self, name: str, st: os.stat_result, oid: str) -> None:
        """Append one file (callers add names in order and never twice)."""
        self.names.append(name)
        self.inos.append(st.st_ino)
        self.sizes.append(st.st_size)
        self.mtimes.append(st.st_mtime_ns)
        self.ctimes.append(st.st_ctime_ns)
        self.modes.append(st.st_mode)
        self.oids.append(oid)
        self._index = None

    def to_json(self) -> bytes:
        """The stored form."""
        return json.dumps(
            [
                self.names,
                self.inos,
                self.sizes,
                self.mtimes,
                self.ctimes,
                self.modes,
                self.oids,
                self.manifest,
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Record | None:
        """Parse the stored form; None when damaged (the cache only saves time)."""
        try:
            names, inos, sizes, mtimes, ctimes, modes, oids, manifest = json.loads(data)
        except (ValueError, TypeError):
            return None
        columns = (names, inos, sizes, mtimes, ctimes, modes, oids)
        if not all(isinstance(c, list) and len(c) == len(names) for c in columns):
            return None
        return cls(
            names,
            inos,
            sizes,
            mtimes,
            ctimes,
            modes,
            oids,
            manifest if isinstance(manifest, str) else None,
        )


class StatCache:
    """Records keyed by tracked path, in `.repro/state/stat.db`; opened lazily, safe to lose."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._unavailable = False

    def _connect(self) -> sqlite3.Connection | None:
        """The database, or None when it cannot be used here (a read-only checkout, a
        database another process holds): every status then hashes, which is only slower."""
        if self._db is None and not self._unavailable:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._db = self._open()
                except sqlite3.OperationalError:
                    raise  # read-only, locked, cannot open: not damage, keep the file
                except sqlite3.DatabaseError:
                    # A damaged cache is rebuilt, not repaired: it only ever saves time.
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    self._db = self._open()
            except (OSError, sqlite3.Error):
                self._unavailable = True
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
            "CREATE TABLE IF NOT EXISTS record (path TEXT PRIMARY KEY, data BLOB) WITHOUT ROWID"
        )
        return db

    def load(self, rel: str) -> Record:
        """The record of tracked path `rel` (empty when there is none)."""
        db = self._connect()
        if db is None:
            return Record()
        try:
            row = db.execute("SELECT data FROM record WHERE path = ?", (rel,)).fetchone()
        except sqlite3.DatabaseError:
            return Record()
        found = Record.from_json(row[0]) if row else None
        return found or Record()

    def save(self, rel: str, record: Record) -> None:
        """Replace the record of `rel`; silently skip when the database cannot be written
        (another process holds it, a read-only checkout)."""
        db = self._connect()
        if db is None:
            return
        with contextlib.suppress(sqlite3.OperationalError):
            db.execute("INSERT OR REPLACE INTO record VALUES (?, ?)", (rel, record.to_json()))
