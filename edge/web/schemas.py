"""The REST API's JSON Schemas (OpenAPI 3.1 = JSON Schema 2020-12), by component name.

Request bodies are validated against these (edge/web/inputs.py) and the OpenAPI document
serves them under ``components.schemas``; the policy's own schema is lifted in from
``doorkeep/policy.schema.json``.
"""

from __future__ import annotations

import copy
from typing import Any

from doorkeep import policydoc
from doorkeep.web.openapi import ERROR_SCHEMA
from doorkeep.web.openapi import ref as _ref
from edge.config.notify import EMAIL_RE
from edge.web.derived import policy_schemas, toml_table

# The site.toml tables the hardware page edits; [site], [web], [mqtt], [cloud] stay as they are.
HARDWARE_TABLES = ("bus", "board", "door", "reader", "output", "input")

# -- JSON Schemas (OpenAPI 3.1 = JSON Schema 2020-12) -----------------------------------------

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_ID = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._#:-]+$"}
_OBJ: dict[str, Any] = {"type": "object"}


_BATCH_FIELDS = ("valid_from", "valid_until", "auto_delete", "methods", "max_members")


def _apartment_field(name: str) -> dict[str, Any]:
    """The policy schema of one apartment field, for the batch body."""
    field: dict[str, Any] = policydoc.schema()["properties"]["apartments"]["items"]
    return copy.deepcopy(field["properties"][name])


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
    "Error": ERROR_SCHEMA,
    "Health": {
        "type": "object",
        "required": ["status", "site", "version", "policy_version", "clock_ok"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "site": _STR,
            "version": _STR,
            "policy_version": {"type": ["integer", "null"]},
            "clock_ok": {"type": "boolean"},
            "components": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "ok", "reason"],
                    "properties": {"name": _STR, "ok": {"type": "boolean"}, "reason": _STR},
                },
            },
            # the parts that fail, e.g. ["storage"] (docs/storage.md); empty when ok
            "degraded": {"type": "array", "items": _STR},
            "storage": {
                "type": "object",
                "required": ["ok", "held", "limit"],
                "properties": {
                    "ok": {"type": "boolean"},
                    "held": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 0},
                },
            },
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
    "Doors": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": _ref("Door")},
            "emergency": _ref("EmergencyState"),
        },
    },
    "EmergencyState": {
        "type": "object",
        "required": ["lockdown", "unlocked", "inputs"],
        "properties": {
            "lockdown": {"type": "boolean"},
            "unlocked": {"type": "array", "items": _STR},
            "group": {"type": "array", "items": _STR},
            "inputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "function", "active", "latched"],
                    "properties": {
                        "id": _STR,
                        "function": {"enum": ["emergency", "lockdown", "tamper", "alarm"]},
                        "active": {"type": ["boolean", "null"]},
                        "latched": {"type": "boolean"},
                    },
                },
            },
        },
    },
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
            # as strict as the server: the kinds policydoc knows, nothing else (schemathesis)
            "kind": {"$ref": "#/components/schemas/CredentialKind"},
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
        "required": [
            "seq",
            "at",
            "type",
            "result",
            "person_name",
            "door_name",
            "apartment_name",
            "initiated_by",
            "initiated_by_name",
        ],
        "properties": {
            "seq": {"type": "integer"},
            "at": _STR,  # ISO 8601 with the offset of the site's time zone
            "type": _STR,
            "action": _NSTR,
            "result": _STR,
            "reason": _NSTR,
            "door": _NSTR,
            "reader": _NSTR,
            "person": _NSTR,
            "apartment": _NSTR,
            "credential_kind": _NSTR,
            # names from the current policy and site.toml (null: gone, or never named)
            "person_name": _NSTR,
            "door_name": _NSTR,
            "apartment_name": _NSTR,
            "reader_name": _NSTR,
            "actor": _NSTR,
            "temp_key": _NSTR,
            "temp_key_name": _NSTR,
            "initiated_by": _NSTR,
            "initiated_by_name": _NSTR,
        },
    },
    "EventPage": _page("Event"),
    "AuditEntry": {
        "type": "object",
        "required": ["id", "at", "actor", "action", "target", "target_name"],
        "properties": {
            "id": {"type": "integer"},
            "at": _STR,
            "actor": _STR,
            "action": _STR,
            "target": _STR,
            "target_name": _NSTR,
            "person_name": _NSTR,
            "door_name": _NSTR,
            "apartment_name": _NSTR,
        },
    },
    "AuditPage": _page("AuditEntry"),
    "Alarm": {
        "type": "object",
        "required": ["id", "kind", "source", "at", "resolved"],
        "properties": {
            "id": {"type": ["integer", "null"]},
            "kind": _STR,
            "source": _STR,
            "at": _STR,
            "resolved": {"type": "boolean"},
            "resolved_at": _NSTR,
            "resolved_by": _NSTR,
            "source_name": _NSTR,
            "door_name": _NSTR,
            "person_name": _NSTR,
            "apartment_name": _NSTR,
        },
    },
    "AlarmPage": _page("Alarm"),
    "ChainReport": {
        "type": "object",
        "required": ["ok", "checked", "first_bad_seq", "anchor_seq", "redacted"],
        "properties": {
            "ok": {"type": "boolean"},
            "checked": {"type": "integer"},
            "first_bad_seq": {"type": ["integer", "null"]},
            "anchor_seq": {"type": "integer"},
            "redacted": {"type": "integer"},
        },
    },
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
    "Entity": {"type": "object", "required": ["id"], "properties": {"id": _ref("Policy_id")}},
    # POST /temp-keys/{id}/send; a temp key's POST /temp-keys body may carry send_to too
    "TempKeySend": {
        "type": "object",
        "additionalProperties": False,
        "required": ["to"],
        "properties": {
            "to": {"type": "string", "maxLength": 254, "pattern": EMAIL_RE.pattern},
            "code": {"type": "string", "minLength": 1, "maxLength": 256},
        },
    },
    "TempKeySent": {
        "type": "object",
        "required": ["temp_key", "sent_to"],
        "properties": {"temp_key": _ref("Entity"), "sent_to": _STR},
    },
    "NotifyTestResult": {
        "type": "object",
        "properties": {
            "email": _OBJ,
            "webhook": _OBJ,
            "email_to": {"type": "array", "items": _STR},
        },
    },
    "Entities": {
        "type": "object",
        "required": ["items", "total"],
        "properties": {
            "items": {"type": "array", "items": _ref("Entity")},
            "total": {"type": "integer", "minimum": 0, "description": "matches before paging"},
        },
    },
    "Readers": _items("ReaderStatus"),
    "ReaderStatus": {
        "type": "object",
        "required": ["id", "type", "door", "online", "secure", "last_seen", "detail"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "door": {"type": "string"},
            "online": {"type": ["boolean", "null"]},
            "secure": {"type": ["boolean", "null"]},
            "last_seen": {"type": ["string", "null"], "format": "date-time"},
            "detail": _OBJ,
        },
    },
    "Hardware": {
        "type": "object",
        "required": ["buses", "boards", "doors", "readers", "outputs"],
        "properties": {
            **{
                k: {"type": "array", "items": _OBJ}
                for k in ("buses", "boards", "doors", "readers", "outputs", "inputs")
            },
            "config": {"$ref": "#/components/schemas/HardwareConfig"},
        },
    },
    "HardwareConfig": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            k: {"type": "array", "items": _ref(f"Toml_{k}"), "maxItems": 1024}
            for k in HARDWARE_TABLES
        },
    },
    **{f"Toml_{k}": toml_table(k) for k in HARDWARE_TABLES},
    # What PUT /hardware checks before the config validator: the shape only. The key rules
    # above are the validator's own (edge/config/keys.py), which answers a 422 naming the
    # table and key, as `doorkeep check` does, rather than a schema path.
    "HardwareConfigShape": {
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
    # The UI builds its credential-kind pickers from this (policydoc is the one list).
    "CredentialKind": {"type": "string", "enum": list(policydoc.CREDENTIAL_KINDS)},
    # what an http reader posts (POST /readers/{id}/input): no reader (the path), no "at"
    "ReaderInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "value"],
        "properties": {
            "kind": {"$ref": "#/components/schemas/CredentialKind"},
            "value": {"type": "string", "minLength": 1, "maxLength": 256},
        },
    },
    "ParkingLots": _items("ParkingLot"),
    "ParkingLot": {
        "type": "object",
        "required": ["id", "name", "capacity", "occupied", "when_full", "vehicles"],
        "properties": {
            "id": _STR,
            "name": _STR,
            "capacity": {"type": "integer", "minimum": 1},
            "occupied": {"type": "integer", "minimum": 0},
            "when_full": {"enum": ["refuse", "allow_and_alarm"]},
            "vehicles": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["person", "since"],
                    "properties": {
                        "person": _NSTR,
                        "credential": _NSTR,
                        "temp_key": _NSTR,
                        "since": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
    },
    "ProvisionRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"seconds": {"type": "integer", "minimum": 10, "maximum": 300}},
    },
    "ProvisionWindow": {
        "type": "object",
        "required": ["reader", "window_s", "until"],
        "properties": {
            "reader": _STR,
            "window_s": {"type": "number"},
            "until": {"type": "string", "format": "date-time"},
        },
    },
    "CaptureRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"timeout_s": {"type": "number", "minimum": 0.1, "maximum": 120}},
    },
    # POST /batch/apartments: the fields of an apartment a batch edit may set
    "ApartmentBatch": {
        "type": "object",
        "additionalProperties": False,
        "required": ["ids", "set"],
        "properties": {
            "ids": {"type": "array", "items": _ID, "minItems": 1, "maxItems": 5000},
            "set": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {k: _apartment_field(k) for k in _BATCH_FIELDS},
            },
        },
    },
    "ApartmentBatchResult": {
        "type": "object",
        "required": ["version", "updated"],
        "properties": {"version": {"type": "integer"}, "updated": {"type": "array", "items": _STR}},
    },
    "LockReport": {
        "type": "object",
        "required": ["family", "doors", "rules", "checked", "unsyncable"],
        "properties": {
            "family": _STR,
            "doors": {"type": "array", "items": _STR},
            "rules": {"type": "object", "additionalProperties": _STR},
            "checked": {"type": "integer"},
            "unsyncable": {"type": "array", "items": _OBJ},
        },
    },
    **policy_schemas(),
    "SyncStatus": {
        "type": "object",
        "required": ["enrolled"],
        "properties": {"enrolled": {"type": "boolean"}, "stale": {"type": ["boolean", "null"]}},
    },
}
