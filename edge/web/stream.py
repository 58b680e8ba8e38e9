"""Server-sent events: the live feed of ``site.subscribe()`` with a heartbeat comment."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from edge.web.context import STREAMS, Call

SSE_HEARTBEAT_S = 15.0


async def sse(call: Call) -> web.StreamResponse:
    """Server-sent events from ``site.subscribe()`` with a heartbeat comment."""
    request = call.request
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b": connected\n\n")
    task = asyncio.current_task()
    streams = request.app[STREAMS]
    if task is not None:
        streams.add(task)
    feed = call.site.subscribe()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        async for item in feed:
            with contextlib.suppress(asyncio.QueueFull):  # a stuck browser loses old items
                queue.put_nowait(item)

    pumper = asyncio.create_task(pump(), name="sse-pump")
    try:
        while True:
            try:  # asyncio.timeout: 3.11's wait_for can swallow a cancel (edge/notify)
                async with asyncio.timeout(SSE_HEARTBEAT_S):
                    item = await queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            topic = str(item.get("topic", "message"))
            # events and alarms with their names and site time, as GET /events shows them
            named = await call.site.logbook.named(topic, item.get("data", {}))
            data = json.dumps(named, default=str)
            await response.write(f"event: {topic}\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        pumper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumper
        if task is not None:
            streams.discard(task)
        aclose = getattr(feed, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    return response


async def close_streams(app: web.Application) -> None:
    """Cancel every open stream (on shutdown: browsers would hold the server open)."""
    tasks: set[asyncio.Task[Any]] = app[STREAMS]
    for task in tuple(tasks):
        task.cancel()
