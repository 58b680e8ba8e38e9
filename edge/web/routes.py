"""The REST API as data: every route, who may call it, what it takes and returns.

`ROUTES` is the single source for three things: the aiohttp router (edge/web/app.py),
the role check of the auth middleware, and the OpenAPI 3.1 document
(edge/web/openapi.py). Each row's ``op`` names its handler, registered with
``@HANDLERS`` in edge/web/handlers/; the app refuses to start when a row has no handler or
a handler no row. The security tests walk this table to prove every endpoint refuses no
auth and the wrong role.
"""

from __future__ import annotations

from enum import StrEnum

from doorkeep import listing
from doorkeep.policydoc import CREDENTIAL_KINDS
from doorkeep.web import Param
from doorkeep.web import Route as _Route
from edge.auth import Role
from edge.core.decide import Reason
from edge.store import cursor_pattern
from edge.web.derived import entity_schema
from edge.web.schemas import HARDWARE_TABLES, SCHEMAS

__all__ = [
    "API_PREFIX",
    "ENTITY_KINDS",
    "HARDWARE_TABLES",
    "ROUTES",
    "SCHEMAS",
    "DeviceAuth",
    "Param",
    "Route",
]

API_PREFIX = "/api/v1"


class DeviceAuth(StrEnum):
    """Routes a device calls with a token bound to it, instead of a user's role.

    ``READER``: the token ``doorkeep reader token ID`` made for the reader in the path
    (edge/readers/tokens.py); every other credential, an admin's API token included, is
    refused (edge/web/middleware.py).
    """

    READER = "reader-token"


#: A row of the edge's table: the role needed is an `edge.auth.Role` (None: public), or a
#: `DeviceAuth` for the endpoints a device calls with its own token.
Route = _Route[Role | DeviceAuth]

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
# The door-log filters (docs/web-ui.md, "Logs"): every one is an index in the store.
_EVENT_FILTERS = (
    Param("type", "string", "event type", ("access", "door", "alarm", "emergency", "system")),
    _SINCE,
    _UNTIL,
    Param("building", "string", "building id: events of its apartments or at its doors"),
    Param("apartment", "string", "apartment id"),
    Param("door", "string", "door id"),
    Param("person", "string", "person id"),
    Param("initiated_by", "string",
          "who: a person id (their presentations) or an operator as the audit log names "
          "them (admin:alice, token:ci, cli, mqtt, input:<id>) for remote, emergency and "
          "test actions"),
    Param("credential_kind", "string", "how: the credential kind, or remote for an operator",
          (*CREDENTIAL_KINDS, "remote")),
    Param("temp_key", "string", "temp key id (a visitor's door log)"),
    Param("credential", "string", "credential id"),
    Param("action", "string", "what happened: presentation, remote_unlock, opened, ..."),
    Param("result", "string", "outcome", ("success", "failed", "offline")),
    Param("reason", "string", "why a presentation was refused", tuple(Reason)),
)  # fmt: skip


def _paging(kind: str) -> tuple[Param, ...]:
    cursor = "the cursor of the previous page (empty: the first page)"
    return (
        Param("limit", "integer", "page size, 1-1000 (default 100)"),
        Param("cursor", "string", cursor, pattern=cursor_pattern(kind)),
    )


_AUDIT_FILTERS = (
    _SINCE,
    _UNTIL,
    Param("actor", "string", "who made the change"),
    Param("action", "string", "what was done (door.unlock, people.update, ...)"),
)
_ALARM_FILTERS = (
    Param("open", "boolean", "only unresolved alarms"),
    Param("kind", "string", "alarm kind (forced_open, board_offline, emergency, ...)"),
    _SINCE,
    _UNTIL,
)
_FORMAT = Param("format", "string", "file format (default csv)", ("csv", "xlsx"))

