"""The logs as people read them: filters, names next to ids, site time, files, verify.

``LogBook`` is what the REST API (edge/web/handlers/logs.py), the CLI (``doorkeep
events|audit|alarms``, ``events verify``) and so the web UI call; the Site holds one as
``site.logbook``. It reads the store (``EdgeStore.query_events`` ...), adds names from
the current policy and site.toml (edge/site/lognames.py), shows every time in the
site's zone with its offset, and writes files through the one exporter
(``edge.exports.render``), so a query gives the same rows and bytes everywhere.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge import exports
from edge.site.lognames import Names
from edge.store import Scope

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from zoneinfo import ZoneInfo

    from edge.site.policy import SitePolicy
    from edge.store import EdgeStore

#: The most rows one exported file holds (the REST export and the CLI alike).
EXPORT_MAX_ROWS = 100_000
LOGS = ("events", "audit", "alarms")
_PAGE = 1000
# Entity kinds the names come from.
_NAMED_KINDS = ("people", "apartments", "buildings", "temp_keys", "groups")


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One exported log: its suggested file name, content type, bytes and row count.

    ``truncated`` is True when more rows matched than one file holds (``EXPORT_MAX_ROWS``).
    """

    name: str
    content_type: str
    body: bytes
    rows: int
    truncated: bool


class LogBook:
    """Door events, the operation log and alarms of one site, for people to read."""

    def __init__(
        self,
        store: EdgeStore,
        policy: SitePolicy,
        config: Any,
        *,
        tz: ZoneInfo,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.policy = policy
        self.config = config
        self.tz = tz
        self.clock = clock
        self._names: tuple[object, Names] | None = None
        self._verifying: asyncio.Task[dict[str, Any]] | None = None

    # --- names ---------------------------------------------------------------------------

    async def names(self) -> Names:
        """The names of the policy in force (rebuilt off the loop when it changes)."""
        snapshot = self.policy.snapshot
        if self._names is None or self._names[0] is not snapshot:
            names = await asyncio.to_thread(self._build_names)
            self._names = (snapshot, names)
        return self._names[1]

    def _build_names(self) -> Names:
        entities = {kind: self.policy.list_entities(kind) for kind in _NAMED_KINDS}
        return Names.build(entities, self.config)

    # --- the three logs, one page at a time ----------------------------------------------

    async def events(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        """One page of events with names (filters: docs/web-ui.md, *Logs*)."""
        names = await self.names()
        query = self._event_query(names, query)
        rows, cursor = await self.store.query_events(**query)
        return [names.event(row, self.tz) for row in rows], cursor

    async def audit(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the operation log with the names of the targets."""
        names = await self.names()
        rows, cursor = await self.store.query_audit(**query)
        return [names.audit(row, self.tz) for row in rows], cursor

    async def alarms(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        """One page of alarm records with names; ``open`` keeps only unresolved ones."""
        names = await self.names()
        query = dict(query)
        query["open_only"] = bool(query.pop("open", False))
        rows, cursor = await self.store.query_alarm_page(**query)
        return [names.alarm(row, self.tz) for row in rows], cursor

    async def named(self, topic: str, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """A live-feed item (``site.subscribe``) as the lists show it: an ``event`` or an
        ``alarm`` with its names and site time; other topics as they are."""
        if topic not in ("event", "alarm"):
            return data
        names = await self.names()
        return names.event(data, self.tz) if topic == "event" else names.alarm(data, self.tz)

    def _event_query(self, names: Names, query: dict[str, Any]) -> dict[str, Any]:
        query = dict(query)
        building = query.pop("building", None)
        if building is not None:
            # A building nobody knows (any more) finds nothing, like an unknown door: the
            # query is well formed, and its events can still be found by apartment or door.
            scope = names.building_scope(building)
            query["scope"] = Scope(*scope) if scope is not None else Scope()
        return query

    def _fetch(self, log: str) -> Callable[..., Awaitable[tuple[list[dict[str, Any]], Any]]]:
        if log not in LOGS:
            raise ValueError(f"log {log!r}: use one of {', '.join(LOGS)}")
        fetch: Callable[..., Awaitable[tuple[list[dict[str, Any]], Any]]] = getattr(self, log)
        return fetch

    async def collect(
        self, log: str, *, max_rows: int = EXPORT_MAX_ROWS, **query: Any
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``max_rows`` named rows of ``log`` matching ``query``, and whether more
        matched (the export and the CLI's JSON and table output)."""
        fetch = self._fetch(log)
        query.pop("limit", None)
        query.pop("cursor", None)
        rows = await exports.collect(fetch, max_rows=max_rows + 1, limit=_PAGE, **query)
        return rows[:max_rows], len(rows) > max_rows

    async def export(
        self, log: str, fmt: str, *, max_rows: int = EXPORT_MAX_ROWS, **query: Any
    ) -> ExportFile:
        """``log`` as a CSV or XLSX file: the one exporter of the CLI, REST and the UI."""
        if fmt not in exports.CONTENT_TYPES:
            raise ValueError(f"format {fmt!r}: use csv or xlsx")
        rows, truncated = await self.collect(log, max_rows=max_rows, **query)
        body = await asyncio.to_thread(exports.render, log, fmt, rows, tz=self.tz)
        stamp = self.clock().astimezone(self.tz).strftime("%Y%m%d-%H%M")
        return ExportFile(
            name=f"doorkeep-{self.config.site.id}-{log}-{stamp}.{fmt}",
            content_type=exports.CONTENT_TYPES[fmt],
            body=body,
            rows=len(rows),
            truncated=truncated,
        )

    # --- the hash chain ------------------------------------------------------------------

    async def verify(self) -> dict[str, Any]:
        """Recompute the event log's hash chain (edge/store/_chain.py).

        ``{"ok", "checked", "first_bad_seq", "anchor_seq", "redacted"}``. A walk already
        running is joined rather than started twice: it reads the whole log.
        """
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.create_task(self._verify(), name="verify-chain")
        # shield: a client that hangs up does not stop the walk others may be waiting on
        return await asyncio.shield(self._verifying)

    async def _verify(self) -> dict[str, Any]:
        report = await self.store.verify_chain()
        return {
            "ok": report.ok,
            "checked": report.checked,
            "first_bad_seq": report.first_bad_seq,
            "anchor_seq": report.anchor_seq,
            "redacted": report.redacted,
        }
