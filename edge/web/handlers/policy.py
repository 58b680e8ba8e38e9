"""The policy document, apartment reset, and the CRUD of the seven entity kinds.

The entity handlers come from one pattern: `_entity_handlers` makes list/create/get/
put/delete for a kind and registers them under the entity rows' operationIds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from doorkeep.errors import Conflict, NotFound
from doorkeep.web import ApiError, ErrorCode
from edge.web.context import HANDLERS, Call, Handler
from edge.web.listing import Select, search
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


def _entity_handlers(kind: str) -> dict[str, Handler]:
    async def list_(call: Call) -> Any:
        def load(select: Select) -> list[dict[str, Any]]:
            return call.site.list_entities(kind, select)

        return await asyncio.to_thread(search, load, call.query)

    async def get(call: Call) -> Any:
        return call.site.get_entity(kind, call.path["id"])

    async def create(call: Call) -> Any:
        key = call.body["id"]
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
