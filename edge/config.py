"""site.toml: the hardware and services of one site, parsed and validated.

The file is read with :mod:`tomllib`, checked against a table of known keys per table and
then cross-checked (references between tables, uniqueness, simulation-only values). Every
problem is collected, so an installer sees the whole list at once, one per line, each
naming the file, the table (``[[door]] "gate"``) and the key, with what to change.

Writing goes the other way for the installer UI: :func:`render_site_toml` turns a config
dict into TOML, :func:`write_site_toml` validates that text by parsing it and then
replaces the file atomically, keeping the previous version as ``site.toml.bak``.

The full reference of the keys is docs/site-config.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from doorkeep import policydoc
from doorkeep.errors import ConfigError

__all__ = [
    "BOARD_KEYS",
    "CREDENTIAL_METHODS",
    "BoardSection",
    "BusSection",
    "CloudSection",
    "DoorSection",
    "InputRef",
    "MqttSection",
    "OutputSection",
    "ReaderSection",
    "RelayRef",
    "SiteConfig",
    "SiteConfigError",
    "SiteSection",
    "WebSection",
    "default_site_dict",
    "load_site_config",
    "parse_site_config",
    "render_site_toml",
    "write_site_toml",
]

#: Credential kinds a door may accept (``methods``); ``remote`` is an operator's unlock.
CREDENTIAL_METHODS: Final[tuple[str, ...]] = (*policydoc.CREDENTIAL_KINDS, "remote", "temp_key")
READER_TYPES: Final = ("sim", "osdp", "serial", "mqtt", "http")
DOOR_KINDS: Final = ("door", "amenity", "lift")
FAIL_MODES: Final = ("secure", "safe")
DIRECTIONS: Final = ("in", "out")
OUTPUT_FUNCTIONS: Final = ("door", "light", "floor", "other")
BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES: Final = ("N", "E", "O")
SIM_PORT: Final = "sim"

#: The board catalogue as the loader accepts it: type names; name -> relay count; or
#: name -> an entry with ``relays``, ``inputs``, ``transport`` and ``configurable``
#: attributes (``drivers.catalogue.BOARD_TYPES`` as it is).
BoardTypes = Collection[str] | Mapping[str, Any]

_ID_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
_RELAY_RE: Final = re.compile(r"^(?P<board>[^:\s]+):(?P<n>[0-9]+)$")
_INPUT_RE: Final = re.compile(r"^(?P<board>[^:\s]+):in(?P<n>[0-9]+)$")
_FLOOR_RE: Final = re.compile(r"^(?:-?[0-9]{1,3}|G[0-2])$")
_MIN_FLOOR, _MAX_FLOOR = -10, 128


# -- values --------------------------------------------------------------------------------


def _check_id(what: str, value: str) -> None:
    if not _ID_RE.match(value):
        raise ValueError(f"{what} {value!r} must be 1-63 characters of a-z, 0-9 and '-'")


@dataclass(frozen=True, slots=True)
class RelayRef:
    """A relay channel on a board, written ``"board:channel"`` (channels count from 1)."""

    board: str
    channel: int

    def __post_init__(self) -> None:
        if self.channel < 1:
            raise ValueError(f"relay channel {self.channel} must be 1 or more")

    def __str__(self) -> str:
        return f"{self.board}:{self.channel}"


@dataclass(frozen=True, slots=True)
class InputRef:
    """A digital input on a board, written ``"board:inN"`` (inputs count from 1)."""

    board: str
    input: int

    def __post_init__(self) -> None:
        if self.input < 1:
            raise ValueError(f"input number {self.input} must be 1 or more")

    def __str__(self) -> str:
        return f"{self.board}:in{self.input}"


@dataclass(frozen=True, slots=True)
class SiteSection:
    """``[site]``: who the site is and where it keeps its data."""

    id: str
    name: str
    timezone: str
    data_dir: Path  # resolved against the directory of site.toml
    simulation: bool = False

    def __post_init__(self) -> None:
        _check_id("site id", self.id)

    @property
    def tz(self) -> ZoneInfo:
        """The site's IANA zone: the one source of truth for wall-clock times."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class WebSection:
    """``[web]``: the installer UI and REST API."""

    listen: str = "127.0.0.1:8080"
    tls: bool = False
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        host, port = _split_listen(self.listen)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)


