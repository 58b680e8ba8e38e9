"""Relay writes are verified: a board that does not confirm a write exactly never "unlocks".

The real Site drives a Modbus TCP board (``modbus-tcp-generic``) whose peer is an
independent pymodbus server behind a fault proxy (tests/rs485/modbus_peer.py); the relay
states asserted are the ones the pymodbus server holds, read with pymodbus' own client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.auth import AuthStore
from edge.service import Site
from edge.web.app import make_app
from tests.edge.conftest import POLICY
from tests.edge.sites import open_site
from tests.rs485.modbus_peer import ModbusPeer

RETRIES = 2
TIMEOUT_MS = 150
GATE_CHANNEL = 5  # relay 5 = coil 4 on the wire


def site_toml(port: int) -> str:
    return f"""
[site]
id = "relays"
name = "Relay faults"
timezone = "Europe/Berlin"
data_dir = "data"
simulation = true

[web]
listen = "127.0.0.1:18081"

[[board]]
id = "eth"
type = "modbus-tcp-generic"
host = "127.0.0.1"
port = {port}
options = {{ relays = 8, timeout_ms = {TIMEOUT_MS}, retries = {RETRIES} }}

[[door]]
id = "gate"
name = "Main gate"
relay = "eth:{GATE_CHANNEL}"
pulse_ms = 400
methods = ["pin", "rf_card", "remote"]
building = "B1"

[[door]]
id = "lobby"
name = "Lobby"
relay = "eth:3"
pulse_ms = 400
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


@pytest.fixture
async def peer() -> AsyncIterator[ModbusPeer]:
    async with ModbusPeer(unit=1) as running:
        yield running


@pytest.fixture
async def tcp_site(tmp_path: Path, peer: ModbusPeer) -> AsyncIterator[Site]:
    async with open_site(tmp_path, site_toml(peer.port), POLICY) as site:
        yield site


@pytest.fixture
async def api(tcp_site: Site, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    auth = AuthStore.open(tmp_path / "data" / "auth.db")
    token = auth.create_token("installer", "test")
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(tcp_site, auth, tls=False)))
    await client.start_server()
    client.session.headers["Authorization"] = f"Bearer {token}"
    yield client
    await client.close()
    auth.close()


async def present(api: TestClient[Any, Any], reader: str = "gate-in") -> dict[str, Any]:
    response = await api.post(
        "/api/v1/presentations", json={"reader": reader, "kind": "pin", "value": "2580"}
    )
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def test_a_board_that_echoes_another_coil_gives_offline_not_unlocked(
    tcp_site: Site, api: TestClient[Any, Any], peer: ModbusPeer
):
    peer.proxy.fault = "wrong_echo"  # answers `01 05 02 04 FF 00` to a write of relay 5
    body = await present(api)
    assert body["result"] == "offline" and body["granted"] is False, body
    assert body["reason"] == "offline"
    assert await peer.coils(GATE_CHANNEL - 1) == [False]  # relay 5 never switched
    writes = [pdu for pdu in peer.proxy.requests if pdu[0] == 0x05]
    assert len(writes) == RETRIES + 1  # tried as often as the bus' retries allow
    events, _ = await tcp_site.events(door="gate")
    assert [e["action"] for e in events if e["type"] == "access"] == ["presentation"]
    assert events[-1]["result"] == "offline"
    assert not [e for e in events if e["action"] == "unlocked"]
    alarms = [a for a in await tcp_site.alarms() if a["kind"] == "relay_failed"]
    assert len(alarms) == 1
    assert alarms[0]["detail"]["board"] == "eth" and alarms[0]["detail"]["channel"] == 5
    assert alarms[0]["source"] == "eth:5"


async def test_the_same_board_confirming_its_write_unlocks(
    tcp_site: Site, api: TestClient[Any, Any], peer: ModbusPeer
):
    body = await present(api)
    assert body["result"] == "success" and body["granted"] is True, body
    assert await peer.coils(GATE_CHANNEL - 1) == [True]
    events, _ = await tcp_site.events(door="gate")
    assert [e["action"] for e in sorted(events, key=lambda e: e["seq"])][:2] == [
        "presentation",
        "unlocked",
    ]
    assert not [a for a in await tcp_site.alarms() if a["kind"] == "relay_failed"]
