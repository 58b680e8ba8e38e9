"""The web tests' site: site.toml of a small simulated site and the policy it starts with.

One Waveshare relay board at address 1 on a simulated RS485 bus, three doors on its first
three relays (no contacts or exit buttons wired), a light on relay 8. The policy: one
building, two apartments, a resident (PIN 4711, doors gate and lobby) and staff (card
00209CBF, doors gate, lobby and plant).
"""

from __future__ import annotations

import copy
from typing import Any

SITE_ID = "demo"
BUS = "rs485-1"
BOARD = "relays-a"
BOARD_ADDRESS = 1
READERS = {"gate-in": "gate", "lobby-in": "lobby", "plant-in": "plant"}

# Short pulses, so a grant's relock happens within a test.
SITE_TOML = f"""
[site]
id = "{SITE_ID}"
name = "Demo"
timezone = "Europe/Berlin"
data_dir = "data"
simulation = true

[web]
listen = "127.0.0.1:8080"
tls = false

[[bus]]
id = "{BUS}"
port = "sim"
baudrate = 115200

[[board]]
id = "{BOARD}"
type = "waveshare-rtu-relay-8"
bus = "{BUS}"
address = {BOARD_ADDRESS}

[[door]]
id = "gate"
name = "Main gate"
relay = "{BOARD}:1"
pulse_ms = 200
methods = ["pin", "rf_card", "remote"]
fail_mode = "secure"

[[door]]
id = "lobby"
name = "Lobby"
relay = "{BOARD}:2"
pulse_ms = 200
methods = ["pin", "rf_card", "remote"]
fail_mode = "secure"

[[door]]
id = "plant"
name = "Plant room"
relay = "{BOARD}:3"
pulse_ms = 200
methods = ["pin", "rf_card", "remote"]
fail_mode = "secure"

[[reader]]
id = "gate-in"
door = "gate"
type = "sim"
direction = "in"

[[reader]]
id = "lobby-in"
door = "lobby"
type = "sim"
direction = "in"

[[reader]]
id = "plant-in"
door = "plant"
type = "sim"
direction = "in"

[[output]]
id = "light-1"
relay = "{BOARD}:8"
function = "light"
"""

POLICY: dict[str, Any] = {
    "format": "doorkeep.policy/1",
    "settings": {
        "pin_mode": "pin",
        "temp_key_max_days": 30,
        "lockout": {"failures": 5, "window_s": 60, "lock_s": 300},
        "emergency": {"doors": ["gate", "lobby"], "auto_unlock_on_alarm": True},
    },
    "buildings": [{"id": "B1", "name": "Building 1"}],
    "apartments": [
        {"id": "B1-203", "building": "B1", "number": "2#203", "floor": "7", "name": "Apt 203"},
        {"id": "B1-101", "building": "B1", "number": "1#101", "floor": "1", "name": "Apt 101"},
    ],
    "people": [
        {
            "id": "p-judy",
            "kind": "resident",
            "apartment": "B1-203",
            "role": "master",
            "name": "Judy Z",
            "groups": ["g-b1"],
        },
        {"id": "p-cathy", "kind": "staff", "name": "Cathy", "groups": ["g-staff"]},
    ],
    "credentials": [
        {"id": "c1", "person": "p-judy", "kind": "pin", "value": "4711"},
        {"id": "c2", "person": "p-cathy", "kind": "rf_card", "value": "00209CBF"},
    ],
    "groups": [
        {
            "id": "g-b1",
            "name": "Residents B1",
            "building_default": "B1",
            "schedule": {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"},
            "doors": ["gate", "lobby"],
        },
        {
            "id": "g-staff",
            "name": "Staff",
            "schedule": {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"},
            "doors": ["gate", "lobby", "plant"],
        },
    ],
    "temp_keys": [],
    "reservations": [],
    "holidays": [],
    "hold_open": [],
}


def sample_policy() -> dict[str, Any]:
    """A fresh deep copy of the policy (plaintext credential values)."""
    return copy.deepcopy(POLICY)
