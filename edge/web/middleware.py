"""The edge's middlewares: security headers on every answer, then who asks and may they.

Order in the app: the toolkit's error middleware (every failure becomes
``{"error": {...}}``; `secure_headers` runs on what leaves) → `check_host` (the Host
must be one of the gateway's own names: DNS rebinding) → `authenticate` (bearer token
or session cookie, role from the route row, CSRF on state-changing cookie requests).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from doorkeep.errors import AuthError
from doorkeep.web import ApiError, ErrorCode, ForbiddenError, route_of
from edge.auth import Principal
from edge.web.context import ALLOWED_HOSTS, AUTH, CONFIG, PRINCIPAL, READER
from edge.web.routes import API_PREFIX, DeviceAuth

CSRF_HEADER = "X-CSRF-Token"
# Strict: the UI is entirely self-hosted (no CDN), so nothing else may load or run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """CSP, nosniff, no referrer, no framing; ``no-store`` on the API."""
    if response.prepared:  # streams (SSE) set theirs before sending
        return
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith(API_PREFIX):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def check_host(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
    """Refuse (421) a request whose Host is not one of the gateway's names, UI included.

    Before any login or token check: a rebound page must not reach onboarding or login.
    """
    allowed = request.app[ALLOWED_HOSTS]
    host = request.headers.get("Host")
    if not allowed.allows(host):
        assert host is not None
        raise ApiError(421, ErrorCode.WRONG_HOST, allowed.refusal(host))
    return await handler(request)


@web.middleware
async def authenticate(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
    """Find who asks and check the route's role and, for cookie requests, CSRF."""
    route = route_of(request)
    if route is None:  # static files, the UI shell, 404s
        return await handler(request)
    if isinstance(route.role, DeviceAuth):
        await _device(request)
        return await handler(request)
    principal = await _principal(request)
    if route.changes_state and (principal is None or principal.kind == "user"):
        _check_origin(request)
    if route.role is not None:
        if principal is None:
            raise AuthError("log in or send a bearer token")
        if principal.kind == "user" and route.changes_state:
            sent = request.headers.get(CSRF_HEADER, "")
            if not principal.csrf_token or not hmac.compare_digest(sent, principal.csrf_token):
                raise ForbiddenError(f"missing or wrong {CSRF_HEADER} header")
        if not principal.role.allows(route.role):
            raise ForbiddenError(f"{route.op} needs the {route.role.value} role")
    if principal is not None:
        request[PRINCIPAL] = principal
    return await handler(request)


async def _principal(request: web.Request) -> Principal | None:
    auth = request.app[AUTH]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization must be 'Bearer <token>'")
        principal = await asyncio.to_thread(auth.token, token.strip())
        if principal is None:
            raise AuthError("unknown or revoked API token")
        return principal
    cookie = request.cookies.get(request.app[CONFIG].cookie_name)
    if cookie:
        return await asyncio.to_thread(auth.session, cookie)
    return None


async def _device(request: web.Request) -> None:
    """A reader-token route: only the bearer token bound to the path's reader passes.

    No token (a session cookie is none) is 401, as is a token nobody made; an API token,
    even an admin's, or another reader's token is 403: a camera opens only its own gate,
    and a user is not a camera.
    """
    auth = request.app[AUTH]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send the reader's token: 'Authorization: Bearer <reader token>'")
    reader = await asyncio.to_thread(auth.readers.reader_of, token)
    if reader is None:
        if await asyncio.to_thread(auth.token, token) is not None:
            raise ForbiddenError("an API token cannot post reads; use the reader's own token")
        raise AuthError("unknown or revoked reader token")
    if reader != request.match_info.get("id"):
        raise ForbiddenError("this token belongs to another reader")
    request[READER] = reader


def _check_origin(request: web.Request) -> None:
    """Refuse a state-changing browser request whose Origin is another site."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser, or a same-origin GET-style request
        return
    expected = f"{request.scheme}://{request.host}"
    if origin != expected:
        raise ForbiddenError(f"cross-origin request from {origin!r} refused")
