"""The cloud service: admin REST API, enrollment, and the sites' sync endpoints (aiohttp).

Workers are stateless: every answer comes from the store, so several processes may sit
behind one load balancer (with PostgreSQL; a SQLite store is one process).

Sync endpoints (bearer site credential from enrollment):

- ``GET /api/v1/sync/bundle?version=V&digest=D&wait=S[&snapshot=1]`` long-polls: 200 with
  the signed bundle bytes as soon as the cloud holds something newer than V, 204 after S
  seconds with nothing. Header ``Doorkeep-Resend-From: N`` asks the site to re-upload its
  outbox from sequence N (set by the reconcile job when it finds a gap).
- ``POST /api/v1/sync/report`` ``{"version","digest","inventory"}``: what the site holds.
- ``POST /api/v1/sync/events`` ``{"epoch","events":[...]}`` → ``{"watermark",...}``; an
  empty list just asks for the watermark.

The route table below is the single source of the routing, the auth rule of each route
and the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloud_sync.keys import CloudKeys
from cloud_sync.store import CloudStore
from doorkeep import policydoc
from doorkeep.errors import AuthError, Conflict, DoorkeepError, NotFound, PolicyError, SyncError

if TYPE_CHECKING:
    import os

log = logging.getLogger(__name__)

#: Longest long-poll a site may ask for; load balancers commonly cut at 60 s.
MAX_WAIT_S = 55.0
#: Largest request body (an event batch or a whole policy document).
MAX_BODY = 64 * 1024 * 1024
DEFAULT_KEY_DIR = "doorkeep-cloud-keys"

STORE: web.AppKey[CloudStore] = web.AppKey("store", CloudStore)
SITE: web.RequestKey[str] = web.RequestKey("site_id", str)
ACTOR: web.RequestKey[str] = web.RequestKey("actor", str)

#: URL segment → policy document list (the same names as the edge's REST API).
ENTITY_PATHS: dict[str, str] = {
    "people": "people",
    "credentials": "credentials",
    "groups": "groups",
    "temp-keys": "temp_keys",
    "apartments": "apartments",
    "buildings": "buildings",
    "reservations": "reservations",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: method, path, who may call it, handler, one-line summary."""

    method: str
    path: str
    auth: str  # "admin" | "site" | "none"
    handler: Handler
    summary: str

    def __post_init__(self) -> None:
        if self.auth not in ("admin", "site", "none"):
            raise ValueError(
                f"route {self.path}: auth must be admin, site or none, not {self.auth!r}"
            )


def _error(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message, "field": field, **extra}
    return web.json_response({"error": body}, status=status)


_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (AuthError, 401, "unauthorized"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (PolicyError, 422, "invalid_policy"),
    (SyncError, 400, "bad_request"),
    (DoorkeepError, 400, "bad_request"),
)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except ConnectionResetError:
        # The peer went away mid-request (a site cancelled its upload): nothing to answer,
        # nothing worth a traceback in the log.
        log.debug("%s %s: client went away", request.method, request.path)
        return web.Response(status=400)
    except json.JSONDecodeError as err:
        return _error(400, "bad_json", f"the body is not JSON: {err.msg}")
    except DoorkeepError as err:
        for kind, status, code in _ERRORS:
            if isinstance(err, kind):
                extra = {}
                if isinstance(err, PolicyError):
                    extra["issues"] = [i.as_dict() for i in err.issues]
                    first = err.issues[0].field if err.issues else None
                    return _error(status, code, str(err), first, **extra)
                return _error(status, code, str(err))
        raise  # pragma: no cover - DoorkeepError is in the table


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send 'Authorization: Bearer <token>'")
    return token.strip()


