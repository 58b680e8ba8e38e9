"""Onboarding, login and logout, web UI users and API tokens.

The facade does not see these changes, so the handlers write their audit lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from doorkeep.errors import AuthError
from doorkeep.web import ApiError, ErrorCode
from edge.auth import HashPoolBusy, Principal
from edge.loginlimit import Reservation
from edge.web.context import (
    CONFIG,
    HANDLERS,
    LIMITER,
    Call,
    audit,
    clear_session_cookie,
    set_session_cookie,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


def _me(principal: Principal, csrf: str | None) -> dict[str, Any]:
    return {
        "username": principal.name,
        "role": principal.role.value,
        "kind": principal.kind,
        "csrf_token": csrf,
    }


def _too_many(message: str, wait: float) -> ApiError:
    err = ApiError(429, ErrorCode.RATE_LIMITED, message)
    err.headers["Retry-After"] = str(max(1, round(wait)))
    return err


def _reserve(call: Call, username: str) -> Reservation:
    """Count this attempt before any password is hashed, or answer 429."""
    limiter = call.request.app[LIMITER]
    address = call.request.remote or "?"
    reservation = limiter.reserve(username, address)
    if reservation is None:
        wait = limiter.retry_after(username, address)
        raise _too_many(f"too many failed attempts; try again in {wait:.0f} s", wait)
    return reservation


async def _hashed(call: Call, reservation: Reservation, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the auth store's hash pool; 429 (and the slot back) when it is full."""
    try:
        return await call.auth.hashing.run(fn, *args)
    except HashPoolBusy:
        call.request.app[LIMITER].release(reservation)
        raise _too_many(
            "the gateway is checking too many passwords at once; try again", 1
        ) from None


@HANDLERS
async def setup_state(call: Call) -> Any:
    return {"setup_required": await asyncio.to_thread(call.auth.setup_required)}


@HANDLERS
async def setup(call: Call) -> Any:
    body = call.body
    limiter = call.request.app[LIMITER]
    address = call.request.remote or "?"
    reservation = _reserve(call, "setup")
    try:
        principal = await _hashed(
            call,
            reservation,
            call.auth.complete_setup,
            body["code"],
            body["username"],
            body["password"],
        )
    except AuthError:
        log.warning("wrong setup code from %s", address)
        raise
    except Exception:
        limiter.release(reservation)  # not a guess: a bad name or password, a used code
        raise
    limiter.release(reservation)
    session = await asyncio.to_thread(call.auth.create_session, principal.name)
    call.principal = session.principal
    await audit(call, "auth.setup", f"user:{principal.name}", {"role": "admin"})
    response = web.json_response(_me(session.principal, session.csrf_token), status=201)
    set_session_cookie(call, response, session.session_id)
    return response


@HANDLERS
async def login(call: Call) -> Any:
    username, password = call.body["username"], call.body["password"]
    limiter = call.request.app[LIMITER]
    address = call.request.remote or "?"
    reservation = _reserve(call, username)  # counted as a failure until it succeeds
    principal = await _hashed(call, reservation, call.auth.authenticate, username, password)
    if principal is None:
        log.info("failed login for %r from %s", username, address)
        raise AuthError("wrong username or password")
    limiter.release(reservation)
    limiter.succeeded(username)
    # Rotate: a session id planted before login (fixation) never becomes a logged-in one.
    old = call.request.cookies.get(call.request.app[CONFIG].cookie_name)
    session = await asyncio.to_thread(call.auth.create_session, username, replaces=old)
    call.principal = session.principal
    await audit(call, "auth.login", f"user:{username}", {"address": address})
    response = web.json_response(_me(session.principal, session.csrf_token))
    set_session_cookie(call, response, session.session_id)
    return response


@HANDLERS
async def logout(call: Call) -> Any:
    assert call.principal is not None
    response = web.json_response({"ok": True})
    if call.principal.kind == "user":
        await asyncio.to_thread(call.auth.end_session_by_hash, call.principal.session_hash or "")
        clear_session_cookie(call, response)
    return response


@HANDLERS
async def me(call: Call) -> Any:
    assert call.principal is not None
    return _me(call.principal, call.principal.csrf_token)


@HANDLERS
async def list_users(call: Call) -> Any:
    return {"items": await asyncio.to_thread(call.auth.list_users)}


@HANDLERS
async def create_user(call: Call) -> Any:
    b = call.body
    user = await call.auth.hashing.run(
        call.auth.create_user, b["username"], b["password"], b["role"]
    )
    await audit(call, "user.create", f"user:{b['username']}", {"role": b["role"]})
    return user


@HANDLERS
async def delete_user(call: Call) -> Any:
    name = call.path["username"]
    await asyncio.to_thread(call.auth.delete_user, name)
    await audit(call, "user.delete", f"user:{name}")


@HANDLERS
async def list_tokens(call: Call) -> Any:
    return {"items": await asyncio.to_thread(call.auth.list_tokens)}


@HANDLERS
async def create_token(call: Call) -> Any:
    b = call.body
    token = await asyncio.to_thread(call.auth.create_token, b["role"], b["name"])
    await audit(call, "token.create", f"token:{b['name']}", {"role": b["role"]})
    return {"name": b["name"], "role": b["role"], "token": token}


@HANDLERS
async def delete_token(call: Call) -> Any:
    name = call.path["name"]
    await asyncio.to_thread(call.auth.delete_token, name)
    await audit(call, "token.delete", f"token:{name}")
