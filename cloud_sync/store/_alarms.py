"""Alarms the cloud raises about a site (silent site, drift, event conflicts) and their resolve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cloud_sync.store._schema import alarms
from doorkeep.errors import NotFound

if TYPE_CHECKING:
    from cloud_sync.store._db import Database


def alarm_dict(row: Any) -> dict[str, Any]:
    """The JSON form of an alarm row."""
    return {
        "id": row.id,
        "at": row.at,
        "kind": row.kind,
        "message": row.message,
        "resolved_at": row.resolved_at,
    }


class AlarmLog:
    """Open and resolved alarms per site; at most one open alarm of a kind per site."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def raise_alarm(self, site_id: str, kind: str, message: str) -> None:
        """Record an alarm unless the same kind is already open for the site."""
        async with self._db.write() as conn:
            open_ = (
                await conn.execute(
                    sa.select(alarms.c.id).where(
                        alarms.c.site_id == site_id,
                        alarms.c.kind == kind,
                        alarms.c.resolved_at.is_(None),
                    )
                )
            ).first()
            if open_ is None:
                await conn.execute(
                    sa.insert(alarms).values(
                        site_id=site_id, at=self._db.clock(), kind=kind, message=message
                    )
                )

    async def resolve_alarms(self, site_id: str, kind: str) -> int:
        """Close the open alarms of one kind for a site; how many were closed."""
        async with self._db.write() as conn:
            res = await conn.execute(
                sa.update(alarms)
                .where(
                    alarms.c.site_id == site_id,
                    alarms.c.kind == kind,
                    alarms.c.resolved_at.is_(None),
                )
                .values(resolved_at=self._db.clock())
            )
            return int(res.rowcount or 0)

    async def resolve_alarm(self, site_id: str, alarm_id: int) -> dict[str, Any]:
        """Close one alarm (idempotent); the alarm record. NotFound for another site's."""
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(alarms)
                .where(
                    alarms.c.site_id == site_id,
                    alarms.c.id == alarm_id,
                    alarms.c.resolved_at.is_(None),
                )
                .values(resolved_at=self._db.clock())
            )
            row = (
                await conn.execute(
                    sa.select(alarms).where(alarms.c.site_id == site_id, alarms.c.id == alarm_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"site {site_id!r} has no alarm {alarm_id}")
        return alarm_dict(row)

    async def alarms(self, site_id: str, *, open_only: bool = True) -> list[dict[str, Any]]:
        """Alarm records of a site, oldest first."""
        query = sa.select(alarms).where(alarms.c.site_id == site_id)
        if open_only:
            query = query.where(alarms.c.resolved_at.is_(None))
        async with self._db.read() as conn:
            return [alarm_dict(a) for a in await conn.execute(query.order_by(alarms.c.id))]
