"""The store's storage health: the open outage, the room left in the spill queue, and
the ``storage_unavailable`` alarm recorded when storage returns (docs/storage.md, *When
storage fails*). The writer thread holds the events (``_writer``, ``_spill``); this is
what the rest of the site asks about it: ``store.outages``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.store import _alarms, _chain, _db, _events
from edge.store._spill import Outage, iso
from edge.store._writer import StorageStatus

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from datetime import datetime, tzinfo

# The alarm (and its event) the store records when storage returns after an outage.
STORAGE_ALARM = "storage_unavailable"


class StorageWatch:
    """``store.outages``: storage ok, or the open outage and what it holds."""

    def __init__(
        self, db: _db.Database, *, limit: int, tz: tzinfo, now: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._tz = tz
        self._now = now
        self.limit = limit  # events the spill queue holds at most
        self.status = StorageStatus(limit=limit)
        self.in_flight = 0  # event writes submitted and not answered yet
        self.at_open: Outage | None = None  # an outage the last process left open
        # Called on the loop with {"alarm": ..., "event": ...} when the store recorded
        # a storage_unavailable alarm (the Site publishes it).
        self.on_alarm: Callable[[dict[str, Any]], None] | None = None

    def reopen(self, outage: Outage) -> None:
        """At open: the last process stopped during ``outage``; storage counts as failed
        until the writer records its alarm."""
        self.at_open = outage
        self.status = StorageStatus(
            ok=False, limit=self.limit, since=outage.since, error=outage.error
        )

    def room(self) -> int:
        """How many more events the spill queue could hold now (counting those in flight)."""
        return self.limit - self.status.held - self.in_flight

    def note_refused(self) -> None:
        """Count a presentation the site refused because nothing more could be held."""
        if self._db.writer is not None:
            self._db.writer.note_refused()

    def set_status(self, status: StorageStatus) -> None:
        """Writer callback (on the loop): storage failed, held more, or returned."""
        self.status = status

    def recovered(self, recorded: dict[str, Any]) -> None:
        """Writer callback (on the loop): the outage's alarm is recorded."""
        if self.on_alarm is not None:
            self.on_alarm(recorded)

    def record(self, conn: sqlite3.Connection, outage: Outage) -> dict[str, Any]:
        """Writer thread: the outage's alarm and its ``alarm`` event, in the transaction
        that wrote the held events."""
        now = self._now()
        detail = outage.detail()
        event = _chain.normalise_event(
            {
                "at": iso(now.astimezone(self._tz)),
                "type": "alarm",
                "action": STORAGE_ALARM,
                "result": "failed",
                "reason": "storage_unavailable",
                "detail": {"source": "store", **detail},
            }
        )
        stored = _events.insert(conn, event, outage.epoch)
        alarm = _alarms.insert(
            conn,
            kind=STORAGE_ALARM,
            source="store",
            moment=now,
            detail_json=_db.dumps(detail),
            event_seq=stored["seq"],
        )
        return {"alarm": alarm, "event": stored}
