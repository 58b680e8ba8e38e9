"""Event ingest, exactly once, and the event search.

Events are keyed ``(site, epoch, seq)``. A batch takes the per-(site, epoch) row lock
first, so concurrent uploads of one site serialise; rows that exist are compared by hash
(same: a duplicate, different: an alarm, the stored row stays); the watermark only moves
over contiguous sequence numbers. On PostgreSQL new rows go in by ``COPY`` inside the
same transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from cloud_sync.store._schema import alarms, epochs, event_ts, events, sites
from doorkeep import policydoc
from doorkeep.errors import SyncError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from cloud_sync.store._db import Database

#: Largest number of sequence numbers the watermark walk reads at once.
_WALK = 50_000

#: One encoder for event bodies: json.dumps with options builds a new encoder per call,
#: which is a measurable share of ingest time at tens of thousands of events a second.
_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode


def event_hash(event: dict[str, Any]) -> str:
    """The hash the cloud compares duplicates by: the edge's ``hash``, else SHA-256 of the row."""
    given = event.get("hash")
    if isinstance(given, str) and given:
        return given
    return hashlib.sha256(policydoc.canonical_json(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one upload did: the contiguous watermark and what was refused or ignored."""

    watermark: int
    inserted: int
    duplicates: int
    conflicts: int
    resend_from: int | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer of the events endpoint."""
        return {
            "watermark": self.watermark,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "resend_from": self.resend_from,
        }


class EventLog:
    """Every site's uploaded events, per outbox epoch, with their contiguous watermarks."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ingest(self, site_id: str, epoch: str, rows: list[dict[str, Any]]) -> IngestResult:
        """Store a batch of outbox rows exactly once; the contiguous watermark after it."""
        if not epoch or len(epoch) > 64:
            raise SyncError("an event upload needs an epoch of 1-64 characters")
        batch: dict[int, tuple[str, dict[str, Any]]] = {}
        for raw in rows:
            seq = raw.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise SyncError(f"event seq must be a positive integer, got {seq!r}")
            batch[seq] = (event_hash(raw), raw)
        now = self._db.clock()
        conflicts = duplicates = 0
        async with self._db.write() as conn:
            # Upsert-and-lock the (site, epoch) row in one round trip: concurrent uploads of
            # one site queue here, so the checks below see every committed row.
            ins = (pg_dialect.insert if self._db.is_pg else sqlite_dialect.insert)(epochs)
            mark = (
                await conn.execute(
                    ins.values(
                        site_id=site_id,
                        epoch=epoch,
                        watermark=0,
                        max_seq=0,
                        first_seen=now,
                        last_seen=now,
                    )
                    .on_conflict_do_update(
                        index_elements=["site_id", "epoch"], set_={"last_seen": now}
                    )
                    .returning(epochs.c.watermark, epochs.c.max_seq)
                )
            ).one()
            watermark, max_seq = int(mark.watermark), int(mark.max_seq)
            existing: dict[int, str] = {}
            # Steady state: the batch starts above everything stored, so no row can be a
            # duplicate and the lookup round trip is skipped.
            if batch and min(batch) <= max_seq:
                found = await conn.execute(
                    sa.select(events.c.seq, events.c.hash).where(
                        events.c.site_id == site_id,
                        events.c.epoch == epoch,
                        events.c.seq.between(min(batch), max(batch)),
                    )
                )
                existing = {int(r.seq): r.hash for r in found}
            fresh: list[tuple[Any, ...]] = []
            for seq, (digest, raw) in sorted(batch.items()):
                if seq in existing:
                    if existing[seq] == digest:
                        duplicates += 1
                    else:
                        conflicts += 1
                        await conn.execute(
                            sa.insert(alarms).values(
                                site_id=site_id,
                                at=now,
                                kind="event_conflict",
                                message=f"epoch {epoch} seq {seq} re-sent with a different hash",
                            )
                        )
                    continue
                body = _encode(raw)
                at = raw.get("at")
                fresh.append(
                    (site_id, epoch, seq, digest, at, raw.get("type"), body, now, event_ts(at))
                )
            if fresh:
                await self._insert_events(conn, fresh)
            if batch and max(batch) > watermark:
                if max_seq <= max(batch):
                    # Nothing stored lies above this batch: walk in memory.
                    present = set(batch) | set(existing)
                    while watermark + 1 in present:
                        watermark += 1
                else:
                    watermark = await self._walk(conn, site_id, epoch, watermark)
                max_seq = max(max_seq, *batch)
            mark_update = (
                sa.update(epochs)
                .where(epochs.c.site_id == site_id, epochs.c.epoch == epoch)
                .values(watermark=watermark, max_seq=max_seq, last_seen=now)
            )
            # A resend request is answered once the watermark has passed it.
            site_update = (
                sa.update(sites)
                .where(sites.c.id == site_id)
                .values(
                    last_contact=now,
                    resend_from=sa.case(
                        (sites.c.resend_from <= watermark, sa.null()), else_=sites.c.resend_from
                    ),
                )
                .returning(sites.c.resend_from)
            )
            if self._db.is_pg:
                # One round trip: the epoch update rides along as a data-modifying CTE.
                site_update = site_update.add_cte(mark_update.cte("mark"))
            else:
                await conn.execute(mark_update)
            resend = (await conn.execute(site_update)).one().resend_from
        return IngestResult(watermark, len(fresh), duplicates, conflicts, resend)

    async def _insert_events(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        if self._db.is_pg:
            # COPY inside the same transaction: the epoch row lock rules out key clashes,
            # and COPY is several times faster than multi-row INSERT for big batches.
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.copy_records_to_table(
                "events",
                records=rows,
                columns=[c.name for c in events.c],
                schema_name=self._db.pg_schema,
            )
        else:
            names = [c.name for c in events.c]
            await conn.execute(sa.insert(events), [dict(zip(names, r, strict=True)) for r in rows])

    async def _walk(self, conn: AsyncConnection, site_id: str, epoch: str, watermark: int) -> int:
        while True:
            seqs = (
                await conn.execute(
                    sa.select(events.c.seq)
                    .where(
                        events.c.site_id == site_id,
                        events.c.epoch == epoch,
                        events.c.seq > watermark,
                        events.c.seq <= watermark + _WALK,
                    )
                    .order_by(events.c.seq)
                )
            ).scalars()
            start = watermark
            for seq in seqs:
                if seq != watermark + 1:
                    return watermark
                watermark = seq
            if watermark == start or watermark < start + _WALK:
                return watermark

    async def watermark(self, site_id: str, epoch: str) -> int:
        """The contiguous watermark of ``(site, epoch)`` (0 if nothing arrived)."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(epochs.c.watermark).where(
                        epochs.c.site_id == site_id, epochs.c.epoch == epoch
                    )
                )
            ).first()
        return int(row.watermark) if row else 0

    async def resend_from(self, site_id: str) -> int | None:
        """The sequence number the site was asked to re-send from, if any."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(sites.c.resend_from).where(sites.c.id == site_id))
            ).first()
        return None if row is None else row.resend_from

    async def ask_resend(self, site_id: str, seq: int) -> None:
        """Make the site's next answers say "resend from ``seq``"."""
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(sites).where(sites.c.id == site_id).values(resend_from=seq)
            )
            await self._db.notify(conn, site_id)
        self._db.wake_local(site_id)

    async def events(
        self,
        site_id: str,
        *,
        since: str | None = None,
        until: str | None = None,
        type_: str | None = None,
        limit: int = 100,
        before: tuple[float, str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events of a site, newest first (by event time, then epoch and sequence).

        ``since``/``until``: ISO times (with offset; none means UTC). ``before``: the
        ``(at_ts, epoch, seq)`` of the last event of the previous page.
        """
        query = sa.select(events.c.epoch, events.c.seq, events.c.body, events.c.at_ts).where(
            events.c.site_id == site_id
        )
        for bound, op in ((since, "ge"), (until, "le")):
            if bound:
                ts = event_ts(bound)
                if ts is None:
                    raise SyncError(f"{bound!r} is not an ISO 8601 time")
                query = query.where(events.c.at_ts >= ts if op == "ge" else events.c.at_ts <= ts)
        if type_:
            query = query.where(events.c.type == type_)
        if before is not None:
            query = query.where(
                sa.tuple_(events.c.at_ts, events.c.epoch, events.c.seq) < sa.tuple_(*before)
            )
        query = query.order_by(
            events.c.at_ts.desc(), events.c.epoch.desc(), events.c.seq.desc()
        ).limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for row in rows:
            body = json.loads(row.body)
            body["epoch"] = row.epoch
            body["_cursor"] = [row.at_ts, row.epoch, row.seq]
            out.append(body)
        return out

    async def event_count(self, site_id: str, epoch: str | None = None) -> int:
        """How many events are stored for a site (and epoch)."""
        query = sa.select(sa.func.count()).select_from(events).where(events.c.site_id == site_id)
        if epoch is not None:
            query = query.where(events.c.epoch == epoch)
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def event_seqs(self, site_id: str, epoch: str) -> list[int]:
        """Every stored sequence number of ``(site, epoch)``, ascending (tests, reconcile)."""
        async with self._db.read() as conn:
            res = await conn.execute(
                sa.select(events.c.seq)
                .where(events.c.site_id == site_id, events.c.epoch == epoch)
                .order_by(events.c.seq)
            )
            return [int(s) for s in res.scalars()]

    async def epochs_of(self, site_id: str) -> list[dict[str, Any]]:
        """Every outbox epoch of a site with its watermark and highest sequence seen."""
        async with self._db.read() as conn:
            res = await conn.execute(sa.select(epochs).where(epochs.c.site_id == site_id))
            return [dict(r._mapping) for r in res]

    async def temp_key_uses(self) -> dict[str, int]:
        """Granted temp-key uses per temp key id, summed over every site's events."""
        async with self._db.read() as conn:
            res = await conn.execute(
                sa.select(events.c.body).where(
                    events.c.type == "access", events.c.body.like("%temp_key%")
                )
            )
            counts: dict[str, int] = {}
            for (body,) in res:
                event = json.loads(body)
                key = _temp_key_of(event)
                if key and event.get("result") == "success":
                    counts[key] = counts.get(key, 0) + 1
        return counts


def _temp_key_of(event: dict[str, Any]) -> str | None:
    detail = event.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("temp_key"), str):
        return str(detail["temp_key"])
    value = event.get("temp_key")
    return value if isinstance(value, str) else None
