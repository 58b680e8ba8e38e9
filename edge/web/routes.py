"""The REST API as data: every route, who may call it, what it takes and returns.

`ROUTES` is the single source for three things: the aiohttp router (edge/web/app.py),
the role check of the auth middleware, and the OpenAPI 3.1 document
(edge/web/openapi.py). A test compares the served routes with this table, and the
security tests walk it to prove every endpoint refuses no auth and the wrong role.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from doorkeep import policydoc
from edge.auth import Role

API_PREFIX = "/api/v1"
# The site.toml tables the hardware page edits; [site], [web], [mqtt], [cloud] stay as they are.
HARDWARE_TABLES = ("bus", "board", "door", "reader", "output")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# URL segment -> (facade kind, role needed to change one, its key field)
ENTITY_KINDS: dict[str, tuple[str, Role]] = {
    "people": ("people", Role.ADMIN),
    "credentials": ("credentials", Role.INSTALLER),  # installers enrol cards on site
    "groups": ("groups", Role.ADMIN),
    "temp-keys": ("temp_keys", Role.ADMIN),
    "apartments": ("apartments", Role.ADMIN),
    "buildings": ("buildings", Role.ADMIN),
    "reservations": ("reservations", Role.ADMIN),
}


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter: name, JSON-schema type, description."""

    name: str
    type: str
    description: str
    enum: tuple[str, ...] = ()
    fmt: str | None = None

    def __post_init__(self) -> None:
        if self.type not in {"string", "integer", "boolean"}:
            raise ValueError(f"query parameter {self.name}: unsupported type {self.type!r}")


@dataclass(frozen=True, slots=True)
class Route:
    """One REST endpoint. ``op`` is both the OpenAPI operationId and the handler name."""

    method: str
    path: str
    op: str
    role: Role | None
    summary: str
    tag: str
    body: str | None = None
    response: str | None = "Ok"
    status: int = 200
    query: tuple[Param, ...] = ()
    media: str = "application/json"
    kind: str | None = None  # facade entity kind for the entity CRUD rows
    body_required: bool = True
    int_params: tuple[str, ...] = ()  # path parameters that are integers

    def __post_init__(self) -> None:
        if self.method not in {"GET", "POST", "PUT", "DELETE"}:
            raise ValueError(f"{self.path}: unsupported method {self.method}")
        if not self.path.startswith("/"):
            raise ValueError(f"route path {self.path!r} must start with /")

    @property
    def path_params(self) -> tuple[str, ...]:
        """Names of the ``{placeholders}`` in the path, in order."""
        return tuple(re.findall(r"{(\w+)}", self.path))

    @property
    def url(self) -> str:
        """The full path served by aiohttp."""
        return API_PREFIX + self.path

    @property
    def changes_state(self) -> bool:
        """True for methods that need CSRF protection when sent with the cookie."""
        return self.method not in SAFE_METHODS


_EVENT_FILTERS = (
    Param("type", "string", "event type", ("access", "door", "alarm", "emergency", "system")),
    Param("since", "string", "from this time (ISO 8601, with offset)", fmt="date-time"),
    Param("until", "string", "up to this time (ISO 8601, with offset)", fmt="date-time"),
    Param("door", "string", "door id"),
    Param("person", "string", "person id"),
    Param("result", "string", "outcome", ("success", "failed", "offline")),
)
_PAGING = (
    Param("limit", "integer", "page size, 1-1000 (default 100)"),
    Param("cursor", "string", "the cursor of the previous page"),
)
_AUDIT_FILTERS = (
    Param("since", "string", "from this time (ISO 8601, with offset)", fmt="date-time"),
    Param("until", "string", "up to this time (ISO 8601, with offset)", fmt="date-time"),
    Param("actor", "string", "who made the change"),
)

VIEWER, INSTALLER, ADMIN = Role.VIEWER, Role.INSTALLER, Role.ADMIN

