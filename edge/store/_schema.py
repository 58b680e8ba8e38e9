"""Schema of the edge database and its ordered migrations.

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``; ``migrate`` runs the
missing ones at open, each in its own transaction together with the new
``schema_version``, so a crash mid-migration leaves the previous version intact.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlite_utils

from doorkeep.errors import DoorkeepError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable


def _v1_base(db: sqlite_utils.Database) -> None:
    """The first released schema."""
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("site_state").create({"key": str, "value": str}, pk="key")
    db.table("memory").create({"key": str, "value": str}, pk="key")
    # One table for every policy entity kind: the body is the hashed entity as JSON,
    # rowid keeps document order for exports.
    db.execute(
        "CREATE TABLE policy_entity (kind TEXT NOT NULL, key TEXT NOT NULL, "
        "body TEXT NOT NULL, PRIMARY KEY (kind, key))"
    )
    db.table("events").create(
        {
            "seq": int,
            "at": str,
            "ts": int,  # microseconds since the Unix epoch (UTC), orders across offsets
            "type": str,
            "action": str,
            "result": str,
            "reason": str,
            "door": str,
            "reader": str,
            "person": str,
            "apartment": str,
            "credential_kind": str,
            "detail": str,
            "hash": str,
        },
        pk="seq",
        not_null={"at", "ts", "type", "action", "result", "detail", "hash"},
    )
    # (column, seq) indexes serve "filter, newest first, LIMIT n" without a sort.
    for column in ("type", "door", "person", "apartment", "result"):
        db.table("events").create_index([column, "seq"], index_name=f"events_{column}_seq")
    db.table("events").create_index(["ts"], index_name="events_ts")
    db.table("audit").create(
        {
            "id": int,
            "at": str,
            "ts": int,
            "actor": str,
            "action": str,
            "target": str,
            "detail": str,
        },
        pk="id",
        not_null={"at", "ts", "actor", "action", "target", "detail"},
    )
    db.table("audit").create_index(["ts"], index_name="audit_ts")
    db.table("audit").create_index(["actor", "id"], index_name="audit_actor_id")
    db.table("audit").create_index(["action", "id"], index_name="audit_action_id")
    db.table("alarms").create(
        {
            "id": int,
            "kind": str,
            "source": str,
            "at": str,
            "ts": int,
            "detail": str,
            "event_seq": int,
            "resolved_at": str,
            "resolved_by": str,
            "note": str,
        },
        pk="id",
        not_null={"kind", "source", "at", "ts", "detail"},
    )
    now = datetime.now(UTC).isoformat()
    db.table("meta").insert_all(
        [
            # The epoch names this database for ever: a re-created database (new
            # epoch) restarts seq at 1 and the cloud must not confuse the two.
            {"key": "epoch", "value": secrets.token_hex(16)},
            {"key": "created_at", "value": now},
        ]
    )


def _v2_redaction(db: sqlite_utils.Database) -> None:
    """Apartment reset: a flag on redacted events, and the reason filter index."""
    db.execute("ALTER TABLE events ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0")
    db.table("events").create_index(["reason", "seq"], index_name="events_reason_seq")


# The expressions of the log filters that read an event's detail (edge/store/_events.py
# spells them the same way, or SQLite would not use these indexes).
DETAIL_KEYS = ("actor", "temp_key", "credential")


def _v3_log_filters(db: sqlite_utils.Database) -> None:
    """Door-log filters people use (docs/web-ui.md): action, credential kind, the
    operator, the temp key and the credential, each newest first without a sort."""
    for column in ("action", "credential_kind"):
        db.table("events").create_index([column, "seq"], index_name=f"events_{column}_seq")
    for key in DETAIL_KEYS:
        expr = f"json_extract(detail, '$.{key}')"
        # Partial: most events carry no actor or temp key; `expr = ?` implies NOT NULL.
        db.execute(
            f"CREATE INDEX events_{key}_seq ON events ({expr}, seq) WHERE {expr} IS NOT NULL"
        )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _v1_base,
    _v2_redaction,
    _v3_log_filters,
)
LATEST = len(MIGRATIONS)


class SchemaTooNewError(DoorkeepError):
    """The database was written by a newer doorkeep; refuse rather than corrupt it."""


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of ``conn``'s database (0 when empty)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, *, target: int = LATEST) -> int:
    """Run the missing migrations up to ``target``; returns the version reached.

    ``conn`` must be in autocommit mode (isolation_level=None).
    """
    version = current_version(conn)
    if version > LATEST:
        raise SchemaTooNewError(
            f"database schema version {version} is newer than this doorkeep "
            f"supports ({LATEST}); upgrade doorkeep or restore an older backup"
        )
    db = sqlite_utils.Database(conn)
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version == 0:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO schema_version VALUES (0)")
            MIGRATIONS[version](db)
            version += 1
            conn.execute("UPDATE schema_version SET version = ?", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version
