"""One catalogue entry: what a board type is and how to make a driver for it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from drivers.base import RelayBoard

__all__ = ["TRANSPORTS", "BoardType"]

TRANSPORTS = ("rtu", "tcp", "rtu-tcp", "gpio")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class BoardType:
    """A board type of the catalogue (``doorkeep boards`` lists these).

    ``transport``: ``rtu`` (on an RS485 bus), ``tcp`` (Modbus TCP), ``rtu-tcp`` (Modbus RTU
    frames over a TCP socket) or ``gpio``. ``factory(board_id, type_name, *, bus, address,
    host, port, **options)`` makes the driver. ``relays``/``inputs`` of 0 with
    ``configurable`` set mean "as configured" (generic and GPIO boards).
    """

    name: str
    description: str
    relays: int
    inputs: int
    transport: str
    factory: Callable[..., RelayBoard]
    own_timer: bool = False
    configurable: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"board type name {self.name!r} must be lowercase letters, digits, -")
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"board type {self.name}: transport {self.transport!r} not in {TRANSPORTS}"
            )
        if self.relays < 0 or self.inputs < 0:
            raise ValueError(f"board type {self.name}: negative relay or input count")

    def as_dict(self) -> dict[str, Any]:
        """The row ``doorkeep boards`` prints."""
        return {
            "name": self.name,
            "description": self.description,
            "relays": self.relays,
            "inputs": self.inputs,
            "transport": self.transport,
            "own_timer": self.own_timer,
        }
