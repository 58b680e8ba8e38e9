"""The cloud service: admin REST API, enrollment, and the sites' sync endpoints (aiohttp).

Workers are stateless: every answer comes from the store, so several processes may sit
behind one load balancer (with PostgreSQL; a SQLite store is one process).

Sync endpoints (bearer site credential from enrollment):

- ``GET /api/v1/sync/bundle?version=V&digest=D&wait=S&nonce=N[&snapshot=1]`` long-polls:
  200 with the signed bundle bytes as soon as the cloud holds something newer than V;
  after S seconds with nothing, 200 with a signed "nothing new" statement echoing N and V
  (``application/vnd.doorkeep.current+json``, see ``cloud_sync.bundle.build_current``),
  or a bare 204 to a poll without a nonce (sites from before signed answers). Header
  ``Doorkeep-Resend-From: N`` asks the site to re-upload its outbox from sequence N (set
  by the reconcile job when it finds a gap).
- ``POST /api/v1/sync/report`` ``{"version","digest","inventory"}``: what the site holds.
- ``POST /api/v1/sync/events`` ``{"epoch","events":[...]}`` → ``{"watermark",...}``; an
  empty list just asks for the watermark.

The route table below is the single source of the routing, the auth rule of each route
and the OpenAPI document; the handlers live in cloud_sync/api/ (sync endpoints, admin
endpoints) and register under their row's ``op``. The web toolkit (doorkeep/web/) gives
the routes, the error middleware and vocabulary, the OpenAPI builder and the listen
parser, the same ones the edge uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from cloud_sync.api import admin as _admin  # noqa: F401 - registers the admin handlers
from cloud_sync.api import imports as _imports  # noqa: F401 - registers import/export
from cloud_sync.api import sync as _sync  # noqa: F401 - registers the sync handlers
from cloud_sync.api.common import (
    ACTOR,
    ENROLL_FAILURES,
    ENROLL_WINDOW_S,
    ENTITY_PATHS,
    HANDLERS,
    LIMITER,
    SITE,
    STORE,
    FailureLimiter,
    Handler,
)
from cloud_sync.api.sync import MAX_WAIT_S
from cloud_sync.keys import CloudKeys
from cloud_sync.store import CloudStore
from doorkeep import listing
from doorkeep.errors import AuthError, SyncError
from doorkeep.web import (
    Param,
    Route,
    build_openapi,
    error_middleware,
    error_responses,
    mount,
    route_of,
)
from doorkeep.web import parse_listen as _parse_listen
from doorkeep.web.errors import ApiError, ErrorCode
from doorkeep.web.openapi import ERROR_SCHEMA

if TYPE_CHECKING:
    import os

__all__ = [
    "ENROLL_FAILURES",
    "ENROLL_WINDOW_S",
    "LIMITER",
    "MAX_WAIT_S",
    "ROUTES",
    "make_app",
    "openapi",
    "parse_listen",
    "serve",
]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
#: Largest request body (an event batch or a whole policy document).
MAX_BODY = 64 * 1024 * 1024
DEFAULT_KEY_DIR = "doorkeep-cloud-keys"

#: ``role``: who may call; "site" is a site credential, "admin" an admin token, None anyone.
CloudRole = Literal["admin", "site"]
CloudRoute = Route[CloudRole]
_SITE_ = "/sites/{site}"
_KIND, _EID = _SITE_ + "/{kind}", _SITE_ + "/{kind}/{eid}"

_POLL = (
    Param("version", "integer", "the policy version the site holds"),
    Param("wait", "number", f"long-poll seconds, 0-{MAX_WAIT_S:g}"),
    Param("digest", "string", "the digest of the site's policy"),
    Param("snapshot", "string", "1: send a full snapshot", ("0", "1", "true", "false")),
    Param("nonce", "string", "echoed into a signed 'nothing new'"),
)
_EVENTS = (
    Param("since", "string", "from this time (ISO 8601, with offset)", fmt="date-time"),
    Param("until", "string", "up to this time (ISO 8601, with offset)", fmt="date-time"),
    Param("type", "string", "event type", ("access", "door", "alarm", "emergency", "system")),
    Param("limit", "integer", "page size, 1-1000 (default 100)"),
    Param("cursor", "string", "Doorkeep-Next-Cursor of the previous page"),
)
_ALL = (Param("all", "string", "1: resolved alarms too", ("0", "1", "true", "false")),)
# The list contract of doorkeep/listing.py; which filters a kind takes, the handler checks.
_LIST = (
    Param("q", "string", "case-insensitive substring of the id and name-like fields"),
    Param("limit", "integer", "page size, 1-1000 (default: every match)"),
    Param("offset", "integer", "matches to skip (default 0)"),
    *{
        f.name: Param(f.name, "string", f.description)
        for filters in listing.FILTERS.values()
        for f in filters
    }.values(),
)
_DRY_RUN = (Param("dry_run", "string", "true: check only", ("0", "1", "true", "false")),)
_FILE_FORMAT = (Param("format", "string", "file format (default xlsx)", ("csv", "xlsx")),)

# fmt: off
ROUTES: tuple[CloudRoute, ...] = (
    Route("POST", "/enroll", op="enroll_handler", role=None,
          summary="Trade a one-time enrollment code for a site credential"),
    Route("GET", "/sync/bundle", op="bundle_handler", role="site",
          summary="Long-poll for the next signed policy bundle", query=_POLL),
    Route("POST", "/sync/report", op="report_handler", role="site",
          summary="Report the applied policy version, digest and inventory"),
    Route("POST", "/sync/events", op="events_upload_handler", role="site",
          summary="Upload outbox events; answers the contiguous watermark"),
    Route("GET", "/sites", op="list_sites", role="admin",
          summary="List sites with their sync status"),
    Route("POST", "/sites", op="create_site", role="admin",
          summary="Create a site; answers its one-time enrollment code", status=201),
    Route("GET", _SITE_, op="get_site", role="admin",
          summary="One site: last contact, versions, digests, watermark, alarms"),
    Route("POST", _SITE_ + "/enrollment-code", op="new_code", role="admin",
          summary="A new one-time enrollment code"),
    Route("POST", _SITE_ + "/resync", op="resync_site", role="admin",
          summary="Send the site a full snapshot on its next poll"),
    Route("GET", _SITE_ + "/policy", op="get_policy", role="admin",
          summary="The site's policy document (credentials hashed)"),
    Route("PUT", _SITE_ + "/policy", op="put_policy", role="admin",
          summary="Replace the site's policy document"),
    Route("GET", _SITE_ + "/events", op="site_events", role="admin",
          summary="The site's uploaded events, newest first", query=_EVENTS),
    Route("GET", _SITE_ + "/alarms", op="list_alarms", role="admin",
          summary="The site's alarms (open ones; ?all=1 for every one)", query=_ALL),
    Route("POST", _SITE_ + "/alarms/{aid}/resolve", op="resolve_alarm", role="admin",
          summary="Resolve one alarm"),
    # before the entity rows, which would take "import"/"export" for an entity kind
    Route("POST", _SITE_ + "/import/{kind}", op="import_site_file", role="admin",
          summary="Import a residents, cards or staff file (the .xlsx/.csv as the body)",
          query=_DRY_RUN),
    Route("GET", _SITE_ + "/export/{kind}", op="export_site_file", role="admin",
          summary="Residents, apartments, cards or staff as a file (credentials masked)",
          query=_FILE_FORMAT),
    Route("GET", _KIND, op="list_entities", role="admin", summary="List entities of one kind",
          query=_LIST),
    Route("POST", _KIND, op="create_entity", role="admin", summary="Create an entity", status=201),
    Route("GET", _EID, op="get_entity", role="admin", summary="One entity"),
    Route("PUT", _EID, op="put_entity", role="admin", summary="Create or replace an entity"),
    Route("DELETE", _EID, op="delete_entity", role="admin", summary="Delete an entity", status=204),
    Route("GET", "/openapi.json", op="openapi_handler", role=None, summary="This OpenAPI document"),
)
# fmt: on

_ERRORS = error_responses(
    {
        "400": "bad request",
        "401": "missing or unknown token",
        "404": "not found",
        "409": "conflicts with the current state",
        "422": "invalid policy; `issues` lists every problem",
    }
)


@HANDLERS
async def openapi_handler(_request: web.Request) -> web.Response:
    return web.json_response(openapi(ROUTES))


def _path_schema(_route: Route[Any], name: str) -> dict[str, Any]:
    if name == "kind":
        return {"type": "string", "enum": sorted(ENTITY_PATHS)}
    return {"type": "string"}


def _security(route: Route[Any]) -> dict[str, Any]:
    return {"security": [{"bearer": []}] if route.role is not None else []}


def openapi(routes: Iterable[CloudRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    return build_openapi(
        routes,
        prefix=API_PREFIX,
        info={"title": "doorkeep cloud", "version": "1"},
        components={
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        security=[{"bearer": []}],
        path_schema=_path_schema,
        errors=lambda _route: _ERRORS,
        extra=_security,
    )


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send 'Authorization: Bearer <token>'")
    return token.strip()


def _check_query(request: web.Request, route: Route[Any]) -> None:
    """An unknown or repeated query parameter is a 400, never silently ignored."""
    declared = {q.name for q in route.query}
    for name in request.query:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ApiError(
                400,
                ErrorCode.BAD_QUERY,
                f"unknown query parameter {name!r} (known: {known})",
                name,
            )
        if len(request.query.getall(name)) > 1:
            raise ApiError(400, ErrorCode.BAD_QUERY, f"{name} is given more than once", name)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    if route is not None:
        _check_query(request, route)
    if route is None or route.role is None:
        return await handler(request)
    store = request.app[STORE]
    token = _bearer(request)
    if route.role == "admin":
        if not await store.check_admin_token(token):
            raise AuthError("unknown admin token; create one with `doorkeep cloud token create`")
        request[ACTOR] = "admin"
    else:
        request[SITE] = await store.site_for_token(token)
    return await handler(request)


def make_app(store: CloudStore, *, middlewares: Iterable[Any] = ()) -> web.Application:
    """The aiohttp application over an open store (``middlewares`` run innermost)."""
    HANDLERS.check(ROUTES)
    app = web.Application(
        middlewares=[error_middleware(prefix=API_PREFIX), _authenticate, *middlewares],
        client_max_size=MAX_BODY,
    )
    app[STORE] = store
    app[LIMITER] = FailureLimiter(ENROLL_FAILURES, ENROLL_WINDOW_S)
    mount(app, API_PREFIX, ROUTES, lambda row: HANDLERS[row.op])
    return app


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port), an empty host meaning 127.0.0.1; SyncError if malformed."""
    try:
        return _parse_listen(listen, default_host="127.0.0.1")
    except ValueError:
        raise SyncError(f"--listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:8700") from None


async def serve(
    db_url: str,
    listen: str = "127.0.0.1:8700",
    key_dir: str | os.PathLike[str] = DEFAULT_KEY_DIR,
    *,
    ready: Callable[[], None] | None = None,
    pg_schema: str | None = None,
) -> None:
    """Run the cloud service until cancelled (``doorkeep cloud serve``).

    ``pg_schema``: a PostgreSQL schema to use instead of ``public`` (tests, benchmarks).
    """
    host, port = parse_listen(listen)
    keys = CloudKeys.load(key_dir)
    async with CloudStore(db_url, keys, pg_schema=pg_schema) as store:
        runner = web.AppRunner(make_app(store), shutdown_timeout=5)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            log.info(
                "doorkeep cloud listening on %s:%d (key id %s)", host, port, keys.signer.key_id
            )
            if ready is not None:
                ready()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        finally:
            await runner.cleanup()
