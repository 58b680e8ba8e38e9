"""The board catalogue: every supported board type, as data.

Adding a board type is one small module that exports ``BOARD_TYPES`` (a tuple of
``BoardType``) and one line in ``_MODULES`` below; see docs/hardware.md.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from doorkeep.errors import ConfigError
from drivers import eletechsup, generic, gpio, waveshare
from drivers.boardtype import BoardType

if TYPE_CHECKING:
    from collections.abc import Mapping

    from drivers.base import RelayBoard
    from rs485.bus import Bus

__all__ = ["BOARD_TYPES", "BoardType", "list_board_types", "open_board"]

_MODULES = (waveshare, eletechsup, generic, gpio)


def _collect() -> Mapping[str, BoardType]:
    table: dict[str, BoardType] = {}
    for module in _MODULES:
        for entry in module.BOARD_TYPES:
            if entry.name in table:
                raise ValueError(f"board type {entry.name} is declared twice")
            table[entry.name] = entry
    return MappingProxyType(dict(sorted(table.items())))


BOARD_TYPES: Mapping[str, BoardType] = _collect()


def list_board_types() -> list[dict[str, Any]]:
    """Rows for ``doorkeep boards``: name, description, relays, inputs, transport, own_timer."""
    return [entry.as_dict() for entry in BOARD_TYPES.values()]


def open_board(
    board_id: str,
    type_name: str,
    *,
    bus: Bus | None = None,
    address: int | None = None,
    host: str | None = None,
    port: int | None = None,
    **options: Any,
) -> RelayBoard:
    """Make the driver for one configured board; use the result as ``async with``.

    RS485 types need ``bus`` and ``address``; Ethernet types need ``host`` (``port``
    defaults to the type's usual one); ``gpio`` takes its lines as options. Raises
    ConfigError naming the board and what to change.
    """
    entry = BOARD_TYPES.get(type_name)
    if entry is None:
        known = ", ".join(BOARD_TYPES)
        raise ConfigError(f"board {board_id}: unknown type {type_name!r}; known types: {known}")
    return entry.factory(
        board_id, type_name, bus=bus, address=address, host=host, port=port, **options
    )
