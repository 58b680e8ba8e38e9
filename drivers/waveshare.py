"""Waveshare Modbus RTU Relay boards (8/16/32 channels, the (D) variant with 8 inputs) and
the Waveshare Modbus POE ETH Relay (RTU over TCP by default, Modbus TCP when switched).

Only Waveshare types send the "flash" commands: their values (0x0001..0xFFFF, the delay)
are not the 0xFF00/0x0000 standard Modbus allows for FC05, and a standard board either
refuses them or, worse, takes any non-zero value as "on" and never switches back off.
Plain Modbus TCP boards are the standard types of generic.py.

From the Waveshare manual ("Modbus RTU Relay" wiki, command list):
- relay ``n`` (0-based) is coil ``0x0000 + n``; FC05 value 0xFF00 on, 0x0000 off,
  0x5500 toggle; coil 0x00FF is every relay at once;
- FC01 from 0x0000 reads the relays, FC02 from 0x0000 the (D) variant's inputs;
- "flash on": FC05 to ``0x0200 + n`` with the delay in 100 ms units as the value; the board
  switches the relay on and back off by itself (flash off is ``0x0400 + n``);
- FC03 0x4000 holds the device address, 0x8000 the software version.
"""

from __future__ import annotations

import math

from drivers.boardtype import BoardType
from drivers.modbus import CommandSet, modbus_factory
from rs485 import rtu

__all__ = ["BOARD_TYPES", "COMMANDS", "flash_on_pdu"]

COIL_ON, COIL_OFF = 0xFF00, 0x0000
FLASH_ON_BASE = 0x0200
FLASH_UNIT_MS = 100
FLASH_MAX_UNITS = 0xFFFF


def flash_on_pdu(channel: int, ms: int) -> bytes:
    """FC05 "flash on" for ``channel`` (0-based): on now, off after ``ms`` (rounded up to 0.1 s)."""
    units = min(max(1, math.ceil(ms / FLASH_UNIT_MS)), FLASH_MAX_UNITS)
    return rtu.pdu_write_coil(FLASH_ON_BASE + channel, units)


COMMANDS = CommandSet(
    set_relay=lambda ch, on: rtu.pdu_write_coil(ch, COIL_ON if on else COIL_OFF),
    read_relays=lambda n: rtu.pdu_read_bits(1, 0, n),
    parse_relays=rtu.parse_bits,
    pulse=flash_on_pdu,
    read_inputs=lambda n: rtu.pdu_read_bits(2, 0, n),
    parse_inputs=rtu.parse_bits,
)

_RTU = "Waveshare Modbus RTU Relay"
BOARD_TYPES = (
    BoardType(
        "waveshare-rtu-relay-8",
        f"{_RTU}, 8 relays",
        8,
        0,
        "rtu",
        modbus_factory(COMMANDS, 8, 0, "rtu"),
        own_timer=True,
    ),
    BoardType(
        "waveshare-rtu-relay-8d",
        f"{_RTU} (D), 8 relays + 8 isolated inputs",
        8,
        8,
        "rtu",
        modbus_factory(COMMANDS, 8, 8, "rtu"),
        own_timer=True,
    ),
    BoardType(
        "waveshare-rtu-relay-16",
        f"{_RTU} 16CH, 16 relays",
        16,
        0,
        "rtu",
        modbus_factory(COMMANDS, 16, 0, "rtu"),
        own_timer=True,
    ),
    BoardType(
        "waveshare-rtu-relay-32",
        f"{_RTU} 32CH, 32 relays",
        32,
        0,
        "rtu",
        modbus_factory(COMMANDS, 32, 0, "rtu"),
        own_timer=True,
    ),
    BoardType(
        "waveshare-eth-relay-8",
        "Waveshare Modbus POE ETH Relay (D), 8 relays + 8 inputs, RTU over TCP (port 4196)",
        8,
        8,
        "rtu-tcp",
        modbus_factory(COMMANDS, 8, 8, "rtu-tcp", 4196),
        own_timer=True,
    ),
    BoardType(
        "waveshare-eth-relay-8-tcp",
        "Waveshare Modbus POE ETH Relay (D) switched to Modbus TCP (port 502), 8 relays + "
        "8 inputs; pulses by its flash-on timer",
        8,
        8,
        "tcp",
        modbus_factory(COMMANDS, 8, 8, "tcp", 502),
        own_timer=True,
    ),
)
