"""Eletechsup R4D3B16-style RS485 relay controllers (4, 8 and 16 relays).

From the Eletechsup protocol sheet: every relay is a holding register, register = channel
(1-based). FC06 writes ``command << 8 | delay``: 0x01 open (on), 0x02 close (off), 0x03
toggle, 0x04 latch (this one on, the others off), 0x05 momentary (1 s), 0x06 delay (on, off
after ``delay`` seconds, 0..255). FC03 from register 1 reads the relays (0/1 each).
The board's delay timer ends pulses by itself; its unit is a whole second.
"""

from __future__ import annotations

import math

from drivers.boardtype import BoardType
from drivers.modbus import CommandSet, modbus_factory
from rs485 import rtu

__all__ = ["BOARD_TYPES", "COMMANDS", "command_pdu"]

OPEN, CLOSE, TOGGLE, LATCH, MOMENTARY, DELAY = 1, 2, 3, 4, 5, 6
DELAY_UNIT_MS = 1000
DELAY_MAX = 255


def command_pdu(channel: int, command: int, delay: int = 0) -> bytes:
    """FC06 to register ``channel + 1`` with ``command << 8 | delay``."""
    if not 0 <= delay <= DELAY_MAX:
        raise ValueError(f"delay {delay} s is outside 0..{DELAY_MAX}")
    return rtu.pdu_write_register(channel + 1, command << 8 | delay)


def delay_pdu(channel: int, ms: int) -> bytes:
    """A timed pulse in whole seconds, rounded up (a door never opens shorter than asked)."""
    return command_pdu(channel, DELAY, min(max(1, math.ceil(ms / DELAY_UNIT_MS)), DELAY_MAX))


def _parse_relays(request: bytes, response: bytes) -> tuple[bool, ...]:
    return tuple(bool(v) for v in rtu.parse_registers(request, response))


COMMANDS = CommandSet(
    set_relay=lambda ch, on: command_pdu(ch, OPEN if on else CLOSE),
    read_relays=lambda n: rtu.pdu_read_registers(3, 1, n),
    parse_relays=_parse_relays,
    pulse=delay_pdu,
)

BOARD_TYPES = tuple(
    BoardType(
        name,
        f"Eletechsup R4D3B16-style RS485 relay controller, {n} relays (FC06 commands)",
        n,
        0,
        "rtu",
        modbus_factory(COMMANDS, n, 0, "rtu"),
        own_timer=True,
    )
    for name, n in (
        ("eletechsup-r4d3b16", 4),
        ("eletechsup-r4d3b16-8", 8),
        ("eletechsup-r4d3b16-16", 16),
    )
)
