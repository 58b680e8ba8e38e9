"""The door event log: append with the hash chain, search, verify, redact, prune.

Every function here takes a connection; the writing ones run on the writer thread,
where ``head`` is the one source of the next seq and the previous hash. The chain
rule itself is in ``_chain`` (pure, so anyone can recompute it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from doorkeep.errors import Conflict
from edge.store import _audit, _chain
from edge.store._chain import StoreQueryError
from edge.store._db import dumps, get_meta, meta_int, set_meta
from edge.store._query import select, window_and_cursor
from edge.store._schema import DETAIL_KEYS

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

# Events deleted per retention transaction: small enough that a card read queued
# behind it waits milliseconds, not seconds.
PRUNE_CHUNK = 1000

_NAMES = (*_chain.EVENT_FIELDS, "hash", "redacted")
COLUMNS = ", ".join(_NAMES)
# The exact-match filters of a search on a column, in the order the query lists them,
# and those on a key of the detail (``DETAIL_KEYS``: actor, temp_key, credential).
FILTERS = ("type", "door", "person", "apartment", "result", "reason", "action", "credential_kind")
# More ids in one IN list than SQLite binds (32,766) is no building anyone has.
MAX_SCOPE = 30_000


def detail_expr(key: str) -> str:
    """The SQL of ``detail.<key>``, spelled as the index of migration 3 spells it."""
    if key not in DETAIL_KEYS:
        raise StoreQueryError(f"events cannot be filtered by detail key {key!r}")
    return f"json_extract(detail, '$.{key}')"


@dataclass(frozen=True, slots=True)
class Scope:
    """A set of places: events of any of ``apartments`` or at any of ``doors`` (a building)."""

    apartments: tuple[str, ...] = ()
    doors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.apartments) + len(self.doors) > MAX_SCOPE:
            raise StoreQueryError(f"a scope holds at most {MAX_SCOPE} apartments and doors")

    def sql(self, args: list[Any]) -> str:
        """The condition (``0`` for an empty scope: nothing matches), its args appended."""
        parts = []
        for column, ids in (("apartment", self.apartments), ("door", self.doors)):
            if ids:
                parts.append(f"{column} IN ({', '.join('?' * len(ids))})")
                args.extend(ids)
        return "(" + " OR ".join(parts) + ")" if parts else "0"


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Outcome of ``verify_chain``: ``first_bad_seq`` is None when ``ok``."""

    ok: bool
    first_bad_seq: int | None
    checked: int
    anchor_seq: int = 0
    redacted: int = 0


def head(conn: sqlite3.Connection, epoch: str) -> tuple[int, str]:
    """The last seq and its hash (0 and the genesis hash for an empty log)."""
    seq = get_meta(conn, "head_seq")
    if seq is None:
        return 0, _chain.genesis_hash(epoch)
    return int(seq), str(get_meta(conn, "head_hash"))


def row(values: tuple[Any, ...], epoch: str) -> dict[str, Any]:
    """An event row (``COLUMNS``) in the event shape, with ``epoch``."""
    event = dict(zip(_NAMES, values, strict=True))
    event["detail"] = json.loads(event["detail"])
    event["epoch"] = epoch
    if not event.pop("redacted"):
        return event
    event["redacted"] = True
    return event


def insert(conn: sqlite3.Connection, stored: dict[str, Any], epoch: str) -> dict[str, Any]:
    """Append a normalised event at the head; returns it with seq, hash and epoch."""
    seq, prev = head(conn, epoch)
    event = dict(stored, seq=seq + 1)
    event["hash"] = _chain.event_hash(prev, event)
    conn.execute(
        f"INSERT INTO events ({', '.join(_chain.EVENT_FIELDS)}, ts, hash) "  # noqa: S608 - fixed column names
        f"VALUES ({', '.join('?' * (len(_chain.EVENT_FIELDS) + 2))})",
        (
            *(
                event[name] if name != "detail" else dumps(event[name])
                for name in _chain.EVENT_FIELDS
            ),
            _chain.time_key(datetime.fromisoformat(event["at"])),
            event["hash"],
        ),
    )
    set_meta(conn, "head_seq", event["seq"])
    set_meta(conn, "head_hash", event["hash"])
    event["epoch"] = epoch
    return event


def search_sql(
    filters: dict[str, str | None],
    *,
    since: datetime | str | None,
    until: datetime | str | None,
    cursor: str | None,
    initiated_by: str | None = None,
    scope: Scope | None = None,
) -> tuple[str, list[Any]]:
    """The query for one page of events, newest first (the LIMIT is the last arg).

    ``filters`` holds column values (``FILTERS``) and detail values (``DETAIL_KEYS``);
    ``initiated_by`` matches the person of a presentation or the operator (``actor``)
    of a remote, emergency or test action; ``scope`` limits to a building's places.
    Every value travels as a parameter; the SQL text is made of fixed names only.
    """
    unknown = set(filters) - set(FILTERS) - set(DETAIL_KEYS)
    if unknown:
        raise StoreQueryError(f"events cannot be filtered by {sorted(unknown)}")
    where: list[str] = []
    args: list[Any] = []
    for column in FILTERS:
        value = filters.get(column)
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    for key in DETAIL_KEYS:
        value = filters.get(key)
        if value is not None:
            where.append(f"{detail_expr(key)} = ?")
            args.append(value)
    if initiated_by is not None:
        where.append(f"(person = ? OR {detail_expr('actor')} = ?)")
        args.extend((initiated_by, initiated_by))
    if scope is not None:
        where.append(scope.sql(args))
    window_and_cursor(
        where, args, since=since, until=until, key="seq", kind="events", cursor=cursor
    )
    return select(f"{COLUMNS} FROM events", where, "seq DESC"), args


def above(conn: sqlite3.Connection, seq: int, limit: int) -> list[tuple[Any, ...]]:
    """Rows with seq above ``seq``, oldest first (the outbox)."""
    return conn.execute(
        f"SELECT {COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
        (seq, limit),
    ).fetchall()


def acknowledge(conn: sqlite3.Connection, seq: int, epoch: str) -> int:
    """Raise the cloud's watermark to ``seq`` (never lower it); returns the new value."""
    last, _ = head(conn, epoch)
    if seq > last:
        raise Conflict(f"acknowledged seq {seq} is beyond the last event {last} of epoch {epoch}")
    value = max(meta_int(conn, "acknowledged"), int(seq))
    set_meta(conn, "acknowledged", value)
    return value


def verify(conn: sqlite3.Connection, epoch: str) -> ChainReport:
    """Walk the chain from the retention anchor to the head in one read snapshot."""
    conn.execute("BEGIN")  # one snapshot for the whole walk
    anchor_seq = meta_int(conn, "anchor_seq")
    prev = get_meta(conn, "anchor_hash") or _chain.genesis_hash(epoch)
    last = meta_int(conn, "head_seq")
    expected = anchor_seq + 1
    checked = redacted = 0

    def report(first_bad_seq: int | None) -> ChainReport:
        return ChainReport(
            ok=first_bad_seq is None,
            first_bad_seq=first_bad_seq,
            checked=checked,
            anchor_seq=anchor_seq,
            redacted=redacted,
        )

    for values in conn.execute(
        f"SELECT {COLUMNS} FROM events WHERE seq > ? ORDER BY seq",  # noqa: S608
        (anchor_seq,),
    ):
        event = dict(zip(_NAMES, values, strict=True))
        if event["seq"] != expected:
            return report(expected)
        if event["redacted"]:
            redacted += 1
        else:
            event["detail"] = json.loads(event["detail"])
            if _chain.event_hash(prev, event) != event["hash"]:
                return report(event["seq"])
        prev = event["hash"]
        checked += 1
        expected += 1
    return report(expected if expected <= last else None)


def redact_apartment(
    conn: sqlite3.Connection,
    apartment: str,
    *,
    actor: str,
    clock: Callable[[], datetime],
    people: Sequence[str] = (),
) -> int:
    """Clear the personal fields of the events of ``apartment`` and of the alarm events
    naming one of ``people``, delete those people's alarm records, and audit it."""
    redact = (
        "UPDATE events SET person = NULL, apartment = NULL, reader = NULL, "
        "credential_kind = NULL, detail = '{}', redacted = 1 WHERE "
    )
    count = conn.execute(redact + "apartment = ?", (apartment,)).rowcount
    alarms = 0
    for pid in people:  # alarm rows keep the person in their detail (duress)
        count += conn.execute(
            redact + "type = 'alarm' AND json_extract(detail, '$.person') = ?", (pid,)
        ).rowcount
        alarms += conn.execute(
            "DELETE FROM alarms WHERE json_extract(detail, '$.person') = ?", (pid,)
        ).rowcount
    _audit.insert(
        conn,
        _audit.AuditEntry(
            actor,
            "apartment.redact_events",
            f"apartment:{apartment}",
            {"events": count, "alarms": alarms},
        ),
        clock(),
    )
    return count


def prune_cutoff(now: datetime, door_event_days: int) -> int:
    """The time key below which events are old enough to prune."""
    if door_event_days < 1:
        raise StoreQueryError(f"door_event_days must be at least 1, got {door_event_days}")
    return _chain.time_key(_chain.parse_time(now, "now") - timedelta(days=door_event_days))


def prune_chunk(
    conn: sqlite3.Connection,
    *,
    epoch: str,
    cutoff: int,
    only_acknowledged: bool,
    days: int,
    so_far: int,
    clock: Callable[[], datetime],
) -> tuple[int, bool]:
    """Delete at most ``PRUNE_CHUNK`` of the oldest prunable events; (count, done).

    Only a contiguous prefix goes, and the anchor records the hash of the last
    removed event. The last chunk of a prune writes its one audit line.
    """
    last, _ = head(conn, epoch)
    anchor = meta_int(conn, "anchor_seq")
    if only_acknowledged:
        last = min(last, meta_int(conn, "acknowledged"))
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
        kept = conn.execute("SELECT hash FROM events WHERE seq = ?", (end,)).fetchone()
        count = conn.execute("DELETE FROM events WHERE seq <= ?", (end,)).rowcount
        set_meta(conn, "anchor_seq", end)
        set_meta(conn, "anchor_hash", kept[0])
    done = end >= last
    if done and so_far + count:
        # One audit line per prune, in the transaction of its last chunk.
        detail = {"events": so_far + count, "through_seq": end, "days": days}
        _audit.insert(conn, _audit.AuditEntry("system", "events.prune", "events", detail), clock())
    return count, done
