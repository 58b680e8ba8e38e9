"""Build the OpenAPI 3.1 document from the route table (edge/web/routes.py)."""

from __future__ import annotations

from typing import Any

from edge.web.routes import API_PREFIX, ROUTES, SCHEMAS, Route

# Every authenticated operation may answer these; listing them keeps clients honest.
_ERRORS = {
    "400": "Malformed request (bad JSON, wrong type, unknown field)",
    "401": "Not logged in, or the credentials are wrong",
    "403": "Logged in, but the role may not do this (or the CSRF token is missing)",
    "404": "No such entity",
    "409": "Conflicts with the current state (e.g. the policy is owned by the cloud)",
    "422": "The policy rejected the change; `issues` lists every problem",
    "429": "Too many failed logins; wait `Retry-After` seconds",
    "503": "A device (relay board, bus, reader) did not answer",
}


def _error_responses() -> dict[str, Any]:
    return {
        code: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code, text in _ERRORS.items()
    }


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.op,
        "summary": route.summary,
        "tags": [route.tag],
        "x-role": route.role.value if route.role else "public",
    }
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
            if name in route.int_params
            else {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^/]+$"},
        }
        for name in route.path_params
    ]
    for q in route.query:
        schema: dict[str, Any] = {"type": q.type}
        if q.enum:
            schema["enum"] = list(q.enum)
        if q.fmt:
            schema["format"] = q.fmt
        if q.name == "limit":
            schema.update(minimum=1, maximum=1000)
        params.append(
            {"name": q.name, "in": "query", "description": q.description, "schema": schema}
        )
    if params:
        op["parameters"] = params
    if route.body:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{route.body}"}}
            },
        }
    ok: dict[str, Any] = {"description": "Success"}
    if route.status != 204:
        schema_ref: dict[str, Any] = (
            {"$ref": f"#/components/schemas/{route.response}"} if route.response else {}
        )
        if route.media == "application/json":
            ok["content"] = {"application/json": {"schema": schema_ref or {"type": "object"}}}
        elif route.media == "text/event-stream":
            ok["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
        else:
            ok["content"] = {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "contentEncoding": "binary"}
                },
            }
    responses = {str(route.status): ok}
    if route.role is not None or route.body or route.path_params or route.query:
        responses.update(_error_responses())
    else:
        responses.update(
            {k: v for k, v in _error_responses().items() if k in {"400", "403", "429"}}
        )
    op["responses"] = responses
    if route.role is None:
        op["security"] = []
    return op


def build_openapi(*, version: str, title: str = "doorkeep site API") -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route in `ROUTES`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(API_PREFIX + route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "REST API of one doorkeep site gateway. Authenticate with a bearer "
            "token (`doorkeep token create`) or the web UI's session cookie plus the "
            "`X-CSRF-Token` header on state-changing requests.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-doorkeep"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
