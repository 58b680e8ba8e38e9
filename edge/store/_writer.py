"""The one writer thread of the edge store, with group commit.

Theory: SQLite allows one writer at a time and every durable commit costs an fsync
(``synchronous=FULL``). Callers on the asyncio loop therefore never touch the write
connection: they put a work item (a function of the connection) on a queue and await a
future. The thread takes whatever is queued (up to ``MAX_BATCH`` items), runs each item
inside its own SAVEPOINT of one ``BEGIN IMMEDIATE`` transaction, commits once, and only
then resolves the futures on the loop with ``call_soon_threadsafe``. One fsync thus
covers a whole burst of card reads, and a failing item rolls back alone without
spoiling its neighbours. A future resolves only after its item is durable.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from edge.store._chain import StoreError

if TYPE_CHECKING:
    from collections.abc import Callable

_log = logging.getLogger(__name__)

# Upper bound of items in one transaction: keeps one commit's latency bounded while
# still amortising the fsync over a burst.
MAX_BATCH = 256

T = TypeVar("T")


@dataclass(slots=True)
class _Item(Generic[T]):
    work: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    on_commit: Callable[[T], None] | None = None


@dataclass(slots=True)
class WriterStats:
    """Counters for tests and health pages: items written and commits made."""

    items: int = 0
    commits: int = 0
    failed_commits: int = 0
    largest_batch: int = 0


@dataclass(slots=True)
class Writer:
    """Owns the write connection and the thread that uses it."""

    conn: sqlite3.Connection
    loop: asyncio.AbstractEventLoop
    name: str = "doorkeep-store-writer"
    stats: WriterStats = field(default_factory=WriterStats)
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
    ) -> asyncio.Future[T]:
        """Queue ``work``; the future resolves with its result after the commit.

        ``on_commit`` runs on the loop with the result just before the future resolves,
        so in-memory caches change only once the write is durable.
        Must be called on the loop thread.
        """
        if self._closed:
            raise RuntimeError("the store is closed")
        fut: asyncio.Future[T] = self.loop.create_future()
        self._queue.put(_Item(work, fut, on_commit))
        return fut

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
        stopping = False
        while not stopping:
            first = self._queue.get()
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
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Item[Any]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in batch:
                conn.execute("SAVEPOINT item")
                try:
                    result = item.work(conn)
                except Exception as err:  # the item fails alone
                    conn.execute("ROLLBACK TO item")
                    conn.execute("RELEASE item")
                    outcomes.append((False, _translate(err)))
                else:
                    conn.execute("RELEASE item")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except BaseException as err:
            # The commit itself failed (disk full, I/O error): nothing of this batch
            # is durable, so every caller hears about it.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.stats.failed_commits += 1
            _log.exception("store commit of %d item(s) failed", len(batch))
            failure = _translate(err)
            outcomes = [(False, failure) for _ in batch]
        else:
            self.stats.commits += 1
            self.stats.items += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for item, (ok, value) in zip(batch, outcomes, strict=True):
            try:
                self.loop.call_soon_threadsafe(_resolve, item, ok, value)
            except RuntimeError:
                # The loop is gone (interpreter shutting down): nobody is waiting.
                return


def _translate(err: BaseException) -> BaseException:
    """sqlite3 errors become StoreError (our error tree); ours pass unchanged."""
    if isinstance(err, sqlite3.Error):
        wrapped = StoreError(f"the site database failed: {err}")
        wrapped.__cause__ = err
        return wrapped
    return err


def _resolve(item: _Item[Any], ok: bool, value: Any) -> None:
    if ok and item.on_commit is not None:
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
