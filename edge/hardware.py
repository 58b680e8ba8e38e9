"""The site's hardware, wired from site.toml: buses, boards, door controllers.

This is the I/O shell around the pure door state machine (``edge/core/doorstate.py``): it
feeds the machine inputs (grants, operator commands, contact and exit-button edges read
by polling, the passing of time) and carries out what comes back (relay commands,
alarms, door events). One ``DoorController`` per door; one polling task per board that
has door inputs; one ticker for timers. Simulated buses (``port = "sim"``) start an
in-process pymodbus server on a pseudo-terminal, so the demo drives real serial frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from doorkeep.errors import DeviceError, NotFound
from drivers.base import RelayBoard
from drivers.catalogue import BOARD_TYPES, open_board
from edge.config import DoorSection, SiteConfig
from edge.core import doorstate as ds
from rs485.bus import Bus
from rs485.sim import SimulatedBus

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1  # door inputs are read at 10 Hz
TICK_INTERVAL_S = 0.25  # timers (pulse end, held-open) advance this often
FLOOR_PULSE_MS = 5000  # how long a granted lift floor stays enabled

DoorEventSink = Callable[[str, str, str | None, Mapping[str, Any]], Awaitable[None]]
BoardSink = Callable[[str, bool], Awaitable[None]]


@dataclass(slots=True)
class DoorController:
    """One door: the pure state machine plus the board channels it drives and reads."""

    config: DoorSection
    board: RelayBoard
    state: ds.DoorState
    contact_board: RelayBoard | None = None
    exit_board: RelayBoard | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def describe(self) -> dict[str, Any]:
        state = self.state.as_dict()
        if self.config.contact is None:
            state["contact"] = None  # no contact wired: unknown, not "closed"
        return {
            "id": self.config.id,
            "name": self.config.name,
            "kind": self.config.kind,
            **state,
            "board_online": self.board.online,
            "relay": str(self.config.relay),
        }


class Hardware:
    """All boards and doors of one site. Open with ``async with Hardware.open(config)``."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.buses: dict[str, Bus] = {}
        self.sims: dict[str, SimulatedBus] = {}
        self.boards: dict[str, RelayBoard] = {}
        self.doors: dict[str, DoorController] = {}
        self._on_door: DoorEventSink | None = None
        self._on_board: BoardSink | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_inputs: dict[str, tuple[bool, ...]] = {}
        self._input_failures: dict[str, bool] = {}

    @staticmethod
    def board_types() -> Mapping[str, Any]:
        """The driver catalogue, for validating site.toml."""
        return BOARD_TYPES

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: SiteConfig, *, start: bool = True) -> AsyncIterator[Hardware]:
        hw = cls(config)
        async with contextlib.AsyncExitStack() as stack:
            for bus_cfg in config.buses:
                port = bus_cfg.port
                if bus_cfg.simulated:
                    boards = {
                        b.address: b.type
                        for b in config.boards
                        if b.bus == bus_cfg.id and b.address
                    }
                    sim = await stack.enter_async_context(
                        SimulatedBus(boards, baudrate=bus_cfg.baudrate, parity=bus_cfg.parity)
                    )
                    hw.sims[bus_cfg.id] = sim
                    port = sim.port
                hw.buses[bus_cfg.id] = await stack.enter_async_context(
                    Bus(
                        bus_cfg.id,
                        port,
                        baudrate=bus_cfg.baudrate,
                        parity=bus_cfg.parity,
                        timeout_ms=bus_cfg.timeout_ms,
                        retries=bus_cfg.retries,
                    )
                )
            for board_cfg in config.boards:
                board = open_board(
                    board_cfg.id,
                    board_cfg.type,
                    bus=hw.buses.get(board_cfg.bus or ""),
                    address=board_cfg.address,
                    host=board_cfg.host,
                    port=board_cfg.port,
                    **dict(board_cfg.options),
                )
                hw.boards[board_cfg.id] = await stack.enter_async_context(board)
            for door in config.doors:
                hw.doors[door.id] = DoorController(
                    config=door,
                    board=hw.boards[door.relay.board],
                    state=ds.DoorState(config=ds.DoorConfig.of(door)),
                    contact_board=hw.boards[door.contact.board] if door.contact else None,
                    exit_board=hw.boards[door.exit_button.board] if door.exit_button else None,
                )
            if start:
                hw._start()
            try:
                yield hw
            finally:
                for task in hw._tasks:
                    task.cancel()
                for task in list(hw._tasks):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def attach(self, on_door: DoorEventSink, on_board: BoardSink) -> None:
        """Where door events/alarms and board online changes go (the Site)."""
        self._on_door, self._on_board = on_door, on_board
        loop = asyncio.get_running_loop()
        for board in self.boards.values():
            board.on_online_change(
                lambda online, b=board.board_id: loop.call_soon(
                    self._spawn, self._board_changed(b, online)
                )
            )

    def _spawn(self, coro: Awaitable[Any], name: str | None = None) -> None:
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self) -> None:
        polled = {
            ref.board
            for door in self.config.doors
            for ref in (door.contact, door.exit_button)
            if ref is not None
        }
        for board_id in sorted(polled):
            self._spawn(self._poll(board_id), f"poll-{board_id}")
        self._spawn(self._tick(), "door-ticker")

    # --- the state machine, with its I/O -----------------------------------------------

    async def _feed(self, door_id: str, event: Any, now: float | None = None) -> bool:
        """Step one door's machine; carry out its commands. False if the board failed."""
        ctl = self.doors[door_id]
        async with ctl.lock:
            step = ds.step(ctl.state, event, time.time() if now is None else now)
            ctl.state = step.state
            ok = True
            for command in step.commands:
                if isinstance(command, ds.RelayOff) and self._board_already_off(ctl, step):
                    continue
                ok = await self._command(ctl, command) and ok
        for alarm in step.alarms:
            if alarm.kind is ds.AlarmKind.BOARD_OFFLINE:
                continue  # the board raises one alarm for all its doors (Site._board_change)
            await self._emit(door_id, str(alarm.kind), str(alarm.kind), {"detail": alarm.detail})
        for door_event in step.events:
            await self._emit(door_id, str(door_event.action), None, {"detail": door_event.detail})
        return ok

    @staticmethod
    def _board_already_off(ctl: DoorController, step: ds.Step) -> bool:
        """A relock at the end of a pulse on a board with its own pulse timer: the board
        switched the relay off by itself, so a RelayOff would only put one more frame on
        the bus in front of the next door command."""
        board_type = BOARD_TYPES.get(ctl.board.type_name)
        return bool(board_type and board_type.own_timer) and any(
            e.action is ds.DoorAction.LOCKED and e.detail == "window_ended" for e in step.events
        )

    async def _command(self, ctl: DoorController, command: Any) -> bool:
        channel = ctl.config.relay.channel
        try:
            if isinstance(command, ds.RelayPulse):
                await ctl.board.pulse(channel, command.ms)
            elif isinstance(command, ds.RelayOn):
                await ctl.board.set_relay(channel, True)
            elif isinstance(command, ds.RelayOff):
                await ctl.board.set_relay(channel, False)
            else:  # a new command type the shell does not know yet
                raise TypeError(f"unknown door command {command!r}")
        except DeviceError as err:
            log.warning("door %s: relay command failed: %s", ctl.config.id, err)
            return False
        return True

    async def _emit(
        self, door_id: str, action: str, alarm: str | None, detail: Mapping[str, Any]
    ) -> None:
        if self._on_door is not None:
            try:
                await self._on_door(door_id, action, alarm, detail)
            except Exception:
                log.exception("door %s: recording %s failed", door_id, action)

    async def _board_changed(self, board_id: str, online: bool) -> None:
        event = ds.BoardOnline() if online else ds.BoardOffline()
        for door_id, ctl in self.doors.items():
            if ctl.board.board_id == board_id:
                await self._feed(door_id, event)
        if self._on_board is not None:
            await self._on_board(board_id, online)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            for door_id in self.doors:
                try:
                    await self._feed(door_id, ds.Tick())
                except Exception:
                    log.exception("door %s: timer step failed", door_id)

    async def _poll(self, board_id: str) -> None:
        """Read a board's inputs at 10 Hz; feed edges to the doors wired to them."""
        board = self.boards[board_id]
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            try:
                inputs = await board.read_inputs()
            except DeviceError:
                continue  # the board's online flag and its callback report the outage
            except Exception:
                log.exception("board %s: input poll failed", board_id)
                continue
            previous = self._last_inputs.get(board_id)
            self._last_inputs[board_id] = inputs
            if previous is None:
                await self._initial_inputs(board_id, inputs)
                continue
            for door_id, ctl in self.doors.items():
                await self._input_edges(door_id, ctl, board_id, previous, inputs)

    async def _initial_inputs(self, board_id: str, inputs: tuple[bool, ...]) -> None:
        for door_id, ctl in self.doors.items():
            ref = ctl.config.contact
            if ref is not None and ref.board == board_id and inputs[ref.input - 1]:
                await self._feed(door_id, ds.ContactOpened())

    async def _input_edges(
        self,
        door_id: str,
        ctl: DoorController,
        board_id: str,
        before: tuple[bool, ...],
        after: tuple[bool, ...],
    ) -> None:
        contact, button = ctl.config.contact, ctl.config.exit_button
        if button is not None and button.board == board_id:
            i = button.input - 1
            if after[i] and not before[i]:
                await self._feed(door_id, ds.ExitButton())
        if contact is not None and contact.board == board_id:
            i = contact.input - 1
            if after[i] != before[i]:
                await self._feed(door_id, ds.ContactOpened() if after[i] else ds.ContactClosed())

    # --- commands from the site ---------------------------------------------------------

    def _door(self, door_id: str) -> DoorController:
        try:
            return self.doors[door_id]
        except KeyError:
            raise NotFound(f"door {door_id!r} is not in site.toml") from None

    async def grant(
        self, door_id: str, *, staff: bool = False, floors: tuple[str, ...] = ()
    ) -> bool:
        """A granted presentation: pulse the lock (and the granted lift floors)."""
        ctl = self._door(door_id)
        ok = await self._feed(door_id, ds.Grant(pulse_ms=ctl.config.pulse_ms, staff=staff))
        if floors:
            await self._floors(door_id, floors)
        return ok and ctl.board.online

    async def _floors(self, door_id: str, floors: tuple[str, ...]) -> None:
        door = self.config.door(door_id)
        wanted = set(floors)
        for output in self.config.outputs:
            if output.function != "floor" or output.floor not in wanted:
                continue
            if output.door not in (None, door_id) or (
                output.door is None and output.building != door.building
            ):
                continue
            try:
                await self.boards[output.relay.board].pulse(output.relay.channel, FLOOR_PULSE_MS)
            except DeviceError as err:
                log.warning("lift %s: floor %s output failed: %s", door_id, output.floor, err)

    async def operator_unlock(self, door_id: str, seconds: float) -> bool:
        ctl = self._door(door_id)
        ok = await self._feed(door_id, ds.OperatorUnlock(seconds=seconds))
        return ok and ctl.board.online

    async def operator_lock(self, door_id: str) -> bool:
        ctl = self._door(door_id)
        ok = await self._feed(door_id, ds.OperatorLock())
        return ok and ctl.board.online

    async def emergency_unlock(self, doors: frozenset[str], on: bool) -> None:
        for door_id in sorted(doors):
            await self._feed(door_id, ds.EmergencyUnlock() if on else ds.EmergencyClear())

    async def lockdown(self, on: bool) -> None:
        for door_id in self.doors:
            await self._feed(door_id, ds.LockdownStart() if on else ds.LockdownClear())

    async def hold_open(self, door_id: str, on: bool) -> None:
        await self._feed(door_id, ds.HoldOpenStart() if on else ds.HoldOpenEnd())

    def door_state(self, door_id: str) -> dict[str, Any]:
        return self._door(door_id).describe()

    # --- installer tools ----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        buses = []
        for bus_cfg in self.config.buses:
            bus = self.buses[bus_cfg.id]
            buses.append(
                {
                    "id": bus_cfg.id,
                    "port": bus_cfg.port,
                    "baudrate": bus_cfg.baudrate,
                    "simulated": bus_cfg.simulated,
                    "boards": {str(a): s.as_dict() for a, s in bus.stats().items()},
                }
            )
        boards = [
            {
                "id": b.id,
                "type": b.type,
                "bus": b.bus,
                "address": b.address,
                "host": b.host,
                "online": self.boards[b.id].online,
                "relays": self.boards[b.id].relays,
                "inputs": self.boards[b.id].inputs,
            }
            for b in self.config.boards
        ]
        return {
            "buses": buses,
            "boards": boards,
            "doors": [self.door_state(d) for d in self.doors],
            "readers": [
                {"id": r.id, "door": r.door, "type": r.type, "direction": r.direction}
                for r in self.config.readers
            ],
            "outputs": [
                {
                    "id": o.id,
                    "relay": str(o.relay),
                    "function": o.function,
                    "floor": o.floor,
                    "building": o.building,
                }
                for o in self.config.outputs
            ],
        }

    async def scan(self, bus_id: str) -> list[int]:
        bus = self.buses.get(bus_id)
        if bus is None:
            raise NotFound(f"bus {bus_id!r} is not in site.toml")
        return await bus.scan()

    async def relay_test(self, board_id: str, channel: int, ms: int) -> bool:
        board = self.boards.get(board_id)
        if board is None:
            raise NotFound(f"board {board_id!r} is not in site.toml")
        try:
            await board.pulse(channel, ms)
        except DeviceError:
            return False
        return True


