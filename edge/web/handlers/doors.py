"""Doors: state, remote unlock and lock, emergency, presenting a credential."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from doorkeep.web import ApiError, ErrorCode
from edge.web.context import HANDLERS, Call


@HANDLERS
async def list_doors(call: Call) -> Any:
    # the site-wide emergency state with the doors: what is in force and which input did it
    return {"items": call.site.doors(), "emergency": call.site.emergency_state()}


@HANDLERS
async def get_door(call: Call) -> Any:
    return call.site.door(call.path["id"])


@HANDLERS
async def unlock_door(call: Call) -> Any:
    seconds = (call.body or {}).get("seconds", 5)
    return await call.site.unlock(call.path["id"], seconds, actor=call.actor)


@HANDLERS
async def lock_door(call: Call) -> Any:
    return await call.site.lock(call.path["id"], actor=call.actor)


@HANDLERS
async def emergency(call: Call) -> Any:
    return await call.site.emergency(call.body["action"], call.body.get("doors"), actor=call.actor)


@HANDLERS
async def present(call: Call) -> Any:
    b = call.body
    at = datetime.fromisoformat(b["at"]) if b.get("at") else None
    if at is not None and at.tzinfo is None:
        raise ApiError(400, ErrorCode.BAD_REQUEST, "at needs a UTC offset", "at")
    return await call.site.present(b["reader"], b["kind"], b["value"], at=at, actor=call.actor)
