"""One error vocabulary and one error middleware for every doorkeep HTTP API.

Every failure answers ``{"error": {"code", "message", "field", ...}}``. The codes are the
members of `ErrorCode`; which exception becomes which status and code is the table
`ERROR_TABLE` (first ``isinstance`` match wins). A handler bug is logged once with its
traceback and answers a JSON 500 that says nothing internal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from doorkeep.errors import (
    AuthError,
    ConfigError,
    Conflict,
    DeviceError,
    DoorkeepError,
    NotFound,
    PolicyError,
    StorageError,
)

log = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    """The machine-readable ``error.code`` values, shared by the edge and the cloud API."""

    BAD_REQUEST = "bad_request"
    BAD_JSON = "bad_json"
    BAD_CONTENT_TYPE = "bad_content_type"
    BAD_QUERY = "bad_query"
    BODY_REQUIRED = "body_required"
    INVALID_BODY = "invalid_body"
    ID_MISMATCH = "id_mismatch"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    NO_SUCH_ENDPOINT = "no_such_endpoint"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    WRONG_HOST = "wrong_host"
    CONFLICT = "conflict"
    POLICY_INVALID = "policy_invalid"
    CONFIG_INVALID = "config_invalid"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    DEVICE_UNAVAILABLE = "device_unavailable"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    TIMEOUT = "timeout"
    INTERNAL_ERROR = "internal_error"


class ApiError(Exception):
    """An HTTP error answer with a machine-readable code and the offending field."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers: dict[str, str] = {}


class ForbiddenError(AuthError):
    """Authenticated, but not allowed (wrong role, missing CSRF token, foreign origin)."""


# Exception type -> (status, code). Order matters: the first isinstance match wins.
ERROR_TABLE: tuple[tuple[type[BaseException], int, ErrorCode], ...] = (
    (PolicyError, 422, ErrorCode.POLICY_INVALID),
    (NotFound, 404, ErrorCode.NOT_FOUND),
    (Conflict, 409, ErrorCode.CONFLICT),
    (ForbiddenError, 403, ErrorCode.FORBIDDEN),
    (AuthError, 401, ErrorCode.UNAUTHORIZED),
    (DeviceError, 503, ErrorCode.DEVICE_UNAVAILABLE),
    (StorageError, 503, ErrorCode.STORAGE_UNAVAILABLE),  # disk full: docs/storage.md
    (TimeoutError, 503, ErrorCode.TIMEOUT),  # e.g. no card presented while capturing
    (ConfigError, 422, ErrorCode.CONFIG_INVALID),
    (json.JSONDecodeError, 400, ErrorCode.BAD_JSON),
    (ValueError, 400, ErrorCode.BAD_REQUEST),
    (DoorkeepError, 400, ErrorCode.BAD_REQUEST),  # SyncError and the rest of the tree
)
_MAPPED = tuple(kind for kind, _status, _code in ERROR_TABLE)
_HTTP_CODES = {404: ErrorCode.NO_SUCH_ENDPOINT, 405: ErrorCode.METHOD_NOT_ALLOWED}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int, code: str, message: str, field: str | None = None, **extra: Any
) -> web.Response:
    """The one error shape: ``{"error": {"code", "message", "field", ...}}``."""
    body = {"code": str(code), "message": message, "field": field, **extra}
    return web.json_response({"error": body}, status=status)


def _from_exception(request: web.Request, err: BaseException) -> web.Response:
    if isinstance(err, PolicyError):
        issues = [i.as_dict() for i in err.issues]
        first = err.issues[0].field if err.issues else None
        return error_response(422, ErrorCode.POLICY_INVALID, str(err), first, issues=issues)
    status, code = next((s, c) for t, s, c in ERROR_TABLE if isinstance(err, t))
    if status == 503:
        log.warning("device error on %s %s: %s", request.method, request.path, err)
    if isinstance(err, json.JSONDecodeError):
        message = f"the body is not valid JSON: {err.msg}"
    else:
        message = str(err)
    problems = getattr(err, "problems", None)
    extra = {"problems": list(problems)} if problems is not None else {}
    return error_response(status, code, message, getattr(err, "field", None), **extra)


def error_middleware(
    *,
    prefix: str,
    on_response: Callable[[web.Request, web.StreamResponse], None] | None = None,
    internal_message: str = "internal error; see the service log",
) -> Middleware:
    """The error middleware: every failure under ``prefix`` becomes the JSON error shape.

    ``on_response`` sees every answer that leaves (the edge adds its security headers).
    aiohttp's own HTTP errors outside ``prefix`` (static files, the UI) pass through.
    """

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            response = await handler(request)
        except ApiError as err:
            response = error_response(err.status, err.code, err.message, err.field)
            response.headers.update(err.headers)
        except web.HTTPException as exc:
            if not request.path.startswith(prefix) or exc.status < 400:
                raise
            code = _HTTP_CODES.get(exc.status) or exc.reason.lower().replace(" ", "_")
            message = f"{exc.reason}: {request.method} {request.path}"
            response = error_response(exc.status, code, message)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except ConnectionResetError:
            # The peer went away mid-request: nothing to answer, no traceback worth logging.
            log.debug("%s %s: client went away", request.method, request.path)
            return web.Response(status=400)
        except _MAPPED as err:
            response = _from_exception(request, err)
        except Exception:
            # A bug: log it once with its traceback; the client learns nothing internal.
            log.exception("unexpected error on %s %s", request.method, request.path)
            response = error_response(500, ErrorCode.INTERNAL_ERROR, internal_message)
        if on_response is not None:
            on_response(request, response)
        return response

    return errors
