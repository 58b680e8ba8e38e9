"""The REST API as data: every route, who may call it, what it takes and returns.

`ROUTES` is the single source for three things: the aiohttp router (edge/web/app.py),
the role check of the auth middleware, and the OpenAPI 3.1 document
(edge/web/openapi.py). Each row's ``op`` names its handler, registered with
``@HANDLERS`` in edge/web/handlers/; the app refuses to start when a row has no handler or
a handler no row. The security tests walk this table to prove every endpoint refuses no
auth and the wrong role.
"""

from __future__ import annotations

from doorkeep.web import Param
from doorkeep.web import Route as _Route
from edge.auth import Role
from edge.web.schemas import HARDWARE_TABLES, SCHEMAS

__all__ = ["API_PREFIX", "ENTITY_KINDS", "HARDWARE_TABLES", "ROUTES", "SCHEMAS", "Param", "Route"]

API_PREFIX = "/api/v1"

#: A row of the edge's table: the role needed is an `edge.auth.Role` (None: public).
Route = _Route[Role]

# URL segment -> (facade kind, role needed to change one)
ENTITY_KINDS: dict[str, tuple[str, Role]] = {
    "people": ("people", Role.ADMIN),
    "credentials": ("credentials", Role.INSTALLER),  # installers enrol cards on site
    "groups": ("groups", Role.ADMIN),
    "temp-keys": ("temp_keys", Role.ADMIN),
    "apartments": ("apartments", Role.ADMIN),
    "buildings": ("buildings", Role.ADMIN),
    "reservations": ("reservations", Role.ADMIN),
}

_SINCE = Param("since", "string", "from this time (ISO 8601, with offset)", fmt="date-time")
_UNTIL = Param("until", "string", "up to this time (ISO 8601, with offset)", fmt="date-time")
_EVENT_FILTERS = (
    Param("type", "string", "event type", ("access", "door", "alarm", "emergency", "system")),
    _SINCE,
    _UNTIL,
    Param("door", "string", "door id"),
    Param("person", "string", "person id"),
    Param("result", "string", "outcome", ("success", "failed", "offline")),
)
_PAGING = (
    Param("limit", "integer", "page size, 1-1000 (default 100)"),
    Param("cursor", "string", "the cursor of the previous page (empty: the first page)"),
)
_LIST_QUERY = (
    Param("q", "string", "words that every item shown contains (id, name, number, ...)"),
    Param("limit", "integer", "page size, 1-1000 (default: all)"),
    Param("offset", "integer", "items to skip (default 0)"),
)
_AUDIT_FILTERS = (_SINCE, _UNTIL, Param("actor", "string", "who made the change"))
_FORMAT = Param("format", "string", "file format", ("csv", "xlsx"))

VIEWER, INSTALLER, ADMIN = Role.VIEWER, Role.INSTALLER, Role.ADMIN