_CORE: tuple[Route, ...] = (
    Route(
        "GET", "/health", "health", None, "Liveness and policy version", "system", response="Health"
    ),
    Route("GET", "/openapi.json", "openapi", None, "This document", "system", response=None),
    # onboarding and login
    Route(
        "GET",
        "/auth/setup",
        "setup_state",
        None,
        "Is onboarding still open?",
        "auth",
        response="SetupState",
    ),
    Route(
        "POST",
        "/auth/setup",
        "setup",
        None,
        "Create the first admin with the setup code",
        "auth",
        body="SetupRequest",
        response="Me",
        status=201,
    ),
    Route(
        "POST",
        "/auth/login",
        "login",
        None,
        "Log in (sets the session cookie)",
        "auth",
        body="LoginRequest",
        response="Me",
    ),
    Route(
        "POST",
        "/auth/logout",
        "logout",
        VIEWER,
        "End the session",
        "auth",
        response="Ok",
        body_required=False,
    ),
    Route("GET", "/auth/me", "me", VIEWER, "Who am I, and my CSRF token", "auth", response="Me"),
    Route("GET", "/users", "list_users", ADMIN, "Web UI users", "auth", response="Users"),
    Route(
        "POST",
        "/users",
        "create_user",
        ADMIN,
        "Create a user",
        "auth",
        body="UserCreate",
        response="User",
        status=201,
    ),
    Route(
        "DELETE",
        "/users/{username}",
        "delete_user",
        ADMIN,
        "Delete a user",
        "auth",
        response=None,
        status=204,
    ),
    Route(
        "GET", "/tokens", "list_tokens", ADMIN, "API tokens (names only)", "auth", response="Tokens"
    ),
    Route(
        "POST",
        "/tokens",
        "create_token",
        ADMIN,
        "Create an API token (shown once)",
        "auth",
        body="TokenCreate",
        response="TokenCreated",
        status=201,
    ),
    Route(
        "DELETE",
        "/tokens/{name}",
        "delete_token",
        ADMIN,
        "Revoke an API token",
        "auth",
        response=None,
        status=204,
    ),
    # doors
    Route(
        "GET",
        "/doors",
        "list_doors",
        VIEWER,
        "Every door with its state",
        "doors",
        response="Doors",
    ),
    Route("GET", "/doors/{id}", "get_door", VIEWER, "One door", "doors", response="Door"),
    Route(
        "POST",
        "/doors/{id}/unlock",
        "unlock_door",
        INSTALLER,
        "Remote unlock",
        "doors",
        body="UnlockRequest",
        response="Door",
        body_required=False,
    ),
    Route(
        "POST",
        "/doors/{id}/lock",
        "lock_door",
        INSTALLER,
        "Lock now",
        "doors",
        response="Door",
        body_required=False,
    ),
    Route(
        "POST",
        "/emergency",
        "emergency",
        ADMIN,
        "Emergency unlock, lockdown or clear",
        "doors",
        body="EmergencyRequest",
        response="Object",
    ),
    Route(
        "POST",
        "/presentations",
        "present",
        INSTALLER,
        "Present a credential as a reader would",
        "doors",
        body="PresentationRequest",
        response="PresentationResult",
    ),
    # logs
    Route(
        "GET",
        "/events",
        "list_events",
        VIEWER,
        "Door and alarm events, newest first",
        "logs",
        response="EventPage",
        query=_EVENT_FILTERS + _PAGING,
    ),
    Route(
        "GET",
        "/events/export",
        "export_events",
        VIEWER,
        "Events as CSV or XLSX",
        "logs",
        response=None,
        media="application/octet-stream",
        query=(Param("format", "string", "file format", ("csv", "xlsx")), *_EVENT_FILTERS),
    ),
    Route(
        "GET",
        "/audit",
        "list_audit",
        VIEWER,
        "Operation log",
        "logs",
        response="AuditPage",
        query=_AUDIT_FILTERS + _PAGING,
    ),
    Route(
        "GET",
        "/alarms",
        "list_alarms",
        VIEWER,
        "Alarm records",
        "logs",
        response="Alarms",
        query=(Param("open", "boolean", "only unresolved alarms"),),
    ),
    Route(
        "POST",
        "/alarms/{id}/resolve",
        "resolve_alarm",
        INSTALLER,
        "Resolve an alarm",
        "logs",
        body="ResolveRequest",
        response="Object",
        body_required=False,
        int_params=("id",),
    ),
    Route(
        "GET",
        "/stream",
        "stream",
        VIEWER,
        "Live events, door states and alarms (SSE)",
        "logs",
        response=None,
        media="text/event-stream",
    ),
    # policy
    Route(
        "GET",
        "/policy",
        "get_policy",
        VIEWER,
        "The whole policy document (hashed)",
        "policy",
        response="Policy",
    ),
    Route(
        "PUT",
        "/policy",
        "put_policy",
        ADMIN,
        "Replace the whole policy document",
        "policy",
        body="Policy",
        response="PolicyApplied",
    ),
    Route(
        "POST",
        "/apartments/{id}/reset",
        "reset_apartment",
        ADMIN,
        "Remove an apartment's members, credentials and door logs",
        "policy",
        response="Object",
        body_required=False,
    ),
    # hardware
    Route(
        "GET",
        "/hardware",
        "get_hardware",
        VIEWER,
        "Buses, boards with statistics, doors, readers",
        "hardware",
        response="Hardware",
    ),
    Route(
        "PUT",
        "/hardware",
        "put_hardware",
        INSTALLER,
        "Write the hardware config (on restart)",
        "hardware",
        body="HardwareConfig",
        response="Object",
    ),
    Route(
        "POST",
        "/buses/{id}/scan",
        "scan_bus",
        INSTALLER,
        "Find board addresses on a bus",
        "hardware",
        response="ScanResult",
        body_required=False,
    ),
    Route(
        "POST",
        "/relays/{board}/{n}/test",
        "test_relay",
        INSTALLER,
        "Pulse one relay",
        "hardware",
        body="RelayTestRequest",
        response="Object",
        body_required=False,
        int_params=("n",),
    ),
    Route(
        "POST",
        "/readers/{id}/capture",
        "capture_card",
        INSTALLER,
        "Wait for the next unknown card at a reader (enrolment)",
        "hardware",
        body="CaptureRequest",
        response="Object",
        body_required=False,
    ),
    Route(
        "GET", "/sync", "sync_status", VIEWER, "Cloud sync state", "system", response="SyncStatus"
    ),
)


