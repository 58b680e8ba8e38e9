"""Door events, the operation log, alarms (list, export), chain verification, the stream.

Each goes through ``site.logbook`` (edge/site/logbook.py): the same rows, names and
files as the CLI's ``doorkeep events|audit|alarms``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.web.context import HANDLERS, Call
from edge.web.stream import sse


async def _export(call: Call, log: str) -> web.Response:
    query = dict(call.query)
    fmt = query.pop("format", "csv")
    exported = await call.site.logbook.export(log, fmt, **query)
    headers = {
        "Content-Disposition": f'attachment; filename="{exported.name}"',
        # How many rows the file holds, and whether more matched than one file holds.
        "X-Doorkeep-Rows": str(exported.rows),
        "X-Doorkeep-Truncated": "true" if exported.truncated else "false",
    }
    return web.Response(
        body=exported.body,
        content_type=exported.content_type,
        charset="utf-8" if fmt == "csv" else None,
        headers=headers,
    )


@HANDLERS
async def list_events(call: Call) -> Any:
    items, cursor = await call.site.logbook.events(**call.query)
    return {"items": items, "cursor": cursor}


@HANDLERS
async def export_events(call: Call) -> Any:
    """Events as a CSV or XLSX download (edge/exports.py: BOM, site time, no formulas)."""
    return await _export(call, "events")


@HANDLERS
async def verify_events(call: Call) -> Any:
    return await call.site.logbook.verify()


@HANDLERS
async def list_audit(call: Call) -> Any:
    items, cursor = await call.site.logbook.audit(**call.query)
    return {"items": items, "cursor": cursor}


@HANDLERS
async def export_audit(call: Call) -> Any:
    return await _export(call, "audit")


@HANDLERS
async def list_alarms(call: Call) -> Any:
    items, cursor = await call.site.logbook.alarms(**call.query)
    return {"items": items, "cursor": cursor}


@HANDLERS
async def export_alarms(call: Call) -> Any:
    return await _export(call, "alarms")


@HANDLERS
async def resolve_alarm(call: Call) -> Any:
    note = (call.body or {}).get("note", "")
    alarm = await call.site.resolve_alarm(call.path["id"], actor=call.actor, note=note)
    return (await call.site.logbook.names()).alarm(alarm, call.site.tz)


@HANDLERS
async def stream(call: Call) -> Any:
    return await sse(call)