# One row per endpoint; kept one or two lines each so the table reads as a table.
# fmt: off
_CORE: tuple[Route, ...] = (
    Route("GET", "/health", op="health", role=None, tag="system",
          summary="Liveness and policy version", response="Health"),
    Route("GET", "/openapi.json", op="openapi", role=None, tag="system", summary="This document",
          response=None),
    Route("GET", "/metrics", op="metrics", role=VIEWER, tag="system",
          summary="Prometheus metrics (text format 0.0.4)", response=None,
          media="text/plain; version=0.0.4"),
    Route("GET", "/sync", op="sync_status", role=VIEWER, tag="system", summary="Cloud sync state",
          response="SyncStatus"),
    # onboarding and login
    Route("GET", "/auth/setup", op="setup_state", role=None, tag="auth",
          summary="Is onboarding still open?", response="SetupState"),
    Route("POST", "/auth/setup", op="setup", role=None, tag="auth",
          summary="Create the first admin with the setup code",
          body="SetupRequest", response="Me", status=201),
    Route("POST", "/auth/login", op="login", role=None, tag="auth",
          summary="Log in (sets the session cookie)",
          body="LoginRequest", response="Me"),
    Route("POST", "/auth/logout", op="logout", role=VIEWER, tag="auth", summary="End the session",
          body_required=False),
    Route("GET", "/auth/me", op="me", role=VIEWER, tag="auth",
          summary="Who am I, and my CSRF token", response="Me"),
    Route("GET", "/users", op="list_users", role=ADMIN, tag="auth", summary="Web UI users",
          response="Users"),
    Route("POST", "/users", op="create_user", role=ADMIN, tag="auth", summary="Create a user",
          body="UserCreate", response="User", status=201),
    Route("DELETE", "/users/{username}", op="delete_user", role=ADMIN, tag="auth",
          summary="Delete a user",
          response=None, status=204),
    Route("GET", "/tokens", op="list_tokens", role=ADMIN, tag="auth",
          summary="API tokens (names only)", response="Tokens"),
    Route("POST", "/tokens", op="create_token", role=ADMIN, tag="auth",
          summary="Create an API token (shown once)",
          body="TokenCreate", response="TokenCreated", status=201),
    Route("DELETE", "/tokens/{name}", op="delete_token", role=ADMIN, tag="auth",
          summary="Revoke an API token",
          response=None, status=204),
    # doors
    Route("GET", "/doors", op="list_doors", role=VIEWER, tag="doors",
          summary="Every door with its state", response="Doors"),
    Route("GET", "/doors/{id}", op="get_door", role=VIEWER, tag="doors", summary="One door",
          response="Door"),
    Route("POST", "/doors/{id}/unlock", op="unlock_door", role=INSTALLER, tag="doors",
          summary="Remote unlock",
          body="UnlockRequest", response="Door", body_required=False),
    Route("POST", "/doors/{id}/lock", op="lock_door", role=INSTALLER, tag="doors",
          summary="Lock now",
          response="Door", body_required=False),
    Route("POST", "/emergency", op="emergency", role=ADMIN, tag="doors",
          summary="Emergency unlock, lockdown or clear",
          body="EmergencyRequest", response="Object"),
    Route("POST", "/presentations", op="present", role=INSTALLER, tag="doors",
          summary="Present a credential as a reader would",
          body="PresentationRequest", response="PresentationResult"),
    # logs
    Route("GET", "/events", op="list_events", role=VIEWER, tag="logs",
          summary="Door and alarm events, newest first",
          response="EventPage", query=_EVENT_FILTERS + _PAGING),
    Route("GET", "/events/export", op="export_events", role=VIEWER, tag="logs",
          summary="Events as CSV or XLSX",
          response=None, media="application/octet-stream", query=(_FORMAT, *_EVENT_FILTERS)),
    Route("GET", "/audit", op="list_audit", role=VIEWER, tag="logs", summary="Operation log",
          response="AuditPage", query=_AUDIT_FILTERS + _PAGING),
    Route("GET", "/alarms", op="list_alarms", role=VIEWER, tag="logs", summary="Alarm records",
          response="Alarms", query=(Param("open", "boolean", "only unresolved alarms"),)),
    Route("POST", "/alarms/{id}/resolve", op="resolve_alarm", role=INSTALLER, tag="logs",
          summary="Resolve an alarm",
          body="ResolveRequest", response="Object", int_params=("id",), body_required=False),
    Route("GET", "/stream", op="stream", role=VIEWER, tag="logs",
          summary="Live events, door states and alarms (SSE)",
          response=None, media="text/event-stream"),
    # policy
    Route("GET", "/policy", op="get_policy", role=VIEWER, tag="policy",
          summary="The whole policy document (hashed)",
          response="Policy"),
    Route("PUT", "/policy", op="put_policy", role=ADMIN, tag="policy",
          summary="Replace the whole policy document",
          body="Policy", response="PolicyApplied"),
    Route("POST", "/apartments/{id}/reset", op="reset_apartment", role=ADMIN, tag="policy",
          summary="Remove an apartment's members, credentials and door logs",
          response="Object", body_required=False),
    # hardware
    Route("GET", "/hardware", op="get_hardware", role=VIEWER, tag="hardware",
          summary="Buses, boards with statistics, doors, readers", response="Hardware"),
    Route("PUT", "/hardware", op="put_hardware", role=INSTALLER, tag="hardware",
          summary="Write the hardware config (on restart)",
          body="HardwareConfig", response="Object"),
    Route("POST", "/buses/{id}/scan", op="scan_bus", role=INSTALLER, tag="hardware",
          summary="Find board addresses on a bus",
          response="ScanResult", body_required=False),
    Route("POST", "/relays/{board}/{n}/test", op="test_relay", role=INSTALLER, tag="hardware",
          summary="Pulse one relay",
          body="RelayTestRequest", response="Object", int_params=("n",), body_required=False),
    Route("POST", "/readers/{id}/capture", op="capture_card", role=INSTALLER, tag="hardware",
          summary="Wait for the next unknown card at a reader (enrolment)",
          body="CaptureRequest", response="Object", body_required=False),
)


def _entity_routes(segment: str, kind: str, write: Role) -> tuple[Route, ...]:
    one, tag = f"/{segment}/{{id}}", "entities"
    return (
        Route("GET", f"/{segment}", op=f"list_{kind}", role=VIEWER, tag=tag,
              summary=f"List {segment}",
              response="Entities", kind=kind, query=_LIST_QUERY),
        Route("POST", f"/{segment}", op=f"create_{kind}", role=write, tag=tag,
              summary=f"Create one of {segment}",
              body="Entity", response="Entity", status=201, kind=kind),
        Route("GET", one, op=f"get_{kind}", role=VIEWER, tag=tag, summary=f"One of {segment}",
              response="Entity", kind=kind),
        Route("PUT", one, op=f"put_{kind}", role=write, tag=tag,
              summary=f"Create or replace one of {segment}",
              body="Entity", response="Entity", kind=kind),
        Route("DELETE", one, op=f"delete_{kind}", role=write, tag=tag,
              summary=f"Delete one of {segment}",
              response=None, status=204, kind=kind),
    )
# fmt: on


ROUTES: tuple[Route, ...] = _CORE + tuple(
    row
    for segment, (kind, role) in ENTITY_KINDS.items()
    for row in _entity_routes(segment, kind, role)
)
