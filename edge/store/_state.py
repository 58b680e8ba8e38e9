"""Small key -> JSON tables: the decision memory and the site state.

The decision memory (temp-key uses, PIN failure counters, anti-passback positions) is
opaque to the store and written in the transaction of the event that changed it. The
site state (enrollment, setup, emergency) is read once at open and then served from
the facade's in-memory copy.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from edge.store._chain import StoreQueryError
from edge.store._db import dumps

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping


def load_memory(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every decision-memory row (key -> JSON value)."""
    return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM memory")}


def check_memory(rows: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``rows``; StoreQueryError unless it is JSON (checked before the writer)."""
    memory = dict(rows or {})
    try:
        dumps(memory)
    except (TypeError, ValueError) as err:
        raise StoreQueryError(f"memory rows are not JSON: {err}") from err
    return memory


def write_memory(conn: sqlite3.Connection, rows: Mapping[str, Any]) -> None:
    """Upsert each row; a None value deletes its key."""
    for key, value in rows.items():
        if value is None:
            conn.execute("DELETE FROM memory WHERE key = ?", (key,))
        else:
            conn.execute(
                "INSERT INTO memory (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, dumps(value)),
            )


def load_site_state(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every site-state value (key -> JSON value)."""
    return {
        key: json.loads(value) for key, value in conn.execute("SELECT key, value FROM site_state")
    }


def write_site_state(conn: sqlite3.Connection, key: str, encoded: str | None) -> None:
    """Store one JSON-encoded value; None deletes the key."""
    if encoded is None:
        conn.execute("DELETE FROM site_state WHERE key = ?", (key,))
    else:
        conn.execute(
            "INSERT INTO site_state (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, encoded),
        )
