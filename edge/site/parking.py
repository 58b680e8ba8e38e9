"""Car parks (``[[parking]]``): occupancy counted by the grants of entry and exit readers.

The reference's Smart Parking. A lot counts a vehicle in when one of its ``entry``
readers grants a presentation (the relay confirmed: ``result = success``), and out when
one of its ``exit`` readers does; a denied read counts nothing. A vehicle is known by
the credential that opened (a plate or UHF card's credential id, or a temp key), never by
the plate itself: nothing here holds a plaintext value.

How a full lot refuses stays in the pure core: ``refusing()`` is the set of entry readers
whose lot is full with ``when_full = "refuse"``, passed to ``decide`` in ``SiteState``,
which then denies an otherwise granted entry with ``parking_full`` (so ``doorkeep
decide`` and the event log explain it like any other reason). ``allow_and_alarm`` lets the
vehicle in and asks the site to raise one ``parking_full`` alarm until occupancy drops
below capacity again.

State lives in the decision-memory table as rows ``park:<lot>:<vehicle>`` (and
``parkalarm:<lot>`` while an alarming lot's full spell has had its alarm) and is written
in the transaction of the access event that changed it (like temp-key uses), so the
counts survive a restart and never disagree with the log. A vehicle that leaves without
having been counted in (it came in before the lot was configured, or tailgated) changes
nothing: occupancy never goes below zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from edge.config.parking import ParkingSection

ROW_PREFIX = "park:"
ALARM_PREFIX = "parkalarm:"  # the allow_and_alarm lot's alarm of this full spell is raised


@dataclass(frozen=True, slots=True)
class Vehicle:
    """One vehicle inside a lot: who opened, with which credential, since when (POSIX)."""

    key: str
    person: str | None
    credential: str | None
    temp_key: str | None
    since: float

    def row(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "credential": self.credential,
            "temp_key": self.temp_key,
            "since": self.since,
        }


@dataclass(frozen=True, slots=True)
class Counted:
    """What one granted read did to a lot: the event's detail, the rows, an alarm to raise."""

    detail: dict[str, Any]
    rows: dict[str, Any]
    alarm: dict[str, Any] | None = None


@dataclass(slots=True)
class _Lot:
    section: ParkingSection
    vehicles: dict[str, Vehicle] = field(default_factory=dict)
    alarmed: bool = False  # the allow_and_alarm alarm of this full spell is raised

    @property
    def occupied(self) -> int:
        return len(self.vehicles)

    @property
    def full(self) -> bool:
        return self.occupied >= self.section.capacity


def vehicle_key(person: str | None, credential: str | None, temp_key: str | None) -> str | None:
    """How a vehicle is known: its credential, else its temp key, else its person."""
    if credential:
        return f"c-{credential}"
    if temp_key:
        return f"t-{temp_key}"
    return f"p-{person}" if person else None


