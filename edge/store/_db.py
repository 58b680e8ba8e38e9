"""The database core of the edge store: the file, its connections and the writer.

``Database`` owns the write connection (used only by the writer thread, see
``_writer``) and a small pool of read-only connections used from worker threads. WAL
mode lets the readers see a committed snapshot while the writer writes. Everything
else in this package is a function of a ``sqlite3.Connection`` that the facade
(``EdgeStore``) runs through ``write``, ``read`` or ``read_sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from doorkeep.errors import Conflict, DoorkeepError
from edge.store import _schema
from edge.store._spill import Marker
from edge.store._writer import Writer, WriterStats

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")

# How many read connections may exist at once (one per concurrent reader thread).
READ_POOL_SIZE = 4
# Mode of a newly created database file (existing files keep theirs).
DB_FILE_MODE = 0o600
# SQLite waits this long for a lock instead of failing at once (only another process,
# such as a backup, can hold one: inside the daemon there is a single writer).
BUSY_TIMEOUT_MS = 5000


def dumps(value: Any) -> str:
    """Compact JSON as stored in every TEXT column that holds JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    """One value of the ``meta`` table, or ``default``."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def meta_int(conn: sqlite3.Connection, key: str) -> int:
    """A counter kept in ``meta`` (head, anchor, watermark, policy version); 0 when unset."""
    return int(get_meta(conn, key, "0") or 0)


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Insert or replace one value of the ``meta`` table."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, str(value)),
    )


@dataclass(slots=True)
class _ReadPool:
    path: Path
    _idle: queue.SimpleQueue[sqlite3.Connection] = field(default_factory=queue.SimpleQueue)
    _all: list[sqlite3.Connection] = field(default_factory=list)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
        self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if self._idle.qsize() < READ_POOL_SIZE:
                self._idle.put(conn)
            else:
                conn.close()

    def close(self) -> None:
        for conn in self._all:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._all.clear()


class Database:
    """The SQLite file of one site: opened, migrated and bound to its site id."""

    def __init__(self, path: Path, *, site_id: str) -> None:
        """No I/O; ``open_sync`` creates or migrates the file."""
        self.path = Path(path)
        self.site_id = site_id
        self.conn: sqlite3.Connection | None = None
        self.writer: Writer | None = None
        self.marker = Marker(self.path.with_name(self.path.name + ".spill"))
        self._reads = _ReadPool(self.path)

    def open_sync(self) -> dict[str, str]:
        """Create or migrate the file and claim it for ``site_id``; returns ``meta``.

        Blocking: run it in a worker thread.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Names, movements and credential hashes: readable by the daemon's user only.
        # SQLite gives the -wal and -shm files the mode of the database file.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, DB_FILE_MODE))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            meta = self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return meta

    def _prepare(self, conn: sqlite3.Connection) -> dict[str, str]:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DoorkeepError(f"{self.path}: SQLite refused WAL mode (got {mode})")
        # FULL: a commit is on disk when it returns, also across power loss.
        conn.execute("PRAGMA synchronous = FULL")
        _schema.migrate(conn)
        meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        stored_site = meta.get("site_id")
        if stored_site is None:
            conn.execute("INSERT INTO meta VALUES ('site_id', ?)", (self.site_id,))
        elif stored_site != self.site_id:
            raise Conflict(
                f"{self.path} belongs to site {stored_site!r}, not {self.site_id!r}; "
                "use that site's data_dir or a new one"
            )
        return meta

    def start(self, loop: asyncio.AbstractEventLoop, **spill: Any) -> None:
        """Start the writer thread on the opened connection (``spill``: its spill-queue
        fields, see ``Writer``)."""
        assert self.conn is not None
        self.writer = Writer(self.conn, loop, marker=self.marker, **spill)
        self.writer.start()

    async def close(self) -> None:
        """Finish every queued write, then close every connection (also after a failed
        ``open_sync``)."""
        if self.writer is not None:
            await self.writer.close()
        self._reads.close()
        self.marker.close()
        if self.conn is not None:
            self.conn.close()

    @property
    def stats(self) -> WriterStats:
        """The writer's counters."""
        assert self.writer is not None
        return self.writer.stats

    async def write(
        self,
        work: Callable[[sqlite3.Connection], T],
        on_commit: Callable[[T], None] | None = None,
        hold: Callable[[tuple[int, str]], tuple[T, tuple[int, str]]] | None = None,
    ) -> T:
        """Run ``work`` on the writer thread; returns once it is durable, or held
        (with ``hold``, while storage fails: see ``Writer.submit``)."""
        if self.writer is None:
            raise RuntimeError("EdgeStore used outside `async with EdgeStore.open(...)`")
        return await self.writer.submit(work, on_commit, hold)

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on a read connection in a worker thread."""

        def run() -> T:
            with self._reads.connection() as conn:
                return work(conn)

        return await asyncio.to_thread(run)

    def read_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a quick ``work`` on a read connection, on the caller's thread."""
        with self._reads.connection() as conn:
            return work(conn)


def backup(conn: sqlite3.Connection, dest: Path) -> None:
    """Copy the database behind ``conn`` to ``dest`` through ``dest.partial``, fsynced."""
    target = Path(dest)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    out = sqlite3.connect(partial)
    try:
        conn.backup(out)
        out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    finally:
        out.close()
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(target)


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that reads ``path`` and writes nothing, not even SQLite's side files.

    A cleanly closed database (no ``-wal``) is opened immutable, so no ``-shm``/``-wal``
    is made that a command run as root would leave for the daemon's user; with a
    ``-wal`` (the daemon runs, or stopped uncleanly) it is opened read-only, which reads
    through the existing journal.
    """
    mode = "mode=ro" if path.with_name(path.name + "-wal").exists() else "immutable=1"
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn
