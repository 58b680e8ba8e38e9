"""Alarm records: opened by the daemon, resolved by a person, kept for ever."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from doorkeep.errors import Conflict, NotFound
from edge.store import _audit, _chain
from edge.store._chain import StoreQueryError
from edge.store._query import select, window_and_cursor

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from datetime import datetime

_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELDS = (
    "id",
    "kind",
    "source",
    "at",
    "detail",
    "event_seq",
    "resolved_at",
    "resolved_by",
    "note",
)
COLUMNS = ", ".join(_FIELDS)


def check(kind: str, source: str) -> None:
    """StoreQueryError unless ``kind`` is snake_case and ``source`` is given."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise StoreQueryError(f"alarm kind {kind!r} must be snake_case like 'forced_open'")
    if not source:
        raise StoreQueryError("alarm source must name the door, board or service")


def row(values: tuple[Any, ...]) -> dict[str, Any]:
    """An alarm row as the API shows it (``detail`` decoded, ``resolved`` added)."""
    alarm = dict(zip(_FIELDS, values, strict=True))
    alarm["detail"] = json.loads(alarm["detail"])
    alarm["resolved"] = alarm["resolved_at"] is not None
    return alarm


def fetch(conn: sqlite3.Connection, alarm_id: int) -> dict[str, Any]:
    """The alarm ``alarm_id``; NotFound when there is none."""
    found = conn.execute(
        f"SELECT {COLUMNS} FROM alarms WHERE id = ?",  # noqa: S608 - fixed column names
        (alarm_id,),
    ).fetchone()
    if found is None:
        raise NotFound(f"alarm {alarm_id} does not exist")
    return row(found)


def insert(
    conn: sqlite3.Connection,
    *,
    kind: str,
    source: str,
    moment: datetime,
    detail_json: str,
    event_seq: int | None,
) -> dict[str, Any]:
    """Open an alarm record; returns it. Runs on the writer thread."""
    cur = conn.execute(
        "INSERT INTO alarms (kind, source, at, ts, detail, event_seq) VALUES (?,?,?,?,?,?)",
        (kind, source, moment.isoformat(), _chain.time_key(moment), detail_json, event_seq),
    )
    return fetch(conn, int(cur.lastrowid or 0))


def resolve(
    conn: sqlite3.Connection,
    alarm_id: int,
    *,
    actor: str,
    note: str,
    clock: Callable[[], datetime],
) -> dict[str, Any]:
    """Close an alarm and audit it; Conflict when it is already closed."""
    alarm = fetch(conn, alarm_id)
    if alarm["resolved"]:
        raise Conflict(
            f"alarm {alarm_id} was already resolved by {alarm['resolved_by']} "
            f"at {alarm['resolved_at']}"
        )
    conn.execute(
        "UPDATE alarms SET resolved_at = ?, resolved_by = ?, note = ? WHERE id = ?",
        (clock().isoformat(), actor, note, alarm_id),
    )
    _audit.insert(
        conn,
        _audit.AuditEntry(
            actor, "alarm.resolve", f"alarm:{alarm_id}", {"kind": alarm["kind"], "note": note}
        ),
        clock(),
    )
    return fetch(conn, alarm_id)


def search_sql(
    *,
    open_only: bool,
    kind: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    cursor: str | None = None,
) -> tuple[str, list[Any]]:
    """The query for alarm records, newest first (the LIMIT is the last arg)."""
    where: list[str] = []
    args: list[Any] = []
    if open_only:
        where.append("resolved_at IS NULL")
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    window_and_cursor(where, args, since=since, until=until, key="id", kind="alarms", cursor=cursor)
    return select(f"{COLUMNS} FROM alarms", where, "id DESC"), args
