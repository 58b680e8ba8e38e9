"""A request's input, checked against its route row: JSON body, path and query values.

Bodies are checked with jsonschema-rs against the schemas of edge/web/schemas.py, compiled
once at import. Messages name the failed rule and its limit, never the value (a PIN?).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from doorkeep.errors import PolicyError, PolicyIssue
from doorkeep.web import ApiError, BodySchemas, ErrorCode, Param, parse_json
from edge.web.routes import ROUTES, Route
from edge.web.schemas import SCHEMAS

# Bodies whose schema errors answer 422 with *every* problem listed (not 400, first only).
SHAPE_AS_POLICY_ERROR = frozenset({"Policy"})
#: A body checked against another schema than the one the document shows (a looser shape,
#: when a later check gives the better answer for the same rules).
_CHECKED_AS = {"HardwareConfig": "HardwareConfigShape"}
BODIES = BodySchemas(SCHEMAS, {_CHECKED_AS.get(r.body, r.body) for r in ROUTES if r.body})
_BAD_QUERY = ErrorCode.BAD_QUERY


async def read_body(request: web.Request, route: Route) -> Any:
    """The JSON body, valid for the route's schema (``None`` when the route takes none)."""
    if not route.body:
        return None
    raw = await request.read()
    if not raw.strip():
        if route.body_required:
            raise ApiError(400, ErrorCode.BODY_REQUIRED, "a JSON body is required")
        return {}
    if request.content_type != "application/json":
        raise ApiError(400, ErrorCode.BAD_CONTENT_TYPE, "send the body as application/json")
    body = parse_json(raw)
    if route.body in SHAPE_AS_POLICY_ERROR or route.kind:
        # The policy's schema errors come back as one 422 listing them all, like the
        # facade's semantic ones; the facade then only ever sees well-shaped documents.
        # One entity's body (POST/PUT /people, ...) is a piece of the policy: the same.
        if not isinstance(body, dict):
            raise ApiError(400, ErrorCode.INVALID_BODY, "the body must be a JSON object")
        entity = f"{route.kind}/{request.match_info.get('id') or body.get('id') or '-'}"
        issues = [
            # The schema's own message may quote the offending value: it could be a PIN.
            PolicyIssue(
                entity if route.kind else "/".join(p.at[:2]) or "document",
                p.field(skip=0 if route.kind else 2) or "-",
                f"fails the schema rule '{p.rule}'",
            )
            for p in BODIES.problems(route.body, body)
        ]
        if issues:
            raise PolicyError(f"the policy has {len(issues)} problem(s)", issues)
        return body
    problems = BODIES.problems(_CHECKED_AS.get(route.body, route.body), body)
    if problems:
        first = problems[0]
        raise ApiError(400, ErrorCode.INVALID_BODY, first.message(), first.field())
    return body


def parse_param(param: Param, raw: str) -> Any:
    """One query value as the type its row declares."""
    name = param.name
    if param.enum and raw not in param.enum:
        raise ApiError(400, _BAD_QUERY, f"{name} must be one of {list(param.enum)}", name)
    if param.pattern and not re.search(param.pattern, raw):
        raise ApiError(400, _BAD_QUERY, f"{name} must match {param.pattern}", name)
    if param.type == "integer":
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, _BAD_QUERY, f"{name} must be an integer", name) from None
        if name == "limit" and not 1 <= value <= 1000:
            raise ApiError(400, _BAD_QUERY, "limit must be between 1 and 1000", "limit")
        low, high = param.minimum, param.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ApiError(400, _BAD_QUERY, f"{name} must be {bounds}", name)
        return value
    if param.type == "boolean":
        if raw.lower() not in {"true", "false", "1", "0"}:
            raise ApiError(400, _BAD_QUERY, f"{name} must be true or false", name)
        return raw.lower() in {"true", "1"}
    if param.fmt == "date-time":
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, _BAD_QUERY, f"{name} must be an ISO 8601 time", name) from None
        if moment.tzinfo is None:
            raise ApiError(400, _BAD_QUERY, f"{name} needs a UTC offset", name)
        return moment
    return raw


def parse_query(request: web.Request, route: Route) -> dict[str, Any]:
    """The route's declared query parameters that the request sends.

    Every name the request sends must be one its row declares, once: an unknown name
    (a typo, or a filter this endpoint does not have) is a 400 naming the ones it has,
    never silently ignored (INTERFACES.md). An empty ``cursor=`` is the first page (a
    client that pastes back an absent cursor).
    """
    declared = {q.name: q for q in route.query}
    for name in request.query:
        if name not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise ApiError(
                400,
                _BAD_QUERY,
                f"unknown query parameter {name[:64]!r}; {route.path} takes: {allowed}",
                name[:64],
            )
        if len(request.query.getall(name)) > 1:
            raise ApiError(400, _BAD_QUERY, f"give {name} once", name)
    return {
        name: parse_param(q, request.query[name])
        for name, q in declared.items()
        if name in request.query and not (name == "cursor" and not request.query[name])
    }


def parse_path(request: web.Request, route: Route) -> dict[str, Any]:
    """The path placeholders; integer ones that are not numbers are a 404."""
    out: dict[str, Any] = {}
    for name in route.path_params:
        raw = request.match_info[name]
        if name in route.int_params:
            if not raw.isdigit() or len(raw) > 10:
                raise ApiError(404, ErrorCode.NOT_FOUND, f"{name} {raw!r} is not a number", name)
            out[name] = int(raw)
        else:
            out[name] = raw
    return out
