"""EdgeStore: the site's SQLite database (policy, decision memory, events, audit, alarms).

Writes go through one writer thread with group commit (see ``_writer``), so the event
loop never waits for an fsync. Reads run on a small pool of read connections in worker
threads (``asyncio.to_thread``); WAL mode lets them read a committed snapshot while the
writer writes. A few small reads needed at start-up or on every request (policy,
memory, site state, acknowledged watermark) are synchronous by design and served from
in-memory copies or one quick query.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import queue
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from doorkeep import policydoc
from doorkeep.errors import Conflict, DoorkeepError, NotFound, PolicyError, PolicyIssue
from edge.store import _chain, _schema
from edge.store._chain import StoreQueryError
from edge.store._writer import Writer, WriterStats

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping

T = TypeVar("T")

# How many read connections may exist at once (one per concurrent reader thread).
READ_POOL_SIZE = 4
# Mode of a newly created database file (existing files keep theirs).
DB_FILE_MODE = 0o600
# Events deleted per retention transaction: small enough that a card read queued
# behind it waits milliseconds, not seconds.
PRUNE_CHUNK = 1000
# Longest page a query returns, whatever the caller asks for.
MAX_LIMIT = 1000
# SQLite waits this long for a lock instead of failing at once (only another process,
# such as a backup, can hold one: inside the daemon there is a single writer).
BUSY_TIMEOUT_MS = 5000
_ALARM_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Entity fields that would hold plaintext secrets; a hashed policy has *_hmac instead.
_PLAINTEXT_FIELDS: Mapping[str, str] = {"credentials": "value", "temp_keys": "code"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One operation-log line: who did what to which target."""

    actor: str
    action: str
    target: str
    detail: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("actor", "action", "target"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"AuditEntry.{name} must be a non-empty string, got {value!r}")


