"""EdgeStore: the facade of the site's SQLite database (see docs/storage.md).

Writes go through one writer thread with group commit (see ``_writer``), so the event
loop never waits for an fsync. Reads run on a small pool of read connections in worker
threads (``asyncio.to_thread``); WAL mode lets them read a committed snapshot while the
writer writes. A few small reads needed at start-up or on every request (policy,
memory, site state, acknowledged watermark) are synchronous by design and served from
in-memory copies or one quick query.

Each method here checks its arguments and hands a function of the connection to the
database core (``_db``); the SQL lives with its tables: ``_policy``, ``_state``
(decision memory, site state), ``_events`` (log, chain, retention), ``_audit`` and
``_alarms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edge.store import _alarms, _audit, _chain, _db, _events, _policy, _state, _writer
from edge.store._audit import AuditEntry
from edge.store._chain import StoreQueryError
from edge.store._outage import STORAGE_ALARM, StorageWatch
from edge.store._query import page_limit
from edge.store._writer import StorageStatus

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import AsyncIterator, Callable, Collection, Mapping
    from datetime import tzinfo

    from edge.store._events import ChainReport, Scope
    from edge.store._policy import PolicyState
    from edge.store._writer import WriterStats


_log = logging.getLogger(__name__)
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EdgeStore:
    """The edge database. Open it with ``async with EdgeStore.open(path, site_id=...)``."""

    def __init__(
        self,
        path: Path,
        *,
        site_id: str,
        clock: Callable[[], datetime] = _utcnow,
        tz: tzinfo | None = None,
        spill_limit: int | None = None,
    ) -> None:
        """Prefer ``EdgeStore.open``; the constructor does no I/O."""
        self.path = Path(path)
        self.site_id = site_id
        self.epoch = ""
        self._clock = clock
        self._tz = tz or UTC
        self._db = _db.Database(self.path, site_id=site_id)
        self._state: dict[str, Any] = {}
        self._acknowledged = 0
        # storage ok, or the open outage; the alarm recorded when storage returns
        self.outages = StorageWatch(
            self._db,
            limit=_writer.SPILL_LIMIT if spill_limit is None else spill_limit,
            tz=self._tz,
            now=self._now,
        )

    # --- lifecycle ----------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        path: Path,
        *,
        site_id: str,
        clock: Callable[[], datetime] = _utcnow,
        tz: tzinfo | None = None,
        spill_limit: int | None = None,
    ) -> AsyncIterator[EdgeStore]:
        """Create or migrate the database at ``path`` and run its writer thread.

        ``tz`` is the zone of the times in the events the store writes itself (the
        ``storage_unavailable`` alarm); ``spill_limit`` bounds the events held in
        memory while storage fails (``SPILL_LIMIT``).
        """
        store = cls(path, site_id=site_id, clock=clock, tz=tz, spill_limit=spill_limit)
        try:
            await asyncio.to_thread(store._open_sync)
            store._db.start(
                asyncio.get_running_loop(),
                epoch=store.epoch,
                head_of=lambda conn: _events.head(conn, store.epoch),
                recover=store.outages.record,
                on_status=store.outages.set_status,
                on_recovered=store.outages.recovered,
                outage=store.outages.at_open,
                limit=store.outages.limit,
                clock=store._now,
            )
            yield store
        finally:
            await store._db.close()

    def _open_sync(self) -> None:
        meta = self._db.open_sync()
        self.epoch = meta["epoch"]
        self._acknowledged = int(meta.get("acknowledged", 0))
        self._state = self._db.read_sync(_state.load_site_state)
        outage = self._db.marker.open()
        if outage is not None and outage.epoch == self.epoch:
            head_seq, _ = self._db.read_sync(lambda conn: _events.head(conn, self.epoch))
            outage.lost = max(0, outage.high_seq - head_seq)
            if outage.lost:
                _log.error(
                    "%d event(s) held in memory during a storage outage since %s were lost "
                    "when the process stopped; recording a %s alarm",
                    outage.lost,
                    outage.since,
                    STORAGE_ALARM,
                )
            self.outages.reopen(outage)

    # --- storage health (docs/storage.md, *When storage fails*; edge/store/_outage.py) --

    @property
    def storage(self) -> StorageStatus:
        """ok, or the open outage: events held in memory, dropped, refused."""
        return self.outages.status

    @property
    def writer_stats(self) -> WriterStats:
        """Items written and commits made so far (for health pages and tests)."""
        return self._db.stats

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise StoreQueryError("the store's clock returned a time without an offset")
        return now

    # --- policy and decision memory ---------------------------------------------------

    def load_policy(self) -> PolicyState:
        """The stored hashed policy document with its version, digest and owner."""
        return self._db.read_sync(_policy.load)

    def policy_header(self) -> tuple[int, str]:
        """The committed (version, digest): one quick read, so a daemon can notice that
        another process (``doorkeep policy apply``) changed the policy."""
        return self._db.read_sync(_policy.header)

    async def apply_policy_change(
        self,
        *,
        upserts: Mapping[str, list[dict[str, Any]]],
        deletes: Mapping[str, list[str]],
        settings: Mapping[str, Any] | None,
        replace: bool,
        version: int,
        digest: str,
        owner: str | None,
        audit: list[AuditEntry],
    ) -> None:
        """Apply a validated, hashed policy change and its audit rows in ONE transaction.

        ``replace=True`` empties every entity kind first (a whole-document apply).
        Raises PolicyError when an entity still carries a plaintext secret, when a
        kind is unknown or a key is empty; nothing is written then.
        """
        # Serialising every entity takes ~0.6 s for 10,000 residents: off the event loop.
        change = await asyncio.to_thread(
            _policy.check_change,
            upserts=upserts,
            deletes=deletes,
            settings=settings,
            replace=replace,
            version=version,
            digest=digest,
            owner=owner,
            audit=audit,
        )
        await self._db.write(lambda conn: _policy.write_change(conn, change, self._now))

    def load_memory_rows(self) -> dict[str, Any]:
        """Every decision-memory row (key -> JSON value), as the engine last wrote it."""
        return self._db.read_sync(_state.load_memory)

    # --- events ---------------------------------------------------------------------

    async def record_event(
        self, event: Mapping[str, Any], *, memory_rows: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append ``event`` to the log; returns it with ``seq``, ``hash`` and ``epoch``.

        ``memory_rows`` (key -> JSON value, None deletes the key) are written in the
        same transaction, so after a crash the memory never runs ahead of or behind
        the log. Raises StoreQueryError (a ValueError) for a malformed event and
        SensitiveDataError when its detail names a secret-looking key.
        """
        stored = _chain.normalise_event(event)
        memory = _state.check_memory(memory_rows)
        epoch = self.epoch

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            out = _events.insert(conn, stored, epoch)
            _state.write_memory(conn, memory)
            return out

        return await self._write_event(work, lambda head: _held_event(stored, epoch, head))

    async def _write_event(
        self,
        work: Callable[[sqlite3.Connection], T],
        hold: Callable[[tuple[int, str]], tuple[T, tuple[int, str]]],
        on_commit: Callable[[T], None] | None = None,
    ) -> T:
        """A write that is held in the spill queue while storage fails."""
        self.outages.in_flight += 1
        try:
            return await self._db.write(work, on_commit, hold=hold)
        finally:
            self.outages.in_flight -= 1

    async def query_events(
        self,
        *,
        type: str | None = None,  # noqa: A002 - the REST query parameter's name
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        door: str | None = None,
        person: str | None = None,
        apartment: str | None = None,
        result: str | None = None,
        reason: str | None = None,
        action: str | None = None,
        credential_kind: str | None = None,
        actor: str | None = None,
        temp_key: str | None = None,
        credential: str | None = None,
        initiated_by: str | None = None,
        scope: Scope | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Events matching every given filter, newest first, and the next page's cursor.

        ``since`` is inclusive and ``until`` exclusive; times need an offset. ``actor``,
        ``temp_key`` and ``credential`` match those keys of the detail; ``initiated_by``
        the person or the actor; ``scope`` a building's apartments and doors
        (``_events.search_sql``). Each filter is served by an index (docs/storage.md).
        """
        filters = {
            "type": type,
            "door": door,
            "person": person,
            "apartment": apartment,
            "result": result,
            "reason": reason,
            "action": action,
            "credential_kind": credential_kind,
            "actor": actor,
            "temp_key": temp_key,
            "credential": credential,
        }
        sql, args = _events.search_sql(
            filters,
            since=since,
            until=until,
            cursor=cursor,
            initiated_by=initiated_by,
            scope=scope,
        )
        page = page_limit(limit)
        args.append(page + 1)
        rows = await self._db.read(lambda conn: conn.execute(sql, args).fetchall())
        events = [_events.row(values, self.epoch) for values in rows[:page]]
        more = len(rows) > page
        return events, (_chain.encode_cursor("events", events[-1]["seq"]) if more else None)

    async def events_above(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """The outbox: events with seq above ``seq``, oldest first, at most ``limit``."""
        page = page_limit(limit)
        rows = await self._db.read(lambda conn: _events.above(conn, seq, page))
        return [_events.row(values, self.epoch) for values in rows]

    def acknowledged(self) -> int:
        """The highest seq the cloud has confirmed (0 when none)."""
        return self._acknowledged

    async def set_acknowledged(self, seq: int) -> None:
        """Record the cloud's contiguous watermark; it never moves backwards.

        Raises Conflict when ``seq`` is beyond the last event: the cloud then speaks
        about another database (another epoch) and nothing must be pruned on its word.
        """

        def done(value: int) -> None:
            self._acknowledged = max(self._acknowledged, value)

        await self._db.write(lambda conn: _events.acknowledge(conn, seq, self.epoch), done)

    async def verify_chain(self) -> ChainReport:
        """Recompute the hash chain from the retention anchor to the head.

        Redacted rows are checked by link only: their content is gone, but the next
        row's hash still covers their stored hash. A missing tail (rows deleted after
        the recorded head) is reported at the first missing seq.
        """
        return await self._db.read(lambda conn: _events.verify(conn, self.epoch))

    async def redact_apartment_events(
        self, apartment: str, *, actor: str, people: Collection[str] = ()
    ) -> int:
        """Remove the personal content of every event of ``apartment``; returns how many.

        seq, time, type, action, result, reason, door and the hash stay, so the log
        keeps its shape and the chain stays verifiable; person, apartment, reader,
        credential kind and detail are cleared. The alarm events that name one of
        ``people`` (a duress alarm's person) are redacted too and their alarm records
        deleted. The reset is audited.
        """
        if not apartment:
            raise StoreQueryError("apartment must be a non-empty id")
        return await self._db.write(
            lambda conn: _events.redact_apartment(
                conn, apartment, actor=actor, clock=self._now, people=sorted(people)
            )
        )

    async def prune(
        self,
        *,
        now: datetime,
        door_event_days: int = 30,
        only_acknowledged: bool,
    ) -> int:
        """Delete the oldest events older than ``door_event_days``; returns how many.

        Only a contiguous prefix of the log is removed (up to the first event that is
        still young), so seq stays gapless above the new anchor, which records the
        hash of the last removed event for ``verify_chain``. With
        ``only_acknowledged`` nothing above the cloud's watermark goes. Audit rows and
        alarm records are kept for ever.
        """
        chunk = functools.partial(
            _events.prune_chunk,
            epoch=self.epoch,
            cutoff=_events.prune_cutoff(now, door_event_days),
            only_acknowledged=only_acknowledged,
            days=door_event_days,
            clock=self._now,
        )
        total = 0
        while True:
            # Chunks are separate work items so card reads interleave with a big prune
            # (the first one after months offline) instead of waiting seconds for it.
            count, done = await self._db.write(functools.partial(chunk, so_far=total))
            total += count
            if done:
                return total

    # --- audit ------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Append one operation-log line (who did what to which target)."""
        entry = AuditEntry(actor, action, target, detail)
        at = self._now()
        # Held like an event while storage fails: the action it records already happened.
        await self._write_event(lambda conn: _audit.insert(conn, entry, at), _hold_nothing)

    async def query_audit(
        self,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Operation-log lines, newest first, and the next page's cursor."""
        sql, args = _audit.search_sql(
            since=since, until=until, actor=actor, action=action, cursor=cursor
        )
        page = page_limit(limit)
        args.append(page + 1)
        rows = await self._db.read(lambda conn: conn.execute(sql, args).fetchall())
        out = [_audit.row(values) for values in rows[:page]]
        more = len(rows) > page
        return out, (_chain.encode_cursor("audit", out[-1]["id"]) if more else None)

    # --- alarms -------------------------------------------------------------------------

    async def raise_alarm(
        self,
        kind: str,
        *,
        source: str,
        detail: Mapping[str, Any] | None = None,
        at: datetime,
        event: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Open an alarm record; returns it (``id``, ``resolved`` False, ...).

        ``kind`` is a short snake_case name (emergency, tamper, forced_open, held_open,
        board_offline, duress, bundle_rejected, ...). When ``event`` is given (the
        daemon's ``type: "alarm"`` event), it is recorded in the same transaction and
        the alarm's ``event_seq`` points at it.
        """
        _alarms.check(kind, source)
        moment = _chain.parse_time(at, "alarm.at")
        detail_json = _db.dumps(dict(detail or {}))
        stored = None if event is None else _chain.normalise_event(event)
        epoch = self.epoch

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            seq = None if stored is None else _events.insert(conn, stored, epoch)["seq"]
            return _alarms.insert(
                conn,
                kind=kind,
                source=source,
                moment=moment,
                detail_json=detail_json,
                event_seq=seq,
            )

        def hold(head: tuple[int, str]) -> tuple[dict[str, Any], tuple[int, str]]:
            # Held: the alarm record has no id yet; its event has its seq.
            seq = None
            if stored is not None:
                event, head = _held_event(stored, epoch, head)
                seq = event["seq"]
            alarm = {
                "id": None,
                "kind": kind,
                "source": source,
                "at": moment.isoformat(),
                "detail": json.loads(detail_json),
                "event_seq": seq,
                "resolved_at": None,
                "resolved_by": None,
                "note": None,
                "resolved": False,
                "held": True,
            }
            return alarm, head

        return await self._write_event(work, hold)

    async def resolve_alarm(self, alarm_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
        """Close an alarm; NotFound when it does not exist, Conflict when already closed."""
        return await self._db.write(
            lambda conn: _alarms.resolve(conn, alarm_id, actor=actor, note=note, clock=self._now)
        )

    async def query_alarms(self, **query: Any) -> list[dict[str, Any]]:
        """The first page of `query_alarm_page` (its filters), for the daemon's callers."""
        rows, _ = await self.query_alarm_page(**query)
        return rows

    async def query_alarm_page(
        self,
        *,
        open_only: bool = False,
        kind: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of alarm records, newest first, and the next page's cursor."""
        sql, args = _alarms.search_sql(
            open_only=open_only, kind=kind, since=since, until=until, cursor=cursor
        )
        page = page_limit(limit)
        args.append(page + 1)
        rows = await self._db.read(lambda conn: conn.execute(sql, args).fetchall())
        out = [_alarms.row(values) for values in rows[:page]]
        more = len(rows) > page
        return out, (_chain.encode_cursor("alarms", out[-1]["id"]) if more else None)

    # --- backup and site state --------------------------------------------------------

    async def backup(self, dest: Path) -> None:
        """Write a consistent copy of the live database to ``dest`` (atomically replaced).

        Uses SQLite's online backup from a read snapshot, so card reads keep being
        recorded meanwhile; copying the .db file alone while running is NOT safe in
        WAL mode (recent commits live in the -wal file).
        """
        await self._db.read(lambda conn: _db.backup(conn, dest))

    async def put_state(self, key: str, value: Any) -> None:
        """Store one JSON value of site state (enrollment, setup, emergency); None deletes."""
        if not key:
            raise StoreQueryError("state key must be a non-empty string")
        encoded = None if value is None else _db.dumps(value)
        decoded = None if encoded is None else json.loads(encoded)

        def done(_: None) -> None:
            if decoded is None:
                self._state.pop(key, None)
            else:
                self._state[key] = decoded

        # Held while storage fails (emergency state follows the doors, which already
        # moved); the in-memory view changes once it is written.
        await self._write_event(
            lambda conn: _state.write_site_state(conn, key, encoded), _hold_nothing, done
        )

    def get_state(self, key: str, default: Any = None) -> Any:
        """The last committed value of ``key`` (a copy-free read of the in-memory view)."""
        return self._state.get(key, default)


def _held_event(
    stored: dict[str, Any], epoch: str, head: tuple[int, str]
) -> tuple[dict[str, Any], tuple[int, str]]:
    """The event ``_events.insert`` will write after ``head``, and the head after it."""
    seq, prev = head
    event = dict(stored, seq=seq + 1)
    event["hash"] = _chain.event_hash(prev, event)
    event["epoch"] = epoch
    return event, (event["seq"], event["hash"])


def _hold_nothing(head: tuple[int, str]) -> tuple[None, tuple[int, str]]:
    """A held write that is not an event: no result, the chain head unchanged."""
    return None, head
