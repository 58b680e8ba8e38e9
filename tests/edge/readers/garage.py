"""A simulated site with a garage: an LPR camera at the entry, a UHF reader at the exit.

Both are ``type = "http"`` readers posting to ``/api/v1/readers/{id}/input`` with their own
reader tokens. The garage door is relay 4 of the Waveshare board on the simulated bus;
the car park ``garage`` counts the entry camera's grants in and the exit reader's out.
Judy's car is known by its plate (stored as ``AB 123 CD``), Cathy's by a UHF tag.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from drivers.waveshare import FLASH_ON_BASE, FLASH_UNIT_MS
from edge.auth import AuthStore
from edge.service import Site
from edge.web.app import make_app
from tests.edge.sites import open_site

GARAGE_RELAY = 4
PLATE = "AB 123 CD"
UHF = "E2003412"


def site_toml(*, capacity: int = 2, when_full: str = "refuse") -> str:
    return f"""
[site]
id = "garage-site"
timezone = "Europe/Berlin"
simulation = true

[[bus]]
id = "rs485-1"
port = "sim"
baudrate = 115200

[[board]]
id = "relays-a"
type = "waveshare-rtu-relay-8"
bus = "rs485-1"
address = 1

[[door]]
id = "gate"
name = "Main gate"
relay = "relays-a:1"
pulse_ms = 200
methods = ["pin", "rf_card"]

[[door]]
id = "garage"
name = "Garage"
relay = "relays-a:{GARAGE_RELAY}"
pulse_ms = 200
methods = ["uhf_card", "license_plate"]

[[reader]]
id = "gate-in"
door = "gate"
type = "sim"

[[reader]]
id = "garage-lpr"
door = "garage"
type = "http"
direction = "in"

[[reader]]
id = "garage-exit"
door = "garage"
type = "http"
direction = "out"

[[parking]]
id = "garage"
name = "Garage"
capacity = {capacity}
entry = ["garage-lpr"]
exit = ["garage-exit"]
when_full = "{when_full}"
"""


POLICY: dict[str, Any] = {
    "format": "doorkeep.policy/1",
    "buildings": [{"id": "B1", "name": "Building 1"}],
    "apartments": [{"id": "B1-101", "building": "B1", "number": "1#101"}],
    "people": [
        {"id": "p-judy", "kind": "resident", "apartment": "B1-101", "groups": ["g-garage"]},
        {"id": "p-cathy", "kind": "staff", "name": "Cathy", "groups": ["g-garage"]},
        {"id": "p-tom", "kind": "resident", "apartment": "B1-101", "groups": ["g-garage"]},
    ],
    "credentials": [
        {"id": "c-plate", "person": "p-judy", "kind": "license_plate", "value": PLATE},
        {"id": "c-uhf", "person": "p-cathy", "kind": "uhf_card", "value": UHF},
        {"id": "c-tom", "person": "p-tom", "kind": "license_plate", "value": "TOM 1"},
        {"id": "c-pin", "person": "p-judy", "kind": "pin", "value": "4711"},
    ],
    "groups": [
        {
            "id": "g-garage",
            "name": "Garage",
            "building_default": "B1",
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
            "doors": ["garage", "gate"],
        }
    ],
}


def policy() -> dict[str, Any]:
    return copy.deepcopy(POLICY)


@dataclass
class Garage:
    site: Site
    auth: AuthStore
    client: TestClient[web.Request, web.Application]
    tokens: dict[str, str]

    async def post(self, reader: str, body: Any, token: str | None = "own", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if token == "own":
            token = self.tokens[reader]
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        resp = await self.client.post(
            f"/api/v1/readers/{reader}/input",
            **({"json": body} if "data" not in kw else {}),
            headers=headers,
            **kw,
        )
        return resp, await resp.json()

    async def parking(self) -> dict[str, Any]:
        viewer = self.auth.create_token("viewer", f"v-{len(self.auth.list_tokens())}")
        resp = await self.client.get(
            "/api/v1/parking", headers={"Authorization": f"Bearer {viewer}"}
        )
        assert resp.status == 200
        lots = (await resp.json())["items"]
        return {lot["id"]: lot for lot in lots}["garage"]

    def pulses(self) -> list[int]:
        """Relay channels the simulated board was told to pulse (Waveshare flash-on)."""
        board = self.site.hw.sims["rs485-1"].board(1)
        channels = []
        for pdu in board.requests:
            address, units = struct.unpack(">HH", pdu[1:5]) if pdu[0] == 0x05 else (0, 0)
            if (
                FLASH_ON_BASE <= address < FLASH_ON_BASE + board.model.relays
                and units * FLASH_UNIT_MS
            ):
                channels.append(address - FLASH_ON_BASE + 1)
        return channels


@asynccontextmanager
async def garage(directory: Path, **toml: Any) -> AsyncIterator[Garage]:
    """The garage site, its auth store (data_dir/auth.db) and a test client of the app."""
    async with open_site(directory, site_toml(**toml), policy()) as site:
        auth = AuthStore.open(site.config.site.data_dir / "auth.db")
        tokens = {r: auth.readers.create(r) for r in ("garage-lpr", "garage-exit")}
        try:
            async with TestClient(TestServer(make_app(site, auth, tls=False))) as client:
                yield Garage(site, auth, client, tokens)
        finally:
            auth.close()
