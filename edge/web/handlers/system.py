"""Health, metrics, the OpenAPI document, the cloud sync state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.site.metrics import CONTENT_TYPE
from edge.web.context import HANDLERS, OPENAPI, Call


@HANDLERS
async def health(call: Call) -> Any:
    # The UI shows the site's zone next to the browser's (times are the site's wall clock).
    return {**call.site.status.health(), "timezone": str(call.site.tz)}


@HANDLERS
async def metrics(call: Call) -> Any:
    """Prometheus text; any role's bearer token (a scraper gets a viewer token)."""
    body = await call.site.status.metrics_text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


@HANDLERS
async def openapi(call: Call) -> Any:
    return call.request.app[OPENAPI]


@HANDLERS
async def sync_status(call: Call) -> Any:
    return call.site.sync_status()
