"""Build an OpenAPI 3.1 document from a route table (`doorkeep.web.routes.Route` rows).

The API supplies what differs between the edge and the cloud as small functions: the
schema of a path parameter, the error responses of an operation, and extra keys per
operation (``x-role``, ``security``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from doorkeep.web.routes import Route

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_STRING_ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^/]+$"}
_INT_ID = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}


#: The JSON Schema of the one error body (doorkeep.web.errors.error_response).
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
                "issues": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


def ref(name: str) -> dict[str, str]:
    """A ``$ref`` to ``components.schemas.<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def default_path_schema(route: Route[Any], name: str) -> dict[str, Any]:
    """An integer id for ``route.int_params``, else a one-segment string."""
    return dict(_INT_ID if name in route.int_params else _STRING_ID)


def _parameters(
    route: Route[Any], path_schema: Callable[[Route[Any], str], dict[str, Any]]
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": path_schema(route, name)}
        for name in route.path_params
    ]
    for q in route.query:
        schema: dict[str, Any] = {"type": q.type}
        if q.enum:
            schema["enum"] = list(q.enum)
        if q.fmt:
            schema["format"] = q.fmt
        if q.pattern:
            schema["pattern"] = q.pattern
        if q.name == "limit":
            schema.update(minimum=1, maximum=1000)
        schema.update(
            {k: v for k, v in (("minimum", q.minimum), ("maximum", q.maximum)) if v is not None}
        )
        params.append(
            {"name": q.name, "in": "query", "description": q.description, "schema": schema}
        )
    return params


def _success(route: Route[Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success"}
    if route.status == 204:
        return ok
    if route.media == "application/json":
        ok["content"] = {
            "application/json": {
                "schema": ref(route.response) if route.response else {"type": "object"}
            }
        }
    elif route.media.startswith(("text/event-stream", "text/plain")):
        ok["content"] = {route.media: {"schema": {"type": "string"}}}
    else:
        ok["content"] = {
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "contentEncoding": "binary"}},
        }
    return ok


def operation(
    route: Route[Any],
    *,
    path_schema: Callable[[Route[Any], str], dict[str, Any]] = default_path_schema,
    errors: Callable[[Route[Any]], dict[str, Any]] = lambda _route: {},
    extra: Callable[[Route[Any]], dict[str, Any]] = lambda _route: {},
) -> dict[str, Any]:
    """The OpenAPI operation object of one row."""
    op: dict[str, Any] = {"operationId": route.op, "summary": route.summary, "tags": [route.tag]}
    params = _parameters(route, path_schema)
    if params:
        op["parameters"] = params
    if route.body:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": ref(route.body)}},
        }
    op["responses"] = {str(route.status): _success(route), **errors(route)}
    op.update(extra(route))
    return op


def error_responses(table: dict[str, str], error_schema: str = "Error") -> dict[str, Any]:
    """Response objects for HTTP status -> description, each with the error body schema."""
    return {
        code: {"description": text, "content": {"application/json": {"schema": ref(error_schema)}}}
        for code, text in table.items()
    }


def build_openapi(
    routes: Iterable[Route[Any]],
    *,
    prefix: str,
    info: dict[str, Any],
    components: dict[str, Any],
    security: list[dict[str, list[str]]],
    path_schema: Callable[[Route[Any], str], dict[str, Any]] = default_path_schema,
    errors: Callable[[Route[Any]], dict[str, Any]] = lambda _route: {},
    extra: Callable[[Route[Any]], dict[str, Any]] = lambda _route: {},
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` served under ``prefix``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(prefix + route.path, {})[route.method.lower()] = operation(
            route, path_schema=path_schema, errors=errors, extra=extra
        )
    return {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": components,
        "security": security,
    }
