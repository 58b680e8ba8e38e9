"""Access schedules: when a group, a temp key or a hold-open rule is in force.

Theory of this module
---------------------
A schedule is one of three shapes (POLICY.md):

* ``never``  -- one absolute window ``start``..``end`` (ISO datetimes);
* ``daily``  -- a time-of-day window every day;
* ``weekly`` -- a time-of-day window on the listed weekdays.

Times without a UTC offset are wall-clock times in the site's IANA zone; times with an
offset are absolute. ``end`` is inclusive to the second: ``"23:59:59"`` covers the whole
last second of the day.

Two ways of looking at one moment are needed, and converting ``now`` is the expensive
part, so the caller converts it once into an :class:`Instant` (a POSIX timestamp and the
naive wall-clock time in the site zone) and evaluates every schedule against that.

* ``daily``/``weekly`` windows compare **wall-clock** time of day. On a spring-forward day
  the skipped hour never shows on the clock, so a window 01:30-02:30 lasts 30 minutes; on
  a fall-back day the repeated hour shows twice, so a window inside it is open twice
  (a window 02:00-02:30 in Europe/Berlin is open 02:00-02:30 CEST *and* 02:00-02:30 CET).
* A window whose ``end`` is earlier than its ``start`` crosses midnight and belongs to
  the day it starts on: the weekday list and the holiday exclusion apply to that day.
* ``never`` windows are resolved to absolute instants once, when parsed, and then
  compared as timestamps, so they are one single interval even across a DST change: a
  wall time that happens twice means its first occurrence for ``start`` and its second
  for ``end`` (the window covers every moment the clock shows a time inside it); a wall
  time that never happens (inside the spring-forward gap) means the moment the clock
  jumps, for both ``start`` and ``end``.

Pure: no I/O, no logging, no clock of its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping
    from zoneinfo import ZoneInfo

__all__ = ["ALWAYS", "DAY_NAMES", "Instant", "Repeat", "Schedule"]

#: Weekday names in schedule documents, Monday first (``datetime.weekday()`` order).
DAY_NAMES: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(DAY_NAMES)}
_SECONDS_PER_DAY: Final = 86_400
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_EPOCH_WEEKDAY: Final = date(1970, 1, 1).weekday()  # a Thursday
_ALL_DAYS: Final = frozenset(range(7))
_TIME_RE: Final = re.compile(
    r"^(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?(?P<off>Z|[+-]\d\d:\d\d)?$"
)
_KEYS: Final[dict[str, frozenset[str]]] = {
    "never": frozenset({"repeat", "start", "end"}),
    "daily": frozenset({"repeat", "start", "end", "except_holidays"}),
    "weekly": frozenset({"repeat", "days", "start", "end", "except_holidays"}),
}


class Repeat(StrEnum):
    """How a schedule repeats."""

    NEVER = "never"
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True)
class Instant:
    """One moment, seen both ways: as a POSIX timestamp and as the site's wall clock.

    Build it with :meth:`of` once per decision; every schedule check reuses it. The
    derived fields (seconds since local midnight, weekday, local date) are computed here
    so that each schedule check is a few integer comparisons.
    """

    utc: float
    wall: datetime
    second_of_day: int = field(init=False, repr=False, compare=False)
    weekday: int = field(init=False, repr=False, compare=False)
    day: date = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.wall.tzinfo is not None:
            raise ValueError(f"Instant.wall must be naive wall-clock time, got {self.wall!r}")
        wall = self.wall
        object.__setattr__(self, "second_of_day", wall.hour * 3600 + wall.minute * 60 + wall.second)
        object.__setattr__(self, "weekday", wall.weekday())
        object.__setattr__(self, "day", wall.date())

    @classmethod
    def of(cls, now: datetime, tz: ZoneInfo) -> Instant:
        """The instant ``now`` (an aware datetime) as seen in the site zone ``tz``."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now must be an aware datetime (with a time zone), got {now!r}")
        try:
            return cls(now.timestamp(), now.astimezone(tz).replace(tzinfo=None))
        except (OverflowError, ValueError) as err:
            raise ValueError(f"now {now!r} cannot be seen in {tz.key}: {err}") from None


@dataclass(frozen=True, slots=True)
class _Window:
    """A time-of-day window, in seconds since midnight, both ends inclusive."""

    start: int
    end: int
    offset: int | None  # seconds east of UTC for an absolute daily window, else None

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start


