"""The site's hardware, wired from site.toml: buses, boards, door controllers.

This is the I/O shell around the pure door state machine (``edge/core/doorstate.py``): it
feeds the machine inputs (grants, operator commands, contact and exit-button edges read
by polling, the passing of time) and carries out what comes back (relay commands,
alarms, door events). One ``DoorController`` per door; one polling task per board that
has door inputs; one ticker for timers, all named tasks in one TaskGroup that lives as
long as ``Hardware.open``. Simulated buses (``port = "sim"``) start an in-process pymodbus
server on a pseudo-terminal, so the demo drives real serial frames.

A command from the site (grant, unlock, lock, emergency, hold-open, relay test) returns an
``Outcome``: what was commanded, whether the board confirmed it, and the door events and
alarms it caused, so the site can log the cause before its effects. A relay command the
board did not confirm (silent, garbled, refused, or answered with the wrong echo: see
rs485/bus.py) is a failed command: a release that failed leaves the door's machine where
it was and logs no ``unlocked``; other door events of that step are logged ``offline``;
the relay raises one ``relay_failed`` alarm (naming board and channel) until a command
to it is confirmed again (``relay_recovered``). Only what nobody asked for (contact and
exit-button edges, timers, boards going offline/online, site inputs becoming active or
inactive) is reported through the callbacks given to ``attach``.

Site inputs (``[[input]]``: a fire panel, a lockdown key switch, a tamper loop) are read
by the same 10 Hz polls as door inputs. A level counts once it was read on
``INPUT_CONFIRM_POLLS`` consecutive polls (``InputDebounce``), so one noisy read (a spike
on a long input cable) cannot unlock a building. The site is told of each confirmed change
and of the first reading when it is active (an input already active at start fires).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from doorkeep.errors import DeviceError, NotFound
from drivers.base import RelayBoard
from drivers.catalogue import BOARD_TYPES, open_board
from edge.config import SiteConfig
from edge.core import doorstate as ds
from edge.hwparts import (
    BoardSink,
    DoorController,
    DoorEventSink,
    DoorNote,
    InputDebounce,
    InputSink,
    Outcome,
    TaskGroupOwner,
)
from rs485.bus import Bus
from rs485.sim import SimulatedBus

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1  # door inputs are read at 10 Hz
TICK_INTERVAL_S = 0.25  # timers (pulse end, held-open) advance this often
FLOOR_PULSE_MS = 5000  # how long a granted lift floor stays enabled
#: Inputs that release the lock for one pulse. When the board does not confirm the pulse,
#: the door never released: its machine goes back to where it was and the release is not
#: logged (a grant is then ``offline``, never ``unlocked``).
_RELEASE_INPUTS = (ds.Grant, ds.OperatorUnlock, ds.ExitButton)
#: Door events that say a relay moved; logged ``offline`` when the command was not confirmed.
_RELAY_ACTIONS = frozenset({ds.DoorAction.UNLOCKED, ds.DoorAction.LOCKED})


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
        self._tasks: TaskGroupOwner | None = None
        self._last_inputs: dict[str, tuple[bool, ...]] = {}
        self._input_failures: dict[str, bool] = {}
        # "board:channel" whose last command failed (an open relay_failed alarm); the site
        # seeds it at start from the alarms still open, so a restart raises no second one
        self.failing_relays: set[str] = set()
        self._on_input: InputSink | None = None
        self._site_inputs = {i.id: InputDebounce.of(i) for i in config.inputs}

    @staticmethod
    def board_types() -> Mapping[str, Any]:
        """The driver catalogue, for validating site.toml."""
        return BOARD_TYPES

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, config: SiteConfig, *, start: bool = True) -> AsyncIterator[Hardware]:
        hw = cls(config)
        async with contextlib.AsyncExitStack() as stack:
            for bus_cfg in (b for b in config.buses if b.protocol == "modbus"):  # OSDP: readers
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
            hw._tasks = tasks = await stack.enter_async_context(TaskGroupOwner())
            if start:
                hw._start(tasks)
            yield hw

    def attach(
        self, on_door: DoorEventSink, on_board: BoardSink, on_input: InputSink | None = None
    ) -> None:
        """Where uncommanded door events/alarms, board online changes and site input
        changes go (the Site)."""
        self._on_door, self._on_board, self._on_input = on_door, on_board, on_input
        for board in self.boards.values():
            board.on_online_change(functools.partial(self._board_edge, board.board_id))

    def _board_edge(self, board_id: str, online: bool) -> None:
        if self._tasks is not None:
            state = "online" if online else "offline"
            self._tasks.start(self._board_changed(board_id, online), f"board-{board_id}-{state}")

    def _start(self, tasks: TaskGroupOwner) -> None:
        polled = {
            ref.board
            for door in self.config.doors
            for ref in (door.contact, door.exit_button)
            if ref is not None
        } | {i.input.board for i in self.config.inputs}
        for board_id in sorted(polled):
            tasks.start(self._poll(board_id), f"poll-{board_id}")
        tasks.start(self._tick(), "door-ticker")

    # --- the state machine, with its I/O -----------------------------------------------

    async def _feed(self, door_id: str, event: Any, now: float | None = None) -> Outcome:
        """Step one door's machine and carry out its commands."""
        ctl = self.doors[door_id]
        async with ctl.lock:
            before = ctl.state
            step = ds.step(ctl.state, event, time.monotonic() if now is None else now)
            ctl.state = step.state
            commanded: list[str] = []
            failed: list[tuple[str, DeviceError]] = []
            for command in step.commands:
                if isinstance(command, ds.RelayOff) and _board_already_off(ctl, step):
                    continue
                described = _describe(ctl, command)
                commanded.append(described)
                error = await self._command(ctl, command)
                if error is not None:
                    failed.append((described, error))
            reverted = bool(failed) and isinstance(event, _RELEASE_INPUTS)
            if reverted:
                ctl.state = before
                if not before.relay_on:
                    await _relock(ctl)
        notes: list[DoorNote] = []
        if not reverted:
            notes += [
                DoorNote(door_id, str(alarm.kind), str(alarm.kind), {"detail": alarm.detail})
                for alarm in step.alarms
                # the board raises one alarm for all its doors (the Site's board callback)
                if alarm.kind is not ds.AlarmKind.BOARD_OFFLINE
            ]
            notes += [
                DoorNote(
                    door_id,
                    str(e.action),
                    None,
                    {"detail": e.detail},
                    "offline" if failed and e.action in _RELAY_ACTIONS else "success",
                )
                for e in step.events
            ]
        notes += self._relay_health(ctl, commanded, failed)
        confirmed = not failed and ctl.board.online
        return Outcome(tuple(commanded), confirmed, tuple(notes))

    def _relay_health(
        self, ctl: DoorController, commanded: list[str], failed: list[tuple[str, DeviceError]]
    ) -> list[DoorNote]:
        """One ``relay_failed`` alarm when a door's relay stops confirming its commands, one
        ``relay_recovered`` event when it confirms one again (not one per command)."""
        relay = ctl.config.relay
        source = str(relay)
        detail = {"board": relay.board, "channel": relay.channel}
        if failed:
            if source in self.failing_relays:
                return []
            self.failing_relays.add(source)
            command, error = failed[0]
            detail |= {"command": command, "error": str(error)}
            return [DoorNote(ctl.config.id, "relay_failed", "relay_failed", detail, source=source)]
        if commanded and source in self.failing_relays:
            self.failing_relays.discard(source)
            return [DoorNote(ctl.config.id, "relay_recovered", None, detail, source=source)]
        return []

    async def _feed_uncommanded(self, door_id: str, event: Any) -> None:
        """A step nobody asked for (an input edge, a timer): its notes go to the sink."""
        outcome = await self._feed(door_id, event)
        for note in outcome.notes:
            if self._on_door is not None:
                try:
                    await self._on_door(note)
                except Exception:
                    log.exception("door %s: recording %s failed", door_id, note.action)

    async def _command(self, ctl: DoorController, command: Any) -> DeviceError | None:
        """Carry out one relay command; the error when the board did not confirm it."""
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
            return err
        return None

    async def _board_changed(self, board_id: str, online: bool) -> None:
        event = ds.BoardOnline() if online else ds.BoardOffline()
        try:
            for door_id, ctl in self.doors.items():
                if ctl.board.board_id == board_id:
                    await self._feed_uncommanded(door_id, event)
            if self._on_board is not None:
                await self._on_board(board_id, online)
        except Exception:
            log.exception("board %s: recording the %s change failed", board_id, event)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            for door_id in self.doors:
                try:
                    await self._feed_uncommanded(door_id, ds.Tick())
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
            await self._site_input_levels(board_id, inputs)
            if previous is None:
                await self._initial_inputs(board_id, inputs)
                continue
            for door_id, ctl in self.doors.items():
                await self._input_edges(door_id, ctl, board_id, previous, inputs)

    async def _initial_inputs(self, board_id: str, inputs: tuple[bool, ...]) -> None:
        for door_id, ctl in self.doors.items():
            ref = ctl.config.contact
            if ref is not None and ref.board == board_id and inputs[ref.input - 1]:
                await self._feed_uncommanded(door_id, ds.ContactOpened())

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
                await self._feed_uncommanded(door_id, ds.ExitButton())
        if contact is not None and contact.board == board_id:
            i = contact.input - 1
            if after[i] != before[i]:
                await self._feed_uncommanded(
                    door_id, ds.ContactOpened() if after[i] else ds.ContactClosed()
                )

    async def _site_input_levels(self, board_id: str, inputs: tuple[bool, ...]) -> None:
        """Debounce the site inputs on this board; tell the site of confirmed changes."""
        for section in self.config.inputs:
            if section.input.board != board_id or section.input.input > len(inputs):
                continue
            debounce = self._site_inputs[section.id]
            first = debounce.level is None
            level = debounce.read(section.is_active(inputs[section.input.input - 1]))
            # the first reading is news only when it is active (a fire panel in alarm)
            if level is None or (first and not level) or self._on_input is None:
                continue
            try:
                await self._on_input(section, level)
            except Exception:
                # the site drives the doors before it records anything: a failing
                # store must not stop the next poll
                log.exception("input %s: handling the change failed", section.id)

    def input_active(self, input_id: str) -> bool | None:
        """A site input's debounced state: active, inactive, or None (not read yet)."""
        return self._site_inputs[input_id].level

    # --- commands from the site ---------------------------------------------------------

    def _door(self, door_id: str) -> DoorController:
        try:
            return self.doors[door_id]
        except KeyError:
            raise NotFound(f"door {door_id!r} is not in site.toml") from None

    async def grant(
        self, door_id: str, *, staff: bool = False, floors: tuple[str, ...] = ()
    ) -> Outcome:
        """A granted presentation: pulse the lock (and the granted lift floors)."""
        ctl = self._door(door_id)
        outcome = await self._feed(door_id, ds.Grant(pulse_ms=ctl.config.pulse_ms, staff=staff))
        if floors:
            notes = await self._floors(door_id, floors)
            outcome = Outcome(outcome.commanded, outcome.confirmed, outcome.notes + notes)
        return outcome

    async def _floors(self, door_id: str, floors: tuple[str, ...]) -> tuple[DoorNote, ...]:
        """Enable the granted floors' lift outputs; a floor relay that does not confirm
        raises one ``relay_failed`` alarm (and ``relay_recovered`` when it confirms again),
        like a door's relay. The door has opened either way: the note says what did not."""
        door = self.config.door(door_id)
        wanted = set(floors)
        notes: list[DoorNote] = []
        for output in self.config.outputs:
            if output.function != "floor" or output.floor not in wanted:
                continue
            if output.door not in (None, door_id) or (
                output.door is None and output.building != door.building
            ):
                continue
            relay = output.relay
            source = str(relay)
            detail = {
                "board": relay.board,
                "channel": relay.channel,
                "output": output.id,
                "floor": output.floor,
            }
            try:
                await self.boards[relay.board].pulse(relay.channel, FLOOR_PULSE_MS)
            except DeviceError as err:
                log.warning("lift %s: floor %s output failed: %s", door_id, output.floor, err)
                if source not in self.failing_relays:
                    self.failing_relays.add(source)
                    detail |= {"command": f"pulse {source} {FLOOR_PULSE_MS} ms", "error": str(err)}
                    notes.append(
                        DoorNote(
                            door_id,
                            "relay_failed",
                            "relay_failed",
                            detail,
                            result="offline",
                            source=source,
                        )
                    )
                continue
            if source in self.failing_relays:
                self.failing_relays.discard(source)
                notes.append(DoorNote(door_id, "relay_recovered", None, detail, source=source))
        return tuple(notes)

    async def operator_unlock(self, door_id: str, seconds: float) -> Outcome:
        self._door(door_id)
        return await self._feed(door_id, ds.OperatorUnlock(seconds=seconds))

    async def operator_lock(self, door_id: str) -> Outcome:
        self._door(door_id)
        return await self._feed(door_id, ds.OperatorLock())

    async def emergency_unlock(self, doors: frozenset[str], on: bool) -> Outcome:
        event = ds.EmergencyUnlock() if on else ds.EmergencyClear()
        return Outcome.merge([await self._feed(door_id, event) for door_id in sorted(doors)])

    async def lockdown(self, on: bool) -> Outcome:
        event = ds.LockdownStart() if on else ds.LockdownClear()
        return Outcome.merge([await self._feed(door_id, event) for door_id in self.doors])

    async def hold_open(self, door_id: str, on: bool) -> Outcome:
        return await self._feed(door_id, ds.HoldOpenStart() if on else ds.HoldOpenEnd())

    def door_state(self, door_id: str) -> dict[str, Any]:
        return self._door(door_id).describe()

    # --- installer tools ----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        buses = []
        for bus_cfg in (b for b in self.config.buses if b.id in self.buses):
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
            "inputs": self.describe_inputs(),
        }

    def describe_inputs(self) -> list[dict[str, Any]]:
        """The site inputs with their debounced state (None: not read yet)."""
        return [
            {
                "id": i.id,
                "input": str(i.input),
                "function": i.function,
                "active_when": i.active,
                "active": self.input_active(i.id),
            }
            for i in self.config.inputs
        ]

    async def scan(self, bus_id: str) -> list[int]:
        bus = self.buses.get(bus_id)
        if bus is None:
            raise NotFound(f"bus {bus_id!r} is not in site.toml")
        return await bus.scan()

    async def relay_test(self, board_id: str, channel: int, ms: int) -> Outcome:
        board = self.boards.get(board_id)
        if board is None:
            raise NotFound(f"board {board_id!r} is not in site.toml")
        commanded = (f"pulse {board_id}:{channel} {ms} ms",)
        try:
            await board.pulse(channel, ms)
        except DeviceError:
            return Outcome(commanded, confirmed=False)
        return Outcome(commanded, confirmed=True)


