"""Modbus relay boards: one driver class, parameterised by a vendor's command set (data).

A vendor module (waveshare.py, eletechsup.py, generic.py) describes how its boards are
spoken to as a ``CommandSet`` of pure PDU builders and parsers; ``ModbusRelayBoard`` sends
them over a ``Bus`` (RS485, RTU over TCP or Modbus TCP) at the right priority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

from doorkeep.errors import ConfigError
from drivers.base import RelayBoard
from rs485 import rtu
from rs485.bus import Bus, Priority

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["CommandSet", "ModbusRelayBoard", "modbus_factory"]


@dataclass(frozen=True, slots=True)
class CommandSet:
    """How to talk to one family of boards; every field is a pure function.

    Channels here are 0-based (the wire's view); the driver converts from 1-based.
    ``pulse`` is None when the board has no timer of its own (a software pulse is used).
    ``read_inputs`` is None when the family has no inputs.
    """

    set_relay: Callable[[int, bool], bytes]
    read_relays: Callable[[int], bytes]
    parse_relays: Callable[[bytes, bytes], tuple[bool, ...]]
    pulse: Callable[[int, int], bytes] | None = None
    read_inputs: Callable[[int], bytes] | None = None
    parse_inputs: Callable[[bytes, bytes], tuple[bool, ...]] | None = None

    def __post_init__(self) -> None:
        if (self.read_inputs is None) != (self.parse_inputs is None):
            raise ValueError("read_inputs and parse_inputs come together")


class ModbusRelayBoard(RelayBoard):
    """A relay/input board at ``address`` on ``bus``; owns the bus when ``owns_bus`` is set."""

    def __init__(
        self,
        board_id: str,
        type_name: str,
        *,
        bus: Bus,
        address: int,
        relays: int,
        inputs: int,
        commands: CommandSet,
        owns_bus: bool = False,
    ) -> None:
        super().__init__(board_id, type_name, relays, inputs)
        if not 0 <= address <= rtu.MAX_ADDRESS:
            raise ConfigError(
                f"board {board_id}: address {address} is outside 0..{rtu.MAX_ADDRESS}"
            )
        if inputs and commands.read_inputs is None:
            raise ConfigError(f"board {board_id}: type {type_name} has no inputs")
        self.bus = bus
        self.address = address
        self.commands = commands
        self._owns_bus = owns_bus
        bus.on_online_change(address, self._set_online)

    async def __aenter__(self) -> Self:
        if self._owns_bus:
            await self.bus.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        if self._owns_bus:
            await self.bus.__aexit__(exc_type, exc, tb)

    async def _send(self, pdu: bytes, priority: Priority) -> bytes:
        return await self.bus.request(self.address, pdu, priority=priority)

    async def pulse(self, channel: int, ms: int) -> None:
        """Pulse with the board's own timer when it has one (the door relocks even if we die)."""
        index = self._relay_index(channel)
        self._check_ms(ms)
        if self.commands.pulse is None:
            await self._software_pulse(channel, ms)
            return
        self._cancel_soft_pulse(channel)
        await self._send(self.commands.pulse(index, ms), Priority.COMMAND)

    async def set_relay(self, channel: int, on: bool) -> None:
        """Switch one relay; a COMMAND, so it overtakes queued polls."""
        index = self._relay_index(channel)
        self._cancel_soft_pulse(channel)
        await self._send(self.commands.set_relay(index, on), Priority.COMMAND)

    async def read_relays(self) -> tuple[bool, ...]:
        """Relay states, channel 1 first."""
        request = self.commands.read_relays(self.relays)
        return self.commands.parse_relays(request, await self._send(request, Priority.POLL))

    async def read_inputs(self) -> tuple[bool, ...]:
        """Input states, input 1 first; () for a board without inputs."""
        if not self.inputs or self.commands.read_inputs is None:
            return ()
        assert self.commands.parse_inputs is not None
        request = self.commands.read_inputs(self.inputs)
        return self.commands.parse_inputs(request, await self._send(request, Priority.POLL))


Transport = Literal["rtu", "tcp", "rtu-tcp", "gpio"]


def modbus_factory(
    commands: CommandSet, relays: int, inputs: int, transport: Transport, default_port: int = 502
) -> Callable[..., RelayBoard]:
    """A catalogue factory for one Modbus board type on one transport."""

    def make(
        board_id: str,
        type_name: str,
        *,
        bus: Bus | None = None,
        address: int | None = None,
        host: str | None = None,
        port: int | None = None,
        **options: Any,
    ) -> RelayBoard:
        timeout_ms = int(options.pop("timeout_ms", 200))
        retries = int(options.pop("retries", 2))
        if options:
            raise ConfigError(f"board {board_id}: unknown option(s) {', '.join(sorted(options))}")
        if transport == "rtu":
            if bus is None or address is None:
                raise ConfigError(f"board {board_id}: type {type_name} needs `bus` and `address`")
            return ModbusRelayBoard(
                board_id,
                type_name,
                bus=bus,
                address=address,
                relays=relays,
                inputs=inputs,
                commands=commands,
            )
        if host is None:
            raise ConfigError(f"board {board_id}: type {type_name} needs `host`")
        link = Bus(
            board_id,
            f"tcp://{host}:{port or default_port}",
            framer="mbap" if transport == "tcp" else "rtu",
            timeout_ms=timeout_ms,
            retries=retries,
        )
        return ModbusRelayBoard(
            board_id,
            type_name,
            bus=link,
            address=1 if address is None else address,
            relays=relays,
            inputs=inputs,
            commands=commands,
            owns_bus=True,
        )

    return make
