"""The site without its boards (``NullHardware``): what CLI commands that run beside the
daemon (policy, decide, events) open instead of ``edge.hardware.Hardware``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from doorkeep.errors import DeviceError, NotFound
from edge.config import DoorSection, SiteConfig
from edge.hardware import Hardware
from edge.hwparts import BoardSink, DoorEventSink, InputSink, Outcome


class NullHardware(Hardware):
    """The site without its boards: for CLI commands that run beside the daemon
    (policy, decide, events). Doors report state ``unknown``; nothing is driven."""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: SiteConfig, *, start: bool = False) -> AsyncIterator[Hardware]:
        del start
        yield cls(config)

    def attach(
        self, on_door: DoorEventSink, on_board: BoardSink, on_input: InputSink | None = None
    ) -> None:
        self._on_door, self._on_board, self._on_input = on_door, on_board, on_input

    async def _feed(self, door_id: str, event: Any, now: float | None = None) -> Outcome:
        del event, now
        self._door_config(door_id)
        return Outcome(confirmed=False)

    def _door_config(self, door_id: str) -> DoorSection:
        try:
            return self.config.door(door_id)
        except KeyError:
            raise NotFound(f"door {door_id!r} is not in site.toml") from None

    async def grant(
        self, door_id: str, *, staff: bool = False, floors: tuple[str, ...] = ()
    ) -> Outcome:
        del staff, floors
        return await self._feed(door_id, None)

    async def operator_unlock(self, door_id: str, seconds: float) -> Outcome:
        del seconds
        return await self._feed(door_id, None)

    async def operator_lock(self, door_id: str) -> Outcome:
        return await self._feed(door_id, None)

    async def emergency_unlock(self, doors: frozenset[str], on: bool) -> Outcome:
        del doors, on
        return Outcome(confirmed=False)

    async def lockdown(self, on: bool) -> Outcome:
        del on
        return Outcome(confirmed=False)

    async def hold_open(self, door_id: str, on: bool) -> Outcome:
        del on
        return await self._feed(door_id, None)

    def door_state(self, door_id: str) -> dict[str, Any]:
        door = self._door_config(door_id)
        return {
            "id": door.id,
            "name": door.name,
            "kind": door.kind,
            "state": "unknown",
            "contact": None,
            "board_online": None,
            "fail_mode": door.fail_mode,
            "held_open_s": door.held_open_s,
            "relay": str(door.relay),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "buses": [],
            "boards": [],
            "doors": [self.door_state(d.id) for d in self.config.doors],
            "readers": [],
            "outputs": [],
            "inputs": self.describe_inputs(),
        }

    async def scan(self, bus_id: str) -> list[int]:
        raise DeviceError(f"bus {bus_id}: the hardware is not open in this process")

    async def relay_test(self, board_id: str, channel: int, ms: int) -> Outcome:
        del channel, ms
        raise DeviceError(f"board {board_id}: the hardware is not open in this process")