def _entity_routes() -> tuple[Route, ...]:
    rows: list[Route] = []
    for segment, (kind, write) in ENTITY_KINDS.items():
        tag = "entities"
        rows += [
            Route(
                "GET",
                f"/{segment}",
                f"list_{kind}",
                VIEWER,
                f"List {segment}",
                tag,
                response="Entities",
                kind=kind,
            ),
            Route(
                "POST",
                f"/{segment}",
                f"create_{kind}",
                write,
                f"Create one of {segment}",
                tag,
                body="Entity",
                response="Entity",
                status=201,
                kind=kind,
            ),
            Route(
                "GET",
                f"/{segment}/{{id}}",
                f"get_{kind}",
                VIEWER,
                f"One of {segment}",
                tag,
                response="Entity",
                kind=kind,
            ),
            Route(
                "PUT",
                f"/{segment}/{{id}}",
                f"put_{kind}",
                write,
                f"Create or replace one of {segment}",
                tag,
                body="Entity",
                response="Entity",
                kind=kind,
            ),
            Route(
                "DELETE",
                f"/{segment}/{{id}}",
                f"delete_{kind}",
                write,
                f"Delete one of {segment}",
                tag,
                response=None,
                status=204,
                kind=kind,
            ),
        ]
    return tuple(rows)


ROUTES: tuple[Route, ...] = _CORE + _entity_routes()

# -- JSON Schemas (OpenAPI 3.1 = JSON Schema 2020-12) -----------------------------------------

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._#:-]+$"}
_OBJ: dict[str, Any] = {"type": "object"}


def _policy_schemas() -> dict[str, dict[str, Any]]:
    """The policy document's own JSON Schema, its $defs lifted into components."""
    doc = copy.deepcopy(policydoc.schema())
    defs = doc.pop("$defs", {})
    doc.pop("$schema", None)
    doc.pop("$id", None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (
                    v.replace("#/$defs/", "#/components/schemas/Policy_")
                    if k == "$ref" and isinstance(v, str)
                    else rewrite(v)
                )
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    return {"Policy": rewrite(doc)} | {f"Policy_{k}": rewrite(v) for k, v in defs.items()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "cursor"],
        "properties": {"items": {"type": "array", "items": _ref(item)}, "cursor": _NSTR},
    }


