"""The cloud store's database: engine, read and write connections, migrations, wake-ups.

SQLAlchemy Core over aiosqlite (``sqlite:///file.db``) or asyncpg (``postgresql://...``).
A policy change wakes long-polling workers through PostgreSQL ``LISTEN/NOTIFY`` (every
worker process) or an in-process asyncio wake-up (SQLite: one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cloud_sync.store._schema import MIGRATIONS, SchemaTooNewError, metadata, schema_version
from doorkeep.errors import SyncError
from doorkeep.link import LinkHealth

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

log = logging.getLogger(__name__)

#: Reconnect delays of the LISTEN connection (first, largest; doubling, jittered).
LISTEN_BACKOFF = (0.2, 10.0)


def engine_url(url: str) -> str:
    """Map a user URL (``sqlite:///x.db``, ``postgresql://...``) to its async driver URL."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        return url
    raise SyncError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://...")


class Notifier:
    """Wakes long-polls waiting on a site: one asyncio.Event per site per generation."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def watch(self, site_id: str) -> asyncio.Event:
        """The event the next :meth:`wake` of ``site_id`` sets; take it *before* checking."""
        return self._events.setdefault(site_id, asyncio.Event())

    def wake(self, site_id: str) -> None:
        """Wake everyone watching ``site_id`` (``"*"``: every site)."""
        if site_id == "*":
            woken = list(self._events.values())
            self._events.clear()
        else:
            ev = self._events.pop(site_id, None)
            woken = [ev] if ev else []
        for ev in woken:
            ev.set()

    @property
    def waiting(self) -> int:
        """How many sites have a watcher (for the benchmark and the status page)."""
        return len(self._events)


class Database:
    """One engine and its connection rules; ``async with Database(url)`` migrates on entry.

    ``clock`` stamps every row the store writes (POSIX seconds).
    """

    def __init__(
        self,
        url: str,
        *,
        pg_schema: str | None = None,
        clock: Callable[[], float] = time.time,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.clock = clock
        self.notifier = Notifier()
        self.is_pg = engine_url(url).startswith("postgresql")
        self.pg_schema = pg_schema
        self.channel = f"doorkeep_policy_{pg_schema or 'public'}"
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._write_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._listen_ready = asyncio.Event()

    async def __aenter__(self) -> Self:
        kwargs: dict[str, Any] = {}
        if self.is_pg:
            settings = {"search_path": self.pg_schema} if self.pg_schema else {}
            kwargs = {
                "connect_args": {"server_settings": settings},
                "pool_size": self._pool_size,
                "max_overflow": self._pool_size,
            }
        else:
            kwargs = {"connect_args": {"timeout": 30}}
        self._engine = create_async_engine(engine_url(self.url), **kwargs)
        if not self.is_pg:
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_on_connect)
            sa.event.listen(self._engine.sync_engine, "begin", _sqlite_on_begin)
        try:
            await self.migrate()
        except BaseException:
            await self._engine.dispose()
            self._engine = None
            raise
        if self.is_pg:
            self._listener = asyncio.create_task(self._listen(), name="cloud-store-listen")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listen_ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._engine is not None:
            await self._engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (open only inside ``async with``)."""
        if self._engine is None:
            raise SyncError("the cloud store is not open")
        return self._engine

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (committed on exit)."""
        # SQLite has one writer; queueing in-process beats spinning on SQLITE_BUSY.
        if self.is_pg:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection (SQLite: a deferred transaction, never waits for a writer)."""
        async with self.engine.connect() as conn:
            if not self.is_pg:
                conn = await conn.execution_options(doorkeep_read=True)  # noqa: PLW2901
            yield conn

    async def migrate(self) -> int:
        """Apply pending migrations; the schema version now in force."""
        async with self.write() as conn:
            if self.is_pg:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7431001)"))
            await conn.run_sync(lambda c: metadata.create_all(c, tables=[schema_version]))
            current = (
                await conn.execute(sa.select(sa.func.max(schema_version.c.version)))
            ).scalar()
            current = int(current or 0)
            if current > len(MIGRATIONS):
                raise SchemaTooNewError(
                    f"the cloud store's schema version {current} is newer than this doorkeep "
                    f"supports ({len(MIGRATIONS)}); upgrade doorkeep or restore an older backup"
                )
            for number, step in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                await step(conn)
                await conn.execute(sa.delete(schema_version))
                await conn.execute(sa.insert(schema_version).values(version=number))
                log.info("cloud store migrated to schema %d", number)
                current = number
            return current

    async def _listen(self) -> None:
        import asyncpg  # noqa: PLC0415 - only PostgreSQL stores need it

        dsn = "postgresql://" + engine_url(self.url).split("://", 1)[1]
        settings = {"search_path": self.pg_schema} if self.pg_schema else {}
        health = LinkHealth(
            "cloud store LISTEN",
            base_s=LISTEN_BACKOFF[0],
            cap_s=LISTEN_BACKOFF[1],
            logger=log,
            broke="%(name)s failed: %(error)s; retrying",
        )
        while True:
            try:
                conn = await asyncpg.connect(dsn, server_settings=settings)
                try:
                    await conn.add_listener(
                        self.channel, lambda _c, _p, _ch, payload: self.notifier.wake(payload)
                    )
                    health.ok()
                    # Anything may have changed while we were not listening.
                    self.notifier.wake("*")
                    self._listen_ready.set()
                    # asyncpg has no "closed" future; a cheap periodic check finds a dead
                    # connection (and its lost notifications) within a second.
                    while not conn.is_closed():  # noqa: ASYNC110
                        await asyncio.sleep(1)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
                delay = health.backoff.next()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = health.failed(err)
                self.notifier.wake("*")
            await asyncio.sleep(delay)

    async def notify(self, conn: AsyncConnection, site_id: str) -> None:
        """Wake the workers long-polling ``site_id`` once ``conn`` commits (PostgreSQL)."""
        # PostgreSQL: NOTIFY is delivered at commit, to every worker's listener (ours too).
        if self.is_pg:
            await conn.execute(sa.select(sa.func.pg_notify(self.channel, site_id)))

    def wake_local(self, site_id: str) -> None:
        """Wake this process's long-polls on ``site_id`` (SQLite: call after the commit)."""
        if not self.is_pg:
            self.notifier.wake(site_id)

    async def relaxed(self, conn: AsyncConnection) -> None:
        """Let this transaction commit without waiting for a WAL flush (PostgreSQL)."""
        # Contact times and reports are refreshed on every poll; losing the last few in a
        # crash is harmless, so they need not wait for a WAL flush (1000 sites poll).
        if self.is_pg:
            await conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook issue the BEGIN, and make the file WAL.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Writes BEGIN IMMEDIATE: take the write lock up front, so two processes (serve +
    # reconcile) wait on the busy timeout instead of deadlocking on a lock upgrade.
    # Reads stay deferred: in WAL mode they never wait for a writer.
    if conn.get_execution_options().get("doorkeep_read"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
