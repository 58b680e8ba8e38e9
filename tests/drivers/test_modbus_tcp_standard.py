"""Standard Modbus TCP boards against a plain pymodbus server that holds to the spec.

The peer (tests/rs485/modbus_peer.py, ``strict_fc05=True``) is pymodbus' own
``ModbusTcpServer`` refusing any FC05 value but 0xFF00/0x0000 with exception 03, as the
Modbus spec has it. The standard types only ever send those two values and time their
pulses themselves; the Waveshare type's "flash" values are refused by such a board (and
a lenient one, plain pymodbus, would latch the coil on for good).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from doorkeep.errors import ConfigError
from drivers.catalogue import BOARD_TYPES, open_board
from rs485.rtu import BoardRefusedError
from tests.edge.conftest import POLICY
from tests.edge.sites import open_site
from tests.rs485.modbus_peer import ModbusPeer

STANDARD = ["modbus-tcp-generic", "modbus-tcp-relay-8", "modbus-tcp-relay-4"]
PULSE_MS = 300


@pytest.fixture
async def strict_peer() -> AsyncIterator[ModbusPeer]:
    async with ModbusPeer(unit=1, strict_fc05=True) as peer:
        yield peer


def fc05_values(peer: ModbusPeer) -> list[int]:
    return [struct.unpack(">H", pdu[3:5])[0] for pdu in peer.proxy.requests if pdu[0] == 0x05]


async def coil_history(peer: ModbusPeer, coil: int, seconds: float) -> list[tuple[float, bool]]:
    """The coil as the pymodbus server holds it, sampled every 25 ms: (time, state)."""
    loop = asyncio.get_running_loop()
    start, seen = loop.time(), []
    while loop.time() - start < seconds:
        seen.append((loop.time() - start, (await peer.coils(coil))[0]))
        await asyncio.sleep(0.025)
    return seen


@pytest.mark.parametrize("type_name", STANDARD)
async def test_a_standard_board_pulses_with_ff00_and_0000_timed_by_doorkeep(
    strict_peer: ModbusPeer, type_name: str
) -> None:
    board = open_board("net", type_name, host="127.0.0.1", port=strict_peer.port)
    async with board:
        await board.pulse(2, PULSE_MS)
        history = await coil_history(strict_peer, 1, 1.2)
    on = [t for t, state in history if state]
    assert on, "the relay never switched on"
    assert history[0][1] is True and history[-1][1] is False
    assert 0.2 <= on[-1] <= 0.8  # off after ~300 ms, by doorkeep's timer
    assert fc05_values(strict_peer) == [0xFF00, 0x0000]
    assert strict_peer.rejected == []


async def test_the_waveshare_flash_is_refused_by_a_standard_board(
    strict_peer: ModbusPeer,
) -> None:
    # the reason the standard types exist: a standard board refuses the flash value
    board = open_board(
        "ws", "waveshare-eth-relay-8-tcp", host="127.0.0.1", port=strict_peer.port, retries=0
    )
    async with board:
        with pytest.raises(BoardRefusedError):
            await board.pulse(2, PULSE_MS)
    assert strict_peer.rejected == [3]  # 300 ms = 3 units of 100 ms
    assert await strict_peer.coils(1) == [False]


def test_only_waveshare_types_have_the_flash_timer() -> None:
    for name, entry in BOARD_TYPES.items():
        if entry.own_timer and entry.transport != "gpio":
            assert name.startswith(("waveshare-", "eletechsup-")), name
    assert not BOARD_TYPES["modbus-tcp-relay-8"].own_timer
    assert BOARD_TYPES["modbus-tcp-relay-4"].relays == 4
    assert BOARD_TYPES["modbus-tcp-relay-4"].inputs == 4


def test_a_fixed_board_refuses_other_counts() -> None:
    with pytest.raises(ConfigError, match="has 4 relays and 4 inputs"):
        open_board("x", "modbus-tcp-relay-4", host="127.0.0.1", relays=8)


SITE = """
[site]
id = "net"
name = "Network board"
timezone = "Europe/Berlin"
data_dir = "data"
simulation = true

[web]
listen = "127.0.0.1:18082"

[[board]]
id = "net4"
type = "modbus-tcp-relay-4"
host = "127.0.0.1"
port = {port}

[[door]]
id = "gate"
name = "Main gate"
relay = "net4:3"
pulse_ms = {pulse}
methods = ["pin", "rf_card", "remote"]
building = "B1"

[[door]]
id = "lobby"
name = "Lobby"
relay = "net4:4"
pulse_ms = {pulse}
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


async def test_a_door_on_a_4_relay_network_board_opens_and_relocks(
    tmp_path: Path, strict_peer: ModbusPeer
) -> None:
    text = SITE.format(port=strict_peer.port, pulse=PULSE_MS)
    async with open_site(tmp_path, text, POLICY) as site:
        answer = await site.present("gate-in", "pin", "2580")
        assert answer["granted"] is True and answer["result"] == "success", answer
        history = await coil_history(strict_peer, 2, 1.2)
        on = [t for t, state in history if state]
        assert on and history[0][1] is True
        assert history[-1][1] is False
        assert 0.2 <= on[-1] <= 0.8  # relocked by doorkeep's pulse timer
        events, _ = await site.events(door="gate")
        assert "unlocked" in [e["action"] for e in events]
    assert set(fc05_values(strict_peer)) <= {0xFF00, 0x0000}
    assert strict_peer.rejected == []
