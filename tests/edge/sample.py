"""A sample site and policy shared by the decision tests (POLICY.md's example, grown)."""

from __future__ import annotations

import copy
from typing import Any
from zoneinfo import ZoneInfo

from doorkeep import policydoc
from edge.core.model import DoorSpec, PolicySnapshot, ReaderSpec, build_snapshot

SECRET = b"s" * 32
TZ = ZoneInfo("Europe/Berlin")
ALL_METHODS = frozenset({"pin", "rf_card", "uhf_card", "license_plate", "qr", "nfc", "remote"})

DOORS = (
    DoorSpec("gate", ALL_METHODS, building="B1"),
    DoorSpec("lobby", ALL_METHODS, building="B1"),
    DoorSpec("parcel", frozenset({"pin", "qr"})),
    DoorSpec("plant", frozenset({"rf_card"})),
    DoorSpec("gym", ALL_METHODS, kind="amenity"),
    DoorSpec("garage", frozenset({"uhf_card", "license_plate"}), anti_passback=True),
    DoorSpec("lift-b1", ALL_METHODS, kind="lift", building="B1", floors=("G1", "1", "7", "12")),
)
READERS = (
    ReaderSpec("gate-in", "gate"),
    ReaderSpec("gate-out", "gate", "out"),
    ReaderSpec("lobby-in", "lobby"),
    ReaderSpec("parcel-in", "parcel"),
    ReaderSpec("plant-in", "plant"),
    ReaderSpec("gym-in", "gym"),
    ReaderSpec("garage-in", "garage", "in"),
    ReaderSpec("garage-out", "garage", "out"),
    ReaderSpec("lift-b1", "lift-b1"),
)
DOOR_IDS = frozenset(d.id for d in DOORS)

DOCUMENT: dict[str, Any] = {
    "format": "doorkeep.policy/1",
    "settings": {
        "pin_mode": "pin",
        "temp_key_max_days": 30,
        "lockout": {"failures": 5, "window_s": 60, "lock_s": 300},
        "emergency": {"doors": ["gate", "lobby"], "auto_unlock_on_alarm": True},
    },
    "buildings": [{"id": "B1", "name": "Building 1"}],
    "apartments": [
        {
            "id": "B1-203",
            "building": "B1",
            "number": "2#203",
            "floor": "7",
            "name": "Apartment 1",
            "valid_from": None,
            "valid_until": "2027-01-31T00:00:00",
            "auto_delete": False,
        },
        {"id": "B1-101", "building": "B1", "number": "1#101", "floor": "1"},
    ],
    "people": [
        {
            "id": "p-judy",
            "kind": "resident",
            "apartment": "B1-203",
            "role": "master",
            "name": "Judy Z",
            "groups": ["g-b1"],
            "floors": {"B1": ["7", "G1"]},
            "valid_from": None,
            "valid_until": None,
            "active": True,
        },
        {
            "id": "p-ken",
            "kind": "resident",
            "apartment": "B1-101",
            "role": "master",
            "name": "Ken",
            "groups": ["g-b1"],
        },
        {"id": "p-cathy", "kind": "staff", "name": "Cathy", "groups": ["g-staff"]},
        {"id": "p-dhl", "kind": "delivery", "name": "Parcel courier", "groups": ["g-parcel"]},
    ],
    "credentials": [
        {"id": "c1", "person": "p-judy", "kind": "pin", "value": "1234"},
        {"id": "c2", "person": "p-judy", "kind": "rf_card", "value": "00209CBF"},
        {"id": "c3", "person": "p-judy", "kind": "license_plate", "value": "7ABC123"},
        {"id": "c4", "person": "p-cathy", "kind": "rf_card", "value": "13579"},
        {"id": "c5", "person": "p-ken", "kind": "pin", "value": "5678"},
        {"id": "c6", "person": "p-ken", "kind": "license_plate", "value": "B-KN 42"},
        {"id": "c7", "person": "p-dhl", "kind": "pin", "value": "4321"},
        {"id": "c8", "person": "p-cathy", "kind": "pin", "value": "2468"},
    ],
    "groups": [
        {
            "id": "g-b1",
            "name": "Resident-Building Building 1",
            "building_default": "B1",
            "schedule": {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"},
            "doors": ["gate", "lobby", "garage"],
        },
        {
            "id": "g-staff",
            "name": "Staff weekdays",
            "schedule": {
                "repeat": "weekly",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "07:00",
                "end": "19:00",
                "except_holidays": True,
            },
            "doors": ["gate", "lobby", "plant", "gym"],
        },
        {
            "id": "g-parcel",
            "name": "Parcel room",
            "schedule": {"repeat": "daily", "start": "08:00", "end": "20:00"},
            "doors": ["parcel"],
        },
    ],
    "temp_keys": [
        {
            "id": "t1",
            "name": "Visitor",
            "apartment": "B1-203",
            "kind": "pin",
            "code": "91487640",
            "schedule": {
                "repeat": "never",
                "start": "2026-11-17T13:54:00",
                "end": "2026-11-18T13:54:00",
            },
            "uses_per_door": 1,
            "doors": ["gate", "lobby", "parcel"],
        },
        {
            "id": "t2",
            "name": "Cleaner",
            "kind": "qr",
            "code": "QR-CLEAN-77",
            "schedule": {"repeat": "weekly", "days": ["wed"], "start": "09:00", "end": "12:00"},
            "uses_per_door": None,
            "doors": ["lobby"],
        },
    ],
    "reservations": [
        {
            "id": "r1",
            "door": "gym",
            "person": "p-judy",
            "start": "2026-11-20T18:00:00",
            "end": "2026-11-20T19:00:00",
        }
    ],
    "holidays": [{"date": "2026-12-25", "name": "Christmas Day"}],
    "hold_open": [
        {
            "door": "lobby",
            "schedule": {"repeat": "weekly", "days": ["mon"], "start": "08:00", "end": "09:00"},
        }
    ],
}


def document() -> dict[str, Any]:
    """A fresh deep copy of the sample policy document (plaintext credentials)."""
    return copy.deepcopy(DOCUMENT)


def snapshot(doc: dict[str, Any] | None = None, **settings: Any) -> PolicySnapshot:
    """The indexed snapshot of ``doc`` (default: the sample), with settings overridden."""
    doc = document() if doc is None else copy.deepcopy(doc)
    doc["settings"] = {**doc.get("settings", {}), **settings}
    policydoc.check_document(doc, doors=DOOR_IDS)
    hashed = policydoc.hash_document(doc, SECRET)
    return build_snapshot(hashed, tz=TZ, secret=SECRET, doors=DOORS, readers=READERS)
