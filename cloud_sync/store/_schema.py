"""The cloud store's tables and the ordered schema migrations that bring a database to them.

Keys lead with ``site_id`` everywhere, so the tables can be distributed by site later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from doorkeep.errors import DoorkeepError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncConnection

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("token_hash", sa.String(64), unique=True),
    sa.Column("enroll_code_hash", sa.String(64), unique=True),
    sa.Column("enroll_expires", sa.Float),
    sa.Column("enrolled_at", sa.Float),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("last_contact", sa.Float),
    sa.Column("reported_version", sa.Integer),
    sa.Column("reported_digest", sa.String(80)),
    sa.Column("inventory", sa.Text),
    sa.Column("force_snapshot", sa.Boolean, nullable=False, default=False),
    sa.Column("resend_from", sa.BigInteger),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("site_id", sa.String(63), sa.ForeignKey("sites.id"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # canonical JSON of the hashed document
    sa.Column("secrets_sealed", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False, default=""),
)

policy_deltas = sa.Table(
    "policy_deltas",
    metadata,
    sa.Column("site_id", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("prev_digest", sa.String(80), nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("delta", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.Text, nullable=False, default=""),
)

epochs = sa.Table(
    "epochs",
    metadata,
    sa.Column("site_id", sa.String(63), primary_key=True),
    sa.Column("epoch", sa.String(64), primary_key=True),
    sa.Column("watermark", sa.BigInteger, nullable=False, default=0),
    sa.Column("max_seq", sa.BigInteger, nullable=False, default=0),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("site_id", sa.String(63), primary_key=True),
    sa.Column("epoch", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("at", sa.Text),
    sa.Column("type", sa.String(16)),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    # `at` as POSIX seconds: event times carry their site's offset, which changes at DST,
    # so only this column sorts and filters correctly (added by migration 3).
    sa.Column("at_ts", sa.Float),
)

alarms = sa.Table(
    "alarms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(63), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("resolved_at", sa.Float),
)

admin_tokens = sa.Table(
    "admin_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)


# ------------------------------------------------------------------------ migrations


async def _m1_initial(conn: AsyncConnection) -> None:
    tables = [sites, policies, policy_deltas, epochs, events, alarms, admin_tokens]
    await conn.run_sync(lambda c: metadata.create_all(c, tables=tables))


async def _m2_indexes(conn: AsyncConnection) -> None:
    # Event search by time and open-alarm listing per site: the admin API's two scans.
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS events_site_at ON events (site_id, at)"))
    await conn.execute(
        sa.text("CREATE INDEX IF NOT EXISTS alarms_site_open ON alarms (site_id, resolved_at)")
    )


def event_ts(at: Any) -> float | None:
    """POSIX seconds of an event's ISO time (no offset: read as UTC); None if unreadable."""
    if not isinstance(at, str):
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def _m3_event_time(conn: AsyncConnection) -> None:
    # Databases made by migration 1 before this column existed lack it; newer ones have it.
    columns = await conn.run_sync(
        lambda c: {col["name"] for col in sa.inspect(c).get_columns("events")}
    )
    if "at_ts" not in columns:
        await conn.execute(sa.text("ALTER TABLE events ADD COLUMN at_ts DOUBLE PRECISION"))
    rows = (
        await conn.execute(
            sa.select(events.c.site_id, events.c.epoch, events.c.seq, events.c.at).where(
                events.c.at_ts.is_(None)
            )
        )
    ).all()
    for row in rows:
        await conn.execute(
            sa.update(events)
            .where(
                events.c.site_id == row.site_id,
                events.c.epoch == row.epoch,
                events.c.seq == row.seq,
            )
            .values(at_ts=event_ts(row.at))
        )
    await conn.execute(sa.text("DROP INDEX IF EXISTS events_site_at"))
    await conn.execute(
        sa.text("CREATE INDEX IF NOT EXISTS events_site_ts ON events (site_id, at_ts)")
    )


#: Ordered schema migrations; the store applies those above the recorded version, each in
#: its own transaction (PostgreSQL: under an advisory lock, so workers may start together).
#: Migration 1 creates the tables as this module declares them; later ones bring older
#: databases up to the same shape and must be idempotent on a fresh one.
class SchemaTooNewError(DoorkeepError):
    """The store was migrated by a newer doorkeep; refuse it rather than write to it."""


MIGRATIONS: tuple[Callable[[AsyncConnection], Awaitable[None]], ...] = (
    _m1_initial,
    _m2_indexes,
    _m3_event_time,
)
