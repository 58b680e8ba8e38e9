"""The key tables of site.toml: per table, each allowed key with its type, default and
value check. ``validate`` walks a parsed file against them; the installer UI reads
``BOARD_KEYS`` for its forms.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from doorkeep.web.hosts import check_host_name
from doorkeep.web.listen import parse_listen
from edge.config.parking import WHEN_FULL
from edge.config.sections import (
    BAUDRATES,
    BUS_PROTOCOLS,
    DIRECTIONS,
    DOOR_KINDS,
    FAIL_MODES,
    ID_RE,
    INPUT_ACTIVE,
    INPUT_FUNCTIONS,
    INPUT_MODES,
    OUTPUT_FUNCTIONS,
    PARITIES,
    READER_TYPES,
)

REQUIRED: Final = object()


@dataclass(frozen=True, slots=True)
class Key:
    """One allowed key: its TOML type, default, and an optional value check.

    ``check`` returns what is wrong (phrased to follow "must ...") or None.
    """

    types: tuple[type, ...]
    default: Any = REQUIRED
    check: Callable[[Any], str | None] | None = None


#: check -> the JSON Schema words it amounts to (the REST API's HardwareConfig schema)
CHECK_SCHEMAS: dict[Callable[[Any], str | None], dict[str, Any]] = {}


def _one_of(options: Collection[Any]) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(map(str, options))}"

    CHECK_SCHEMAS[check] = {"enum": list(options)}
    return check


def _between(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"

    CHECK_SCHEMAS[check] = {"minimum": lo, "maximum": hi}
    return check


def _id_check(v: Any) -> str | None:
    if ID_RE.match(v):
        return None
    return "must be 1-63 characters of lowercase a-z, 0-9 and '-', starting with a letter or digit"


def _nonempty(v: Any) -> str | None:
    return None if v.strip() else "must not be empty"


CHECK_SCHEMAS[_nonempty] = {"pattern": "\\S"}
CHECK_SCHEMAS[_id_check] = {"pattern": ID_RE.pattern}


def _listen_check(v: Any) -> str | None:
    try:
        parse_listen(v)
    except ValueError as err:
        return str(err)
    return None


def _hosts_check(v: Any) -> str | None:
    bad = [h for h in v if check_host_name(h)]
    if bad:
        return (
            'must be a list of host names like "doors.example.org" (no scheme, no port); '
            f"{bad[0]!r} is not one"
        )
    return None


def _url_check(*schemes: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        try:
            parts = urlsplit(v)
            port_ok = parts.port is None or 1 <= parts.port <= 65535
        except ValueError:
            port_ok = False
            parts = None
        if parts is None or parts.scheme not in schemes or not parts.hostname or not port_ok:
            return f'must be a URL like "{schemes[0]}://host:port"'
        return None

    return check


def _prefix_check(v: Any) -> str | None:
    if not v or v.startswith("/") or v.endswith("/") or "+" in v or "#" in v:
        return "must be a topic prefix like \"doorkeep\" (no '+', '#', or leading/trailing '/')"
    return None


STR, INT, BOOL, LIST, TABLE = (str,), (int,), (bool,), (list,), (dict,)

TABLES: Final[dict[str, dict[str, Key]]] = {
    "site": {
        "id": Key(STR, check=_id_check),
        "name": Key(STR, None),
        "timezone": Key(STR),
        "data_dir": Key(STR, "data", _nonempty),
        "simulation": Key(BOOL, default=False),
    },
    "web": {
        "listen": Key(STR, "127.0.0.1:8080", _listen_check),
        "tls": Key(BOOL, default=False),
        "allowed_hosts": Key(LIST, None, _hosts_check),
    },
    "mqtt": {
        "url": Key(STR, check=_url_check("mqtt", "mqtts")),
        "topic_prefix": Key(STR, "doorkeep", _prefix_check),
        "homeassistant": Key(BOOL, default=True),
        "allow_commands": Key(BOOL, default=False),
        "client_id": Key(STR, None),
    },
    "cloud": {
        "url": Key(STR, check=_url_check("https", "http")),
    },
    "bus": {
        "id": Key(STR, check=_id_check),
        "port": Key(STR, check=_nonempty),
        "baudrate": Key(INT, 9600, _one_of(BAUDRATES)),
        "parity": Key(STR, "N", _one_of(PARITIES)),
        "stopbits": Key(INT, 1, _one_of((1, 2))),
        "timeout_ms": Key(INT, 200, _between(10, 10_000)),
        "retries": Key(INT, 2, _between(0, 10)),
        "protocol": Key(STR, "modbus", _one_of(BUS_PROTOCOLS)),
    },
    "board": {
        "id": Key(STR, check=_id_check),
        "type": Key(STR, check=_nonempty),
        "name": Key(STR, None),
        "bus": Key(STR, None),
        "address": Key(INT, None, _between(1, 247)),
        "host": Key(STR, None, _nonempty),
        "port": Key(INT, None, _between(1, 65535)),
        "options": Key(TABLE, None),
    },
    "door": {
        "id": Key(STR, check=_id_check),
        "name": Key(STR, None),
        "relay": Key(STR),
        "pulse_ms": Key(INT, 3000, _between(100, 60_000)),
        "contact": Key(STR, None),
        "exit_button": Key(STR, None),
        "held_open_s": Key(INT, 60, _between(0, 86_400)),
        "prealarm_s": Key(INT, 10, _between(0, 3600)),
        "methods": Key(LIST),
        "building": Key(STR, None, _nonempty),
        "fail_mode": Key(STR, "secure", _one_of(FAIL_MODES)),
        "kind": Key(STR, "door", _one_of(DOOR_KINDS)),
        "anti_passback": Key(BOOL, default=False),
    },
    "reader": {
        "id": Key(STR, check=_id_check),
        "name": Key(STR, None),
        "door": Key(STR),
        "type": Key(STR, check=_one_of(READER_TYPES)),
        "direction": Key(STR, "in", _one_of(DIRECTIONS)),
        "options": Key(TABLE, None),
        "bus": Key(STR, None),
        "address": Key(INT, None, _between(0, 126)),
        "secure": Key(BOOL, default=True),
    },
    "output": {
        "id": Key(STR, check=_id_check),
        "name": Key(STR, None),
        "relay": Key(STR),
        "function": Key(STR, "other", _one_of(OUTPUT_FUNCTIONS)),
        "floor": Key(STR, None),
        "building": Key(STR, None, _nonempty),
        "door": Key(STR, None),
    },
    "input": {
        "id": Key(STR, check=_id_check),
        "name": Key(STR, None),
        "input": Key(STR),
        "function": Key(STR, check=_one_of(INPUT_FUNCTIONS)),
        "active": Key(STR, "closed", _one_of(INPUT_ACTIVE)),
        "mode": Key(STR, "momentary", _one_of(INPUT_MODES)),
    },
    "parking": {  # edge/config/parking.py
        "id": Key(STR, check=_id_check),
        "name": Key(STR, None),
        "capacity": Key(INT, check=_between(1, 100_000)),
        "entry": Key(LIST),
        "exit": Key(LIST, None),
        "when_full": Key(STR, "refuse", _one_of(WHEN_FULL)),
    },
}
#: Keys a ``[[board]]`` may carry (for the installer UI's forms).
BOARD_KEYS: Final = tuple(TABLES["board"])
SINGLE: Final = ("site", "web", "mqtt", "cloud", "notify")
ARRAYS: Final = ("bus", "board", "door", "reader", "output", "input", "parking")
TYPE_NAMES: Final = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
TYPE_NAMES_TABLE: Final = "a table like { key = value }"
