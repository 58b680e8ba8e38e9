"""The site.toml rules of OSDP reader lines (``protocol = "osdp"`` buses, ``type = "osdp"``
readers), checked after each table's own keys (``validate``).

An OSDP line is one serial port with one control panel (doorkeep) and its readers
multi-dropped on it by address: so a port speaks one protocol, a board never sits on an
OSDP bus, and each reader names its bus and a PD address (0..126) no other reader of that
bus uses. ``secure`` defaults to true: Secure Channel, never clear text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.config.sections import SIM_PORT

Rows = list[tuple[str, dict[str, Any]]]
Add = Callable[[str, str | None, str], None]


def check_osdp(
    add: Add, buses: Rows, boards: Rows, readers: Rows, *, reported: Callable[[str, str], bool]
) -> None:
    """Report every OSDP wiring problem through ``add(where, key, message)``;
    ``reported(where, key)``: that key already has a problem (a bad value is not also
    "missing")."""
    protocol = {b["id"]: b["protocol"] for _, b in buses if b["id"]}
    osdp_buses = sorted(i for i, p in protocol.items() if p == "osdp")
    for where, b in buses:
        if b["protocol"] == "osdp" and b["port"] == SIM_PORT:
            add(
                where,
                "port",
                'an OSDP bus needs a serial device like "/dev/ttyUSB1" (there is no '
                'simulated OSDP bus; use protocol = "modbus" for "sim")',
            )
    for where, b in boards:
        if b["bus"] is not None and protocol.get(b["bus"]) == "osdp":
            add(
                where,
                "bus",
                f'{b["bus"]!r} is an OSDP reader line (protocol = "osdp"); a board needs a '
                "Modbus bus on another port",
            )
    used: dict[tuple[str, int], str] = {}
    for where, r in readers:
        if r["type"] != "osdp":
            if r["bus"] is not None and protocol.get(r["bus"]) == "osdp":
                add(where, "bus", f'only type = "osdp" readers sit on OSDP bus {r["bus"]!r}')
            if r["address"] is not None:
                add(where, "address", 'only type = "osdp" readers have an OSDP address')
            continue
        # an address that is wrong already is not also missing, nor a used slot
        row = {**r, "address": -1} if reported(where, "address") else r
        _check_reader(add, where, row, protocol=protocol, osdp_buses=osdp_buses, used=used)


def _check_reader(
    add: Add,
    where: str,
    r: dict[str, Any],
    *,
    protocol: dict[str, str],
    osdp_buses: list[str],
    used: dict[tuple[str, int], str],
) -> None:
    choices = (
        f"use one of {', '.join(osdp_buses)}"
        if osdp_buses
        else 'add a [[bus]] with protocol = "osdp" for the reader line'
    )
    bus = r["bus"]
    if bus is None:
        add(where, "bus", f"is missing; an OSDP reader names its [[bus]] ({choices})")
    elif bus not in protocol:
        add(where, "bus", f"{bus!r} is not any [[bus]] id; {choices}")
    elif protocol[bus] != "osdp":
        add(where, "bus", f'{bus!r} is not an OSDP bus (protocol = "osdp"); {choices}')
    if r["address"] is None:
        add(where, "address", "is missing; set the reader's OSDP address (0..126)")
    elif bus is not None and r["address"] >= 0:
        slot = (bus, r["address"])
        if slot in used:
            add(where, "address", f"{r['address']} on bus {bus!r} is already used by {used[slot]}")
        else:
            used[slot] = where