_IMPORT_QUERY = (
    Param("dry_run", "boolean", "check every row, change nothing"),
    Param(
        "job",
        "string",
        "a job id the client picks (8-64 of A-Za-z0-9_-) for GET /import/jobs/{id}",
        pattern="^[A-Za-z0-9_-]{8,64}$",
    ),
)

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
          summary="Door and alarm events, newest first, with names",
          response="EventPage", query=_EVENT_FILTERS + _paging("events")),
    Route("GET", "/events/export", op="export_events", role=VIEWER, tag="logs",
          summary="Events as CSV or XLSX (the CLI's exporter)",
          response=None, media="application/octet-stream", query=(_FORMAT, *_EVENT_FILTERS)),
    Route("GET", "/events/verify", op="verify_events", role=VIEWER, tag="logs",
          summary="Recompute the event log's hash chain", response="ChainReport"),
    Route("GET", "/audit", op="list_audit", role=VIEWER, tag="logs", summary="Operation log",
          response="AuditPage", query=_AUDIT_FILTERS + _paging("audit")),
    Route("GET", "/audit/export", op="export_audit", role=VIEWER, tag="logs",
          summary="The operation log as CSV or XLSX",
          response=None, media="application/octet-stream", query=(_FORMAT, *_AUDIT_FILTERS)),
    Route("GET", "/alarms", op="list_alarms", role=VIEWER, tag="logs", summary="Alarm records",
          response="AlarmPage", query=_ALARM_FILTERS + _paging("alarms")),
    Route("GET", "/alarms/export", op="export_alarms", role=VIEWER, tag="logs",
          summary="Alarm records as CSV or XLSX",
          response=None, media="application/octet-stream", query=(_FORMAT, *_ALARM_FILTERS)),
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
    Route("POST", "/batch/apartments", op="batch_apartments", role=ADMIN, tag="policy",
          summary="Set the same fields on several apartments (one policy version)",
          body="ApartmentBatch", response="ApartmentBatchResult"),
    Route("GET", "/locks/{family}/report", op="lock_report", role=VIEWER, tag="policy",
          summary="PINs and RF cards a third-party lock family cannot take, and why",
          response="LockReport"),
    # import / export in the reference's templates (edge/web/handlers/imports.py)
    Route("POST", "/import/{kind}", op="import_file", role=ADMIN, tag="import",
          summary="Import a residents, cards or staff file (.xlsx/.csv as the body)",
          response="Object", query=_IMPORT_QUERY),
    Route("GET", "/import/jobs/{id}", op="import_job", role=ADMIN, tag="import",
          summary="Progress of an import started with ?job=", response="Object"),
    Route("GET", "/export/{kind}", op="export_file", role=ADMIN, tag="import",
          summary="Residents, apartments, cards or staff as a file (credentials masked)",
          response=None, media="application/octet-stream", query=(_FORMAT,)),
    Route("GET", "/templates/{kind}", op="get_template", role=VIEWER, tag="import",
          summary="The empty residents, cards or staff template",
          response=None, media="application/octet-stream", query=(_FORMAT,)),
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
    Route("GET", "/readers", op="list_readers", role=VIEWER, tag="hardware",
          summary="Every reader with its link: online, Secure Channel, last seen",
          response="Readers"),
    Route("POST", "/readers/{id}/input", op="reader_input", role=DeviceAuth.READER,
          tag="hardware", summary="A read from an http reader (its own reader token only)",
          body="ReaderInput", response="PresentationResult"),
    Route("GET", "/parking", op="list_parking", role=VIEWER, tag="hardware",
          summary="Car parks: capacity, occupancy, the vehicles inside", response="ParkingLots"),
    # notifications: edge/notify, docs/notifications.md
    Route("POST", "/notify/test", op="notify_test", role=INSTALLER, tag="system",
          summary="Send a test notification to every configured channel",
          response="NotifyTestResult", body_required=False),
    Route("POST", "/temp-keys/{id}/send", op="send_temp_key", role=ADMIN, tag="entities",
          summary="Issue a new code for a temp key and email it to the visitor",
          body="TempKeySend", response="TempKeySent"),
    Route("POST", "/readers/{id}/capture", op="capture_card", role=INSTALLER, tag="hardware",
          summary="Wait for the next unknown card at a reader (enrolment)",
          body="CaptureRequest", response="Object", body_required=False),
    Route("POST", "/readers/{id}/provision", op="provision_reader", role=INSTALLER, tag="hardware",
          summary="Open an OSDP reader's provisioning window (it gets its Secure Channel key)",
          body="ProvisionRequest", response="ProvisionWindow", status=202, body_required=False),
)


def _list_query(kind: str) -> tuple[Param, ...]:
    """The list contract (doorkeep/listing.py): q, the page, the kind's own filters."""
    return (
        Param("q", "string", "case-insensitive substring of the id and name-like fields"),
        Param("limit", "integer", "page size, 1-1000 (default: every match)"),
        Param("offset", "integer", "matches to skip (default 0)", minimum=0,
              maximum=listing.MAX_OFFSET),
        *(Param(f.name, "string", f.description, f.enum) for f in listing.FILTERS[kind]),
    )


def _entity_routes(segment: str, kind: str, write: Role) -> tuple[Route, ...]:
    one, tag = f"/{segment}/{{id}}", "entities"
    return (
        Route("GET", f"/{segment}", op=f"list_{kind}", role=VIEWER, tag=tag,
              summary=f"List {segment} (search and pages: docs/architecture.md)",
              response="Entities", kind=kind, query=_list_query(kind)),
        Route("POST", f"/{segment}", op=f"create_{kind}", role=write, tag=tag,
              summary=f"Create one of {segment}",
              body=entity_schema(kind), response="Entity", status=201, kind=kind),
        Route("GET", one, op=f"get_{kind}", role=VIEWER, tag=tag, summary=f"One of {segment}",
              response="Entity", kind=kind),
        Route("PUT", one, op=f"put_{kind}", role=write, tag=tag,
              summary=f"Create or replace one of {segment} (a body id must equal the URL's)",
              body=entity_schema(kind, replace=True), response="Entity", kind=kind),
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