def _auth_middleware(routes: dict[tuple[str, str], Route]) -> Callable[..., Any]:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info.route.resource
        canonical = info.canonical if info is not None else ""
        route = routes.get((request.method, canonical))
        if route is None or route.auth == "none":
            return await handler(request)
        store = request.app[STORE]
        token = _bearer(request)
        if route.auth == "admin":
            if not await store.check_admin_token(token):
                raise AuthError(
                    "unknown admin token; create one with `doorkeep cloud token create`"
                )
            request[ACTOR] = "admin"
        else:
            request[SITE] = await store.site_for_token(token)
        return await handler(request)

    return auth


async def _json(request: web.Request) -> Any:
    return json.loads(await request.read() or b"null")


def _site_id(request: web.Request) -> str:
    return request.match_info["site"]


# ------------------------------------------------------------------ sync endpoints


class FailureLimiter:
    """Counts failures per key in a sliding window; a key over the limit is refused.

    Enrollment codes are short enough to type, so guessing must be slow: per address,
    ``ENROLL_FAILURES`` wrong codes per ``ENROLL_WINDOW_S``. (Per worker process; behind
    a load balancer the limit multiplies by the number of workers, still far from 2**40.)
    """

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key, deque())
        cutoff = self.clock() - self.window_s
        while times and times[0] < cutoff:
            times.popleft()
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def blocked(self, key: str) -> bool:
        """Whether ``key`` has used up its failures in the window."""
        return len(self._recent(key)) >= self.limit

    def failed(self, key: str) -> None:
        """Record one failure of ``key``."""
        times = self._recent(key)
        times.append(self.clock())
        self._failures[key] = times


ENROLL_FAILURES = 10
ENROLL_WINDOW_S = 60.0
LIMITER: web.AppKey[FailureLimiter] = web.AppKey("enroll_limiter", FailureLimiter)


async def enroll_handler(request: web.Request) -> web.Response:
    limiter = request.app[LIMITER]
    who = request.remote or "?"
    if limiter.blocked(who):
        return _error(429, "too_many_attempts", "too many wrong enrollment codes; wait a minute")
    body = await _json(request)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        return _error(400, "bad_request", 'send {"code": "<enrollment code>"}', "code")
    try:
        return web.json_response(await request.app[STORE].enroll(code))
    except AuthError:
        limiter.failed(who)
        raise


