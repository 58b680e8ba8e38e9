"""The values and small parts the hardware shell (edge/hardware.py) is built from:
what one command did (``Outcome``, ``DoorNote``), where uncommanded events go (the sinks),
one door's controller, a site input's debounce, and the TaskGroup owner of the loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from drivers.base import RelayBoard
from edge.config import DoorSection, InputSection
from edge.core import doorstate as ds

__all__ = [
    "INPUT_CONFIRM_POLLS",
    "BoardSink",
    "DoorController",
    "DoorEventSink",
    "DoorNote",
    "InputDebounce",
    "InputSink",
    "Outcome",
    "TaskGroupOwner",
]

INPUT_CONFIRM_POLLS = 2  # a site input's new level counts once read on this many polls


@dataclass(slots=True)
class InputDebounce:
    """One site input's confirmed level, from raw reads (pure: no I/O, no clock).

    ``read(level)`` returns the new confirmed level when a change (or the very first
    level) has been read ``polls`` times in a row, else None.
    """

    polls: int = INPUT_CONFIRM_POLLS
    level: bool | None = None  # None until the first level is confirmed
    _candidate: bool | None = None
    _seen: int = 0

    def read(self, raw: bool) -> bool | None:
        if raw == self.level:
            self._candidate, self._seen = None, 0
            return None
        if raw != self._candidate:
            self._candidate, self._seen = raw, 0
        self._seen += 1
        if self._seen < self.polls:
            return None
        self.level, self._candidate, self._seen = raw, None, 0
        return raw

    @classmethod
    def of(cls, section: InputSection) -> InputDebounce:
        """The debounce for an ``[[input]]``: its ``mode`` says momentary or latching."""
        return LatchingInput() if section.mode == "latching" else cls()


@dataclass(slots=True)
class LatchingInput(InputDebounce):
    """A ``mode = "latching"`` input: each press of a momentary contact toggles its level.

    The reference's external relay boards have an input mode "Latching" beside
    "Non-Latching": a push button that acts as an on/off switch. Here ``level`` is the
    latched state; the contact itself is debounced as usual, each confirmed press (the
    contact becoming active) flips ``level``, and letting go changes nothing.
    """

    contact: InputDebounce = field(default_factory=InputDebounce)

    def read(self, raw: bool) -> bool | None:
        pressed = self.contact.read(raw)
        if pressed is None:
            return None
        if not pressed:  # let go: no news, except that a first "released" is a level
            if self.level is None:
                self.level = False
                return False
            return None
        self.level = not self.level
        return self.level


@dataclass(frozen=True, slots=True)
class DoorNote:
    """A door event (``alarm`` None) or a door alarm that one step of a door produced.

    ``result`` is ``offline`` for an event whose relay command the board did not confirm;
    ``source`` names what an alarm is about when that is not the door (``board:channel``).
    """

    door: str
    action: str
    alarm: str | None
    detail: Mapping[str, Any]
    result: str = "success"
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one command to the hardware did.

    ``commanded`` lists the relay commands sent (``"pulse gate-relay 5000 ms"``),
    ``confirmed`` is True only when every one was confirmed by an online board, and
    ``notes`` are the door events and alarms that resulted, in the order they happened.
    """

    commanded: tuple[str, ...] = ()
    confirmed: bool = True
    notes: tuple[DoorNote, ...] = ()

    @staticmethod
    def merge(outcomes: Iterable[Outcome]) -> Outcome:
        """Several commands as one (an emergency over a group of doors)."""
        done = list(outcomes)
        return Outcome(
            commanded=tuple(c for o in done for c in o.commanded),
            confirmed=all(o.confirmed for o in done),
            notes=tuple(n for o in done for n in o.notes),
        )


# Where what nobody commanded goes (the Site): door notes from inputs and timers, and
# board online/offline edges.
DoorEventSink = Callable[[DoorNote], Awaitable[None]]
BoardSink = Callable[[str, bool], Awaitable[None]]
# A site input became active (True) or inactive (False), debounced.
InputSink = Callable[[InputSection, bool], Awaitable[None]]


class TaskGroupOwner:
    """Background loops as named tasks in one ``asyncio.TaskGroup``.

    Leaving cancels them and waits for them. The body's own exception passes through
    as it is (a bare ``async with TaskGroup()`` would wrap it in an ExceptionGroup, and
    callers of ``Hardware.open`` catch plain errors).
    """

    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        await self._group.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await self._group.__aexit__(None, None, None)

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


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
