"""The aiohttp application of one site: REST API under /api/v1, OpenAPI document, the UI.

Request flow: the toolkit's error middleware (every failure becomes ``{"error": {...}}``,
security headers on every answer) → `edge.web.middleware.authenticate` (bearer token or
session cookie, role from the route row, CSRF on state-changing cookie requests) → the
handler registered for the row's ``op`` (edge/web/handlers/). Handlers call the site
facade only; the facade writes the audit log for the changes it makes, the handlers audit
only what the facade does not see (logins, users, tokens).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from doorkeep.web import AllowedHosts, ApiError, ForbiddenError, error_middleware, mount, own_names
from edge.auth import AuthStore
from edge.loginlimit import LoginLimiter
from edge.web import handlers as _handlers  # noqa: F401 - registers every handler
from edge.web.context import (
    ALLOWED_HOSTS,
    AUTH,
    CONFIG,
    HANDLERS,
    LIMITER,
    OPENAPI,
    PRINCIPAL,
    SITE,
    STREAMS,
    Call,
    WebConfig,
)
from edge.web.facade import SiteFacade
from edge.web.inputs import parse_path, parse_query, read_body
from edge.web.middleware import authenticate, check_host, secure_headers
from edge.web.openapi import build_openapi
from edge.web.routes import API_PREFIX, ROUTES, Route
from edge.web.stream import close_streams

__all__ = ["ApiError", "ForbiddenError", "make_app"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
MAX_BODY_BYTES = 4 * 1024 * 1024

_errors = error_middleware(
    prefix=API_PREFIX,
    on_response=secure_headers,
    internal_message="internal error; see the gateway log",
)


def make_app(
    site: SiteFacade,
    auth: AuthStore,
    *,
    tls: bool,
    static_dir: Path | None = None,
    limiter: LoginLimiter | None = None,
    allowed_hosts: AllowedHosts | None = None,
) -> web.Application:
    """The web application of one site: REST API, OpenAPI document and the UI.

    ``allowed_hosts`` defaults to the site's own names (`site_host_names`).
    """
    HANDLERS.check(ROUTES)
    app = web.Application(
        middlewares=[_errors, check_host, authenticate], client_max_size=MAX_BODY_BYTES
    )
    app[ALLOWED_HOSTS] = allowed_hosts or AllowedHosts(site_host_names(site))
    app[SITE] = site
    app[AUTH] = auth
    app[LIMITER] = LoginLimiter() if limiter is None else limiter
    app[CONFIG] = WebConfig.for_tls(tls)
    app[STREAMS] = set()
    app[OPENAPI] = build_openapi(version=site.version)
    mount(app, API_PREFIX, ROUTES, _endpoint)
    root = static_dir or STATIC_DIR
    app.router.add_get("/", _index(root))
    app.router.add_static("/static/", root, follow_symlinks=False, append_version=False)
    app.on_shutdown.append(close_streams)
    return app


def site_host_names(site: SiteFacade) -> frozenset[str]:
    """The Host names the site's UI and API answer to: the listen host, loopback, the
    machine's name and ``<name>.local``, the TLS certificate's names (edge/tls.py, as the
    daemon makes it) and ``[web] allowed_hosts``."""
    web_cfg = site.config.web
    cert = (f"doorkeep-{site.site_id}.local", f"{site.site_id}.local")
    return own_names(web_cfg.host, *cert, *web_cfg.allowed_hosts)


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    fn = HANDLERS[route.op]

    async def handle(request: web.Request) -> web.StreamResponse:
        # The URL before the body: a misspelt parameter is named even when the body is bad.
        path, query = parse_path(request, route), parse_query(request, route)
        call = Call(
            request=request,
            route=route,
            site=request.app[SITE],
            auth=request.app[AUTH],
            principal=request.get(PRINCIPAL),
            body=await read_body(request, route),
            path=path,
            query=query,
        )
        result = await fn(call)
        if isinstance(result, web.StreamResponse):
            return result
        if route.status == 204:
            return web.Response(status=204)
        return web.json_response(result, status=route.status, dumps=_dumps)

    handle.__name__ = route.op
    return handle


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _index(root: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def index(request: web.Request) -> web.StreamResponse:
        del request
        return web.FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})

    return index