@dataclass(frozen=True, slots=True)
class PolicyState:
    """The stored (hashed) policy document and its header."""

    doc: dict[str, Any]
    version: int
    digest: str
    owner: Literal["local", "cloud"]


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Outcome of ``verify_chain``: ``first_bad_seq`` is None when ``ok``."""

    ok: bool
    first_bad_seq: int | None
    checked: int
    anchor_seq: int = 0
    redacted: int = 0


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


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise StoreQueryError(f"limit must be a positive integer, got {limit!r}")
    return min(limit, MAX_LIMIT)


def _window_and_cursor(
    where: list[str],
    args: list[Any],
    *,
    since: datetime | str | None,
    until: datetime | str | None,
    key: str,
    kind: str,
    cursor: str | None,
) -> None:
    """The time window (``since`` inclusive, ``until`` exclusive) and the page cursor
    (rows older than the last one seen), shared by the event and audit searches."""
    if since is not None:
        where.append("ts >= ?")
        args.append(_chain.time_key(_chain.parse_time(since, "since")))
    if until is not None:
        where.append("ts < ?")
        args.append(_chain.time_key(_chain.parse_time(until, "until")))
    if cursor is not None:
        where.append(f"{key} < ?")
        args.append(_chain.decode_cursor(kind, cursor))


_EVENT_COLUMNS = ", ".join((*_chain.EVENT_FIELDS, "hash", "redacted"))


class EdgeStore:
    """The edge database. Open it with ``async with EdgeStore.open(path, site_id=...)``."""

    def __init__(
        self,
        path: Path,
        *,
        site_id: str,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Prefer ``EdgeStore.open``; the constructor does no I/O."""
        self.path = Path(path)
        self.site_id = site_id
        self.epoch = ""
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._writer: Writer | None = None
        self._reads = _ReadPool(self.path)
        self._state: dict[str, Any] = {}
        self._acknowledged = 0

    # --- lifecycle ----------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        path: Path,
        *,
        site_id: str,
        clock: Callable[[], datetime] = _utcnow,
    ) -> AsyncIterator[EdgeStore]:
        """Create or migrate the database at ``path`` and run its writer thread."""
        store = cls(path, site_id=site_id, clock=clock)
        await asyncio.to_thread(store._open_sync)
        assert store._conn is not None
        store._writer = Writer(store._conn, asyncio.get_running_loop())
        store._writer.start()
        try:
            yield store
        finally:
            await store._writer.close()
            store._reads.close()
            store._conn.close()

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Names, movements and credential hashes: readable by the daemon's user only.
        # SQLite gives the -wal and -shm files the mode of the database file.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, DB_FILE_MODE))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DoorkeepError(f"{self.path}: SQLite refused WAL mode (got {mode})")
        # FULL: a commit is on disk when it returns, also across power loss.
        conn.execute("PRAGMA synchronous = FULL")
        _schema.migrate(conn)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        stored_site = meta.get("site_id")
        if stored_site is None:
            conn.execute("INSERT INTO meta VALUES ('site_id', ?)", (self.site_id,))
        elif stored_site != self.site_id:
            raise Conflict(
                f"{self.path} belongs to site {stored_site!r}, not {self.site_id!r}; "
                "use that site's data_dir or a new one"
            )
        self.epoch = meta["epoch"]
        self._acknowledged = int(meta.get("acknowledged", 0))
        self._state = {
            key: json.loads(value)
            for key, value in conn.execute("SELECT key, value FROM site_state")
        }

    @property
    def writer_stats(self) -> WriterStats:
        """Items written and commits made so far (for health pages and tests)."""
        assert self._writer is not None
        return self._writer.stats

    async def _write(
        self,
        work: Callable[[sqlite3.Connection], T],
        on_commit: Callable[[T], None] | None = None,
    ) -> T:
        if self._writer is None:
            raise RuntimeError("EdgeStore used outside `async with EdgeStore.open(...)`")
        return await self._writer.submit(work, on_commit)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._reads.connection() as conn:
                return work(conn)

        return await asyncio.to_thread(run)

    def _read_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._reads.connection() as conn:
            return work(conn)

    # --- shared write helpers (run on the writer thread) ------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise StoreQueryError("the store's clock returned a time without an offset")
        return now

    def _insert_audit(self, conn: sqlite3.Connection, entry: AuditEntry) -> int:
        now = self._now()
        cur = conn.execute(
            "INSERT INTO audit (at, ts, actor, action, target, detail) VALUES (?,?,?,?,?,?)",
            (
                now.isoformat(),
                _chain.time_key(now),
                entry.actor,
                entry.action,
                entry.target,
                _dumps(dict(entry.detail or {})),
            ),
        )
        return int(cur.lastrowid or 0)

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    @staticmethod
    def _get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _head(self, conn: sqlite3.Connection) -> tuple[int, str]:
        seq = self._get_meta(conn, "head_seq")
        if seq is None:
            return 0, _chain.genesis_hash(self.epoch)
        return int(seq), str(self._get_meta(conn, "head_hash"))

    # --- policy -------------------------------------------------------------------

    def load_policy(self) -> PolicyState:
        """The stored hashed policy document with its version, digest and owner."""

        def work(conn: sqlite3.Connection) -> PolicyState:
            doc = policydoc.empty_document()
            settings = self._get_meta(conn, "policy_settings")
            if settings is not None:
                doc["settings"] = json.loads(settings)
            rows = conn.execute("SELECT kind, body FROM policy_entity ORDER BY rowid")
            for kind, body in rows:
                doc.setdefault(kind, []).append(json.loads(body))
            owner = self._get_meta(conn, "policy_owner", "local")
            return PolicyState(
                doc=doc,
                version=int(self._get_meta(conn, "policy_version", "0") or 0),
                digest=self._get_meta(conn, "policy_digest", "") or "",
                owner="cloud" if owner == "cloud" else "local",
            )

        return self._read_sync(work)

    def policy_header(self) -> tuple[int, str]:
        """The committed (version, digest): one quick read, so a daemon can notice that
        another process (``doorkeep policy apply``) changed the policy."""

        def work(conn: sqlite3.Connection) -> tuple[int, str]:
            version = int(self._get_meta(conn, "policy_version", "0") or 0)
            return version, self._get_meta(conn, "policy_digest", "") or ""

        return self._read_sync(work)

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
        issues: list[PolicyIssue] = []
        rows: list[tuple[str, str, str]] = []
        for kind, entities in upserts.items():
            if kind not in policydoc.ENTITY_KINDS:
                issues.append(PolicyIssue(kind, "", "unknown entity kind"))
                continue
            for entity in entities:
                key = policydoc.entity_key(kind, entity)
                if not key:
                    issues.append(PolicyIssue(f"{kind}/?", "id", "entity has no key"))
                    continue
                secret_field = _PLAINTEXT_FIELDS.get(kind)
                if secret_field and secret_field in entity:
                    issues.append(
                        PolicyIssue(
                            f"{kind}/{key}",
                            secret_field,
                            "plaintext value reached the store; hash the document first",
                        )
                    )
                    continue
                rows.append((kind, key, _dumps(entity)))
        issues.extend(
            PolicyIssue(kind, "", "unknown entity kind")
            for kind in deletes
            if kind not in policydoc.ENTITY_KINDS
        )
        if owner not in (None, "local", "cloud"):
            issues.append(PolicyIssue("policy", "owner", f"{owner!r} is not local or cloud"))
        if issues:
            raise PolicyError(f"{len(issues)} problem(s) in the policy change", issues)
        delete_rows = [(kind, str(key)) for kind, keys in deletes.items() for key in keys]
        settings_json = None if settings is None else _dumps(dict(settings))

        def work(conn: sqlite3.Connection) -> None:
            if replace:
                conn.execute("DELETE FROM policy_entity")
            conn.executemany("DELETE FROM policy_entity WHERE kind = ? AND key = ?", delete_rows)
            conn.executemany(
                "INSERT INTO policy_entity (kind, key, body) VALUES (?, ?, ?) "
                "ON CONFLICT(kind, key) DO UPDATE SET body = excluded.body",
                rows,
            )
            if settings_json is not None:
                self._set_meta(conn, "policy_settings", settings_json)
            self._set_meta(conn, "policy_version", int(version))
            self._set_meta(conn, "policy_digest", digest)
            if owner is not None:
                self._set_meta(conn, "policy_owner", owner)
            for entry in audit:
                self._insert_audit(conn, entry)

        await self._write(work)

    # --- decision memory ------------------------------------------------------------

    def load_memory_rows(self) -> dict[str, Any]:
        """Every decision-memory row (key -> JSON value), as the engine last wrote it."""
        return self._read_sync(
            lambda conn: {
                k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM memory")
            }
        )

    # --- events ---------------------------------------------------------------------

    def _event_row(self, row: tuple[Any, ...]) -> dict[str, Any]:
        names = (*_chain.EVENT_FIELDS, "hash", "redacted")
        event = dict(zip(names, row, strict=True))
        event["detail"] = json.loads(event["detail"])
        event["epoch"] = self.epoch
        if not event.pop("redacted"):
            return event
        event["redacted"] = True
        return event

    def _insert_event(self, conn: sqlite3.Connection, stored: dict[str, Any]) -> dict[str, Any]:
        seq, prev = self._head(conn)
        event = dict(stored, seq=seq + 1)
        event["hash"] = _chain.event_hash(prev, event)
        conn.execute(
            f"INSERT INTO events ({', '.join(_chain.EVENT_FIELDS)}, ts, hash) "  # noqa: S608 - fixed column names
            f"VALUES ({', '.join('?' * (len(_chain.EVENT_FIELDS) + 2))})",
            (
                *(
                    event[name] if name != "detail" else _dumps(event[name])
                    for name in _chain.EVENT_FIELDS
                ),
                _chain.time_key(datetime.fromisoformat(event["at"])),
                event["hash"],
            ),
        )
        self._set_meta(conn, "head_seq", event["seq"])
        self._set_meta(conn, "head_hash", event["hash"])
        event["epoch"] = self.epoch
        return event

    @staticmethod
    def _write_memory(conn: sqlite3.Connection, rows: Mapping[str, Any]) -> None:
        for key, value in rows.items():
            if value is None:
                conn.execute("DELETE FROM memory WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO memory (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, _dumps(value)),
                )

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
        memory = dict(memory_rows or {})
        try:  # opaque to the store, but it must be JSON before it reaches the writer
            _dumps(memory)
        except (TypeError, ValueError) as err:
            raise StoreQueryError(f"memory rows are not JSON: {err}") from err

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            out = self._insert_event(conn, stored)
            self._write_memory(conn, memory)
            return out

        return await self._write(work)

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
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Events matching every given filter, newest first, and the next page's cursor.

        ``since`` is inclusive and ``until`` exclusive; times need an offset.
        """
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("type", type),
            ("door", door),
            ("person", person),
            ("apartment", apartment),
            ("result", result),
            ("reason", reason),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        _window_and_cursor(
            where, args, since=since, until=until, key="seq", kind="events", cursor=cursor
        )
        page = _limit(limit)
        sql = (
            f"SELECT {_EVENT_COLUMNS} FROM events"  # noqa: S608 - only fixed column names
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY seq DESC LIMIT ?"
        )
        args.append(page + 1)
        rows = await self._read(lambda conn: conn.execute(sql, args).fetchall())
        events = [self._event_row(row) for row in rows[:page]]
        more = len(rows) > page
        return events, (_chain.encode_cursor("events", events[-1]["seq"]) if more else None)

    async def events_above(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """The outbox: events with seq above ``seq``, oldest first, at most ``limit``."""
        page = _limit(limit)
        rows = await self._read(
            lambda conn: conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
                (seq, page),
            ).fetchall()
        )
        return [self._event_row(row) for row in rows]

    def acknowledged(self) -> int:
        """The highest seq the cloud has confirmed (0 when none)."""
        return self._acknowledged

    async def set_acknowledged(self, seq: int) -> None:
        """Record the cloud's contiguous watermark; it never moves backwards.

        Raises Conflict when ``seq`` is beyond the last event: the cloud then speaks
        about another database (another epoch) and nothing must be pruned on its word.
        """

        def work(conn: sqlite3.Connection) -> int:
            head, _ = self._head(conn)
            if seq > head:
                raise Conflict(
                    f"acknowledged seq {seq} is beyond the last event {head} of epoch {self.epoch}"
                )
            current = int(self._get_meta(conn, "acknowledged", "0") or 0)
            value = max(current, int(seq))
            self._set_meta(conn, "acknowledged", value)
            return value

        def done(value: int) -> None:
            self._acknowledged = max(self._acknowledged, value)

        await self._write(work, done)

    async def verify_chain(self) -> ChainReport:
        """Recompute the hash chain from the retention anchor to the head.

        Redacted rows are checked by link only: their content is gone, but the next
        row's hash still covers their stored hash. A missing tail (rows deleted after
        the recorded head) is reported at the first missing seq.
        """

        def work(conn: sqlite3.Connection) -> ChainReport:
            conn.execute("BEGIN")  # one snapshot for the whole walk
            anchor_seq = int(self._get_meta(conn, "anchor_seq", "0") or 0)
            prev = self._get_meta(conn, "anchor_hash") or _chain.genesis_hash(self.epoch)
            head = int(self._get_meta(conn, "head_seq", "0") or 0)
            expected = anchor_seq + 1
            checked = redacted = 0
            for row in conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq",  # noqa: S608
                (anchor_seq,),
            ):
                event = dict(zip((*_chain.EVENT_FIELDS, "hash", "redacted"), row, strict=True))
                if event["seq"] != expected:
                    return ChainReport(
                        ok=False,
                        first_bad_seq=expected,
                        checked=checked,
                        anchor_seq=anchor_seq,
                        redacted=redacted,
                    )
                if event["redacted"]:
                    redacted += 1
                else:
                    event["detail"] = json.loads(event["detail"])
                    if _chain.event_hash(prev, event) != event["hash"]:
                        return ChainReport(
                            ok=False,
                            first_bad_seq=event["seq"],
                            checked=checked,
                            anchor_seq=anchor_seq,
                            redacted=redacted,
                        )
                prev = event["hash"]
                checked += 1
                expected += 1
            if expected <= head:
                return ChainReport(
                    ok=False,
                    first_bad_seq=expected,
                    checked=checked,
                    anchor_seq=anchor_seq,
                    redacted=redacted,
                )
            return ChainReport(
                ok=True,
                first_bad_seq=None,
                checked=checked,
                anchor_seq=anchor_seq,
                redacted=redacted,
            )

        return await self._read(work)

    async def redact_apartment_events(self, apartment: str, *, actor: str) -> int:
        """Remove the personal content of every event of ``apartment``; returns how many.

        seq, time, type, action, result, reason, door and the hash stay, so the log
        keeps its shape and the chain stays verifiable; person, apartment, reader,
        credential kind and detail are cleared. The reset is audited.
        """
        if not apartment:
            raise StoreQueryError("apartment must be a non-empty id")

        def work(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE events SET person = NULL, apartment = NULL, reader = NULL, "
                "credential_kind = NULL, detail = '{}', redacted = 1 WHERE apartment = ?",
                (apartment,),
            )
            count = cur.rowcount
            self._insert_audit(
                conn,
                AuditEntry(
                    actor, "apartment.redact_events", f"apartment:{apartment}", {"events": count}
                ),
            )
            return count

        return await self._write(work)

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
        if door_event_days < 1:
            raise StoreQueryError(f"door_event_days must be at least 1, got {door_event_days}")
        cutoff = _chain.time_key(_chain.parse_time(now, "now") - timedelta(days=door_event_days))

        def chunk(conn: sqlite3.Connection, so_far: int) -> tuple[int, bool]:
            head, _ = self._head(conn)
            anchor = int(self._get_meta(conn, "anchor_seq", "0") or 0)
            last = head
            if only_acknowledged:
                last = min(last, int(self._get_meta(conn, "acknowledged", "0") or 0))
            # Look only inside the next chunk, by primary key: a "min(seq) WHERE ts >= ?"
            # over the whole log would scan every young row, once per chunk.
            young = conn.execute(
                "SELECT min(seq) FROM events WHERE seq > ? AND seq <= ? AND +ts >= ?",
                (anchor, anchor + PRUNE_CHUNK, cutoff),
            ).fetchone()[0]
            if young is not None:
                last = min(last, young - 1)
            end = min(last, anchor + PRUNE_CHUNK)
            count = 0
            if end > anchor:
                row = conn.execute("SELECT hash FROM events WHERE seq = ?", (end,)).fetchone()
                count = conn.execute("DELETE FROM events WHERE seq <= ?", (end,)).rowcount
                self._set_meta(conn, "anchor_seq", end)
                self._set_meta(conn, "anchor_hash", row[0])
            done = end >= last
            if done and so_far + count:
                # One audit line per prune, in the transaction of its last chunk.
                detail = {"events": so_far + count, "through_seq": end, "days": door_event_days}
                self._insert_audit(conn, AuditEntry("system", "events.prune", "events", detail))
            return count, done

        total = 0
        while True:
            # Chunks are separate work items so card reads interleave with a big prune
            # (the first one after months offline) instead of waiting seconds for it.
            count, done = await self._write(functools.partial(chunk, so_far=total))
            total += count
            if done:
                return total

    # --- audit ------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Append one operation-log line (who did what to which target)."""
        entry = AuditEntry(actor, action, target, detail)
        await self._write(lambda conn: self._insert_audit(conn, entry))

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
        where: list[str] = []
        args: list[Any] = []
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None:
            where.append("action = ?")
            args.append(action)
        _window_and_cursor(
            where, args, since=since, until=until, key="id", kind="audit", cursor=cursor
        )
        page = _limit(limit)
        sql = (
            "SELECT id, at, actor, action, target, detail FROM audit"  # noqa: S608
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY id DESC LIMIT ?"
        )
        args.append(page + 1)
        rows = await self._read(lambda conn: conn.execute(sql, args).fetchall())
        out = [
            {
                "id": r[0],
                "at": r[1],
                "actor": r[2],
                "action": r[3],
                "target": r[4],
                "detail": json.loads(r[5]),
            }
            for r in rows[:page]
        ]
        more = len(rows) > page
        return out, (_chain.encode_cursor("audit", out[-1]["id"]) if more else None)

    # --- alarms -------------------------------------------------------------------------

    _ALARM_COLUMNS = "id, kind, source, at, detail, event_seq, resolved_at, resolved_by, note"

    @staticmethod
    def _alarm_row(row: tuple[Any, ...]) -> dict[str, Any]:
        alarm = dict(
            zip(
                (
                    "id",
                    "kind",
                    "source",
                    "at",
                    "detail",
                    "event_seq",
                    "resolved_at",
                    "resolved_by",
                    "note",
                ),
                row,
                strict=True,
            )
        )
        alarm["detail"] = json.loads(alarm["detail"])
        alarm["resolved"] = alarm["resolved_at"] is not None
        return alarm

    def _fetch_alarm(self, conn: sqlite3.Connection, alarm_id: int) -> dict[str, Any]:
        row = conn.execute(
            f"SELECT {self._ALARM_COLUMNS} FROM alarms WHERE id = ?",  # noqa: S608
            (alarm_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"alarm {alarm_id} does not exist")
        return self._alarm_row(row)

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
        if not isinstance(kind, str) or not _ALARM_KIND.fullmatch(kind):
            raise StoreQueryError(f"alarm kind {kind!r} must be snake_case like 'forced_open'")
        if not source:
            raise StoreQueryError("alarm source must name the door, board or service")
        moment = _chain.parse_time(at, "alarm.at")
        detail_json = _dumps(dict(detail or {}))
        stored = None if event is None else _chain.normalise_event(event)

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            seq = None if stored is None else self._insert_event(conn, stored)["seq"]
            cur = conn.execute(
                "INSERT INTO alarms (kind, source, at, ts, detail, event_seq) VALUES (?,?,?,?,?,?)",
                (kind, source, moment.isoformat(), _chain.time_key(moment), detail_json, seq),
            )
            return self._fetch_alarm(conn, int(cur.lastrowid or 0))

        return await self._write(work)

    async def resolve_alarm(self, alarm_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
        """Close an alarm; NotFound when it does not exist, Conflict when already closed."""

        def work(conn: sqlite3.Connection) -> dict[str, Any]:
            alarm = self._fetch_alarm(conn, alarm_id)
            if alarm["resolved"]:
                raise Conflict(
                    f"alarm {alarm_id} was already resolved by {alarm['resolved_by']} "
                    f"at {alarm['resolved_at']}"
                )
            conn.execute(
                "UPDATE alarms SET resolved_at = ?, resolved_by = ?, note = ? WHERE id = ?",
                (self._now().isoformat(), actor, note, alarm_id),
            )
            self._insert_audit(
                conn,
                AuditEntry(
                    actor,
                    "alarm.resolve",
                    f"alarm:{alarm_id}",
                    {"kind": alarm["kind"], "note": note},
                ),
            )
            return self._fetch_alarm(conn, alarm_id)

        return await self._write(work)

    async def query_alarms(
        self, *, open_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Alarm records, newest first; ``open_only`` leaves out the resolved ones."""
        sql = (
            f"SELECT {self._ALARM_COLUMNS} FROM alarms"  # noqa: S608
            + (" WHERE resolved_at IS NULL" if open_only else "")
            + " ORDER BY id DESC LIMIT ?"
        )
        page = _limit(limit)
        rows = await self._read(lambda conn: conn.execute(sql, (page,)).fetchall())
        return [self._alarm_row(row) for row in rows]

    # --- backup ------------------------------------------------------------------------

    async def backup(self, dest: Path) -> None:
        """Write a consistent copy of the live database to ``dest`` (atomically replaced).

        Uses SQLite's online backup from a read snapshot, so card reads keep being
        recorded meanwhile; copying the .db file alone while running is NOT safe in
        WAL mode (recent commits live in the -wal file).
        """
        target = Path(dest)
        partial = target.with_name(target.name + ".partial")

        def work(conn: sqlite3.Connection) -> None:
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

        await self._read(work)

    # --- site state -------------------------------------------------------------------

    async def put_state(self, key: str, value: Any) -> None:
        """Store one JSON value of site state (enrollment, setup, emergency); None deletes."""
        if not key:
            raise StoreQueryError("state key must be a non-empty string")
        encoded = None if value is None else _dumps(value)
        decoded = None if encoded is None else json.loads(encoded)

        def work(conn: sqlite3.Connection) -> None:
            if encoded is None:
                conn.execute("DELETE FROM site_state WHERE key = ?", (key,))
            else:
                conn.execute(
                    "INSERT INTO site_state (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, encoded),
                )

        def done(_: None) -> None:
            if decoded is None:
                self._state.pop(key, None)
            else:
                self._state[key] = decoded

        await self._write(work, done)

    def get_state(self, key: str, default: Any = None) -> Any:
        """The last committed value of ``key`` (a copy-free read of the in-memory view)."""
        return self._state.get(key, default)
