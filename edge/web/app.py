"""The aiohttp application: REST API under /api/v1, the web UI, auth and CSRF.

Request flow: `_errors` (every failure becomes ``{"error": {...}}``, security headers on
every answer) → `_authenticate` (bearer token or session cookie, role from the route
table, CSRF on state-changing cookie requests) → the handler named by the route row.
Handlers call the site facade only; the facade writes the audit log for the changes it
makes, the handlers here audit only what the facade does not see (logins, users, tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import io
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker

from doorkeep.errors import (
    AuthError,
    ConfigError,
    Conflict,
    DeviceError,
    NotFound,
    PolicyError,
    PolicyIssue,
)
from edge.auth import AuthStore, LoginLimiter, Principal, Role
from edge.web.facade import SiteFacade
from edge.web.openapi import build_openapi
from edge.web.routes import API_PREFIX, ROUTES, SCHEMAS, Param, Route

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SSE_HEARTBEAT_S = 15.0
EXPORT_MAX_ROWS = 100_000
EXPORT_COLUMNS = (
    "seq", "at", "type", "action", "result", "reason", "door", "reader", "person",
    "apartment", "credential_kind", "detail",
)  # fmt: skip
MAX_BODY_BYTES = 4 * 1024 * 1024
CSRF_HEADER = "X-CSRF-Token"
# Strict: the UI is entirely self-hosted (no CDN), so nothing else may load or run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class ApiError(Exception):
    """An HTTP error answer with a machine-readable code and the offending field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers: dict[str, str] = {}


class ForbiddenError(AuthError):
    """Authenticated, but not allowed (wrong role, missing CSRF token, foreign origin)."""


