"""The driver ABC every relay/input board implements, whatever its transport."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["RelayBoard"]

log = logging.getLogger(__name__)


class RelayBoard(ABC):
    """One physical board: ``relays`` outputs and ``inputs`` digital inputs, 1-based channels.

    Use as ``async with board:``. Boards on a shared RS485 bus need the bus running; boards
    that own their link (Ethernet, GPIO) open it on entry. ``online`` follows the board's
    answers; ``on_online_change`` callbacks fire on each edge (never once per poll).
    """

    board_id: str
    type_name: str
    relays: int
    inputs: int

    def __init__(self, board_id: str, type_name: str, relays: int, inputs: int) -> None:
        if not board_id:
            raise ValueError("board id must not be empty")
        if relays < 0 or inputs < 0:
            raise ValueError(f"board {board_id}: relays/inputs must not be negative")
        self.board_id = board_id
        self.type_name = type_name
        self.relays = relays
        self.inputs = inputs
        self._online = True
        self._callbacks: list[Callable[[bool], None]] = []
        self._soft_pulses: dict[int, asyncio.Task[None]] = {}

    # --- lifecycle (override when the board owns a link) ------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._soft_pulses.values():
            task.cancel()
        for task in list(self._soft_pulses.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._soft_pulses.clear()

    # --- online flag ------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """False after the board exhausted its retries, True again once it answers."""
        return self._online

    def on_online_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(online)`` on each offline/online edge."""
        self._callbacks.append(callback)

    def _set_online(self, online: bool) -> None:
        if online == self._online:
            return
        self._online = online
        for callback in self._callbacks:
            try:
                callback(online)
            except Exception:
                log.exception("board %s: online callback failed", self.board_id)

    # --- channels ---------------------------------------------------------------------------

    def _relay_index(self, channel: int) -> int:
        if not 1 <= channel <= self.relays:
            raise ValueError(f"board {self.board_id}: relay {channel} is outside 1..{self.relays}")
        return channel - 1

    @staticmethod
    def _check_ms(ms: int) -> None:
        if not 1 <= ms <= 600_000:
            raise ValueError(f"pulse length {ms} ms is outside 1..600000")

    async def _software_pulse(self, channel: int, ms: int) -> None:
        """Relay on now, off after ``ms`` by our own timer (for boards without one).

        The off-switch runs in a task the board owns, so the caller is not held for the
        pulse; a new pulse on the same channel replaces the old timer. If the daemon dies
        mid-pulse the relay stays on: boards with their own timer avoid that.
        """
        if (old := self._soft_pulses.pop(channel, None)) is not None:
            old.cancel()
        await self.set_relay(channel, on=True)

        async def release() -> None:
            await asyncio.sleep(ms / 1000)
            # Leave the table first: set_relay cancels the channel's pending pulse, not us.
            self._soft_pulses.pop(channel, None)
            try:
                await self.set_relay(channel, on=False)
            except Exception:
                log.exception("board %s: could not end pulse on relay %d", self.board_id, channel)

        self._soft_pulses[channel] = asyncio.create_task(
            release(), name=f"pulse-{self.board_id}-{channel}"
        )

    def _cancel_soft_pulse(self, channel: int) -> None:
        """An explicit on/off overrides a running software pulse on that channel."""
        if (old := self._soft_pulses.pop(channel, None)) is not None:
            old.cancel()

    @abstractmethod
    async def pulse(self, channel: int, ms: int) -> None:
        """Switch relay ``channel`` on for ``ms``; uses the board's own timer where it has one."""

    @abstractmethod
    async def set_relay(self, channel: int, on: bool) -> None:
        """Switch relay ``channel`` on or off (and cancel a running pulse on it)."""

    @abstractmethod
    async def read_relays(self) -> tuple[bool, ...]:
        """The state of every relay, channel 1 first."""

    @abstractmethod
    async def read_inputs(self) -> tuple[bool, ...]:
        """The state of every input, input 1 first (empty for a board without inputs)."""
