"""Door events (list, export), the operation log, alarms, the live stream."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from edge import exports
from edge.web.context import HANDLERS, Call
from edge.web.stream import sse

EXPORT_MAX_ROWS = 100_000


@HANDLERS
async def list_events(call: Call) -> Any:
    items, cursor = await call.site.events(**call.query)
    return {"items": items, "cursor": cursor}


@HANDLERS
async def export_events(call: Call) -> Any:
    """Events as a CSV or XLSX download (edge/exports.py: BOM, site time, no formulas)."""
    query = dict(call.query)
    fmt = query.pop("format", "csv")
    content_type, write = exports.EVENT_FILES[fmt]
    rows = await exports.collect(call.site.events, max_rows=EXPORT_MAX_ROWS, **query)
    body = await asyncio.to_thread(write, rows, tz=call.site.tz)
    stamp = datetime.now(call.site.tz).strftime("%Y%m%d-%H%M")
    name = f"doorkeep-{call.site.site_id}-events-{stamp}.{fmt}"
    return web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8" if fmt == "csv" else None,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@HANDLERS
async def list_audit(call: Call) -> Any:
    items, cursor = await call.site.audit_log(**call.query)
    return {"items": items, "cursor": cursor}


@HANDLERS
async def list_alarms(call: Call) -> Any:
    return {"items": await call.site.alarms(open_only=call.query.get("open", False))}


@HANDLERS
async def resolve_alarm(call: Call) -> Any:
    note = (call.body or {}).get("note", "")
    return await call.site.resolve_alarm(call.path["id"], actor=call.actor, note=note)


@HANDLERS
async def stream(call: Call) -> Any:
    return await sse(call)
