"""Reading and validating site.toml.

The file is read with :mod:`tomllib`, checked against the key tables (``keys``) and
then cross-checked (references between tables, uniqueness, simulation-only values).
Every problem is collected, so an installer sees the whole list at once, one per line,
each naming the file, the table (``[[door]] "gate"``) and the key, with what to change.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.config.keys import (
    ARRAYS,
    REQUIRED,
    SINGLE,
    TABLES,
    TYPE_NAMES,
    TYPE_NAMES_TABLE,
    Key,
)
from edge.config.notify import NotifySection, check_notify
from edge.config.osdp import check_osdp
from edge.config.parking import build_parking, check_parking
from edge.config.sections import (
    CREDENTIAL_METHODS,
    READER_TYPES,
    SIM_PORT,
    BoardSection,
    BoardTypes,
    BusSection,
    CloudSection,
    DoorSection,
    InputRef,
    InputSection,
    MqttSection,
    OutputSection,
    ReaderSection,
    RelayRef,
    SiteConfig,
    SiteConfigError,
    SiteSection,
    WebSection,
)
from edge.config.serialreaders import serial_problems

_RELAY_RE: Final = re.compile(r"^(?P<board>[^:\s]+):(?P<n>[0-9]+)$")
_INPUT_RE: Final = re.compile(r"^(?P<board>[^:\s]+):in(?P<n>[0-9]+)$")
_FLOOR_RE: Final = re.compile(r"^(?:-?[0-9]{1,3}|G[0-2])$")
_MIN_FLOOR, _MAX_FLOOR = -10, 128


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
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively; the stack unwinds
        # cleanly, and no site.toml needs more than 3 levels.
        raise SiteConfigError(
            p, [f"{p}: arrays or inline tables nested hundreds of levels deep; use at most 3"]
        ) from None
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

    def table(
        self, name: str, where: str, raw: Any, spec: Mapping[str, Key] | None = None
    ) -> dict[str, Any]:
        """Known keys with defaults filled in; a bad value is reported and becomes None."""
        spec = TABLES[name] if spec is None else spec
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
                if rule.default is REQUIRED:
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
                want = TYPE_NAMES.get(rule.types[0], TYPE_NAMES_TABLE)
                self.add(where, key, f"must be {want}, got {value!r}")
                out[key] = None
                continue
            problem = rule.check(value) if rule.check else None
            if problem:
                # a check that already quotes the value is not told it twice
                said = problem if repr(value) in problem else f"{problem}; got {value!r}"
                self.add(where, key, said)
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
            if top not in SINGLE and top not in ARRAYS:
                known = ", ".join([*(f"[{t}]" for t in SINGLE), *(f"[[{t}]]" for t in ARRAYS)])
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
        inputs = self.array("input")
        parking = self.array("parking")
        notify = None
        if "notify" in self.raw:
            notify = check_notify(
                self.raw["notify"],
                self.data_dir(site),
                lambda spec, where, raw: self.table("notify", where, raw, spec),
                self.add,
            )

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
        self.check_inputs(inputs, board_ids, input_users)
        self.check_anti_passback(doors, readers)
        check_parking(self.add, parking, {v["id"] for _, v in readers if v["id"]})
        check_osdp(
            self.add, buses, boards, readers, reported=lambda w, k: f"'{k}'" in self.problem_keys(w)
        )
        if self.problems:
            raise SiteConfigError(self.path, self.problems)
        config = self.build(
            notify=notify,
            site=site,
            web=web,
            mqtt=mqtt,
            cloud=cloud,
            buses=buses,
            boards=boards,
            doors=doors,
            readers=readers,
            outputs=outputs,
            inputs=inputs,
        )
        return replace(config, parking=build_parking(parking))

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
            if r["type"] == "serial":
                for key, message in serial_problems(r["options"]):
                    self.add(where, key, message)

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

    def check_inputs(
        self,
        inputs: list[tuple[str, dict[str, Any]]],
        board_ids: set[str],
        input_users: dict[InputRef, str],
    ) -> None:
        for where, i in inputs:
            i["input"] = self.input(where, "input", i["input"], board_ids)
            self.claim(where, "input", i["input"], input_users)

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

    def data_dir(self, site: dict[str, Any]) -> Path:
        data_dir = Path(site["data_dir"] or "data")
        return data_dir if data_dir.is_absolute() else self.path.parent / data_dir

    def build(
        self,
        *,
        notify: NotifySection | None,
        site: dict[str, Any],
        web: dict[str, Any],
        mqtt: dict[str, Any] | None,
        cloud: dict[str, Any] | None,
        buses: list[tuple[str, dict[str, Any]]],
        boards: list[tuple[str, dict[str, Any]]],
        doors: list[tuple[str, dict[str, Any]]],
        readers: list[tuple[str, dict[str, Any]]],
        outputs: list[tuple[str, dict[str, Any]]],
        inputs: list[tuple[str, dict[str, Any]]],
    ) -> SiteConfig:
        data_dir = self.data_dir(site)
        return SiteConfig(
            path=self.path,
            site=SiteSection(
                id=site["id"],
                name=site["name"] or site["id"],
                timezone=site["timezone"],
                data_dir=data_dir,
                simulation=site["simulation"],
            ),
            web=WebSection(
                listen=web["listen"],
                tls=web["tls"],
                allowed_hosts=tuple(web["allowed_hosts"] or ()),
            ),
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
            inputs=tuple(InputSection(**i) for _, i in inputs),
            notify=notify,
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
