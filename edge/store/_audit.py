"""The operation (audit) log: who did what to which target. Rows are kept for ever."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.store import _chain
from edge.store._db import dumps
from edge.store._query import select, window_and_cursor

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping
    from datetime import datetime

_COLUMNS = ("id", "at", "actor", "action", "target", "detail")


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


def insert(conn: sqlite3.Connection, entry: AuditEntry, now: datetime) -> int:
    """Append ``entry`` at ``now``; returns its id. Runs on the writer thread."""
    cur = conn.execute(
        "INSERT INTO audit (at, ts, actor, action, target, detail) VALUES (?,?,?,?,?,?)",
        (
            now.isoformat(),
            _chain.time_key(now),
            entry.actor,
            entry.action,
            entry.target,
            dumps(dict(entry.detail or {})),
        ),
    )
    return int(cur.lastrowid or 0)


def search_sql(
    *,
    since: datetime | str | None,
    until: datetime | str | None,
    actor: str | None,
    action: str | None,
    cursor: str | None,
) -> tuple[str, list[Any]]:
    """The query for one page of audit rows, newest first (the LIMIT is the last arg)."""
    where: list[str] = []
    args: list[Any] = []
    if actor is not None:
        where.append("actor = ?")
        args.append(actor)
    if action is not None:
        where.append("action = ?")
        args.append(action)
    window_and_cursor(where, args, since=since, until=until, key="id", kind="audit", cursor=cursor)
    return select(f"{', '.join(_COLUMNS)} FROM audit", where, "id DESC"), args


def row(values: tuple[Any, ...]) -> dict[str, Any]:
    """An audit row as the API shows it (``detail`` decoded)."""
    out = dict(zip(_COLUMNS, values, strict=True))
    out["detail"] = json.loads(out["detail"])
    return out
