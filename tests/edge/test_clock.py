"""The clock guard's judgement (edge/core/clock.py): pure, readings in, verdict out."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from edge.core.clock import (
    FLOOR,
    LIMITS,
    ClockProblem,
    ClockReading,
    ClockState,
    ClockVerdict,
    judge,
)

T = datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp()
DAY = 86_400.0
TOL = LIMITS.tolerance_s


def run(state: ClockState, *readings: ClockReading) -> ClockVerdict:
    verdict = None
    for reading in readings:
        verdict = judge(state, reading)
        state = verdict.state
    assert verdict is not None
    return verdict


def test_a_first_start_trusts_a_plausible_clock_and_stores_the_mark() -> None:
    v = judge(ClockState(), ClockReading(T, 10.0))
    assert v.trusted and v.persist and not v.raise_alarm
    assert v.state.high_water == T


def test_before_the_floor_is_never_trusted_even_when_confirmed() -> None:
    v = judge(ClockState(), ClockReading(42.0, 10.0, synced=True))
    assert not v.trusted and v.problem is ClockProblem.BEFORE_FLOOR
    assert v.raise_alarm and v.state.high_water is None and not v.persist


def test_after_a_restart_behind_the_mark_is_untrusted() -> None:
    state = ClockState.restored(T)
    v = judge(state, ClockReading(T - 30 * DAY, 3.0))
    assert v.problem is ClockProblem.BEHIND_HIGH_WATER and v.expected == T
    assert judge(state, ClockReading(T - TOL / 2, 3.0)).trusted  # small slack


def test_after_a_restart_far_ahead_needs_confirmation() -> None:
    state = ClockState.restored(T)
    assert judge(state, ClockReading(T + 2 * DAY, 3.0)).trusted  # off for a weekend
    v = judge(state, ClockReading(T + 30 * DAY, 3.0))
    assert v.problem is ClockProblem.AHEAD_UNCONFIRMED
    assert judge(state, ClockReading(T + 30 * DAY, 3.0, synced=True)).trusted


def test_a_step_while_running_is_caught_by_the_monotonic_clock_and_recovers() -> None:
    start = judge(ClockState(), ClockReading(T, 100.0)).state
    jumped = judge(start, ClockReading(T + 60 + 30 * DAY, 160.0))
    assert jumped.problem is ClockProblem.STEPPED and jumped.raise_alarm
    assert jumped.state.high_water == T  # an untrusted reading moves nothing
    again = judge(jumped.state, ClockReading(T + 70 + 30 * DAY, 170.0))
    assert not again.trusted and not again.raise_alarm  # one alarm per episode
    back = judge(again.state, ClockReading(T + 80, 180.0))
    assert back.trusted and back.clear_alarm and not back.state.alarm_open


def test_a_confirmed_step_re_anchors_and_may_lower_a_poisoned_mark() -> None:
    state = ClockState.restored(T + 400 * DAY)
    v = judge(state, ClockReading(T, 5.0, synced=True))
    assert v.trusted and v.state.high_water == T and v.persist
    later = judge(v.state, ClockReading(T + 10, 15.0))  # NTP drops out: still anchored
    assert later.trusted


def test_the_mark_is_persisted_once_a_minute_not_on_every_reading() -> None:
    state = judge(ClockState(), ClockReading(T, 0.0)).state
    assert not judge(state, ClockReading(T + 30, 30.0)).persist
    assert judge(state, ClockReading(T + LIMITS.persist_every_s, LIMITS.persist_every_s)).persist


def test_an_alarm_open_before_a_restart_is_not_raised_twice() -> None:
    state = ClockState.restored(T, alarm_open=True)
    assert not judge(state, ClockReading(T - 30 * DAY, 1.0)).raise_alarm
    assert judge(state, ClockReading(T + 60, 1.0)).clear_alarm


walls = st.floats(min_value=0, max_value=FLOOR + 3_000 * DAY, allow_nan=False)
steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3 * DAY),  # time that passes
        st.floats(min_value=-800 * DAY, max_value=800 * DAY),  # a step of the wall clock
        st.sampled_from([None, False, True]),
    ),
    max_size=12,
)


@given(start=walls, story=steps)
def test_no_reading_sticks_and_only_trusted_time_moves_the_mark(
    start: float, story: list[tuple[float, float, bool | None]]
) -> None:
    """Whatever happened to the clock, a reading that agrees with the last trusted
    anchor is trusted again, and the mark is always a time that was trusted."""
    state, wall, mono = ClockState(), start, 1_000.0
    trusted_walls: set[float] = set()
    for elapsed, step, synced in story:
        mono += elapsed
        wall += elapsed + step
        v = judge(state, ClockReading(wall, mono, synced))
        if v.trusted:
            trusted_walls.add(wall)
            assert wall >= FLOOR
        assert v.state.high_water is None or v.state.high_water in trusted_walls
        assert not (v.raise_alarm and v.clear_alarm)
        assert v.state.alarm_open == (not v.trusted)
        state = v.state
    if state.offset is not None:
        mono += 1.0
        back = judge(state, ClockReading(mono + state.offset, mono))
        assert back.trusted
        assert not back.state.alarm_open


def test_the_system_clock_reads_this_machine() -> None:
    """The shell's real clock: UTC wall time, a monotonic clock, the kernel's NTP status."""
    from edge.site.clock import SystemClock

    clock = SystemClock()
    first, wall = clock.monotonic(), clock.now()
    assert wall.tzinfo is not None and wall.timestamp() >= FLOOR
    assert clock.monotonic() >= first
    assert clock.synchronised() in (True, False)  # Linux answers (adjtimex)
