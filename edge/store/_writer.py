"""The one writer thread of the edge store, with group commit.

Theory: SQLite allows one writer at a time and every durable commit costs an fsync
(``synchronous=FULL``). Callers on the asyncio loop therefore never touch the write
connection: they put a work item (a function of the connection) on a queue and await a
future. The thread takes whatever is queued (up to ``MAX_BATCH`` items), runs each item
inside its own SAVEPOINT of one ``BEGIN IMMEDIATE`` transaction, commits once, and only
then resolves the futures on the loop with ``call_soon_threadsafe``. One fsync thus
covers a whole burst of card reads, and a failing item rolls back alone without
spoiling its neighbours. A future resolves only after its item is durable.

When a commit fails because of the storage (disk full, I/O error, locked: see
``_spill.is_storage_fault``), the event writes of the batch (items with a ``hold``) are
held in the spill queue, in order, and their futures resolve with the seq and hash they
will get; the other writes fail with ``StorageUnavailable``. While anything is held,
every transaction starts with the held events, so the log keeps its order; the writer
tries again every ``RETRY_S``, and the first commit that succeeds also records the
``storage_unavailable`` alarm of the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from edge.store._chain import StoreError
from edge.store._spill import Marker, Outage, is_storage_fault, iso, short_error

if TYPE_CHECKING:
    from collections.abc import Callable

_log = logging.getLogger(__name__)

# Upper bound of items in one transaction: keeps one commit's latency bounded while
# still amortising the fsync over a burst.
MAX_BATCH = 256
# Events held in memory at most while storage fails (about 1 KB each).
SPILL_LIMIT = 10_000
# While storage fails, how often the writer tries again to commit what it holds.
RETRY_S = 0.5

T = TypeVar("T")
Head = tuple[int, str]  # (seq, hash) at the end of the chain


class StorageUnavailable(StoreError):
    """The database cannot be written now and this write could not be held."""


@dataclass(slots=True)
class _Item(Generic[T]):
    work: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    on_commit: Callable[[T], None] | None = None
    # An event write that may be held while storage fails: given the chain head
    # before it, the result it will have once written, and the head after it.
    hold: Callable[[Head], tuple[T, Head]] | None = None


@dataclass(slots=True)
class WriterStats:
    """Counters for tests and health pages: items written and commits made."""

    items: int = 0
    commits: int = 0
    failed_commits: int = 0
    largest_batch: int = 0


@dataclass(frozen=True, slots=True)
class StorageStatus:
    """What the loop knows of the writer: ok, or the open outage and its spill queue."""

    ok: bool = True
    held: int = 0  # events in the spill queue now
    limit: int = SPILL_LIMIT
    since: str | None = None
    error: str | None = None
    dropped: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The ``storage`` part of ``/health``."""
        out: dict[str, Any] = {"ok": self.ok, "held": self.held, "limit": self.limit}
        if not self.ok:
            out.update(since=self.since, error=self.error, dropped=self.dropped)
            out["refused"] = self.refused
        return out


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Writer:
    """Owns the write connection and the thread that uses it."""

    conn: sqlite3.Connection
    loop: asyncio.AbstractEventLoop
    name: str = "doorkeep-store-writer"
    stats: WriterStats = field(default_factory=WriterStats)
    # --- the spill queue (docs/storage.md, *When storage fails*) ---
    epoch: str = ""
    head_of: Callable[[sqlite3.Connection], Head] | None = None  # the durable head
    recover: Callable[[sqlite3.Connection, Outage], Any] | None = None  # writes the alarm
    on_status: Callable[[StorageStatus], None] | None = None  # runs on the loop
    on_recovered: Callable[[Any], None] | None = None  # runs on the loop with the alarm
    marker: Marker | None = None
    outage: Outage | None = None  # also loaded from the marker at open
    limit: int = SPILL_LIMIT
    clock: Callable[[], datetime] = _utcnow
    _spill: deque[_Item[Any]] = field(default_factory=deque)
    _spill_head: Head | None = None
    _next_try: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queue: queue.SimpleQueue[_Item[Any] | None] = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _closed: bool = False

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def submit(
        self,
        work: Callable[[sqlite3.Connection], T],
        on_commit: Callable[[T], None] | None = None,
        hold: Callable[[Head], tuple[T, Head]] | None = None,
    ) -> asyncio.Future[T]:
        """Queue ``work``; the future resolves with its result after the commit.

        ``on_commit`` runs on the loop with the result just before the future resolves,
        so in-memory caches change only once the write is durable. With ``hold``, a
        write that storage refuses is held in the spill queue instead of failing, and
        the future resolves with ``hold``'s result (``on_commit`` does not run).
        Must be called on the loop thread.
        """
        if self._closed:
            raise RuntimeError("the store is closed")
        fut: asyncio.Future[T] = self.loop.create_future()
        self._queue.put(_Item(work, fut, on_commit, hold))
        return fut

    def note_refused(self) -> None:
        """Count a presentation refused because the spill queue was full (any thread)."""
        with self._lock:
            if self.outage is not None:
                self.outage.refused += 1

    async def close(self) -> None:
        """Finish every queued item, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # --- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        if self.outage is not None:  # left by a process that died during an outage
            self._attempt([])
        stopping = False
        while not stopping:
            timeout = None
            if self.outage is not None:
                timeout = max(0.0, self._next_try - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._attempt([])
                continue
            if first is None:
                break
            batch: list[_Item[Any]] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            waiting = self.outage is not None and time.monotonic() < self._next_try
            try:
                if waiting and all(item.hold is not None for item in batch):
                    # Storage failed a moment ago: hold these until the next try rather
                    # than rewriting the whole spill queue for every card read.
                    self._failed(batch, None)
                else:
                    self._attempt(batch)
            except Exception as err:  # a bug here must not leave every caller hanging
                _log.exception("store writer failed on a batch of %d item(s)", len(batch))
                for item in batch:
                    self._call_soon(_resolve, item, False, StoreError(f"store writer: {err}"))
        if self.outage is not None:
            self._attempt([])  # a last try; what stays held is counted lost at next open

    def _attempt(self, batch: list[_Item[Any]]) -> None:
        """One transaction: the held events, the outage's alarm, then ``batch``."""
        outcomes: list[tuple[bool, Any]] = []
        conn = self.conn
        outage = self.outage
        alarm: Any = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            flushed: list[tuple[_Item[Any], Any]] = []
            for held in self._spill:
                ok, value = self._run_item(conn, held)
                if ok:
                    flushed.append((held, value))
                else:  # a bug, not the disk: it cannot be written, ever
                    _log.error("a held write failed: %s", value)
                    if outage is not None:
                        outage.dropped += 1
            if outage is not None and self.recover is not None:
                outage.recovered_at = iso(self.clock())
                alarm = self.recover(conn, outage)
            outcomes.extend(self._run_item(conn, item) for item in batch)
            conn.execute("COMMIT")
        except BaseException as err:  # the commit failed: nothing of it is durable
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if outage is not None:
                outage.recovered_at = None
            self.stats.failed_commits += 1
            self._failed(batch, err)
            return
        self.stats.commits += 1
        written = len(batch) + len(self._spill)
        self.stats.items += written
        self.stats.largest_batch = max(self.stats.largest_batch, written)
        if outage is not None:
            _log.warning(
                "storage is back: %d held event(s) written, alarm recorded", len(self._spill)
            )
            self._spill.clear()
            self._spill_head = None
            with self._lock:
                self.outage = None
            if self.marker is not None:
                self.marker.clear()
            self._post_status()
            for held, value in flushed:  # caches follow the held writes now
                if held.on_commit is not None:
                    self._call_soon(held.on_commit, value)
            if self.on_recovered is not None and alarm is not None:
                self._call_soon(self.on_recovered, alarm)
        for item, (ok, value) in zip(batch, outcomes, strict=True):
            if not self._call_soon(_resolve, item, ok, value):
                return

    def _run_item(self, conn: sqlite3.Connection, item: _Item[Any]) -> tuple[bool, Any]:
        """Run one item in its own savepoint; a storage fault fails the whole batch."""
        conn.execute("SAVEPOINT item")
        try:
            result = item.work(conn)
        except Exception as err:
            if is_storage_fault(err):
                raise
            conn.execute("ROLLBACK TO item")
            conn.execute("RELEASE item")
            return False, _translate(err)
        conn.execute("RELEASE item")
        return True, result

    def _failed(self, batch: list[_Item[Any]], err: BaseException | None) -> None:
        """Storage refused a commit: hold the event writes of ``batch``, fail the rest."""
        with self._lock:
            if self.outage is None:
                message = "unknown" if err is None else short_error(err)
                self.outage = Outage(self.epoch, since=iso(self.clock()), error=message)
                _log.error(
                    "storage unavailable (%s): holding events in memory, up to %d",
                    message,
                    self.limit,
                )
            outage = self.outage
        head = self._spill_head if self._spill else self._durable_head()
        failure = StorageUnavailable(
            f"the site database cannot be written now ({outage.error}); try again later"
        )
        outcomes: list[tuple[bool, Any]] = []
        for item in batch:
            if item.hold is None:
                outage.failed_writes += 1
                outcomes.append((False, failure))
            elif head is None or len(self._spill) >= self.limit:
                outage.dropped += 1
                outcomes.append((False, failure))
            else:
                result, head = item.hold(head)
                self._spill.append(item)
                outage.held += 1
                outage.high_seq = head[0]
                outcomes.append((True, result))
        self._spill_head = head
        if self.marker is not None:
            self.marker.write(outage)
        self._next_try = time.monotonic() + RETRY_S
        self._post_status()
        for item, (ok, value) in zip(batch, outcomes, strict=True):
            # held: the caller hears "done"; on_commit waits for the real write
            answer = _Held(value) if ok else value
            if not self._call_soon(_resolve, item, ok, answer):
                return

    def _durable_head(self) -> Head | None:
        if self.head_of is None:
            return None
        try:
            return self.head_of(self.conn)
        except sqlite3.Error as err:
            _log.error("cannot read the end of the event chain: %s", err)
            return None

    def _post_status(self) -> None:
        if self.on_status is None:
            return
        outage = self.outage
        status = (
            StorageStatus(limit=self.limit)
            if outage is None
            else StorageStatus(
                ok=False,
                held=len(self._spill),
                limit=self.limit,
                since=outage.since,
                error=outage.error,
                dropped=outage.dropped,
                refused=outage.refused,
            )
        )
        self._call_soon(self.on_status, status)

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> bool:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            # The loop is gone (interpreter shutting down): nobody is waiting.
            return False
        return True


@dataclass(frozen=True, slots=True)
class _Held:
    """A held item's provisional result (its on_commit must not run yet)."""

    value: Any


def _translate(err: BaseException) -> BaseException:
    """sqlite3 errors become StoreError (our error tree); ours pass unchanged."""
    if isinstance(err, sqlite3.Error):
        wrapped = StoreError(f"the site database failed: {err}")
        wrapped.__cause__ = err
        return wrapped
    return err


def _resolve(item: _Item[Any], ok: bool, value: Any) -> None:
    held = isinstance(value, _Held)
    if held:
        value = value.value
    if ok and not held and item.on_commit is not None:
        try:
            item.on_commit(value)
        except Exception:
            # The write is durable; a broken cache hook must not leave the caller hanging.
            _log.exception("store post-commit hook failed")
    if item.future.cancelled():
        return
    if ok:
        item.future.set_result(value)
    else:
        item.future.set_exception(value)
