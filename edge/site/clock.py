"""The clock guard's shell: reads the clocks, keeps the high-water mark, raises the alarm.

The judgement is ``edge.core.clock.judge`` (pure). This module reads a ``Clock`` — the
wall clock, a monotonic clock and the system's "NTP synchronised" status — hands each
reading to it, stores the high-water mark of trusted time in the store's site state (so
it survives a restart), and raises one ``clock`` alarm when the clock becomes untrusted,
resolving it by itself when the clock is right again.

Tests inject a ``Clock`` of their own (``Site.open(config, clock=...)``); nothing patches
``time`` globally. Door timers never read this clock: they run on ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from edge.core.clock import LIMITS, ClockLimits, ClockReading, ClockState, ClockVerdict, judge

if TYPE_CHECKING:
    from collections.abc import Callable

    from edge.site.log import EventLog
    from edge.store import EdgeStore

log = logging.getLogger(__name__)

#: Where the guard's persistent part lives in the store's site state.
STATE_KEY = "clock"
#: How often the running site looks at its clock when nothing is presented.
CHECK_EVERY_S = 5.0
ALARM_KIND = "clock"


class Clock(Protocol):
    """What the site reads time from."""

    def now(self) -> datetime:
        """The wall clock, UTC-aware."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps (counts suspend too, where it can)."""

    def synchronised(self) -> bool | None:
        """True when a time source vouches for the wall clock; None when unknown."""


class _Timex(ctypes.Structure):
    # struct timex up to ``status``; the kernel writes the rest into the padding.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    )


_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
_STA_UNSYNC = 0x0040


def _adjtimex() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None


class SystemClock:
    """The machine's clocks; ``synchronised`` asks the kernel (``adjtimex``, read-only).

    This is the status ``timedatectl show -p NTPSynchronized`` reports, read with one
    system call instead of a subprocess, so it can be asked on every presentation.
    """

    def __init__(self) -> None:
        self._adjtimex = _adjtimex()
        self._mono_id = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.clock_gettime(self._mono_id)

    def synchronised(self) -> bool | None:
        if self._adjtimex is None:
            return None
        timex = _Timex()  # modes = 0: read only, no privilege needed
        state = self._adjtimex(ctypes.byref(timex))
        if state < 0:
            return None
        return state != _TIME_ERROR and not timex.status & _STA_UNSYNC


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


class ClockGuard:
    """Whether the site may trust its wall clock, kept up to date by ``check``."""

    def __init__(
        self, clock: Clock, store: EdgeStore, log: EventLog, limits: ClockLimits = LIMITS
    ) -> None:
        self.clock = clock
        self.store = store
        self.log = log
        self.limits = limits
        # other time sources: (wall) -> True when one vouches for it now (the cloud's signed
        # time, edge/sync.py), None when it has nothing to say
        self.vouchers: list[Callable[[float], bool | None]] = []
        saved = store.get_state(STATE_KEY) or {}
        mark = saved.get("high_water")
        self._alarm_id: int | None = saved.get("alarm")
        self.state = ClockState.restored(
            float(mark) if isinstance(mark, (int, float)) else None,
            alarm_open=self._alarm_id is not None,
        )

    def read(self) -> ClockReading:
        """One reading of the clocks."""
        try:
            synced = self.clock.synchronised()
        except OSError:
            synced = None
        wall = self.clock.now().timestamp()
        if not synced and any(vouch(wall) for vouch in self.vouchers):
            synced = True
        return ClockReading(wall, self.clock.monotonic(), synced)

    def peek(self) -> ClockVerdict:
        """The verdict on the clock now, changing nothing (for sync readers: health)."""
        return judge(self.state, self.read(), self.limits)

    def trusted(self) -> bool:
        return self.peek().trusted

    def status(self) -> dict[str, Any]:
        """For health pages: trusted, why not, the high-water mark."""
        verdict = self.peek()
        return {
            "ok": verdict.trusted,
            "problem": None if verdict.problem is None else str(verdict.problem),
            "high_water": _iso(verdict.state.high_water),
        }

    async def watch(self, every_s: float | None = None) -> None:
        """Look at the clock now and then, so a jump raises its alarm with nobody at a door."""
        while True:
            await asyncio.sleep(CHECK_EVERY_S if every_s is None else every_s)
            try:
                await self.check()
            except Exception:
                log.exception("clock guard check failed")

    async def check(self) -> bool:
        """Judge the clock now; store the mark and raise/clear the alarm when due.

        The judgement and the state change happen before the first await, so two
        presentations at once raise one alarm. Storage failures are logged, not raised:
        a decision never fails because the mark could not be written.
        """
        reading = self.read()
        verdict = judge(self.state, reading, self.limits)
        self.state = verdict.state
        if verdict.raise_alarm:
            await self._raise(verdict, reading)
        elif verdict.clear_alarm:
            await self._clear(reading)
        elif verdict.persist:
            await self._persist()
        return verdict.trusted

    async def flush(self) -> None:
        """At shutdown: store the latest trusted time (the reference after the restart)."""
        verdict = judge(self.state, self.read(), self.limits)
        self.state = verdict.state
        if verdict.trusted:
            await self._persist()

    async def _persist(self) -> None:
        value = {"high_water": self.state.high_water, "alarm": self._alarm_id}
        try:
            await self.store.put_state(STATE_KEY, value)
        except Exception:
            log.exception("clock guard: storing the high-water mark failed")

    async def _raise(self, verdict: ClockVerdict, reading: ClockReading) -> None:
        problem = str(verdict.problem)
        log.warning(
            "clock: not trusted (%s): reads %s, expected about %s; time-limited "
            "credentials are refused until it is right",
            problem,
            _iso(reading.wall),
            _iso(verdict.expected),
        )
        detail = {
            "problem": problem,
            "wall": _iso(reading.wall),
            "expected": _iso(verdict.expected),
            "high_water": _iso(verdict.state.high_water),
        }
        try:
            alarm = await self.log.raise_alarm(ALARM_KIND, source="clock", detail=detail)
        except Exception:
            log.exception("clock guard: recording the clock alarm failed")
            self.state = replace(self.state, alarm_open=False)  # try again next time
            return
        self._alarm_id = int(alarm["id"])
        await self._persist()

    async def _clear(self, reading: ClockReading) -> None:
        log.warning("clock: trusted again (reads %s)", _iso(reading.wall))
        alarm_id, self._alarm_id = self._alarm_id, None
        try:
            await self.log.record(
                self.log.event(
                    self.clock.now(),
                    "system",
                    "clock_trusted",
                    "success",
                    detail={"alarm": alarm_id, "wall": _iso(reading.wall)},
                )
            )
            if alarm_id is not None:
                await self.log.resolve_alarm(
                    alarm_id, actor="system:clock", note="the clock is right again"
                )
        except Exception:  # already resolved by an operator, or storage trouble
            log.warning("clock guard: resolving clock alarm %s failed", alarm_id, exc_info=True)
        await self._persist()
