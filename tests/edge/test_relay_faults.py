"""Relay writes are verified: a board that does not confirm a write exactly never "unlocks".

The real Site drives a Modbus TCP board (``modbus-tcp-generic``) whose peer is an
independent pymodbus server behind a fault proxy (tests/rs485/modbus_peer.py); the relay
states asserted are the ones the pymodbus server holds, read with pymodbus' own client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.auth import AuthStore
from edge.service import Site
from edge.web.app import make_app
from tests.edge.conftest import POLICY
from tests.edge.sites import open_site, until
from tests.reliability import Reliability
from tests.rs485.modbus_peer import FAULTS, ModbusPeer

RETRIES = 2
TIMEOUT_MS = 150
GATE_CHANNEL = 5  # relay 5 = coil 4 on the wire


def site_toml(port: int, *, timeout_ms: int = TIMEOUT_MS, retries: int = RETRIES) -> str:
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
options = {{ relays = 8, timeout_ms = {timeout_ms}, retries = {retries} }}

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
    on = bytes.fromhex("05 00 04 FF 00")  # relay 5 on
    assert peer.proxy.requests.count(on) == RETRIES + 1  # as often as the retries allow
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


async def test_a_relock_the_board_does_not_confirm_raises_relay_failed(
    tcp_site: Site, api: TestClient[Any, Any], peer: ModbusPeer
):
    assert (await present(api))["result"] == "success"
    peer.proxy.fault = "wrong_echo"  # the "off" at the end of the pulse is not confirmed
    await until(lambda: tcp_site.door("gate")["state"] == "locked", timeout=5)
    await until(lambda: bytes.fromhex("05 00 04 00 00") in peer.proxy.requests, timeout=5)

    async def alarm() -> list[dict[str, Any]]:
        return [a for a in await tcp_site.alarms() if a["kind"] == "relay_failed"]

    for _ in range(50):  # the relock's retries run in the door ticker, after the request
        if alarms := await alarm():
            break
        await asyncio.sleep(0.05)
    assert len(alarms) == 1 and alarms[0]["source"] == "eth:5", alarms
    assert await peer.coils(GATE_CHANNEL - 1) == [True]  # it really is still released


# --- the bus-fault rows of docs/reliability.md -------------------------------------------

FAULT_RETRIES = 1
FAULT_TIMEOUT_MS = 80
DESCRIBED = {
    "unplugged": "board unplugged (pymodbus server stopped)",
    "garble": "every answer garbled",
    "slow": "every answer after the timeout",
    "wrong_echo": "FC05 answered for another coil (wrong echo)",
    "wrong_unit": "answers from another unit id (wrong address)",
    "sim_offline": "simulated RS485 board silent",
    "sim_garble": "simulated RS485 board garbles every answer (bad CRC)",
}


async def _losses(site: Site, acknowledged: list[int]) -> int:
    """Events whose seq the site answered with but that are not in its log."""
    events, _ = await site.events(limit=1000)
    stored = {e["seq"] for e in events}
    return len([seq for seq in acknowledged if seq not in stored])


async def _run_fault_row(
    site: Site,
    reliability: Reliability,
    fault: str,
    *,
    reader: str,
    door: str,
    relay_off: object,
    start: object,
    clear: object,
) -> None:
    """N presentations under ``fault``, then one after it clears; asserts and records."""
    n = reliability.scaled(5)
    acknowledged = []
    await start()  # type: ignore[operator]
    for _ in range(n):
        result = await site.present(reader, "pin", "2580")
        acknowledged.append(result["event_id"])
        assert result["result"] == "offline" and result["granted"] is False, (fault, result)
        assert await relay_off(), fault  # type: ignore[operator]
    events, _ = await site.events(door=door, limit=1000)
    assert not [e for e in events if e["action"] == "unlocked"], fault
    access = [e for e in events if e["type"] == "access"]
    assert len(access) == n and {e["result"] for e in access} == {"offline"}
    failed = [a for a in await site.alarms() if a["kind"] == "relay_failed"]
    assert len(failed) == 1, (fault, failed)  # once per episode, not once per presentation
    offline_alarms = [a for a in await site.alarms() if a["kind"] == "board_offline"]
    assert len(offline_alarms) <= 1, fault

    await clear()  # type: ignore[operator]
    recovered = await site.present(reader, "pin", "2580")
    acknowledged.append(recovered["event_id"])
    assert recovered["result"] == "success" and recovered["granted"] is True, (fault, recovered)
    events, _ = await site.events(door=door, limit=1000)
    actions = [e["action"] for e in sorted(events, key=lambda e: e["seq"])]
    assert "unlocked" in actions and "relay_recovered" in actions, (fault, actions)
    assert len([a for a in await site.alarms() if a["kind"] == "relay_failed"]) == 1
    losses = await _losses(site, acknowledged)
    assert losses == 0
    reliability.row(
        test=f"bus fault: {DESCRIBED[fault]}",
        load=f"{n} presentations during the fault, 1 after",
        faults=DESCRIBED[fault],
        bad_inputs="-",
        losses=str(losses),
        offline=n,
        relay_failed_alarms=1,
        unlocked_during_fault=0,
    )


@pytest.mark.parametrize("fault", ["unplugged", *FAULTS])
async def test_bus_fault_on_an_independent_modbus_peer(
    tmp_path: Path, peer: ModbusPeer, reliability: Reliability, fault: str
):
    """Each fault: every presentation offline, relay 5 never left on, one relay_failed
    alarm, nothing logged as unlocked; the first presentation after it clears opens."""
    toml = site_toml(peer.port, timeout_ms=FAULT_TIMEOUT_MS, retries=FAULT_RETRIES)
    peer.proxy.slow_s = 3 * FAULT_TIMEOUT_MS / 1000

    async def start() -> None:
        if fault == "unplugged":
            await peer.unplug()
        else:
            peer.proxy.fault = fault  # type: ignore[assignment]

    async def clear() -> None:
        if fault == "unplugged":
            await peer.plug()
        peer.proxy.fault = None

    async def relay_off() -> bool:
        if fault == "unplugged":
            return True  # nothing there to switch
        return await peer.coils(GATE_CHANNEL - 1) == [False]

    async with open_site(tmp_path / "site", toml, POLICY) as site:
        await _run_fault_row(
            site,
            reliability,
            fault,
            reader="gate-in",
            door="gate",
            relay_off=relay_off,
            start=start,
            clear=clear,
        )
        assert await peer.coils(GATE_CHANNEL - 1) == [True]  # the recovered pulse is real


@pytest.mark.parametrize("fault", ["sim_offline", "sim_garble"])
async def test_bus_fault_on_the_simulated_rs485_bus(
    site: Site, reliability: Reliability, fault: str
):
    """The same on the pty-simulated RS485 bus (tests/edge/conftest.py's site)."""
    board = site.hw.sims["rs485-1"].board(3)  # the doors board; the gate is relay 2

    async def start() -> None:
        if fault == "sim_offline":
            board.offline = True
        else:
            board.garble_next(1_000_000)

    async def clear() -> None:
        board.clear_faults()
        await until(lambda: site.door("gate")["board_online"] is True)

    async def relay_off() -> bool:
        return board.coils[1] is False

    await _run_fault_row(
        site,
        reliability,
        fault,
        reader="gate-in",
        door="gate",
        relay_off=relay_off,
        start=start,
        clear=clear,
    )


LIFT_TOML = """
[[door]]
id = "lift"
name = "Lift B1"
relay = "eth:1"
pulse_ms = 400
kind = "lift"
methods = ["pin"]
building = "B1"

[[output]]
id = "lift-b1-7"
relay = "eth:7"
function = "floor"
floor = "7"
door = "lift"

[[reader]]
id = "lift-in"
door = "lift"
type = "sim"
"""


async def test_a_lift_floor_relay_that_does_not_confirm_raises_one_relay_failed(
    tmp_path: Path, peer: ModbusPeer
) -> None:
    policy = json.loads(json.dumps(POLICY))
    policy["groups"][0]["doors"].append("lift")
    policy["people"][0]["floors"] = {"B1": ["7"]}
    async with open_site(tmp_path, site_toml(peer.port) + LIFT_TOML, policy) as site:
        peer.proxy.fault, peer.proxy.only_coils = "wrong_echo", {6}  # relay 7 = coil 6
        for _ in range(2):
            answer = await site.present("lift-in", "pin", "2580")
            assert answer["granted"] is True  # the lift's own relay confirmed
        alarms = [a for a in await site.alarms() if a["kind"] == "relay_failed"]
        assert len(alarms) == 1, alarms  # one per failing relay, not one per grant
        assert alarms[0]["source"] == "eth:7"
        assert alarms[0]["detail"]["output"] == "lift-b1-7"
        assert alarms[0]["detail"]["floor"] == "7"
        peer.proxy.fault = None
        await site.present("lift-in", "pin", "2580")
        events, _ = await site.events(door="lift")
        assert [e["action"] for e in events].count("relay_recovered") == 1


async def test_a_restart_while_the_relay_still_fails_raises_no_second_alarm(
    tmp_path: Path, peer: ModbusPeer
) -> None:
    peer.proxy.fault = "wrong_echo"
    async with open_site(tmp_path, site_toml(peer.port), POLICY) as site:
        assert (await site.present("gate-in", "pin", "2580"))["result"] == "offline"
    async with open_site(tmp_path, site_toml(peer.port), None) as site:
        assert (await site.present("gate-in", "pin", "2580"))["result"] == "offline"
        alarms = [a for a in await site.alarms() if a["kind"] == "relay_failed"]
        assert len(alarms) == 1, alarms  # the open alarm from before the restart
        peer.proxy.fault = None
        assert (await site.present("gate-in", "pin", "2580"))["result"] == "success"
        events, _ = await site.events(door="gate")
        assert [e["action"] for e in events].count("relay_recovered") == 1
