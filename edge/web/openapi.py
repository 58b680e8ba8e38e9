"""The site API's OpenAPI 3.1 document, built by the toolkit from edge/web/routes.py."""

from __future__ import annotations

from typing import Any

from doorkeep.web import build_openapi as _build
from doorkeep.web import error_responses
from doorkeep.web.openapi import XLSX, default_path_schema
from edge.web.routes import API_PREFIX, ROUTES, DeviceAuth, Route
from edge.web.schemas import SCHEMAS

# Every authenticated operation may answer these; listing them keeps clients honest.
_ERRORS = error_responses(
    {
        "400": "Malformed request (bad JSON, wrong type, unknown field)",
        "401": "Not logged in, or the credentials are wrong",
        "403": "Logged in, but the role may not do this (or the CSRF token is missing)",
        "404": "No such entity",
        "409": "Conflicts with the current state (e.g. the policy is owned by the cloud)",
        "422": "The policy rejected the change; `issues` lists every problem",
        "413": "The uploaded file is too large",
        "429": "Too many failed logins; wait `Retry-After` seconds",
        "503": "A device (relay board, bus, reader) did not answer",
    }
)
_UPLOADS = frozenset({"import_file"})
_PUBLIC_ERRORS = {k: v for k, v in _ERRORS.items() if k in {"400", "403", "429"}}
_DESCRIPTION = (
    "REST API of one doorkeep site gateway. Authenticate with a bearer token "
    "(`doorkeep token create`) or the web UI's session cookie plus the `X-CSRF-Token` "
    "header on state-changing requests."
)


def _errors(route: Route) -> dict[str, Any]:
    if route.role is not None or route.body or route.path_params or route.query:
        return _ERRORS
    return _PUBLIC_ERRORS


def _path_schema(route: Route, name: str) -> dict[str, Any]:
    # An entity's id in the URL follows the policy's id rule, as the body's does.
    if route.kind and name == "id":
        return {"$ref": "#/components/schemas/Policy_id"}
    return default_path_schema(route, name)


def _extra(route: Route) -> dict[str, Any]:
    out: dict[str, Any] = {"x-role": route.role.value if route.role else "public"}
    if route.role is None:
        out["security"] = []
    elif isinstance(route.role, DeviceAuth):
        out["security"] = [{"readerToken": []}]
    if route.op in _UPLOADS:  # the file itself is the body
        binary = {"schema": {"type": "string", "contentEncoding": "binary", "minLength": 1}}
        out["requestBody"] = {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string", "minLength": 1}}, XLSX: binary},
        }
    return out


def build_openapi(*, version: str, title: str = "doorkeep site API") -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route in `ROUTES`."""
    return _build(
        ROUTES,
        prefix=API_PREFIX,
        info={"title": title, "version": version, "description": _DESCRIPTION},
        components={
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-doorkeep"},
                "readerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the token `doorkeep reader token READER` printed for the "
                    "http reader in the path; API tokens and sessions are refused",
                },
            },
        },
        security=[{"bearer": []}, {"session": []}],
        errors=_errors,
        extra=_extra,
        path_schema=_path_schema,
    )
