"""The policy document, apartment reset, and the CRUD of the seven entity kinds.

The entity handlers come from one pattern: `_entity_handlers` makes list/create/get/
put/delete for a kind and registers them under the entity rows' operationIds.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from doorkeep.errors import Conflict, NotFound
from doorkeep.web import ApiError, ErrorCode
from edge.web.context import HANDLERS, Call, Handler
from edge.web.routes import ENTITY_KINDS


@HANDLERS
async def get_policy(call: Call) -> Any:
    return call.site.policy_document()


@HANDLERS
async def put_policy(call: Call) -> Any:
    return {"version": await call.site.apply_policy(call.body, actor=call.actor)}


@HANDLERS
async def reset_apartment(call: Call) -> Any:
    return await call.site.reset_apartment(call.path["id"], actor=call.actor)


def _delivery(call: Call) -> Any:
    if call.site.notify.temp_keys is None:
        raise Conflict("temp-key delivery is not available on this site")
    return call.site.notify.temp_keys


@HANDLERS
async def send_temp_key(call: Call) -> Any:
    """Issue a new code for a temp key (the old one stops working) and email it."""
    body = call.body
    return await _delivery(call).send(
        call.path["id"], body["to"], actor=call.actor, code=body.get("code")
    )


@HANDLERS
async def notify_test(call: Call) -> Any:
    return await call.site.notify.send_test(actor=call.actor, store=call.site.store)


@HANDLERS
async def batch_apartments(call: Call) -> Any:
    return await call.site.pm.batch_apartments(call.body["ids"], call.body["set"], actor=call.actor)


@HANDLERS
async def lock_report(call: Call) -> Any:
    return await call.site.pm.lock_report(call.path["family"])


def _entity_handlers(kind: str) -> dict[str, Handler]:
    async def list_(call: Call) -> Any:
        answer = await call.site.pm.search(kind, call.query)
        # an unpaged list of 100k credentials takes 0.2 s to serialise: not on the loop
        body = await asyncio.to_thread(json.dumps, answer, default=str)
        return web.Response(text=body, content_type="application/json")

    async def get(call: Call) -> Any:
        return call.site.get_entity(kind, call.path["id"])

    async def create(call: Call) -> Any:
        key = call.body["id"]
        if kind == "temp_keys" and "send_to" in call.body:  # made, emailed, then stored
            deliver = _delivery(call)
            sent = await deliver.send(key, call.body["send_to"], actor=call.actor, create=call.body)
            return sent["temp_key"]
        try:
            call.site.get_entity(kind, key)
        except NotFound:
            return await call.site.put_entity(kind, key, call.body, actor=call.actor)
        raise Conflict(f"{kind} {key!r} already exists; use PUT to replace it")

    async def put(call: Call) -> Any:
        key = call.path["id"]
        if call.body.get("id", key) != key:
            message = "the body's id differs from the URL's"
            raise ApiError(400, ErrorCode.ID_MISMATCH, message, "id")
        return await call.site.put_entity(kind, key, {**call.body, "id": key}, actor=call.actor)

    async def delete(call: Call) -> Any:
        await call.site.delete_entity(kind, call.path["id"], actor=call.actor)

    return {"list": list_, "create": create, "get": get, "put": put, "delete": delete}


for _kind, _write in ENTITY_KINDS.values():
    for _verb, _fn in _entity_handlers(_kind).items():
        HANDLERS.add(f"{_verb}_{_kind}", _fn)