class Parking:
    """The site's car parks: their counts, what a grant at their readers does, status."""

    def __init__(
        self, lots: Iterable[ParkingSection], rows: Mapping[str, Any], *, tz: ZoneInfo
    ) -> None:
        self._tz = tz
        self._lots = {lot.id: _Lot(lot) for lot in lots}
        self._entry = {r: i for i, lot in self._lots.items() for r in lot.section.entry}
        self._exit = {r: i for i, lot in self._lots.items() for r in lot.section.exit}
        for key, value in rows.items():
            if key.startswith(ALARM_PREFIX) and value:
                spell = self._lots.get(key.removeprefix(ALARM_PREFIX))
                if spell is not None:
                    spell.alarmed = True
                continue
            if not key.startswith(ROW_PREFIX) or not isinstance(value, dict):
                continue
            lot_id, _, vkey = key.removeprefix(ROW_PREFIX).partition(":")
            lot = self._lots.get(lot_id)
            if lot is None:  # a lot removed from site.toml: its rows stay unused
                continue
            lot.vehicles[vkey] = Vehicle(
                vkey,
                value.get("person"),
                value.get("credential"),
                value.get("temp_key"),
                float(value["since"]),
            )

    def refusing(self) -> frozenset[str]:
        """Entry readers whose lot is full and refuses (``SiteState.parking_full``)."""
        return frozenset(
            reader
            for reader, lot_id in self._entry.items()
            if self._lots[lot_id].full and self._lots[lot_id].section.when_full == "refuse"
        )

    def count(
        self,
        reader: str,
        *,
        person: str | None,
        credential: str | None,
        temp_key: str | None,
        at: datetime,
    ) -> Counted | None:
        """A granted read at ``reader``: count the vehicle in or out (None: not a lot's)."""
        key = vehicle_key(person, credential, temp_key)
        if key is None:
            return None
        if reader in self._entry:
            vehicle = Vehicle(key, person, credential, temp_key, at.timestamp())
            return self._in(self._lots[self._entry[reader]], vehicle)
        if reader in self._exit:
            return self._out(self._lots[self._exit[reader]], key, person, at)
        return None

    def _in(self, lot: _Lot, vehicle: Vehicle) -> Counted:
        key = vehicle.key
        was_full = lot.full and key not in lot.vehicles
        # a vehicle already inside (its exit was missed) is counted once, from now
        lot.vehicles[key] = vehicle
        alarm = None
        rows: dict[str, Any] = {self._row_key(lot, key): vehicle.row()}
        if was_full and lot.section.when_full == "allow_and_alarm" and not lot.alarmed:
            lot.alarmed = True
            rows[ALARM_PREFIX + lot.section.id] = True
            alarm = {
                "lot": lot.section.id,
                "capacity": lot.section.capacity,
                "occupied": lot.occupied,
            }
        detail = {
            "lot": lot.section.id,
            "direction": "in",
            "occupied": lot.occupied,
            "capacity": lot.section.capacity,
        }
        if was_full:
            detail["over_capacity"] = True
        return Counted(detail, rows, alarm)

    def _out(self, lot: _Lot, key: str, person: str | None, at: datetime) -> Counted:
        vehicle = lot.vehicles.get(key)
        if vehicle is None and person is not None:  # came in with another of their credentials
            mine = [v for v in lot.vehicles.values() if v.person == person]
            vehicle = min(mine, key=lambda v: v.since) if mine else None
        detail: dict[str, Any] = {"lot": lot.section.id, "direction": "out"}
        rows: dict[str, Any] = {}
        if vehicle is None:
            detail.update(counted_in=False, occupied=lot.occupied)
            return Counted(detail, rows)
        del lot.vehicles[vehicle.key]
        rows[self._row_key(lot, vehicle.key)] = None
        if lot.alarmed and not lot.full:  # below capacity: the next full spell alarms again
            lot.alarmed = False
            rows[ALARM_PREFIX + lot.section.id] = None
        detail.update(
            counted_in=True,
            occupied=lot.occupied,
            since=self._iso(vehicle.since),
            duration_s=max(0, round(at.timestamp() - vehicle.since)),
        )
        return Counted(detail, rows)

    @staticmethod
    def _row_key(lot: _Lot, key: str) -> str:
        return f"{ROW_PREFIX}{lot.section.id}:{key}"

    def _iso(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).astimezone(self._tz).isoformat()

    def status(self) -> list[dict[str, Any]]:
        """Every lot of site.toml: ``GET /parking``."""
        return [
            {
                "id": lot.section.id,
                "name": lot.section.name,
                "capacity": lot.section.capacity,
                "occupied": lot.occupied,
                "when_full": lot.section.when_full,
                "vehicles": [
                    {
                        "person": v.person,
                        "credential": v.credential,
                        "temp_key": v.temp_key,
                        "since": self._iso(v.since),
                    }
                    for v in sorted(lot.vehicles.values(), key=lambda v: v.since)
                ],
            }
            for lot in self._lots.values()
        ]