async def bundle_handler(request: web.Request) -> web.Response:
    store = request.app[STORE]
    site_id = request[SITE]
    try:
        version = int(request.query.get("version", "0"))
        wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT_S)
    except ValueError:
        return _error(400, "bad_request", "version must be an integer and wait a number of seconds")
    digest = request.query.get("digest") or None
    want_snapshot = request.query.get("snapshot") in ("1", "true")
    await store.touch(site_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        # Watch before checking, so a change between the check and the wait still wakes us.
        woken = store.notifier.watch(site_id)
        data = await store.bundle_for(site_id, version, digest, want_snapshot=want_snapshot)
        resend = await store.resend_from(site_id)
        headers = {"Doorkeep-Resend-From": str(resend)} if resend is not None else {}
        if data is not None:
            return web.Response(body=data, content_type="application/json", headers=headers)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return web.Response(status=204, headers=headers)
        try:
            await asyncio.wait_for(woken.wait(), remaining)
        except TimeoutError:
            return web.Response(status=204, headers=headers)
        if resend is None and await store.resend_from(site_id) is not None:
            return web.Response(
                status=204, headers={"Doorkeep-Resend-From": str(await store.resend_from(site_id))}
            )


async def report_handler(request: web.Request) -> web.Response:
    body = await _json(request)
    if not isinstance(body, dict):
        return _error(400, "bad_request", "send a JSON object")
    version = body.get("version")
    digest = body.get("digest")
    inventory = body.get("inventory")
    if version is not None and not isinstance(version, int):
        return _error(400, "bad_request", "version must be an integer", "version")
    await request.app[STORE].report(
        request[SITE],
        version=version,
        digest=digest if isinstance(digest, str) else None,
        inventory=inventory if isinstance(inventory, dict) else None,
    )
    cloud_version = await request.app[STORE].current_version(request[SITE])
    return web.json_response({"ok": True, "cloud_version": cloud_version})


async def events_upload_handler(request: web.Request) -> web.Response:
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return _error(400, "bad_request", 'send {"epoch": ..., "events": [...]}')
    epoch = body.get("epoch")
    if not isinstance(epoch, str):
        return _error(400, "bad_request", "epoch must be a string", "epoch")
    rows = [e for e in body["events"] if isinstance(e, dict)]
    result = await request.app[STORE].ingest(request[SITE], epoch, rows)
    return web.json_response(result.as_dict())


# ------------------------------------------------------------------ admin endpoints


async def list_sites(request: web.Request) -> web.Response:
    rows = await request.app[STORE].site_status()
    for row in rows:
        row.pop("inventory", None)
    return web.json_response(rows)


async def create_site(request: web.Request) -> web.Response:
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return _error(400, "bad_request", 'send {"id": "site-id", "name": ...}', "id")
    code = await request.app[STORE].add_site(body["id"], str(body.get("name") or ""))
    return web.json_response({"id": body["id"], "enrollment_code": code}, status=201)


async def get_site(request: web.Request) -> web.Response:
    (row,) = await request.app[STORE].site_status(_site_id(request))
    return web.json_response(row)


async def new_code(request: web.Request) -> web.Response:
    code = await request.app[STORE].new_enrollment_code(_site_id(request))
    return web.json_response({"id": _site_id(request), "enrollment_code": code})


async def resync_site(request: web.Request) -> web.Response:
    version = await request.app[STORE].force_snapshot(_site_id(request), actor=request[ACTOR])
    return web.json_response({"version": version, "snapshot": True})


def _policy_headers(version: int, digest: str) -> dict[str, str]:
    return {"Doorkeep-Policy-Version": str(version), "Doorkeep-Policy-Digest": digest}


async def get_policy(request: web.Request) -> web.Response:
    version, digest, doc = await request.app[STORE].policy(_site_id(request))
    return web.json_response(doc, headers=_policy_headers(version, digest))


async def put_policy(request: web.Request) -> web.Response:
    doc = await _json(request)
    if not isinstance(doc, dict):
        raise PolicyError("the policy must be a JSON object", [])
    version, digest = await request.app[STORE].change_policy(
        _site_id(request), lambda _old: doc, actor=request[ACTOR]
    )
    return web.json_response(
        {"version": version, "digest": digest}, headers=_policy_headers(version, digest)
    )


def _kind(request: web.Request) -> str:
    kind = ENTITY_PATHS.get(request.match_info["kind"])
    if kind is None:
        raise NotFound(
            f"no entity list {request.match_info['kind']!r}; use one of {sorted(ENTITY_PATHS)}"
        )
    return kind


def _find(doc: dict[str, Any], kind: str, key: str) -> dict[str, Any]:
    for entity in doc.get(kind) or []:
        if policydoc.entity_key(kind, entity) == key:
            return dict(entity)
    raise NotFound(f"no {kind} entry {key!r}")


async def list_entities(request: web.Request) -> web.Response:
    kind = _kind(request)
    version, digest, doc = await request.app[STORE].policy(_site_id(request))
    return web.json_response(doc.get(kind) or [], headers=_policy_headers(version, digest))


async def get_entity(request: web.Request) -> web.Response:
    kind = _kind(request)
    _v, _d, doc = await request.app[STORE].policy(_site_id(request))
    return web.json_response(_find(doc, kind, request.match_info["eid"]))


async def _put(
    request: web.Request, kind: str, key: str, body: Any, *, create: bool
) -> web.Response:
    if not isinstance(body, dict):
        raise PolicyError("send the entity as a JSON object", [])
    field = policydoc.key_field(kind)
    if body.setdefault(field, key) != key:
        raise PolicyError(f"the body's {field} {body[field]!r} differs from the URL's {key!r}", [])

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        items = doc.setdefault(kind, [])
        keys = [policydoc.entity_key(kind, e) for e in items]
        if key in keys:
            if create:
                raise Conflict(f"{kind} entry {key!r} exists already; PUT it to replace it")
            items[keys.index(key)] = body
        else:
            items.append(body)
        return doc

    site = _site_id(request)
    version, digest = await request.app[STORE].change_policy(site, mutate, actor=request[ACTOR])
    _v, _d, doc = await request.app[STORE].policy(site)
    return web.json_response(
        _find(doc, kind, key),
        status=201 if create else 200,
        headers=_policy_headers(version, digest),
    )


async def create_entity(request: web.Request) -> web.Response:
    kind = _kind(request)
    body = await _json(request)
    key = body.get("id") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        raise PolicyError('a new entity needs an "id"', [])
    return await _put(request, kind, key, body, create=True)


async def put_entity(request: web.Request) -> web.Response:
    return await _put(
        request, _kind(request), request.match_info["eid"], await _json(request), create=False
    )


async def delete_entity(request: web.Request) -> web.Response:
    kind = _kind(request)
    key = request.match_info["eid"]

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        entity = _find(doc, kind, key)
        if kind == "groups" and entity.get("building_default"):
            raise Conflict(
                f"group {key!r} is the default group of a building and cannot be deleted"
            )
        doc[kind] = [e for e in doc.get(kind) or [] if policydoc.entity_key(kind, e) != key]
        if kind == "people":
            # POLICY.md: deleting a person deletes their credentials.
            doc["credentials"] = [c for c in doc.get("credentials") or [] if c.get("person") != key]
        return doc

    version, digest = await request.app[STORE].change_policy(
        _site_id(request), mutate, actor=request[ACTOR]
    )
    return web.Response(status=204, headers=_policy_headers(version, digest))


async def site_events(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = min(max(int(q.get("limit", "100")), 1), 1000)
    except ValueError:
        return _error(400, "bad_request", "limit must be an integer", "limit")
    before = None
    if q.get("cursor"):
        try:
            at_ts, epoch, seq = json.loads(base64.urlsafe_b64decode(q["cursor"]))
            before = (float(at_ts), str(epoch), int(seq))
        except (ValueError, TypeError) as err:
            return _error(400, "bad_request", f"cursor is not one this API gave: {err}", "cursor")
    site = _site_id(request)
    await request.app[STORE].site_status(site)  # 404 for an unknown site
    rows = await request.app[STORE].events(
        site,
        since=q.get("since"),
        until=q.get("until"),
        type_=q.get("type"),
        limit=limit,
        before=before,
    )
    headers = {}
    for row in rows:
        cursor = row.pop("_cursor")
    if len(rows) == limit:
        # The last row's position: pass it as ?cursor= for the next (older) page.
        headers["Doorkeep-Next-Cursor"] = base64.urlsafe_b64encode(
            json.dumps(cursor).encode()
        ).decode()
    return web.json_response(rows, headers=headers)


async def list_alarms(request: web.Request) -> web.Response:
    site = _site_id(request)
    await request.app[STORE].site_status(site)  # 404 for an unknown site
    open_only = request.query.get("all") not in ("1", "true")
    return web.json_response(await request.app[STORE].alarms(site, open_only=open_only))


async def resolve_alarm(request: web.Request) -> web.Response:
    try:
        alarm_id = int(request.match_info["aid"])
    except ValueError:
        return _error(404, "not_found", "alarm ids are integers")
    row = await request.app[STORE].resolve_alarm(_site_id(request), alarm_id)
    return web.json_response(row)


async def openapi_handler(_request: web.Request) -> web.Response:
    return web.json_response(openapi(ROUTES))


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/api/v1/enroll",
        "none",
        enroll_handler,
        "Trade a one-time enrollment code for a site credential",
    ),
    Route(
        "GET",
        "/api/v1/sync/bundle",
        "site",
        bundle_handler,
        "Long-poll for the next signed policy bundle",
    ),
    Route(
        "POST",
        "/api/v1/sync/report",
        "site",
        report_handler,
        "Report the applied policy version, digest and inventory",
    ),
    Route(
        "POST",
        "/api/v1/sync/events",
        "site",
        events_upload_handler,
        "Upload outbox events; answers the contiguous watermark",
    ),
    Route("GET", "/api/v1/sites", "admin", list_sites, "List sites with their sync status"),
    Route(
        "POST",
        "/api/v1/sites",
        "admin",
        create_site,
        "Create a site; answers its one-time enrollment code",
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}",
        "admin",
        get_site,
        "One site: last contact, versions, digests, watermark, alarms",
    ),
    Route(
        "POST",
        "/api/v1/sites/{site}/enrollment-code",
        "admin",
        new_code,
        "A new one-time enrollment code",
    ),
    Route(
        "POST",
        "/api/v1/sites/{site}/resync",
        "admin",
        resync_site,
        "Send the site a full snapshot on its next poll",
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/policy",
        "admin",
        get_policy,
        "The site's policy document (credentials hashed)",
    ),
    Route(
        "PUT",
        "/api/v1/sites/{site}/policy",
        "admin",
        put_policy,
        "Replace the site's policy document",
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/events",
        "admin",
        site_events,
        "The site's uploaded events, newest first",
    ),
    Route(
        "GET",
        "/api/v1/sites/{site}/alarms",
        "admin",
        list_alarms,
        "The site's alarms (open ones; ?all=1 for every one)",
    ),
    Route(
        "POST",
        "/api/v1/sites/{site}/alarms/{aid}/resolve",
        "admin",
        resolve_alarm,
        "Resolve one alarm",
    ),
    Route(
        "GET", "/api/v1/sites/{site}/{kind}", "admin", list_entities, "List entities of one kind"
    ),
    Route("POST", "/api/v1/sites/{site}/{kind}", "admin", create_entity, "Create an entity"),
    Route("GET", "/api/v1/sites/{site}/{kind}/{eid}", "admin", get_entity, "One entity"),
    Route(
        "PUT",
        "/api/v1/sites/{site}/{kind}/{eid}",
        "admin",
        put_entity,
        "Create or replace an entity",
    ),
    Route(
        "DELETE", "/api/v1/sites/{site}/{kind}/{eid}", "admin", delete_entity, "Delete an entity"
    ),
    Route("GET", "/api/v1/openapi.json", "none", openapi_handler, "This OpenAPI document"),
)


def openapi(routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        params = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in route.path.split("/")
            if part.startswith("{")
        ]
        if route.path.endswith("/{kind}") or "/{kind}/" in route.path:
            params[1]["schema"] = {"type": "string", "enum": sorted(ENTITY_PATHS)}
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "parameters": params,
            "responses": {
                "200": {"description": "success"},
                "400": {"description": "bad request"},
                "401": {"description": "missing or unknown token"},
                "404": {"description": "not found"},
                "422": {"description": "invalid policy"},
            },
        }
        if route.auth != "none":
            op["security"] = [{"bearer": []}]
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "doorkeep cloud", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def make_app(store: CloudStore, *, middlewares: Iterable[Any] = ()) -> web.Application:
    """The aiohttp application over an open store (``middlewares`` run innermost)."""
    table = {(r.method, r.path): r for r in ROUTES}
    app = web.Application(
        middlewares=[_errors, _auth_middleware(table), *middlewares], client_max_size=MAX_BODY
    )
    app[STORE] = store
    app[LIMITER] = FailureLimiter(ENROLL_FAILURES, ENROLL_WINDOW_S)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); raises SyncError with what to change."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise SyncError(f"--listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:8700")
    return host.strip("[]") or "127.0.0.1", int(port)


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
