"""REST handlers: thin translations between HTTP and the site facade.

Each handler takes a `Call` (validated body, path and query) and returns JSON-able data;
`HANDLERS` maps the route table's ``op`` names to them, and `entity_handler` makes the
seven entity kinds' CRUD handlers from one pattern.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from doorkeep.errors import AuthError, Conflict, NotFound
from edge.web.app import (
    CONFIG,
    LIMITER,
    OPENAPI,
    ApiError,
    Call,
    audit,
    clear_session_cookie,
    export_file,
    set_session_cookie,
    sse,
)
from edge.web.app import EXPORT_MAX_ROWS as _EXPORT_MAX
from edge.web.routes import HARDWARE_TABLES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edge.web.routes import Route

log = logging.getLogger(__name__)

EXPORT_PAGE = 1000


def _me(principal: Any, csrf: str | None) -> dict[str, Any]:
    return {
        "username": principal.name,
        "role": principal.role.value,
        "kind": principal.kind,
        "csrf_token": csrf,
    }


# -- system ------------------------------------------------------------------------------------


async def health(call: Call) -> Any:
    # The UI shows the site's zone next to the browser's (times are the site's wall clock).
    return {**call.site.health(), "timezone": str(call.site.tz)}


async def openapi(call: Call) -> Any:
    return call.request.app[OPENAPI]


async def sync_status(call: Call) -> Any:
    return call.site.sync_status()


# -- onboarding and login ----------------------------------------------------------------------


async def setup_state(call: Call) -> Any:
    return {"setup_required": await asyncio.to_thread(call.auth.setup_required)}


def _limited(call: Call, username: str) -> None:
    wait = call.request.app[LIMITER].retry_after(username, call.request.remote or "?")
    if wait > 0:
        err = ApiError(429, "rate_limited", f"too many failed attempts; try again in {wait:.0f} s")
        err.headers["Retry-After"] = str(max(1, round(wait)))
        raise err


async def setup(call: Call) -> Any:
    body = call.body
    limiter = call.request.app[LIMITER]
    address = call.request.remote or "?"
    _limited(call, "setup")
    try:
        principal = await asyncio.to_thread(
            call.auth.complete_setup, body["code"], body["username"], body["password"]
        )
    except AuthError:
        limiter.failed("setup", address)
        log.warning("wrong setup code from %s", address)
        raise
    session = await asyncio.to_thread(call.auth.create_session, principal.name)
    call.principal = session.principal
    await audit(call, "auth.setup", f"user:{principal.name}", {"role": "admin"})
    response = web.json_response(_me(session.principal, session.csrf_token), status=201)
    set_session_cookie(call, response, session.session_id)
    return response


async def login(call: Call) -> Any:
    username, password = call.body["username"], call.body["password"]
    limiter = call.request.app[LIMITER]
    address = call.request.remote or "?"
    _limited(call, username)
    principal = await asyncio.to_thread(call.auth.authenticate, username, password)
    if principal is None:
        limiter.failed(username, address)
        log.info("failed login for %r from %s", username, address)
        raise AuthError("wrong username or password")
    limiter.succeeded(username)
    # Rotate: a session id planted before login (fixation) never becomes a logged-in one.
    old = call.request.cookies.get(call.request.app[CONFIG].cookie_name)
    session = await asyncio.to_thread(call.auth.create_session, username, replaces=old)
    call.principal = session.principal
    await audit(call, "auth.login", f"user:{username}", {"address": address})
    response = web.json_response(_me(session.principal, session.csrf_token))
    set_session_cookie(call, response, session.session_id)
    return response


async def logout(call: Call) -> Any:
    assert call.principal is not None
    response = web.json_response({"ok": True})
    if call.principal.kind == "user":
        await asyncio.to_thread(call.auth.end_session_by_hash, call.principal.session_hash or "")
        clear_session_cookie(call, response)
    return response


async def me(call: Call) -> Any:
    assert call.principal is not None
    return _me(call.principal, call.principal.csrf_token)


async def list_users(call: Call) -> Any:
    return {"items": await asyncio.to_thread(call.auth.list_users)}


async def create_user(call: Call) -> Any:
    b = call.body
    user = await asyncio.to_thread(call.auth.create_user, b["username"], b["password"], b["role"])
    await audit(call, "user.create", f"user:{b['username']}", {"role": b["role"]})
    return user


async def delete_user(call: Call) -> Any:
    name = call.path["username"]
    await asyncio.to_thread(call.auth.delete_user, name)
    await audit(call, "user.delete", f"user:{name}")


async def list_tokens(call: Call) -> Any:
    return {"items": await asyncio.to_thread(call.auth.list_tokens)}


async def create_token(call: Call) -> Any:
    b = call.body
    token = await asyncio.to_thread(call.auth.create_token, b["role"], b["name"])
    await audit(call, "token.create", f"token:{b['name']}", {"role": b["role"]})
    return {"name": b["name"], "role": b["role"], "token": token}


async def delete_token(call: Call) -> Any:
    name = call.path["name"]
    await asyncio.to_thread(call.auth.delete_token, name)
    await audit(call, "token.delete", f"token:{name}")


# -- doors -------------------------------------------------------------------------------------


async def list_doors(call: Call) -> Any:
    return {"items": call.site.doors()}


async def get_door(call: Call) -> Any:
    return call.site.door(call.path["id"])


async def unlock_door(call: Call) -> Any:
    seconds = (call.body or {}).get("seconds", 5)
    return await call.site.unlock(call.path["id"], seconds, actor=call.actor)


async def lock_door(call: Call) -> Any:
    return await call.site.lock(call.path["id"], actor=call.actor)


async def emergency(call: Call) -> Any:
    return await call.site.emergency(call.body["action"], call.body.get("doors"), actor=call.actor)


async def present(call: Call) -> Any:
    b = call.body
    at = datetime.fromisoformat(b["at"]) if b.get("at") else None
    if at is not None and at.tzinfo is None:
        raise ApiError(400, "bad_request", "at needs a UTC offset", "at")
    return await call.site.present(b["reader"], b["kind"], b["value"], at=at, actor=call.actor)


# -- logs --------------------------------------------------------------------------------------


async def list_events(call: Call) -> Any:
    items, cursor = await call.site.events(**call.query)
    return {"items": items, "cursor": cursor}


async def export_events(call: Call) -> Any:
    query = dict(call.query)
    fmt = query.pop("format", "csv")
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(rows) < _EXPORT_MAX:
        page, cursor = await call.site.events(**query, limit=EXPORT_PAGE, cursor=cursor)
        rows += page
        if cursor is None:
            break
    return await export_file(call, fmt, rows[:_EXPORT_MAX])


async def list_audit(call: Call) -> Any:
    items, cursor = await call.site.audit_log(**call.query)
    return {"items": items, "cursor": cursor}


async def list_alarms(call: Call) -> Any:
    return {"items": await call.site.alarms(open_only=call.query.get("open", False))}


async def resolve_alarm(call: Call) -> Any:
    note = (call.body or {}).get("note", "")
    return await call.site.resolve_alarm(call.path["id"], actor=call.actor, note=note)


async def stream(call: Call) -> Any:
    return await sse(call)


# -- policy ------------------------------------------------------------------------------------


async def get_policy(call: Call) -> Any:
    return call.site.policy_document()


async def put_policy(call: Call) -> Any:
    return {"version": await call.site.apply_policy(call.body, actor=call.actor)}


async def reset_apartment(call: Call) -> Any:
    return await call.site.reset_apartment(call.path["id"], actor=call.actor)


# -- hardware ----------------------------------------------------------------------------------


def _site_toml(call: Call) -> dict[str, Any]:
    return dict(getattr(call.site.config, "raw", None) or {})


async def get_hardware(call: Call) -> Any:
    # The live view plus the site.toml tables as written, which the setup editor edits.
    raw = _site_toml(call)
    config = {t: list(raw.get(t) or []) for t in HARDWARE_TABLES}
    return {**call.site.hardware(), "config": config}


async def put_hardware(call: Call) -> Any:
    # Only the hardware tables are replaced: an installer cannot rewrite [web] or [cloud].
    merged = {**_site_toml(call), **{t: call.body[t] for t in HARDWARE_TABLES if t in call.body}}
    return await call.site.update_hardware(merged, actor=call.actor)


async def scan_bus(call: Call) -> Any:
    bus = call.path["id"]
    addresses = await call.site.bus_scan(bus)
    await audit(call, "bus.scan", f"bus:{bus}", {"found": addresses})
    return {"bus": bus, "addresses": addresses}


async def test_relay(call: Call) -> Any:
    ms = (call.body or {}).get("ms", 500)
    return await call.site.relay_test(call.path["board"], call.path["n"], ms=ms, actor=call.actor)


async def capture_card(call: Call) -> Any:
    timeout_s = (call.body or {}).get("timeout_s", 20.0)
    return await call.site.capture_next_card(call.path["id"], timeout_s)


# -- entities ----------------------------------------------------------------------------------


def entity_handler(route: Route) -> Callable[[Call], Awaitable[Any]]:
    """The CRUD handler for one entity-kind row of the route table."""
    kind = route.kind
    if kind is None:
        raise KeyError(f"no handler for {route.op}")

    async def list_(call: Call) -> Any:
        return {"items": call.site.list_entities(kind)}

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
            raise ApiError(400, "id_mismatch", "the body's id differs from the URL's", "id")
        return await call.site.put_entity(kind, key, {**call.body, "id": key}, actor=call.actor)

    async def delete(call: Call) -> Any:
        await call.site.delete_entity(kind, call.path["id"], actor=call.actor)

    table = {"list": list_, "create": create, "get": get, "put": put, "delete": delete}
    return table[route.op.split("_", 1)[0]]


HANDLERS: dict[str, Callable[[Call], Awaitable[Any]]] = {
    fn.__name__: fn
    for fn in (
        health, openapi, sync_status, setup_state, setup, login, logout, me,
        list_users, create_user, delete_user, list_tokens, create_token, delete_token,
        list_doors, get_door, unlock_door, lock_door, emergency, present,
        list_events, export_events, list_audit, list_alarms, resolve_alarm, stream,
        get_policy, put_policy, reset_apartment,
        get_hardware, put_hardware, scan_bus, test_relay, capture_card,
    )
}  # fmt: skip