@dataclass(frozen=True, slots=True)
class Schedule:
    """An access schedule (see the module docstring for the rules).

    Fields hold parsed values: ``start``/``end`` are datetimes for ``never`` windows
    (naive = wall clock in ``tz``) and times for ``daily``/``weekly`` (naive = wall clock,
    aware = a fixed offset). Build one with :meth:`from_dict`.
    """

    repeat: Repeat
    start: datetime | time
    end: datetime | time
    days: frozenset[int] = _ALL_DAYS
    except_holidays: bool = False
    tz: ZoneInfo | None = None
    # Derived once, used on the hot path.
    _lo: float = field(init=False, repr=False, compare=False)
    _hi: float = field(init=False, repr=False, compare=False)  # exclusive
    _window: _Window | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.repeat, Repeat):
            object.__setattr__(self, "repeat", Repeat(self.repeat))
        if not self.days or not self.days <= _ALL_DAYS:
            raise ValueError(
                f"days must be a non-empty set of weekday numbers 0..6, got {self.days!r}"
            )
        if self.repeat is Repeat.NEVER:
            self._init_absolute()
        else:
            self._init_window()

    def _init_absolute(self) -> None:
        start, end = self.start, self.end
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise TypeError(
                f"a 'never' schedule needs datetimes for start and end, got {start!r}, {end!r}"
            )
        if self.except_holidays:
            raise ValueError("except_holidays applies to daily and weekly schedules, not 'never'")
        lo = _resolve(start, self.tz, first=True)
        hi = _resolve(end, self.tz, first=False)
        # A wall time inside a DST gap means the jump itself, for the end too; otherwise
        # the end is inclusive to the second, hence the exclusive bound one second later.
        hi_excl = hi if _in_gap(end, self.tz) else math.floor(hi) + 1
        if hi_excl <= lo:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        object.__setattr__(self, "_lo", float(math.floor(lo)))
        object.__setattr__(self, "_hi", float(hi_excl))
        object.__setattr__(self, "_window", None)

    def _init_window(self) -> None:
        start, end = self.start, self.end
        if isinstance(start, datetime) or isinstance(end, datetime):
            raise TypeError(
                f"a '{self.repeat}' schedule needs times of day for start and end, "
                f"got {start!r}, {end!r}"
            )
        off_start, off_end = _offset_seconds(start), _offset_seconds(end)
        if off_start != off_end:
            raise ValueError(
                f"start {start.isoformat()} and end {end.isoformat()} must both carry the "
                "same UTC offset, or neither"
            )
        if self.repeat is Repeat.DAILY and self.days != _ALL_DAYS:
            raise ValueError("a daily schedule has no day list; use repeat 'weekly'")
        window = _Window(_seconds(start), _seconds(end), off_start)
        object.__setattr__(self, "_window", window)
        object.__setattr__(self, "_lo", 0.0)
        object.__setattr__(self, "_hi", 0.0)

    # -- parsing ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], tz: ZoneInfo) -> Schedule:
        """Parse a schedule dict (POLICY.md); ``tz`` is the site zone.

        Raises ValueError with a message naming the bad field and value.
        """
        if not hasattr(d, "get") or not hasattr(d, "keys"):
            raise ValueError(f"schedule must be an object, got {d!r}")
        repeat_raw = d.get("repeat")
        try:
            repeat = Repeat(str(repeat_raw))
        except ValueError:
            raise ValueError(
                f"schedule.repeat must be one of never, daily, weekly; got {repeat_raw!r}"
            ) from None
        unknown = sorted(str(k) for k in d if k not in _KEYS[repeat])
        if unknown:
            raise ValueError(
                f"schedule has unknown key(s) {', '.join(unknown)} for repeat {repeat.value!r}; "
                f"allowed: {', '.join(sorted(_KEYS[repeat]))}"
            )
        for key in ("start", "end"):
            if key not in d:
                raise ValueError(f"schedule.{key} is missing")
        except_holidays = d.get("except_holidays", False)
        if not isinstance(except_holidays, bool):
            raise ValueError(
                f"schedule.except_holidays must be true or false, got {except_holidays!r}"
            )
        days = _ALL_DAYS
        if repeat is Repeat.NEVER:
            start: datetime | time = _parse_datetime("start", d["start"])
            end: datetime | time = _parse_datetime("end", d["end"])
        else:
            start = _parse_time("start", d["start"])
            end = _parse_time("end", d["end"])
            if repeat is Repeat.WEEKLY:
                days = _parse_days(d.get("days"))
        try:
            return cls(repeat, start, end, days, except_holidays, tz)
        except ValueError as err:
            raise ValueError(f"schedule: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """The schedule as a canonical dict; ``from_dict(to_dict())`` gives it back."""
        out: dict[str, Any] = {"repeat": self.repeat.value}
        if self.repeat is Repeat.WEEKLY:
            out["days"] = [DAY_NAMES[i] for i in sorted(self.days)]
        out["start"] = _format(self.start)
        out["end"] = _format(self.end)
        if self.except_holidays:
            out["except_holidays"] = True
        return out

    # -- the hot path ----------------------------------------------------------------

    def is_open(self, at: Instant, holidays: frozenset[date] = frozenset()) -> bool:
        """True when the schedule is in force at ``at``; ``holidays`` are site-local dates."""
        window = self._window
        if window is None:
            return self._lo <= at.utc < self._hi
        if window.offset is None:
            sod, weekday, day = at.second_of_day, at.weekday, at.day
        else:
            local = at.utc + window.offset
            days_since_epoch = math.floor(local / _SECONDS_PER_DAY)
            sod = int(local - days_since_epoch * _SECONDS_PER_DAY)
            weekday = (days_since_epoch + _EPOCH_WEEKDAY) % 7
            day = date.fromordinal(_EPOCH_ORDINAL + days_since_epoch)
        start, end = window.start, window.end
        if start <= end:
            if not start <= sod <= end:
                return False
        elif sod >= start:
            pass  # the crossing window that started today
        elif sod <= end:
            # The tail of the window that started yesterday: yesterday's day rules apply.
            weekday = (weekday - 1) % 7
            if self.except_holidays:
                day -= timedelta(days=1)
        else:
            return False
        if weekday not in self.days:
            return False
        return not (self.except_holidays and day in holidays)

    def has_ended(self, at: Instant) -> bool:
        """True only for a ``never`` window whose end has passed."""
        return self._window is None and at.utc >= self._hi

    def is_time_limited(self) -> bool:
        """True for ``never`` windows (they end for good)."""
        return self.repeat is Repeat.NEVER


# -- helpers -----------------------------------------------------------------------------


def _parse_time(key: str, value: Any) -> time:
    if not isinstance(value, str):
        raise ValueError(f'schedule.{key} must be a time "HH:MM[:SS]", got {value!r}')
    m = _TIME_RE.match(value)
    if m is None:
        raise ValueError(
            f'schedule.{key} must be a time "HH:MM[:SS]" with an optional offset, got {value!r}'
        )
    tzi: tzinfo | None = None
    off = m["off"]
    if off == "Z":
        tzi = UTC
    elif off:
        sign = 1 if off[0] == "+" else -1
        tzi = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
    return time(int(m["h"]), int(m["m"]), int(m["s"] or 0), tzinfo=tzi)


def _parse_datetime(key: str, value: Any) -> datetime:
    # A bare date would silently mean midnight, which is never what an `end` means.
    if not isinstance(value, str) or len(value) <= 10:
        raise ValueError(
            f'schedule.{key} must be an ISO datetime like "2026-11-17T13:54:00", got {value!r}'
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f'schedule.{key} must be an ISO datetime like "2026-11-17T13:54:00", got {value!r}'
        ) from None
    return parsed.replace(microsecond=0)


def _parse_days(value: Any) -> frozenset[int]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(
            f"schedule.days must be a non-empty list of {', '.join(DAY_NAMES)}; got {value!r}"
        )
    out: set[int] = set()
    for item in value:
        if not isinstance(item, str) or item not in _DAY_INDEX:
            raise ValueError(
                f"schedule.days has {item!r}; use three-letter names {', '.join(DAY_NAMES)}"
            )
        out.add(_DAY_INDEX[item])
    return frozenset(out)


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _offset_seconds(t: time) -> int | None:
    off = t.utcoffset()
    return None if off is None else int(off.total_seconds())


def _format(value: datetime | time) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    spec = "seconds" if value.second else "minutes"
    return value.isoformat(timespec=spec)


def _resolve(wall: datetime, tz: ZoneInfo | None, *, first: bool) -> float:
    """POSIX time of a datetime; naive means wall clock in ``tz`` (see module docstring)."""
    if wall.tzinfo is not None:
        return wall.timestamp()
    if tz is None:
        raise ValueError(f"{wall.isoformat()} has no UTC offset and no site time zone was given")
    t0 = wall.replace(tzinfo=tz, fold=0).timestamp()
    t1 = wall.replace(tzinfo=tz, fold=1).timestamp()
    if t0 == t1:
        return t0
    if _in_gap(wall, tz):
        return _gap_end(wall, tz, min(t0, t1), max(t0, t1))
    return min(t0, t1) if first else max(t0, t1)


def _in_gap(wall: datetime, tz: ZoneInfo | None) -> bool:
    """True when the naive ``wall`` time never shows on the clocks of ``tz``."""
    if wall.tzinfo is not None or tz is None:
        return False
    t0 = wall.replace(tzinfo=tz, fold=0).timestamp()
    return datetime.fromtimestamp(t0, tz).replace(tzinfo=None) != wall


def _gap_end(wall: datetime, tz: ZoneInfo, lo: float, hi: float) -> float:
    """The first whole second at or after ``lo`` whose wall clock is past ``wall``.

    Only called at parse time for a time inside a DST gap, so a bisection is fine.
    """
    a, b = math.floor(lo), math.ceil(hi)
    while a < b:
        mid = (a + b) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            b = mid
        else:
            a = mid + 1
    return float(a)


#: Open at every moment of every day.
ALWAYS: Final[Schedule] = Schedule(Repeat.DAILY, time(0, 0, 0), time(23, 59, 59))
