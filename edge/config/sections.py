"""The frozen sections of a validated site.toml and ``SiteConfig``, their container.

Each section validates the values it owns in ``__post_init__``; the checks between
sections (references, uniqueness, simulation-only values) are in ``validate``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from zoneinfo import ZoneInfo

from doorkeep import policydoc
from doorkeep.errors import ConfigError
from doorkeep.web.listen import parse_listen

if TYPE_CHECKING:
    from edge.config.notify import NotifySection
    from edge.config.parking import ParkingSection

#: Credential kinds a door may accept (``methods``); ``remote`` is an operator's unlock.
CREDENTIAL_METHODS: Final[tuple[str, ...]] = (*policydoc.CREDENTIAL_KINDS, "remote", "temp_key")
READER_TYPES: Final = ("sim", "osdp", "serial", "mqtt", "http")
DOOR_KINDS: Final = ("door", "amenity", "lift")
FAIL_MODES: Final = ("secure", "safe")
DIRECTIONS: Final = ("in", "out")
OUTPUT_FUNCTIONS: Final = ("door", "light", "floor", "other")
#: What a site input (``[[input]]``) does when it becomes active.
INPUT_FUNCTIONS: Final = ("emergency", "lockdown", "tamper", "alarm")
#: Which contact state of a site input means active.
INPUT_ACTIVE: Final = ("closed", "open")
INPUT_MODES: Final = ("momentary", "latching")
BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES: Final = ("N", "E", "O")
SIM_PORT: Final = "sim"
#: What a ``[[bus]]`` speaks: Modbus RTU boards, or OSDP readers (edge/config/osdp.py).
BUS_PROTOCOLS: Final = ("modbus", "osdp")

#: The board catalogue as the loader accepts it: type names; name -> relay count; or
#: name -> an entry with ``relays``, ``inputs``, ``transport`` and ``configurable``
#: attributes (``drivers.catalogue.BOARD_TYPES`` as it is).
BoardTypes = Collection[str] | Mapping[str, Any]

#: What an id (site, bus, board, door, reader, output) may look like.
ID_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")


# -- values --------------------------------------------------------------------------------


def _check_id(what: str, value: str) -> None:
    if not ID_RE.match(value):
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
    #: Extra names the UI and API answer to (lower case); see docs/security.md, DNS rebinding.
    allowed_hosts: tuple[str, ...] = ()
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "allowed_hosts", tuple(h.lower().rstrip(".") for h in self.allowed_hosts)
        )
        host, port = parse_listen(self.listen)
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
    protocol: str = "modbus"

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
    bus: str | None = None  # an osdp reader's [[bus]]
    address: int | None = None  # an osdp reader's PD address, 0..126
    secure: bool = True  # an osdp reader needs Secure Channel (never clear text)

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
class InputSection:
    """``[[input]]``: an input that is not a door's contact or exit button.

    ``function`` says what becoming active does (emergency, lockdown, tamper, alarm);
    ``active`` which contact state is active: ``closed`` (the board reads the input as
    on) or ``open`` (off: a normally-closed loop, where a cut wire is active too).
    """

    id: str
    input: InputRef
    function: str
    active: str = "closed"
    name: str | None = None
    mode: str = "momentary"  # or "latching": each press toggles (a button as a switch)

    def __post_init__(self) -> None:
        _check_id("input id", self.id)
        if self.mode not in INPUT_MODES:
            raise ValueError(f"input {self.id!r}: mode {self.mode!r} is not momentary/latching")
        if self.function not in INPUT_FUNCTIONS:
            raise ValueError(
                f"input {self.id!r}: function {self.function!r} is not one of "
                f"{', '.join(INPUT_FUNCTIONS)}"
            )
        if self.active not in INPUT_ACTIVE:
            raise ValueError(f"input {self.id!r}: active {self.active!r} is not closed/open")

    def is_active(self, on: bool) -> bool:
        """Whether the board's reading ``on`` (contact closed) means this input is active."""
        return on if self.active == "closed" else not on


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
    inputs: tuple[InputSection, ...] = ()
    parking: tuple[ParkingSection, ...] = ()  # edge/config/parking.py
    notify: NotifySection | None = None  # [notify]: edge/config/notify.py
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

    def input(self, input_id: str) -> InputSection:
        """The site input with this id (KeyError if none)."""
        return _by_id(self.inputs, input_id)

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


_T = TypeVar("_T", BusSection, BoardSection, DoorSection, ReaderSection, InputSection)


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