class NullHardware(Hardware):
    """The site without its boards: for CLI commands that run beside the daemon
    (policy, decide, events). Doors report state ``unknown``; nothing is driven."""

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: SiteConfig, *, start: bool = False) -> AsyncIterator[Hardware]:
        del start
        yield cls(config)

    def attach(self, on_door: DoorEventSink, on_board: BoardSink) -> None:
        self._on_door, self._on_board = on_door, on_board

    async def _feed(self, door_id: str, event: Any, now: float | None = None) -> bool:
        del event, now
        self._door_config(door_id)
        return False

    def _door_config(self, door_id: str) -> DoorSection:
        try:
            return self.config.door(door_id)
        except KeyError:
            raise NotFound(f"door {door_id!r} is not in site.toml") from None

    async def grant(
        self, door_id: str, *, staff: bool = False, floors: tuple[str, ...] = ()
    ) -> bool:
        del staff, floors
        self._door_config(door_id)
        return False

    async def operator_unlock(self, door_id: str, seconds: float) -> bool:
        del seconds
        return await self._feed(door_id, None)

    async def operator_lock(self, door_id: str) -> bool:
        return await self._feed(door_id, None)

    async def emergency_unlock(self, doors: frozenset[str], on: bool) -> None:
        del doors, on

    async def lockdown(self, on: bool) -> None:
        del on

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
        }

    async def scan(self, bus_id: str) -> list[int]:
        raise DeviceError(f"bus {bus_id}: the hardware is not open in this process")

    async def relay_test(self, board_id: str, channel: int, ms: int) -> bool:
        del channel, ms
        raise DeviceError(f"board {board_id}: the hardware is not open in this process")