def _describe(ctl: DoorController, command: ds.Command) -> str:
    relay = ctl.config.relay
    if isinstance(command, ds.RelayPulse):
        return f"pulse {relay} {command.ms} ms"
    return f"{'on' if isinstance(command, ds.RelayOn) else 'off'} {relay}"


def _board_already_off(ctl: DoorController, step: ds.Step) -> bool:
    """A relock at the end of a pulse on a board with its own pulse timer: the board
    switched the relay off by itself, so a RelayOff would only put one more frame on
    the bus in front of the next door command."""
    board_type = BOARD_TYPES.get(ctl.board.type_name)
    return bool(board_type and board_type.own_timer) and any(
        e.action is ds.DoorAction.LOCKED and e.detail == "window_ended" for e in step.events
    )


async def _relock(ctl: DoorController) -> None:
    """After an unconfirmed release: the board may have switched the relay all the same
    (a late or garbled answer to a write it carried out), so switch it off again. Best
    effort; if this fails too, the relay's alarm is already raised."""
    try:
        await ctl.board.set_relay(ctl.config.relay.channel, False)
    except DeviceError as err:
        log.warning("door %s: relock after a failed release failed: %s", ctl.config.id, err)


def stalled_buses(hw: Hardware, limit_s: float) -> list[str]:
    """Why each stuck bus owner is stuck (the daemon's watchdog stops pinging then)."""
    return [why for bus in hw.buses.values() if (why := bus.stalled(limit_s)) is not None]
