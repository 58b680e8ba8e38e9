"""Fixtures for tests that run a whole site over the pty-simulated RS485 bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edge.service import Site
from tests.edge.sites import open_site, until

__all__ = ["POLICY", "ROOT", "SITE_TOML", "Feed", "is_event", "until"]

ROOT = Path(__file__).resolve().parents[2]

# One bus with two boards, the doors on the board at address 3 so that "the right
# board address" is something a test can get wrong.
SITE_TOML = """
[site]
id = "test"
name = "Test site"
timezone = "Europe/Berlin"
data_dir = "data"
simulation = true

[web]
listen = "127.0.0.1:18080"

[[bus]]
id = "rs485-1"
port = "sim"
baudrate = 115200
timeout_ms = 60
retries = 1

[[board]]
id = "spare"
type = "waveshare-rtu-relay-8"
bus = "rs485-1"
address = 1

[[board]]
id = "doors"
type = "waveshare-rtu-relay-8d"
bus = "rs485-1"
address = 3

[[door]]
id = "gate"
name = "Main gate"
relay = "doors:2"
pulse_ms = 700
contact = "doors:in1"
exit_button = "doors:in2"
held_open_s = 2
prealarm_s = 1
methods = ["pin", "rf_card", "qr", "remote"]
building = "B1"

[[door]]
id = "lobby"
name = "Lobby"
relay = "doors:3"
pulse_ms = 700
methods = ["pin", "rf_card"]
building = "B1"

[[reader]]
id = "gate-in"
door = "gate"
type = "sim"

[[reader]]
id = "lobby-in"
door = "lobby"
type = "sim"
"""

POLICY: dict[str, Any] = {
    "format": "doorkeep.policy/1",
    "settings": {
        "emergency": {"doors": ["gate", "lobby"], "auto_unlock_on_alarm": True},
        "lockout": {"failures": 3, "window_s": 60, "lock_s": 300},
    },
    "buildings": [{"id": "B1"}],
    "apartments": [{"id": "A1", "building": "B1", "number": "101"}],
    "people": [
        {"id": "p-ann", "kind": "resident", "apartment": "A1", "groups": ["g-all"]},
        {"id": "p-sam", "kind": "staff", "groups": ["g-all"]},
    ],
    "credentials": [
        {"id": "c-ann", "person": "p-ann", "kind": "pin", "value": "2580"},
        {"id": "c-sam", "person": "p-sam", "kind": "rf_card", "value": "00C0FFEE"},
    ],
    "groups": [
        {
            "id": "g-all",
            "building_default": "B1",
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
            "doors": ["gate", "lobby"],
        }
    ],
    "temp_keys": [
        {
            "id": "t-guest",
            "kind": "pin",
            "code": "95551234",
            "uses_per_door": 1,
            "doors": ["gate", "lobby"],
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
        }
    ],
}


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "site.toml").write_text(SITE_TOML)
    return tmp_path


@pytest.fixture
async def site(site_dir: Path) -> AsyncIterator[Site]:
    async with open_site(site_dir, SITE_TOML, POLICY) as running:
        # the first input poll sets the baseline that later edges are measured from
        await until(lambda: "doors" in running.hw._last_inputs)
        yield running


class Feed:
    """The site's live feed, subscribed at once (so nothing after creation is missed)."""

    def __init__(self, site: Site) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        site.log._subscribers.add(self.queue)

    async def next(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """The first message from now on matching ``predicate``."""

        async def first() -> dict[str, Any]:
            while True:
                message = await self.queue.get()
                if predicate(message):
                    return message

        return await asyncio.wait_for(first(), timeout)


def is_event(action: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    def match(message: dict[str, Any]) -> bool:
        data = message["data"]
        return (
            message["topic"] == "event"
            and data.get("action") == action
            and all(data.get(k) == v for k, v in fields.items())
        )

    return match


@pytest.fixture
def feed(site: Site) -> Feed:
    return Feed(site)