@dataclass(frozen=True, slots=True)
class MqttSection:
    """``[mqtt]``: the optional MQTT bridge."""

    url: str
    topic_prefix: str = "doorkeep"
    homeassistant: bool = True
    allow_commands: bool = False
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class CloudSection:
    """``[cloud]``: the cloud this site is enrolled with (written by ``doorkeep enroll``).

    Keys other than ``url`` are kept in ``extra`` untouched: they belong to the enrolment
    code, which may add what it needs without a change here.
    """

    url: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BusSection:
    """``[[bus]]``: one serial port (or ``"sim"``, an in-process simulated bus)."""

    id: str
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    timeout_ms: int = 200
    retries: int = 2

    def __post_init__(self) -> None:
        _check_id("bus id", self.id)

    @property
    def simulated(self) -> bool:
        return self.port == SIM_PORT


@dataclass(frozen=True, slots=True)
class BoardSection:
    """``[[board]]``: a relay/input device on a bus, on the network, or on the GPIO chip."""

    id: str
    type: str
    bus: str | None = None
    address: int | None = None
    host: str | None = None
    port: int | None = None
    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("board id", self.id)


@dataclass(frozen=True, slots=True)
class DoorSection:
    """``[[door]]``: a lock relay with its optional contact and exit button."""

    id: str
    name: str
    relay: RelayRef
    methods: tuple[str, ...]
    pulse_ms: int = 3000
    contact: InputRef | None = None
    exit_button: InputRef | None = None
    held_open_s: int = 60
    prealarm_s: int = 10
    building: str | None = None
    fail_mode: str = "secure"
    kind: str = "door"
    anti_passback: bool = False

    def __post_init__(self) -> None:
        _check_id("door id", self.id)
        if self.fail_mode not in FAIL_MODES:
            raise ValueError(f"door {self.id!r}: fail_mode {self.fail_mode!r} is not secure/safe")
        if self.kind not in DOOR_KINDS:
            raise ValueError(f"door {self.id!r}: kind {self.kind!r} is not one of {DOOR_KINDS}")


@dataclass(frozen=True, slots=True)
class ReaderSection:
    """``[[reader]]``: a credential reader feeding a door."""

    id: str
    door: str
    type: str
    direction: str = "in"
    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("reader id", self.id)


