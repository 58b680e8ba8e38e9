"""``[[parking]]``: car parks counted by the grants of their entry and exit readers.

A lot names the readers whose grants count a vehicle in (``entry``) and out (``exit``),
its ``capacity`` and what a full lot does (``when_full``): ``"refuse"`` denies the entry
read with the reason ``parking_full``, ``"allow_and_alarm"`` lets the vehicle in and raises
a ``parking_full`` alarm (once, until occupancy drops below capacity again). The counting
itself is ``edge/site/parking.py``; this module is the section type and its cross-checks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Final

from edge.config.sections import _check_id

WHEN_FULL: Final = ("refuse", "allow_and_alarm")


@dataclass(frozen=True, slots=True)
class ParkingSection:
    """One car park: its readers, capacity and what happens when it is full."""

    id: str
    name: str
    capacity: int
    entry: tuple[str, ...]
    exit: tuple[str, ...]
    when_full: str = "refuse"

    def __post_init__(self) -> None:
        _check_id("parking id", self.id)
        if self.capacity < 1:
            raise ValueError(f"parking {self.id!r}: capacity {self.capacity} must be 1 or more")
        if self.when_full not in WHEN_FULL:
            raise ValueError(
                f"parking {self.id!r}: when_full {self.when_full!r} is not one of {WHEN_FULL}"
            )


Problem = Callable[[str, str | None, str], None]


def check_parking(
    add: Problem, lots: list[tuple[str, dict[str, Any]]], readers: Collection[str]
) -> None:
    """Cross-check the lots: readers exist, none is both entry and exit, none in two lots."""
    known = ", ".join(sorted(readers)) or "none defined"
    used: dict[str, str] = {}
    for where, lot in lots:
        for key in ("entry", "exit"):
            ids = lot.get(key)
            if ids is None:
                continue
            for rid in ids:
                if not isinstance(rid, str) or rid not in readers:
                    add(where, key, f"{rid!r} is not a [[reader]] id (known: {known})")
                    continue
                if rid in used and used[rid] != f"{where} {key}":
                    add(
                        where,
                        key,
                        f"reader {rid!r} already counts for {used[rid]}; "
                        "a reader counts for one lot and one direction only",
                    )
                used[rid] = f"{where} {key}"
        if lot.get("entry") is not None and not lot["entry"]:
            add(where, "entry", "must name at least one reader whose grants count a vehicle in")


def build_parking(lots: list[tuple[str, dict[str, Any]]]) -> tuple[ParkingSection, ...]:
    """The sections of validated ``[[parking]]`` tables."""
    return tuple(
        ParkingSection(
            id=lot["id"],
            name=lot["name"] or lot["id"],
            capacity=lot["capacity"],
            entry=tuple(lot["entry"]),
            exit=tuple(lot["exit"] or ()),
            when_full=lot["when_full"],
        )
        for _, lot in lots
    )
