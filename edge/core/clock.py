"""The clock guard: may the site believe its wall clock right now?

Validity windows, leases, temp keys and absolute schedules are only as good as the clock
they are read against. A site's clock goes wrong in a few known ways: a real-time clock
that lost power boots in 1970; a box without a battery restores the last saved time
(``fake-hwclock``) and sits days behind until NTP answers; someone sets the date by hand;
an NTP or GPS source steps it. The guard tells the decision engine when it must not
trust the wall clock (``SiteState.clock_ok``), and then only time-limited credentials
are refused (``clock_untrusted``); permanent ones keep working.

The theory, in four rules (``judge``), applied to one ``ClockReading`` — the wall clock,
a monotonic clock and, where the system has one, a confirmation ("NTP is synchronised"):

1. *The floor.* A wall clock before ``FLOOR`` (2025-01-01) is wrong, whatever else says so.
2. *Confirmation.* A confirmed reading is trusted; it re-anchors the guard and may even
   lower the high-water mark (a mark pushed ahead by a bad clock heals this way).
3. *While running:* the wall clock and the monotonic clock advance together (on Linux
   both follow the same NTP frequency; only a *step* changes their difference). So once a
   reading was trusted, ``wall - mono`` is known; a later reading whose difference moved
   more than ``tolerance_s`` (either way) is a step nobody confirmed: untrusted, until the
   clock is back within tolerance or a confirmation agrees with the new time.
4. *After a restart* the monotonic clock means nothing, so the *high-water mark* — the
   latest trusted time, persisted by the shell — is the reference: a wall clock more than
   ``tolerance_s`` behind it is wrong (time does not run backwards across a reboot), and
   one more than ``max_ahead_s`` ahead of it is not believed without confirmation (a box
   may be off for a while, not for months).

Only trusted readings move the anchor or the mark, so one wrong reading never poisons
later ones; the time a simulated presentation carries (``at``) is never a reading.
Pure: the caller reads the clocks, persists ``ClockState.high_water`` when
``ClockVerdict.persist`` says so, and raises or clears the ``clock`` alarm as told.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

__all__ = [
    "FLOOR",
    "LIMITS",
    "ClockLimits",
    "ClockProblem",
    "ClockReading",
    "ClockState",
    "ClockVerdict",
    "judge",
]

#: A wall clock earlier than this is known to be wrong (an RTC that lost power boots in 1970).
FLOOR: Final = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
#: How far the wall clock may step (either way) against the monotonic clock, or fall behind
#: the high-water mark, without being distrusted: NTP slews and small corrections.
TOLERANCE_S: Final = 120.0
#: After a restart, how far past the high-water mark the clock is believed unconfirmed.
MAX_AHEAD_S: Final = 7 * 86_400.0
#: The shell persists the mark when it advanced this much (and at shutdown).
PERSIST_EVERY_S: Final = 60.0


class ClockProblem(StrEnum):
    """Why the wall clock is not trusted (the ``clock`` alarm's ``problem``)."""

    BEFORE_FLOOR = "before_floor"  # reads before 2025: an RTC that lost power
    BEHIND_HIGH_WATER = "behind_high_water"  # earlier than a time already trusted
    AHEAD_UNCONFIRMED = "ahead_unconfirmed"  # far past the last trusted time, nobody confirms
    STEPPED = "stepped"  # moved against the monotonic clock while running


@dataclass(frozen=True, slots=True)
class ClockLimits:
    """The guard's bounds (seconds); module constants by default."""

    floor: float = FLOOR
    tolerance_s: float = TOLERANCE_S
    max_ahead_s: float = MAX_AHEAD_S
    persist_every_s: float = PERSIST_EVERY_S

    def __post_init__(self) -> None:
        for name in ("tolerance_s", "max_ahead_s", "persist_every_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.max_ahead_s < self.tolerance_s:
            raise ValueError("max_ahead_s must be at least tolerance_s")


LIMITS: Final = ClockLimits()


@dataclass(frozen=True, slots=True)
class ClockReading:
    """One look at the clocks: POSIX wall time, a monotonic time, and a confirmation.

    ``synced`` is True when a time source vouches for the wall clock now (the kernel's
    NTP-synchronised status, a verified signed time), None when there is no such source
    or it says nothing. False and None are treated alike: "not confirmed".
    """

    wall: float
    mono: float
    synced: bool | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.wall) and math.isfinite(self.mono)):
            raise ValueError(f"clock readings must be finite, got {self.wall!r}, {self.mono!r}")


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the guard remembers between readings.

    ``high_water`` and ``alarm_open`` survive a restart (the shell stores them);
    ``offset`` (``wall - mono`` of the trusted anchor) lives only as long as the process.
    """

    high_water: float | None = None
    alarm_open: bool = False
    offset: float | None = None
    persisted: float | None = None  # the mark as last handed to the shell to store
    trusted: bool | None = None  # the last verdict; None before the first reading
    problem: ClockProblem | None = None

    @classmethod
    def restored(cls, high_water: float | None, *, alarm_open: bool = False) -> ClockState:
        """The state after a restart, from what the shell stored."""
        return cls(high_water=high_water, alarm_open=alarm_open, persisted=high_water)


@dataclass(frozen=True, slots=True)
class ClockVerdict:
    """The outcome of one reading: keep ``state``; do what the flags say."""

    state: ClockState
    trusted: bool
    problem: ClockProblem | None
    expected: float | None  # what the guard expected the wall clock to read, when it knows
    persist: bool  # store state.high_water now
    raise_alarm: bool  # the clock just became untrusted (and no alarm is open)
    clear_alarm: bool  # the clock is trusted again (and an alarm is open)


def _expected(state: ClockState, r: ClockReading) -> float | None:
    return None if state.offset is None else r.mono + state.offset


def _problem(state: ClockState, r: ClockReading, limits: ClockLimits) -> ClockProblem | None:
    if r.wall < limits.floor:
        return ClockProblem.BEFORE_FLOOR
    if r.synced:
        return None
    expected = _expected(state, r)
    if expected is not None and abs(r.wall - expected) > limits.tolerance_s:
        return ClockProblem.STEPPED
    mark = state.high_water
    if mark is not None and r.wall < mark - limits.tolerance_s:
        return ClockProblem.BEHIND_HIGH_WATER
    if expected is None and mark is not None and r.wall > mark + limits.max_ahead_s:
        return ClockProblem.AHEAD_UNCONFIRMED
    return None


def judge(state: ClockState, reading: ClockReading, limits: ClockLimits = LIMITS) -> ClockVerdict:
    """Judge one reading (see the module docstring). Never raises."""
    problem = _problem(state, reading, limits)
    trusted = problem is None
    expected = _expected(state, reading)
    if expected is None and state.high_water is not None and not trusted:
        expected = state.high_water  # at least this late: the last trusted time
    new = replace(state, trusted=trusted, problem=problem)
    if trusted:
        mark = reading.wall
        if not reading.synced and state.high_water is not None:
            mark = max(mark, state.high_water)
        keep_anchor = state.offset is not None and not reading.synced
        offset = state.offset if keep_anchor else reading.wall - reading.mono
        new = replace(new, high_water=mark, offset=offset)
    persist = trusted and (
        state.persisted is None
        or abs((new.high_water or 0.0) - state.persisted) >= limits.persist_every_s
        or (new.high_water or 0.0) < state.persisted
    )
    if persist:
        new = replace(new, persisted=new.high_water)
    raise_alarm = not trusted and not state.alarm_open
    clear_alarm = trusted and state.alarm_open
    if raise_alarm or clear_alarm:
        new = replace(new, alarm_open=raise_alarm)
    return ClockVerdict(new, trusted, problem, expected, persist, raise_alarm, clear_alarm)
