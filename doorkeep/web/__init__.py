"""The small web toolkit under the edge REST API and the cloud admin API (aiohttp).

- `Route` rows with keyword fields and `Handlers`, a registry keyed by operationId;
  `mount` adds a table to an app and `route_of` finds a request's row;
- `error_middleware` and the one error vocabulary `ErrorCode` (`ApiError` to answer one);
- `build_openapi`, the OpenAPI 3.1 document of a route table;
- `BodySchemas`, request bodies checked with jsonschema-rs;
- `parse_json` (depth-limited) and `check_int64`, hostile input as a clear 400;
- `AllowedHosts`, the Host names a server answers to (DNS rebinding);
- `parse_listen`, the ``HOST:PORT`` of a server.

It imports neither ``edge`` nor ``cloud_sync``: both build on it.
"""

from doorkeep.web.body import MAX_DEPTH, check_int64, parse_json
from doorkeep.web.errors import (
    ERROR_TABLE,
    ApiError,
    ErrorCode,
    ForbiddenError,
    error_middleware,
    error_response,
)
from doorkeep.web.hosts import AllowedHosts, check_host_name, own_names
from doorkeep.web.listen import parse_listen
from doorkeep.web.openapi import build_openapi, error_responses
from doorkeep.web.routes import Handlers, Param, Route, mount, route_of
from doorkeep.web.schema import BodySchemas, SchemaProblem

__all__ = [
    "ERROR_TABLE",
    "MAX_DEPTH",
    "AllowedHosts",
    "ApiError",
    "BodySchemas",
    "ErrorCode",
    "ForbiddenError",
    "Handlers",
    "Param",
    "Route",
    "SchemaProblem",
    "build_openapi",
    "check_host_name",
    "check_int64",
    "error_middleware",
    "error_response",
    "error_responses",
    "mount",
    "own_names",
    "parse_json",
    "parse_listen",
    "route_of",
]
