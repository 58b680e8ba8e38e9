"""The ``options`` of a ``type = "serial"`` reader (docs/site-config.md).

``port`` (required) is the serial device; ``baudrate`` (9600); ``format``: ``rdm6300``
(125 kHz UART modules, the default) or ``wiegand-text`` (a Wiegand-to-serial converter);
``digits``: ``hex`` (default) or ``decimal``, how a converter's digit-only lines are read;
``repeat_ms`` (1000): a card read again within this time of its last copy is the same
presentation (a card held on the antenna opens once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edge.config.sections import BAUDRATES

FORMATS: Final = ("rdm6300", "wiegand-text")
DIGITS: Final = ("hex", "decimal")
MAX_REPEAT_MS: Final = 10_000


@dataclass(frozen=True, slots=True)
class SerialReaderOptions:
    """A serial reader's options, checked."""

    port: str
    baudrate: int = 9600
    format: str = "rdm6300"
    digits: str = "hex"
    repeat_ms: int = 1000


def _check(key: str, value: Any) -> str | None:
    if key == "port":
        ok = isinstance(value, str) and value.strip() != ""
        return None if ok else 'must be the serial device, e.g. "/dev/ttyUSB0"'
    if key == "baudrate":
        ok = isinstance(value, int) and not isinstance(value, bool) and value in BAUDRATES
        return None if ok else f"must be one of {', '.join(map(str, BAUDRATES))}"
    if key == "format":
        return None if value in FORMATS else f"must be one of {', '.join(FORMATS)}"
    if key == "digits":
        return None if value in DIGITS else f"must be one of {', '.join(DIGITS)}"
    if key == "repeat_ms":
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and 0 <= value <= MAX_REPEAT_MS
        return None if ok else f"must be a whole number of milliseconds, 0-{MAX_REPEAT_MS}"
    known = ", ".join(SerialReaderOptions.__dataclass_fields__)
    return f"is not a serial reader option; known: {known}"


def serial_problems(options: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(key, what is wrong)`` for each bad option of a serial reader."""
    options = options or {}
    problems = [(f"options.{k}", m) for k, v in options.items() if (m := _check(k, v))]
    if "port" not in options:
        problems.append(("options.port", 'is missing; say which device, e.g. "/dev/ttyUSB0"'))
    return problems


def serial_options(options: Mapping[str, Any]) -> SerialReaderOptions:
    """The options of a reader that passed :func:`serial_problems`."""
    return SerialReaderOptions(**dict(options))