# Exception type -> (status, code). Order matters: the first isinstance match wins.
ERROR_MAP: tuple[tuple[type[BaseException], int, str], ...] = (
    (PolicyError, 422, "policy_invalid"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (ForbiddenError, 403, "forbidden"),
    (AuthError, 401, "unauthorized"),
    (DeviceError, 503, "device_unavailable"),
    (TimeoutError, 503, "timeout"),  # e.g. no card presented while capturing
    (ConfigError, 422, "config_invalid"),
    (ValueError, 400, "bad_request"),
)


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

SITE = web.AppKey("site", SiteFacade)
AUTH = web.AppKey("auth", AuthStore)
LIMITER = web.AppKey("limiter", LoginLimiter)
CONFIG = web.AppKey("config", WebConfig)
ROUTE_OF: web.AppKey[dict[Any, Route]] = web.AppKey("route_of", dict)
STREAMS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("streams", set)
OPENAPI = web.AppKey("openapi", dict)
PRINCIPAL = web.RequestKey("principal", Principal)

# Bodies whose schema errors answer 422 with *every* problem listed (not 400, first only).
SHAPE_AS_POLICY_ERROR = frozenset({"Policy"})
_VALIDATOR_ROOT = {"components": {"schemas": SCHEMAS}}


def _validator(name: str) -> Draft202012Validator:
    schema = {**_VALIDATOR_ROOT, "$ref": f"#/components/schemas/{name}"}
    return Draft202012Validator(schema, format_checker=FormatChecker())


_VALIDATORS = {r.body: _validator(r.body) for r in ROUTES if r.body}


def _error_body(status: int, code: str, message: str, field: str | None, **extra: Any) -> Any:
    return web.json_response(
        {"error": {"code": code, "message": message, "field": field, **extra}}, status=status
    )


@web.middleware
async def _errors(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
    """Turn every failure into the JSON error shape and add the security headers."""
    try:
        response = await handler(request)
    except ApiError as err:
        response = _error_body(err.status, err.code, err.message, err.field)
        response.headers.update(err.headers)
    except web.HTTPException as exc:
        if not request.path.startswith(API_PREFIX) or exc.status < 400:
            raise
        code = "no_such_endpoint" if exc.status == 404 else exc.reason.lower().replace(" ", "_")
        message = f"{exc.reason}: {request.method} {request.path}"
        response = _error_body(exc.status, code, message, None)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except PolicyError as err:
        issues = [i.as_dict() for i in err.issues]
        first = err.issues[0].field if err.issues else None
        response = _error_body(422, "policy_invalid", str(err), first, issues=issues)
    except (
        AuthError,
        NotFound,
        Conflict,
        DeviceError,
        TimeoutError,
        ConfigError,
        ValueError,
    ) as err:
        status, code = next((s, c) for t, s, c in ERROR_MAP if isinstance(err, t))
        if status == 503:
            log.warning("device error on %s %s: %s", request.method, request.path, err)
        extra = {"problems": list(err.problems)} if hasattr(err, "problems") else {}
        response = _error_body(status, code, str(err), getattr(err, "field", None), **extra)
    except Exception:
        # A bug: log it once with its traceback; the client learns nothing internal.
        log.exception("unexpected error on %s %s", request.method, request.path)
        response = _error_body(500, "internal_error", "internal error; see the gateway log", None)
    _secure_headers(request, response)
    return response


def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # streams (SSE, exports) set theirs before sending
        return
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith(API_PREFIX):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def _authenticate(request: web.Request, handler: Callable[..., Awaitable[Any]]) -> Any:
    """Find who asks and check the route's role and, for cookie requests, CSRF."""
    route: Route | None = request.app[ROUTE_OF].get(request.match_info.route)
    if route is None:  # static files, the UI shell, 404s
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


def _check_origin(request: web.Request) -> None:
    """Refuse a state-changing browser request whose Origin is another site."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser, or a same-origin GET-style request
        return
    expected = f"{request.scheme}://{request.host}"
    if origin != expected:
        raise ForbiddenError(f"cross-origin request from {origin!r} refused")


# -- input parsing -----------------------------------------------------------------------------


async def _read_body(request: web.Request, route: Route) -> Any:
    if not route.body:
        return None
    raw = await request.read()
    if not raw.strip():
        if route.body_required:
            raise ApiError(400, "body_required", "a JSON body is required")
        return {}
    ctype = request.content_type
    if ctype != "application/json":
        raise ApiError(400, "bad_content_type", "send the body as application/json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {err}") from err
    if route.body in SHAPE_AS_POLICY_ERROR:
        # The policy's schema errors come back as one 422 listing them all, like the
        # facade's semantic ones; the facade then only ever sees well-shaped documents.
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "the body must be a JSON object")
        issues = [_issue(e) for e in _VALIDATORS[route.body].iter_errors(body)]
        if issues:
            raise PolicyError(f"the policy has {len(issues)} problem(s)", issues)
        return body
    errors = sorted(_VALIDATORS[route.body].iter_errors(body), key=lambda e: list(e.path))
    if errors:
        raise ApiError(400, "invalid_body", _message(errors[0]), _field(errors[0]))
    return body


def _message(err: ValidationError) -> str:
    """What rule failed, naming the rule's limit but never quoting the value (a PIN?)."""
    where = _field(err) or "the body"
    limit = json.dumps(err.validator_value, default=str)
    if len(limit) > 120:
        limit = limit[:117] + "..."
    return f"{where} does not meet the schema rule {err.validator}: {limit}"


def _issue(err: ValidationError) -> PolicyIssue:
    path = [str(p) for p in err.absolute_path]
    entity = "/".join(path[:2]) or "document"
    field = _field(err, skip=2) or "-"
    # The schema's own message may quote the offending value: it could be a PIN.
    return PolicyIssue(entity, field, f"fails the schema rule '{err.validator}'")


def _field(err: ValidationError, skip: int = 0) -> str | None:
    path = [str(p) for p in err.absolute_path][skip:]
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [k for k in err.validator_value if k not in err.instance]
        path += missing[:1]
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        props = err.schema.get("properties", {})
        path += [k for k in err.instance if k not in props][:1]
    return ".".join(path) or None


def _parse_param(param: Param, raw: str) -> Any:
    if param.enum and raw not in param.enum:
        raise ApiError(
            400, "bad_query", f"{param.name} must be one of {list(param.enum)}", param.name
        )
    if param.type == "integer":
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(
                400, "bad_query", f"{param.name} must be an integer", param.name
            ) from None
        if param.name == "limit" and not 1 <= value <= 1000:
            raise ApiError(400, "bad_query", "limit must be between 1 and 1000", "limit")
        return value
    if param.type == "boolean":
        if raw.lower() not in {"true", "false", "1", "0"}:
            raise ApiError(400, "bad_query", f"{param.name} must be true or false", param.name)
        return raw.lower() in {"true", "1"}
    if param.fmt == "date-time":
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ApiError(
                400, "bad_query", f"{param.name} must be an ISO 8601 time", param.name
            ) from None
        if moment.tzinfo is None:
            raise ApiError(400, "bad_query", f"{param.name} needs a UTC offset", param.name)
        return moment
    return raw


def _parse_path(request: web.Request, route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in route.path_params:
        raw = request.match_info[name]
        if name in route.int_params:
            if not raw.isdigit() or len(raw) > 10:
                raise ApiError(404, "not_found", f"{name} {raw!r} is not a number", name)
            out[name] = int(raw)
        else:
            out[name] = raw
    return out


# -- the app -----------------------------------------------------------------------------------


def make_app(
    site: SiteFacade,
    auth: AuthStore,
    *,
    tls: bool,
    static_dir: Path | None = None,
    limiter: LoginLimiter | None = None,
) -> web.Application:
    """The web application of one site: REST API, OpenAPI document and the UI."""
    from edge.web import handlers  # noqa: PLC0415 - handlers import this module's helpers

    app = web.Application(middlewares=[_errors, _authenticate], client_max_size=MAX_BODY_BYTES)
    app[SITE] = site
    app[AUTH] = auth
    app[LIMITER] = limiter or LoginLimiter()
    app[CONFIG] = WebConfig.for_tls(tls)
    app[STREAMS] = set()
    app[OPENAPI] = build_openapi(version=site.version)
    route_of: dict[Any, Route] = {}
    for row in ROUTES:
        fn = handlers.HANDLERS.get(row.op) or handlers.entity_handler(row)
        aio_route = app.router.add_route(row.method, row.url, _wrap(row, fn), name=row.op)
        route_of[aio_route] = row
    app[ROUTE_OF] = route_of
    root = static_dir or STATIC_DIR
    app.router.add_get("/", _index(root))
    app.router.add_static("/static/", root, follow_symlinks=False, append_version=False)
    app.on_shutdown.append(_close_streams)
    return app


def _wrap(route: Route, fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        call = Call(
            request=request,
            route=route,
            site=request.app[SITE],
            auth=request.app[AUTH],
            principal=request.get(PRINCIPAL),
            body=await _read_body(request, route),
            path=_parse_path(request, route),
            query={
                q.name: _parse_param(q, request.query[q.name])
                for q in route.query
                if q.name in request.query
            },
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


async def _close_streams(app: web.Application) -> None:
    tasks: set[asyncio.Task[Any]] = app[STREAMS]
    for task in tuple(tasks):
        task.cancel()


# -- helpers the handlers share ----------------------------------------------------------------


async def audit(call: Call, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Write an operation-log line for a change the facade does not see (users, tokens)."""
    store = getattr(call.site, "store", None)
    if store is None:
        return
    result = store.audit(call.actor, action, target, detail or {})
    if asyncio.iscoroutine(result):
        await result


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


async def export_file(call: Call, fmt: str, rows: list[dict[str, Any]]) -> web.Response:
    """Events as a CSV or XLSX download (never a credential value: events carry none)."""
    stamp = datetime.now(call.site.tz).strftime("%Y%m%d-%H%M")
    name = f"doorkeep-{call.site.site_id}-events-{stamp}.{fmt}"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in EXPORT_COLUMNS])
        body = buf.getvalue().encode()
        ctype = "text/csv"
    else:
        body = await asyncio.to_thread(_xlsx, rows)
        ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(
        body=body,
        content_type=ctype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _xlsx(rows: list[dict[str, Any]]) -> bytes:
    from openpyxl import Workbook  # noqa: PLC0415 - only exports need it

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("events")
    ws.append(list(EXPORT_COLUMNS))
    for row in rows:
        ws.append([_cell(row.get(c)) for c in EXPORT_COLUMNS])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def sse(call: Call) -> web.StreamResponse:
    """Server-sent events from ``site.subscribe()`` with a heartbeat comment."""
    request = call.request
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b": connected\n\n")
    task = asyncio.current_task()
    streams = request.app[STREAMS]
    if task is not None:
        streams.add(task)
    feed = call.site.subscribe()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        async for item in feed:
            with contextlib.suppress(asyncio.QueueFull):  # a stuck browser loses old items
                queue.put_nowait(item)

    pumper = asyncio.create_task(pump(), name="sse-pump")
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            topic = str(item.get("topic", "message"))
            data = json.dumps(item.get("data", {}), default=str)
            await response.write(f"event: {topic}\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        pumper.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pumper
        if task is not None:
            streams.discard(task)
        aclose = getattr(feed, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    return response


def require_role(call: Call, role: Role) -> None:
    """Refuse unless the caller holds ``role`` (for per-kind write checks)."""
    if call.principal is None or not call.principal.role.allows(role):
        raise ForbiddenError(f"needs the {role.value} role")
