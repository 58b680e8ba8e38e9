"""Relays and inputs on the gateway's own GPIO lines (libgpiod v2).

``gpiod`` is imported only when a GPIO board is opened on a real chip path, so nothing else
needs it installed. The driver talks to a small ``GpioChip`` interface of ours;
``MemoryGpioChip`` implements it in memory for tests and the demo.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol, Self

from doorkeep.errors import ConfigError, DeviceError
from drivers.base import RelayBoard
from drivers.boardtype import BoardType

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

__all__ = ["BOARD_TYPES", "GpioBoard", "GpioChip", "MemoryGpioChip"]


class GpioChip(Protocol):
    """The few chip operations the driver needs; offsets are the chip's line numbers."""

    def request(self, outputs: Sequence[int], inputs: Sequence[int]) -> None:
        """Claim the lines (outputs start inactive)."""

    def set_value(self, offset: int, active: bool) -> None:
        """Drive an output line."""

    def get_value(self, offset: int) -> bool:
        """Read a line."""

    def close(self) -> None:
        """Release the lines."""


class MemoryGpioChip:
    """A GpioChip in memory: ``lines[offset]`` is the level; ``set_input`` simulates a switch."""

    def __init__(self) -> None:
        self.lines: dict[int, bool] = {}
        self.outputs: set[int] = set()
        self.closed = False

    def request(self, outputs: Sequence[int], inputs: Sequence[int]) -> None:
        """Claim lines; outputs start low."""
        self.outputs = set(outputs)
        for offset in (*outputs, *inputs):
            self.lines.setdefault(offset, False)
        for offset in outputs:
            self.lines[offset] = False

    def set_value(self, offset: int, active: bool) -> None:
        """Drive an output."""
        if offset not in self.outputs:
            raise DeviceError(f"line {offset} is not an output")
        self.lines[offset] = active

    def get_value(self, offset: int) -> bool:
        """Read a line."""
        return self.lines[offset]

    def set_input(self, offset: int, active: bool) -> None:
        """Simulate the outside world changing an input line."""
        self.lines[offset] = active

    def close(self) -> None:
        """Release the lines."""
        self.closed = True


class _GpiodChip:
    """GpioChip on libgpiod v2 (imported here, and only here, when first used)."""

    def __init__(self, path: str, consumer: str) -> None:
        self._path = path
        self._consumer = consumer
        self._request: Any = None

    def request(self, outputs: Sequence[int], inputs: Sequence[int]) -> None:
        try:
            import gpiod  # noqa: PLC0415 - optional hardware dependency, see module doc
            from gpiod.line import Direction, Value  # noqa: PLC0415
        except ImportError as err:
            raise ConfigError(
                "GPIO boards need the gpiod package (pip install 'doorkeep[gpio]')"
            ) from err
        self._value = Value
        config: dict[Any, Any] = {
            tuple(outputs): gpiod.LineSettings(
                direction=Direction.OUTPUT, output_value=Value.INACTIVE
            ),
        }
        if inputs:
            config[tuple(inputs)] = gpiod.LineSettings(direction=Direction.INPUT)
        try:
            self._request = gpiod.request_lines(self._path, consumer=self._consumer, config=config)
        except OSError as err:
            raise DeviceError(f"cannot claim GPIO lines on {self._path}: {err}") from err

    def set_value(self, offset: int, active: bool) -> None:
        self._request.set_value(offset, self._value.ACTIVE if active else self._value.INACTIVE)

    def get_value(self, offset: int) -> bool:
        return bool(self._request.get_value(offset) == self._value.ACTIVE)

    def close(self) -> None:
        if self._request is not None:
            self._request.release()
            self._request = None


class GpioBoard(RelayBoard):
    """Relays on output lines, inputs on input lines; ``active_low`` inverts both."""

    def __init__(
        self,
        board_id: str,
        type_name: str,
        *,
        chip: GpioChip,
        relay_lines: Sequence[int],
        input_lines: Sequence[int] = (),
        active_low: bool = False,
    ) -> None:
        super().__init__(board_id, type_name, len(relay_lines), len(input_lines))
        lines = [*relay_lines, *input_lines]
        if len(set(lines)) != len(lines):
            raise ConfigError(f"board {board_id}: a GPIO line is used twice in {lines}")
        self._chip = chip
        self._relay_lines = tuple(relay_lines)
        self._input_lines = tuple(input_lines)
        self._active_low = active_low

    async def __aenter__(self) -> Self:
        self._chip.request(self._relay_lines, self._input_lines)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        self._chip.close()

    async def pulse(self, channel: int, ms: int) -> None:
        """GPIO has no timer of its own: the daemon times the pulse."""
        self._relay_index(channel)
        self._check_ms(ms)
        await self._software_pulse(channel, ms)

    async def set_relay(self, channel: int, on: bool) -> None:
        """Drive the relay's line (inverted when active_low)."""
        line = self._relay_lines[self._relay_index(channel)]
        self._cancel_soft_pulse(channel)
        self._chip.set_value(line, on != self._active_low)
        await asyncio.sleep(0)

    async def read_relays(self) -> tuple[bool, ...]:
        """Relay states as driven."""
        return tuple(self._chip.get_value(x) != self._active_low for x in self._relay_lines)

    async def read_inputs(self) -> tuple[bool, ...]:
        """Input line states (inverted when active_low)."""
        return tuple(self._chip.get_value(x) != self._active_low for x in self._input_lines)


def make_gpio(
    board_id: str,
    type_name: str,
    *,
    bus: object = None,
    address: int | None = None,
    host: str | None = None,
    port: int | None = None,
    **options: Any,
) -> RelayBoard:
    """``gpio``: options ``chip`` (path such as /dev/gpiochip0, or a GpioChip object),
    ``relay_lines``, ``input_lines`` (lists of line offsets), ``active_low``."""
    del bus, address, host, port
    chip = options.pop("chip", "/dev/gpiochip0")
    relay_lines = options.pop("relay_lines", [])
    input_lines = options.pop("input_lines", [])
    active_low = bool(options.pop("active_low", False))
    if options:
        raise ConfigError(f"board {board_id}: unknown option(s) {', '.join(sorted(options))}")
    for key, lines in (("relay_lines", relay_lines), ("input_lines", input_lines)):
        if not isinstance(lines, list | tuple) or not all(
            isinstance(x, int) and x >= 0 for x in lines
        ):
            raise ConfigError(f"board {board_id}: `{key}` must be a list of line numbers")
    if not relay_lines and not input_lines:
        raise ConfigError(f"board {board_id}: a GPIO board needs `relay_lines` or `input_lines`")
    real_chip: GpioChip = (
        _GpiodChip(chip, f"doorkeep-{board_id}") if isinstance(chip, str) else chip
    )
    return GpioBoard(
        board_id,
        type_name,
        chip=real_chip,
        relay_lines=relay_lines,
        input_lines=input_lines,
        active_low=active_low,
    )


BOARD_TYPES = (
    BoardType(
        "gpio",
        "Relays and inputs on the gateway's GPIO lines (libgpiod; options: chip, relay_lines, "
        "input_lines, active_low); pulses timed by the daemon",
        0,
        0,
        "gpio",
        make_gpio,
        configurable=True,
    ),
)
