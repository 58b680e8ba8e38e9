"""What every handler shares: the `Call` it gets, the app's keys, the handler registry.

Handlers live in edge/web/handlers/ and register with ``@HANDLERS`` under their
operationId (the route row's ``op``); edge/web/app.py builds the app from the route table
and this registry. Nothing here imports the app, so there is no cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from doorkeep.web import AllowedHosts, ForbiddenError, Handlers
from edge.auth import AuthStore, Principal, Role
from edge.loginlimit import LoginLimiter
from edge.web.facade import SiteFacade
from edge.web.routes import Route


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Settings of one app instance."""

    tls: bool
    cookie_name: str

    @classmethod
    def for_tls(cls, tls: bool) -> WebConfig:
        # Browsers refuse a __Host- cookie without Secure, so plain HTTP (localhost
        # development, tests) uses an unprefixed name; see docs/security.md.
        return cls(tls=tls, cookie_name="__Host-doorkeep" if tls else "doorkeep")


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, who asks, and the validated input."""

    request: web.Request
    route: Route
    site: SiteFacade
    auth: AuthStore
    principal: Principal | None
    body: Any
    path: dict[str, Any]
    query: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return self.principal.actor if self.principal else "anonymous"


Handler = Callable[[Call], Awaitable[Any]]

#: Every REST handler, by operationId.
HANDLERS: Handlers[Handler] = Handlers()

SITE = web.AppKey("site", SiteFacade)
AUTH = web.AppKey("auth", AuthStore)
LIMITER = web.AppKey("limiter", LoginLimiter)
CONFIG = web.AppKey("config", WebConfig)
ALLOWED_HOSTS = web.AppKey("allowed_hosts", AllowedHosts)
STREAMS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("streams", set)
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi", dict)
PRINCIPAL = web.RequestKey("principal", Principal)
READER = web.RequestKey("reader", str)  # the reader a reader token is bound to


async def audit(call: Call, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Write an operation-log line for a change the facade does not see (users, tokens)."""
    await call.site.store.audit(call.actor, action, target, detail or {})


def set_session_cookie(call: Call, response: web.StreamResponse, session_id: str) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Path=/, Secure under TLS."""
    cfg = call.request.app[CONFIG]
    response.set_cookie(
        cfg.cookie_name,
        session_id,
        path="/",
        secure=cfg.tls,
        httponly=True,
        samesite="Strict",
    )


def clear_session_cookie(call: Call, response: web.StreamResponse) -> None:
    """Expire the session cookie in the browser."""
    cfg = call.request.app[CONFIG]
    response.del_cookie(cfg.cookie_name, path="/", secure=cfg.tls, httponly=True, samesite="Strict")


def require_role(call: Call, role: Role) -> None:
    """Refuse unless the caller holds ``role`` (for per-kind write checks)."""
    if call.principal is None or not call.principal.role.allows(role):
        raise ForbiddenError(f"needs the {role.value} role")