def _items(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(item)}},
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "Ok": {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}},
    "Object": _OBJ,
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "properties": {
                    "code": _STR,
                    "message": _STR,
                    "field": _NSTR,
                    "issues": {"type": "array", "items": _OBJ},
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "site", "version", "policy_version", "clock_ok"],
        "properties": {
            "status": _STR,
            "site": _STR,
            "version": _STR,
            "policy_version": {"type": ["integer", "null"]},
            "clock_ok": {"type": "boolean"},
        },
    },
    "SetupState": {
        "type": "object",
        "required": ["setup_required"],
        "properties": {"setup_required": {"type": "boolean"}},
    },
    "SetupRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "username", "password"],
        "properties": {
            "code": {"type": "string", "minLength": 1, "maxLength": 64},
            "username": {"type": "string", "minLength": 1, "maxLength": 64},
            "password": {"type": "string", "minLength": 12, "maxLength": 1024},
        },
    },
    "LoginRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "minLength": 1, "maxLength": 64},
            "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        },
    },
    "Me": {
        "type": "object",
        "required": ["username", "role", "kind"],
        "properties": {
            "username": _STR,
            "role": {"enum": ["admin", "installer", "viewer"]},
            "kind": {"enum": ["user", "token"]},
            "csrf_token": _NSTR,
        },
    },
    "User": {
        "type": "object",
        "required": ["username", "role"],
        "properties": {"username": _STR, "role": {"enum": ["admin", "installer", "viewer"]}},
    },
    "Users": _items("User"),
    "UserCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["username", "password", "role"],
        "properties": {
            "username": {"type": "string", "pattern": "^[a-z0-9._-]{1,64}$"},
            "password": {"type": "string", "minLength": 12, "maxLength": 1024},
            "role": {"enum": ["admin", "installer", "viewer"]},
        },
    },
    "Token": {
        "type": "object",
        "required": ["name", "role"],
        "properties": {"name": _STR, "role": _STR, "created": {"type": "number"}},
    },
    "Tokens": _items("Token"),
    "TokenCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "role"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9._-]{1,64}$"},
            "role": {"enum": ["admin", "installer", "viewer"]},
        },
    },
    "TokenCreated": {
        "type": "object",
        "required": ["name", "role", "token"],
        "properties": {"name": _STR, "role": _STR, "token": _STR},
    },
    "Door": {
        "type": "object",
        "required": ["id", "state"],
        "properties": {
            "id": _STR,
            "name": _NSTR,
            "state": _STR,
            "contact": _NSTR,
            "board_online": {"type": ["boolean", "null"]},
            "fail_mode": _NSTR,
            "held_open_s": {"type": ["integer", "null"]},
        },
    },
    "Doors": _items("Door"),
    "UnlockRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"seconds": {"type": "integer", "minimum": 1, "maximum": 3600}},
    },
    "EmergencyRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "properties": {
            "action": {"enum": ["unlock", "lock", "lockdown", "clear"]},
            "doors": {"type": ["array", "null"], "items": _ID, "maxItems": 256},
        },
    },
    "PresentationRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reader", "kind", "value"],
        "properties": {
            "reader": _ID,
            "kind": {"type": "string", "pattern": "^[a-z_]{1,32}$"},
            "value": {"type": "string", "minLength": 1, "maxLength": 256},
            "at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "PresentationResult": {
        "type": "object",
        "required": ["granted", "reason", "door", "person", "event_id"],
        "properties": {
            "granted": {"type": "boolean"},
            "reason": _NSTR,
            "door": _NSTR,
            "person": _NSTR,
            "event_id": {"type": ["integer", "string", "null"]},
            "floors": {"type": ["array", "null"]},
        },
    },
    "Event": {
        "type": "object",
        "required": ["seq", "at", "type", "result"],
        "properties": {
            "seq": {"type": "integer"},
            "at": _STR,
            "type": _STR,
            "action": _NSTR,
            "result": _STR,
            "reason": _NSTR,
            "door": _NSTR,
            "reader": _NSTR,
            "person": _NSTR,
            "apartment": _NSTR,
            "credential_kind": _NSTR,
        },
    },
    "EventPage": _page("Event"),
    "AuditPage": _page("Object"),
    "Alarm": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
    "Alarms": _items("Alarm"),
    "ResolveRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"note": {"type": "string", "maxLength": 1000}},
    },
    "PolicyApplied": {
        "type": "object",
        "required": ["version"],
        "properties": {"version": {"type": "integer"}},
    },
    "Entity": {"type": "object", "required": ["id"], "properties": {"id": _ID}},
    "Entities": _items("Entity"),
    "Hardware": {
        "type": "object",
        "required": ["buses", "boards", "doors", "readers", "outputs"],
        "properties": {
            **{
                k: {"type": "array", "items": _OBJ}
                for k in ("buses", "boards", "doors", "readers", "outputs")
            },
            "config": {"$ref": "#/components/schemas/HardwareConfig"},
        },
    },
    "HardwareConfig": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            k: {"type": "array", "items": _ref("TomlTable"), "maxItems": 1024}
            for k in HARDWARE_TABLES
        },
    },
    # A site.toml table: lower-case keys, values TOML can hold (TOML has no null).
    "TomlTable": {
        "type": "object",
        "propertyNames": {"pattern": "^[a-z_][a-z0-9_]{0,63}$"},
        "additionalProperties": _ref("TomlValue"),
    },
    "TomlValue": {
        "type": ["string", "integer", "number", "boolean", "array", "object"],
        "items": _ref("TomlValue"),
        "additionalProperties": _ref("TomlValue"),
    },
    "ScanResult": {
        "type": "object",
        "required": ["bus", "addresses"],
        "properties": {"bus": _STR, "addresses": {"type": "array", "items": {"type": "integer"}}},
    },
    "RelayTestRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"ms": {"type": "integer", "minimum": 50, "maximum": 10000}},
    },
    "CaptureRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"timeout_s": {"type": "number", "minimum": 0.1, "maximum": 120}},
    },
    **_policy_schemas(),
    "SyncStatus": {
        "type": "object",
        "required": ["enrolled"],
        "properties": {"enrolled": {"type": "boolean"}, "stale": {"type": ["boolean", "null"]}},
    },
}
