"""A generic Modbus coil/discrete-input board with configurable addresses, on an RS485
bus (``modbus-generic``) or on the network as Modbus TCP (``modbus-tcp-generic``, and the
fixed-shape ``modbus-tcp-relay-8`` and ``modbus-tcp-relay-4``).

Only standard Modbus goes on the wire: FC05 with 0xFF00 (on) or 0x0000 (off), FC01 and
FC02 to read. A pulse is on, a timer in doorkeep, off (no vendor "flash" values).

Relays are coils ``coil_base + n`` (FC05 0xFF00/0x0000, FC01 to read back), inputs are
discrete inputs ``input_base + n`` (FC02). No timer of its own is assumed, so pulses are
timed by the daemon (the relay stays on if the daemon dies mid-pulse: prefer a board with
its own timer for locks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from doorkeep.errors import ConfigError
from drivers.boardtype import BoardType
from drivers.modbus import CommandSet, ModbusRelayBoard
from rs485 import rtu
from rs485.bus import Bus

if TYPE_CHECKING:
    from drivers.base import RelayBoard

__all__ = ["BOARD_TYPES", "generic_commands", "standard_tcp"]


def generic_commands(coil_base: int = 0, input_base: int = 0) -> CommandSet:
    """The command set of a plain coil board whose first relay/input sit at the given bases."""
    return CommandSet(
        set_relay=lambda ch, on: rtu.pdu_write_coil(coil_base + ch, 0xFF00 if on else 0),
        read_relays=lambda n: rtu.pdu_read_bits(1, coil_base, n),
        parse_relays=rtu.parse_bits,
        read_inputs=lambda n: rtu.pdu_read_bits(2, input_base, n),
        parse_inputs=rtu.parse_bits,
    )


def _option(board_id: str, options: dict[str, Any], key: str, default: int, hi: int) -> int:
    value = options.pop(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
        raise ConfigError(f"board {board_id}: `{key}` = {value!r} must be an integer 0..{hi}")
    return value


def make_generic(
    board_id: str,
    type_name: str,
    *,
    bus: Bus | None = None,
    address: int | None = None,
    host: str | None = None,
    port: int | None = None,
    **options: Any,
) -> RelayBoard:
    """``modbus-generic`` on an RS485 bus; options relays, inputs, coil_base, input_base."""
    del host, port  # RS485 only; Ethernet boards have their own types
    if bus is None or address is None:
        raise ConfigError(f"board {board_id}: type {type_name} needs `bus` and `address`")
    relays = _option(board_id, options, "relays", 8, 256)
    inputs = _option(board_id, options, "inputs", 0, 256)
    coil_base = _option(board_id, options, "coil_base", 0, 0xFFFF)
    input_base = _option(board_id, options, "input_base", 0, 0xFFFF)
    if options:
        raise ConfigError(f"board {board_id}: unknown option(s) {', '.join(sorted(options))}")
    return ModbusRelayBoard(
        board_id,
        type_name,
        bus=bus,
        address=address,
        relays=relays,
        inputs=inputs,
        commands=generic_commands(coil_base, input_base),
    )


def make_generic_tcp(
    board_id: str,
    type_name: str,
    *,
    bus: Bus | None = None,
    address: int | None = None,
    host: str | None = None,
    port: int | None = None,
    **options: Any,
) -> RelayBoard:
    """``modbus-tcp-generic``: a plain Modbus TCP coil board at ``host:port`` (default 502).

    ``address`` is the unit id (default 1); options relays, inputs, coil_base, input_base,
    timeout_ms, retries.
    """
    del bus  # the board owns its TCP link
    if host is None:
        raise ConfigError(f"board {board_id}: type {type_name} needs `host`")
    relays = _option(board_id, options, "relays", 8, 256)
    inputs = _option(board_id, options, "inputs", 0, 256)
    coil_base = _option(board_id, options, "coil_base", 0, 0xFFFF)
    input_base = _option(board_id, options, "input_base", 0, 0xFFFF)
    timeout_ms = _option(board_id, options, "timeout_ms", 200, 60_000)
    retries = _option(board_id, options, "retries", 2, 10)
    if options:
        raise ConfigError(f"board {board_id}: unknown option(s) {', '.join(sorted(options))}")
    link = Bus(
        board_id,
        f"tcp://{host}:{port or 502}",
        framer="mbap",
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
        commands=generic_commands(coil_base, input_base),
        owns_bus=True,
    )


def standard_tcp(relays: int, inputs: int) -> Callable[..., RelayBoard]:
    """A fixed-shape standard Modbus TCP board: ``modbus-tcp-generic`` with set counts."""

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
        for key in ("relays", "inputs"):
            if key in options:
                raise ConfigError(
                    f"board {board_id}: type {type_name} has {relays} relays and {inputs} "
                    f"inputs; `{key}` is an option of modbus-tcp-generic"
                )
        return make_generic_tcp(
            board_id,
            type_name,
            bus=bus,
            address=address,
            host=host,
            port=port,
            relays=relays,
            inputs=inputs,
            **options,
        )

    return make


BOARD_TYPES = (
    BoardType(
        "modbus-generic",
        "Generic Modbus RTU coil/discrete-input board (options: relays, inputs, coil_base, "
        "input_base); pulses timed by the daemon",
        8,
        0,
        "rtu",
        make_generic,
        configurable=True,
    ),
    BoardType(
        "modbus-tcp-generic",
        "Generic Modbus TCP coil/discrete-input board (options: relays, inputs, coil_base, "
        "input_base, timeout_ms, retries); pulses timed by the daemon",
        8,
        0,
        "tcp",
        make_generic_tcp,
        configurable=True,
    ),
    BoardType(
        "modbus-tcp-relay-8",
        "Standard Modbus TCP board, 8 relays (coils 0-7) + 8 inputs (discrete inputs 0-7); "
        "FC05 0xFF00/0x0000, pulses timed by the daemon",
        8,
        8,
        "tcp",
        standard_tcp(8, 8),
    ),
    BoardType(
        "modbus-tcp-relay-4",
        "Standard Modbus TCP board, 4 relays (coils 0-3) + 4 inputs (discrete inputs 0-3), "
        "e.g. Ebyte ME31-AXAX4040; FC05 0xFF00/0x0000, pulses timed by the daemon",
        4,
        4,
        "tcp",
        standard_tcp(4, 4),
    ),
)