@dataclass(frozen=True, slots=True)
class OutputSection:
    """``[[output]]``: a relay that is not a lock (light, lift floor, ...)."""

    id: str
    relay: RelayRef
    function: str = "other"
    floor: str | None = None
    building: str | None = None
    door: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        _check_id("output id", self.id)


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """A validated site.toml. ``raw`` is the parsed TOML, for editing and writing back."""

    path: Path
    site: SiteSection
    web: WebSection
    mqtt: MqttSection | None
    cloud: CloudSection | None
    buses: tuple[BusSection, ...]
    boards: tuple[BoardSection, ...]
    doors: tuple[DoorSection, ...]
    readers: tuple[ReaderSection, ...]
    outputs: tuple[OutputSection, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tz(self) -> ZoneInfo:
        return self.site.tz

    def bus(self, bus_id: str) -> BusSection:
        """The bus with this id (KeyError if none)."""
        return _by_id(self.buses, bus_id)

    def board(self, board_id: str) -> BoardSection:
        """The board with this id (KeyError if none)."""
        return _by_id(self.boards, board_id)

    def door(self, door_id: str) -> DoorSection:
        """The door with this id (KeyError if none)."""
        return _by_id(self.doors, door_id)

    def reader(self, reader_id: str) -> ReaderSection:
        """The reader with this id (KeyError if none)."""
        return _by_id(self.readers, reader_id)

    def floors_of(self, door_id: str) -> tuple[str, ...]:
        """Floors a lift door can enable: its ``function = "floor"`` outputs.

        An output names its lift with ``door``; an output without ``door`` serves every
        lift of its ``building``.
        """
        door = self.door(door_id)
        return tuple(
            o.floor
            for o in self.outputs
            if o.function == "floor"
            and o.floor is not None
            and (o.door == door_id or (o.door is None and o.building == door.building))
        )


_T = TypeVar("_T", BusSection, BoardSection, DoorSection, ReaderSection)


def _by_id(items: tuple[_T, ...], key: str) -> _T:
    for item in items:
        if item.id == key:
            return item
    raise KeyError(key)


class SiteConfigError(ConfigError):
    """site.toml is invalid; ``problems`` lists every problem, one line each."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        n = len(problems)
        head = f"{path}: {n} problem{'s' if n != 1 else ''} in the site configuration:"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))
        self.path = Path(path)
        self.problems = problems


# -- the key tables -----------------------------------------------------------------------

_REQUIRED: Final = object()


@dataclass(frozen=True, slots=True)
class _Key:
    """One allowed key: its TOML type, default, and an optional value check.

    ``check`` returns what is wrong (phrased to follow "must ...") or None.
    """

    types: tuple[type, ...]
    default: Any = _REQUIRED
    check: Callable[[Any], str | None] | None = None


def _one_of(options: Collection[Any]) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {', '.join(map(str, options))}"

    return check


def _between(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"

    return check


def _id_check(v: Any) -> str | None:
    if _ID_RE.match(v):
        return None
    return "must be 1-63 characters of lowercase a-z, 0-9 and '-', starting with a letter or digit"


def _nonempty(v: Any) -> str | None:
    return None if v.strip() else "must not be empty"


def _listen_check(v: Any) -> str | None:
    try:
        _split_listen(v)
    except ValueError as err:
        return str(err)
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

_TABLES: Final[dict[str, dict[str, _Key]]] = {
    "site": {
        "id": _Key(STR, check=_id_check),
        "name": _Key(STR, None),
        "timezone": _Key(STR),
        "data_dir": _Key(STR, "data", _nonempty),
        "simulation": _Key(BOOL, default=False),
    },
    "web": {
        "listen": _Key(STR, "127.0.0.1:8080", _listen_check),
        "tls": _Key(BOOL, default=False),
    },
    "mqtt": {
        "url": _Key(STR, check=_url_check("mqtt", "mqtts")),
        "topic_prefix": _Key(STR, "doorkeep", _prefix_check),
        "homeassistant": _Key(BOOL, default=True),
        "allow_commands": _Key(BOOL, default=False),
        "client_id": _Key(STR, None),
    },
    "cloud": {
        "url": _Key(STR, check=_url_check("https", "http")),
    },
    "bus": {
        "id": _Key(STR, check=_id_check),
        "port": _Key(STR, check=_nonempty),
        "baudrate": _Key(INT, 9600, _one_of(BAUDRATES)),
        "parity": _Key(STR, "N", _one_of(PARITIES)),
        "stopbits": _Key(INT, 1, _one_of((1, 2))),
        "timeout_ms": _Key(INT, 200, _between(10, 10_000)),
        "retries": _Key(INT, 2, _between(0, 10)),
    },
    "board": {
        "id": _Key(STR, check=_id_check),
        "type": _Key(STR, check=_nonempty),
        "name": _Key(STR, None),
        "bus": _Key(STR, None),
        "address": _Key(INT, None, _between(1, 247)),
        "host": _Key(STR, None, _nonempty),
        "port": _Key(INT, None, _between(1, 65535)),
        "options": _Key(TABLE, None),
    },
    "door": {
        "id": _Key(STR, check=_id_check),
        "name": _Key(STR, None),
        "relay": _Key(STR),
        "pulse_ms": _Key(INT, 3000, _between(100, 60_000)),
        "contact": _Key(STR, None),
        "exit_button": _Key(STR, None),
        "held_open_s": _Key(INT, 60, _between(0, 86_400)),
        "prealarm_s": _Key(INT, 10, _between(0, 3600)),
        "methods": _Key(LIST),
        "building": _Key(STR, None, _nonempty),
        "fail_mode": _Key(STR, "secure", _one_of(FAIL_MODES)),
        "kind": _Key(STR, "door", _one_of(DOOR_KINDS)),
        "anti_passback": _Key(BOOL, default=False),
    },
    "reader": {
        "id": _Key(STR, check=_id_check),
        "name": _Key(STR, None),
        "door": _Key(STR),
        "type": _Key(STR, check=_one_of(READER_TYPES)),
        "direction": _Key(STR, "in", _one_of(DIRECTIONS)),
        "options": _Key(TABLE, None),
    },
    "output": {
        "id": _Key(STR, check=_id_check),
        "name": _Key(STR, None),
        "relay": _Key(STR),
        "function": _Key(STR, "other", _one_of(OUTPUT_FUNCTIONS)),
        "floor": _Key(STR, None),
        "building": _Key(STR, None, _nonempty),
        "door": _Key(STR, None),
    },
}
#: Keys a ``[[board]]`` may carry (for the installer UI's forms).
BOARD_KEYS: Final = tuple(_TABLES["board"])
_SINGLE: Final = ("site", "web", "mqtt", "cloud")
_ARRAYS: Final = ("bus", "board", "door", "reader", "output")
_TYPE_NAMES: Final = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
_TYPE_NAMES_TABLE: Final = "a table like { key = value }"


# -- loading -------------------------------------------------------------------------------


def load_site_config(
    path: str | os.PathLike[str],
    *,
    board_types: BoardTypes | None = None,
) -> SiteConfig:
    """Read and validate site.toml; raise :class:`SiteConfigError` listing every problem.

    ``board_types`` is the drivers catalogue: the known board type names, a mapping of
    name to relay count (then relay channels are checked too), or
    ``drivers.catalogue.BOARD_TYPES`` itself (then relay channels, input numbers and
    how each board is attached are checked). ``None`` skips the board type checks.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SiteConfigError(
            p, [f"{p}: file not found; create one with `doorkeep init DIR` or pass -c PATH"]
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SiteConfigError(p, [f"{p}: cannot be read: {err}"]) from err
    return parse_site_config(text, p, board_types=board_types)


def parse_site_config(
    text: str,
    path: str | os.PathLike[str],
    *,
    board_types: BoardTypes | None = None,
) -> SiteConfig:
    """Validate site.toml text as if read from ``path`` (which anchors ``data_dir``)."""
    p = Path(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SiteConfigError(p, [f"{p}: not valid TOML: {err}"]) from err
    return _Validator(p, raw, board_types).run()


class _Validator:
    """Collects every problem in one parsed site.toml, then builds the SiteConfig."""

    def __init__(
        self,
        path: Path,
        raw: dict[str, Any],
        board_types: BoardTypes | None,
    ) -> None:
        self.path = path
        self.raw = raw
        self.board_types = board_types
        self.problems: list[str] = []
        self.board_type_of: dict[str, str | None] = {}

    def add(self, where: str, key: str | None, message: str) -> None:
        at = f"{where} key {key!r}" if key else where
        self.problems.append(f"{self.path}: {at}: {message}")

    # -- step 1: each table against its key table -----------------------------------------

    def table(self, name: str, where: str, raw: Any) -> dict[str, Any]:
        """Known keys with defaults filled in; a bad value is reported and becomes None."""
        spec = _TABLES[name]
        if not isinstance(raw, dict):
            self.add(where, None, f"must be a table, got {raw!r}")
            return dict.fromkeys(spec)
        out: dict[str, Any] = {}
        extra = {k: v for k, v in raw.items() if k not in spec}
        if extra and name != "cloud":
            for k in extra:
                self.add(where, k, f"is not a known key; known keys are {', '.join(spec)}")
        for key, rule in spec.items():
            if key not in raw:
                if rule.default is _REQUIRED:
                    self.add(where, key, "is missing")
                    out[key] = None
                else:
                    out[key] = rule.default
                continue
            value = raw[key]
            # bool is an int in Python, never in TOML.
            if not isinstance(value, rule.types) or (
                isinstance(value, bool) and bool not in rule.types
            ):
                want = _TYPE_NAMES.get(rule.types[0], _TYPE_NAMES_TABLE)
                self.add(where, key, f"must be {want}, got {value!r}")
                out[key] = None
                continue
            problem = rule.check(value) if rule.check else None
            if problem:
                self.add(where, key, f"{problem}; got {value!r}")
                out[key] = None
                continue
            out[key] = value
        if name == "cloud":
            out["extra"] = extra
        return out

    def array(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        raw = self.raw.get(name, [])
        if not isinstance(raw, list):
            self.add(f"[[{name}]]", None, f"must be written as [[{name}]] tables")
            return []
        items = []
        for i, item in enumerate(raw, 1):
            ident = item.get("id") if isinstance(item, dict) else None
            where = f'[[{name}]] "{ident}"' if isinstance(ident, str) else f"[[{name}]] #{i}"
            items.append((where, self.table(name, where, item)))
        seen: dict[str, str] = {}
        for where, values in items:
            ident = values.get("id")
            if ident is None:
                continue
            if ident in seen:
                self.add(where, "id", f"is used by more than one [[{name}]]; ids must be unique")
            seen[ident] = where
        return items

    # -- step 2: cross-checks ---------------------------------------------------------------

    def run(self) -> SiteConfig:
        for top in self.raw:
            if top not in _SINGLE and top not in _ARRAYS:
                known = ", ".join([*(f"[{t}]" for t in _SINGLE), *(f"[[{t}]]" for t in _ARRAYS)])
                self.add(f"[{top}]", None, f"is not a known table; known tables are {known}")
        if "site" not in self.raw:
            self.add("[site]", None, "is missing; it needs at least id and timezone")
        site = self.table("site", "[site]", self.raw.get("site", {}))
        web = self.table("web", "[web]", self.raw.get("web", {}))
        mqtt = self.table("mqtt", "[mqtt]", self.raw["mqtt"]) if "mqtt" in self.raw else None
        cloud = self.table("cloud", "[cloud]", self.raw["cloud"]) if "cloud" in self.raw else None
        buses = self.array("bus")
        boards = self.array("board")
        doors = self.array("door")
        readers = self.array("reader")
        outputs = self.array("output")

        if site["timezone"] is not None:
            try:
                ZoneInfo(site["timezone"])
            except (ZoneInfoNotFoundError, ValueError):
                site["timezone"] = None
                self.add(
                    "[site]",
                    "timezone",
                    f"{self.raw['site']['timezone']!r} is not an IANA time zone; "
                    'use a name like "Europe/Berlin" or "America/New_York"',
                )
        simulation = bool(site.get("simulation"))
        self.check_buses(buses, simulation)
        self.check_boards(boards, {v["id"] for _, v in buses if v["id"]})
        board_ids = {v["id"] for _, v in boards if v["id"]}
        self.board_type_of = {v["id"]: v["type"] for _, v in boards if v["id"]}
        relay_users: dict[RelayRef, str] = {}
        input_users: dict[InputRef, str] = {}
        self.check_doors(doors, board_ids, relay_users, input_users)
        door_kinds = {v["id"]: v["kind"] for _, v in doors if v["id"]}
        self.check_readers(readers, door_kinds, simulation)
        self.check_outputs(outputs, board_ids, door_kinds, relay_users)
        self.check_anti_passback(doors, readers)
        if self.problems:
            raise SiteConfigError(self.path, self.problems)
        return self.build(
            site=site,
            web=web,
            mqtt=mqtt,
            cloud=cloud,
            buses=buses,
            boards=boards,
            doors=doors,
            readers=readers,
            outputs=outputs,
        )

    def check_buses(self, buses: list[tuple[str, dict[str, Any]]], simulation: bool) -> None:
        ports: dict[str, str] = {}
        for where, b in buses:
            port = b["port"]
            if port == SIM_PORT and not simulation:
                self.add(
                    where,
                    "port",
                    '"sim" is a simulated bus, allowed only with [site] simulation = true; '
                    'use a serial device like "/dev/ttyUSB0"',
                )
            elif port is not None and port != SIM_PORT:
                if port in ports:
                    self.add(where, "port", f"{port!r} is already used by {ports[port]}")
                ports[port] = where

    def check_boards(self, boards: list[tuple[str, dict[str, Any]]], bus_ids: set[str]) -> None:
        addresses: dict[tuple[str, int], str] = {}
        types = self.board_types
        for where, b in boards:
            if types is not None and b["type"] is not None and b["type"] not in types:
                self.add(
                    where,
                    "type",
                    f"{b['type']!r} is not a known board type; `doorkeep boards` lists them "
                    f"({', '.join(sorted(types))})",
                )
            if b["bus"] is not None:
                if b["bus"] not in bus_ids:
                    self.add(where, "bus", f"{b['bus']!r} is not {_known('[[bus]]', bus_ids)}")
                if b["host"] is not None:
                    self.add(where, "host", "a board is either on a bus or on the network")
                if b["address"] is None and "address" not in self.problem_keys(where):
                    self.add(where, "address", "is missing; a board on a bus needs its address")
                elif b["address"] is not None:
                    slot = (b["bus"], b["address"])
                    if slot in addresses:
                        self.add(
                            where,
                            "address",
                            f"{b['address']} on bus {b['bus']!r} is already used by "
                            f"{addresses[slot]}",
                        )
                    addresses[slot] = where
            elif b["address"] is not None:
                self.add(where, "address", "only boards on a bus have an address; add bus = ...")
            if b["port"] is not None and b["host"] is None:
                self.add(where, "port", "only network boards have a port; add host = ...")
            self.check_attachment(where, b)

    def check_attachment(self, where: str, b: dict[str, Any]) -> None:
        """A board is attached the way its type's transport needs (when the type says)."""
        transport = _type_info(self.board_types, b["type"])[2]
        if transport == "rtu" and b["bus"] is None:
            self.add(where, "bus", f"is missing; a {b['type']} board sits on a [[bus]]")
        elif transport in {"tcp", "rtu-tcp"} and b["host"] is None:
            self.add(where, "host", f"is missing; a {b['type']} board is on the network")
        elif transport == "gpio" and (b["bus"] is not None or b["host"] is not None):
            self.add(where, "bus" if b["bus"] is not None else "host", "a gpio board has none")

    def problem_keys(self, where: str) -> str:
        return " ".join(p for p in self.problems if f"{where} key" in p)

    def relay(self, where: str, key: str, value: Any, board_ids: set[str]) -> RelayRef | None:
        if value is None:
            return None
        m = _RELAY_RE.match(value)
        if m is None:
            self.add(where, key, f'must be "board:channel" like "relays-a:1", got {value!r}')
            return None
        ref = RelayRef(m["board"], int(m["n"])) if int(m["n"]) >= 1 else None
        if ref is None:
            self.add(where, key, f"channel in {value!r} must be 1 or more (channels count from 1)")
            return None
        if ref.board not in board_ids:
            self.add(where, key, f"board {ref.board!r} is not {_known('[[board]]', board_ids)}")
            return None
        board_type = self.board_type_of.get(ref.board)
        count = self.relay_count(board_type)
        if count is not None and ref.channel > count:
            self.add(
                where,
                key,
                f"channel {ref.channel} is out of range: board {ref.board!r} "
                f"({board_type}) has relays 1..{count}",
            )
        return ref

    def input(self, where: str, key: str, value: Any, board_ids: set[str]) -> InputRef | None:
        if value is None:
            return None
        m = _INPUT_RE.match(value)
        if m is None or int(m["n"]) < 1:
            self.add(where, key, f'must be "board:inN" like "relays-a:in1", got {value!r}')
            return None
        ref = InputRef(m["board"], int(m["n"]))
        if ref.board not in board_ids:
            self.add(where, key, f"board {ref.board!r} is not {_known('[[board]]', board_ids)}")
            return None
        board_type = self.board_type_of.get(ref.board)
        count = _type_info(self.board_types, board_type)[1]
        if count == 0:
            self.add(
                where,
                key,
                f"board {ref.board!r} ({board_type}) has no inputs; wire it to a board with inputs",
            )
        elif count is not None and ref.input > count:
            self.add(
                where,
                key,
                f"input {ref.input} is out of range: board {ref.board!r} ({board_type}) "
                f"has inputs in1..in{count}",
            )
        return ref

    def relay_count(self, board_type: str | None) -> int | None:
        return _type_info(self.board_types, board_type)[0]

    def check_doors(
        self,
        doors: list[tuple[str, dict[str, Any]]],
        board_ids: set[str],
        relay_users: dict[RelayRef, str],
        input_users: dict[InputRef, str],
    ) -> None:
        for where, d in doors:
            d["relay"] = self.relay(where, "relay", d["relay"], board_ids)
            self.claim(where, "relay", d["relay"], relay_users)
            for key in ("contact", "exit_button"):
                d[key] = self.input(where, key, d[key], board_ids)
                self.claim(where, key, d[key], input_users)
            methods = d["methods"]
            if methods is not None:
                bad = [m for m in methods if m not in CREDENTIAL_METHODS]
                if bad or not methods:
                    self.add(
                        where,
                        "methods",
                        f"must list credential kinds from {', '.join(CREDENTIAL_METHODS)}; "
                        f"got {methods!r}",
                    )
                    d["methods"] = None
            if d["kind"] == "lift" and d["building"] is None:
                self.add(where, "building", 'is missing; a kind = "lift" door needs its building')
            held, pre = d["held_open_s"], d["prealarm_s"]
            if held is not None and pre is not None and held > 0 and pre >= held:
                self.add(
                    where,
                    "prealarm_s",
                    f"({pre}) must be shorter than held_open_s ({held}); the warning comes first",
                )

    def claim(
        self, where: str, key: str, ref: RelayRef | InputRef | None, users: dict[Any, str]
    ) -> None:
        if ref is None:
            return
        if ref in users:
            self.add(where, key, f"{ref} is already used by {users[ref]}")
        else:
            users[ref] = f"{where} {key}"

    def check_readers(
        self, readers: list[tuple[str, dict[str, Any]]], doors: dict[str, str], simulation: bool
    ) -> None:
        for where, r in readers:
            if r["door"] is not None and r["door"] not in doors:
                self.add(where, "door", f"{r['door']!r} is not {_known('[[door]]', doors)}")
            if r["type"] == "sim" and not simulation:
                self.add(
                    where,
                    "type",
                    '"sim" readers are allowed only with [site] simulation = true; '
                    f"use one of {', '.join(t for t in READER_TYPES if t != 'sim')}",
                )

    def check_outputs(
        self,
        outputs: list[tuple[str, dict[str, Any]]],
        board_ids: set[str],
        doors: dict[str, str],
        relay_users: dict[RelayRef, str],
    ) -> None:
        for where, o in outputs:
            o["relay"] = self.relay(where, "relay", o["relay"], board_ids)
            self.claim(where, "relay", o["relay"], relay_users)
            if o["function"] == "floor":
                if o["floor"] is None and "'floor'" not in self.problem_keys(where):
                    self.add(where, "floor", 'is missing; a function = "floor" output needs one')
                if o["building"] is None and o["door"] is None:
                    self.add(where, "building", "is missing; say which building's lift it serves")
            if o["floor"] is not None and not _floor_ok(o["floor"]):
                self.add(
                    where,
                    "floor",
                    f"must be a floor from -10 to 128 or G0, G1, G2; got {o['floor']!r}",
                )
            if o["door"] is not None:
                if o["door"] not in doors:
                    self.add(where, "door", f"{o['door']!r} is not {_known('[[door]]', doors)}")
                elif o["function"] == "floor" and doors[o["door"]] != "lift":
                    self.add(where, "door", f'{o["door"]!r} is not a kind = "lift" door')

    def check_anti_passback(
        self, doors: list[tuple[str, dict[str, Any]]], readers: list[tuple[str, dict[str, Any]]]
    ) -> None:
        for where, d in doors:
            if not d["anti_passback"]:
                continue
            directions = {r["direction"] for _, r in readers if r["door"] == d["id"]}
            if not {"in", "out"} <= directions:
                self.add(
                    where,
                    "anti_passback",
                    "needs an in reader and an out reader on this door "
                    '([[reader]] door = ..., direction = "in"/"out")',
                )

    # -- step 3: build ---------------------------------------------------------------------

    def build(
        self,
        *,
        site: dict[str, Any],
        web: dict[str, Any],
        mqtt: dict[str, Any] | None,
        cloud: dict[str, Any] | None,
        buses: list[tuple[str, dict[str, Any]]],
        boards: list[tuple[str, dict[str, Any]]],
        doors: list[tuple[str, dict[str, Any]]],
        readers: list[tuple[str, dict[str, Any]]],
        outputs: list[tuple[str, dict[str, Any]]],
    ) -> SiteConfig:
        data_dir = Path(site["data_dir"])
        if not data_dir.is_absolute():
            data_dir = self.path.parent / data_dir
        return SiteConfig(
            path=self.path,
            site=SiteSection(
                id=site["id"],
                name=site["name"] or site["id"],
                timezone=site["timezone"],
                data_dir=data_dir,
                simulation=site["simulation"],
            ),
            web=WebSection(listen=web["listen"], tls=web["tls"]),
            mqtt=MqttSection(**mqtt) if mqtt is not None else None,
            cloud=CloudSection(url=cloud["url"], extra=cloud["extra"]) if cloud else None,
            buses=tuple(BusSection(**b) for _, b in buses),
            boards=tuple(BoardSection(**{**b, "options": b["options"] or {}}) for _, b in boards),
            doors=tuple(
                DoorSection(**{**d, "name": d["name"] or d["id"], "methods": tuple(d["methods"])})
                for _, d in doors
            ),
            readers=tuple(
                ReaderSection(**{**r, "options": r["options"] or {}}) for _, r in readers
            ),
            outputs=tuple(OutputSection(**o) for _, o in outputs),
            raw=self.raw,
        )


def _type_info(
    types: BoardTypes | None, name: str | None
) -> tuple[int | None, int | None, str | None]:
    """(relays, inputs, transport) of a board type; None where the catalogue does not say."""
    if not isinstance(types, Mapping) or name is None or name not in types:
        return None, None, None
    entry = types[name]
    if isinstance(entry, int) and not isinstance(entry, bool):
        return entry, None, None
    transport = getattr(entry, "transport", None)
    if getattr(entry, "configurable", False):
        # "As configured" (generic Modbus, GPIO): the counts live in the board's options.
        return None, None, transport
    relays, inputs = getattr(entry, "relays", None), getattr(entry, "inputs", None)
    return (
        relays if isinstance(relays, int) else None,
        inputs if isinstance(inputs, int) else None,
        transport,
    )


def _known(table: str, ids: Collection[str]) -> str:
    if not ids:
        return f"defined: there is no {table} yet"
    return f"any {table} id; use one of {', '.join(sorted(ids))}"


def _floor_ok(value: str) -> bool:
    if not _FLOOR_RE.match(value):
        return False
    return value.startswith("G") or _MIN_FLOOR <= int(value) <= _MAX_FLOOR


def _split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f'must be "host:port" like "127.0.0.1:8080", got {value!r}')
    return host, int(port)


# -- writing -------------------------------------------------------------------------------

#: The order tables are written in, so a rendered file reads top-down like the docs.
_TABLE_ORDER: Final = (*_SINGLE, *_ARRAYS)
_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")


def render_site_toml(cfg_dict: Mapping[str, Any]) -> str:
    """TOML text for a site config dict (the shape of ``SiteConfig.raw``).

    Tables come in a fixed order (``[site]``, ``[web]``, ..., ``[[output]]``); keys keep
    their order; nested tables (``options``) are written inline. Comments of an edited
    file are not kept: the installer UI owns the file it writes.
    """
    if not isinstance(cfg_dict, Mapping):
        raise TypeError(f"site config must be a dict, got {type(cfg_dict).__name__}")
    order = [t for t in _TABLE_ORDER if t in cfg_dict]
    order += [t for t in cfg_dict if t not in _TABLE_ORDER]
    chunks: list[str] = []
    for name in order:
        value = cfg_dict[name]
        if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
            chunks.extend(_render_table(f"[[{_key(name)}]]", item) for item in value)
        elif isinstance(value, Mapping):
            chunks.append(_render_table(f"[{_key(name)}]", value))
        else:
            chunks.insert(0, f"{_key(name)} = {_value(value)}\n")
    return "\n".join(chunks)


def _render_table(header: str, table: Mapping[str, Any]) -> str:
    lines = [header]
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"


def _key(k: Any) -> str:
    k = str(k)
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    # A JSON string is a valid TOML basic string, except that TOML also forbids DEL.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, os.PathLike):
        return _string(os.fspath(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        inner = ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None)
        return "{ " + inner + " }"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def write_site_toml(
    path: str | os.PathLike[str],
    cfg_dict: Mapping[str, Any],
    *,
    board_types: BoardTypes | None = None,
) -> SiteConfig:
    """Validate ``cfg_dict`` and write it to ``path`` atomically; return the new config.

    The rendered text is parsed and validated first (SiteConfigError lists every
    problem, and the file is not touched). The previous file is kept as
    ``<name>.bak``; the new one replaces it with one rename, so a crash leaves either
    the old file or the new one, never half of one.
    """
    p = Path(path)
    try:
        text = render_site_toml(cfg_dict)
    except (TypeError, ValueError) as err:  # a null or an object TOML cannot hold
        raise SiteConfigError(p, [f"{p}: cannot be written as TOML: {err}"]) from err
    config = parse_site_config(text, p, board_types=board_types)
    p.parent.mkdir(parents=True, exist_ok=True)
    mode = p.stat().st_mode & 0o777 if p.exists() else 0o640
    if p.exists():
        _atomic_write(p.with_name(p.name + ".bak"), p.read_bytes(), mode)
    _atomic_write(p, text.encode("utf-8"), mode)
    return config


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk too, or a power cut could undo it.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def default_site_dict(site_id: str, timezone: str, simulation: bool) -> dict[str, Any]:
    """The site.toml ``doorkeep init`` writes, as a dict for :func:`write_site_toml`.

    A real site listens on the LAN with TLS (the installer's laptop is another machine)
    and starts with no hardware: the installer adds it in the UI. A simulated site
    listens on localhost without TLS and gets one simulated bus, board, door and reader,
    so it can open a door straight away.
    """
    cfg: dict[str, Any] = {
        "site": {
            "id": site_id,
            "name": site_id,
            "timezone": timezone,
            "data_dir": "data",
            "simulation": simulation,
        },
        "web": {"listen": "127.0.0.1:8080", "tls": False}
        if simulation
        else {"listen": "0.0.0.0:8443", "tls": True},
    }
    if simulation:
        cfg["bus"] = [{"id": "sim-1", "port": SIM_PORT, "baudrate": 9600}]
        cfg["board"] = [
            {"id": "relays-a", "type": "waveshare-rtu-relay-8d", "bus": "sim-1", "address": 1}
        ]
        cfg["door"] = [
            {
                "id": "gate",
                "name": "Main gate",
                "relay": "relays-a:1",
                "contact": "relays-a:in1",
                "exit_button": "relays-a:in2",
                "pulse_ms": 3000,
                "held_open_s": 60,
                "methods": ["pin", "rf_card", "qr", "remote", "temp_key"],
                "fail_mode": "secure",
            }
        ]
        cfg["reader"] = [{"id": "gate-in", "door": "gate", "type": "sim", "direction": "in"}]
    return cfg
