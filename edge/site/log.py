"""The site's event log, alarms and live feed.

Every event the site logs goes through ``EventLog.record`` (one row, with the decision
memory rows of the same presentation in the same transaction) and then out to the
live-feed subscribers (web UI stream, MQTT bridge) and the cloud uploader.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge.store import EdgeStore

SUBSCRIBER_QUEUE = 256


class EventLog:
    """Door/access/system events, the audit log and alarms of one site."""

    def __init__(
        self,
        store: EdgeStore,
        *,
        tz: ZoneInfo,
        clock: Callable[[], datetime],
        on_recorded: Callable[[], None],
    ) -> None:
        self.store = store
        self.tz = tz
        self.clock = clock
        self._on_recorded = on_recorded  # wakes the cloud uploader
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        #: Called with every published message, synchronously; must not block or raise
        #: (the notifier, edge/notify, puts what concerns it on its own bounded queue).
        self.taps: list[Callable[[str, Mapping[str, Any]], None]] = []

    # --- live feed ---------------------------------------------------------------------

    def publish(self, topic: str, data: Mapping[str, Any]) -> None:
        payload = dict(data)
        message = {"topic": topic, "data": payload}
        for tap in self.taps:
            tap(topic, payload)
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader misses messages
                queue.put_nowait(message)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Live events, door states and alarms: ``{"topic": ..., "data": {...}}``."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    # --- writing -----------------------------------------------------------------------

    def event(
        self, now: datetime, type_: str, action: str, result: str, **fields: Any
    ) -> dict[str, Any]:
        """An event row in the INTERFACES.md shape, every field present."""
        event: dict[str, Any] = {
            "at": now.astimezone(self.tz).isoformat(timespec="milliseconds"),
            "type": type_,
            "action": action,
            "result": result,
            "reason": None,
            "door": None,
            "reader": None,
            "person": None,
            "apartment": None,
            "credential_kind": None,
            "detail": {},
        }
        event.update(fields)
        return event

    async def record(
        self, event: Mapping[str, Any], memory_rows: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Log one event and tell the subscribers."""
        stored = await self.store.record_event(event, memory_rows=memory_rows)
        self.publish("event", stored)
        self._on_recorded()
        return stored

    async def raise_alarm(
        self,
        kind: str,
        *,
        source: str,
        door: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Open an alarm record with its ``alarm`` event (one transaction)."""
        now = self.clock()
        event = self.event(
            now, "alarm", kind, "failed", door=door, detail={"source": source, **(detail or {})}
        )
        alarm = await self.store.raise_alarm(
            kind, source=source, detail=detail, at=now, event=event
        )
        self.publish("alarm", alarm)
        return alarm

    async def resolve_alarm(self, alarm_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
        alarm = await self.store.resolve_alarm(alarm_id, actor=actor, note=note)
        self.publish("alarm", alarm)
        return alarm

    # --- reading -----------------------------------------------------------------------

    async def events(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self.store.query_events(**query)

    async def audit_log(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self.store.query_audit(**query)

    async def alarms(self, *, open_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        return await self.store.query_alarms(open_only=open_only, limit=limit)
