"""Schedules as a site manager sees them: when does a group's door open, in the site's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge.core.schedule import ALWAYS, DAY_NAMES, Instant, Repeat, Schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")


def at(tz: ZoneInfo, *args: int, fold: int = 0) -> Instant:
    """The instant the wall clock in tz shows *args (fold=1: the second showing)."""
    return Instant.of(datetime(*args, tzinfo=tz, fold=fold), tz)  # type: ignore[misc,arg-type]


def utc(tz: ZoneInfo, *args: int) -> Instant:
    return Instant.of(datetime(*args, tzinfo=UTC), tz)  # type: ignore[misc,arg-type]


def open_seconds(s: Schedule, tz: ZoneInfo, day: date, step: int = 1) -> int:
    """How many seconds (sampled every `step`) of the local calendar day `day` are open."""
    t = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    end = (datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)).astimezone(UTC)
    n = 0
    while t < end:
        n += step * s.is_open(Instant.of(t, tz))
        t += timedelta(seconds=step)
    return n


def daily(start: str, end: str, tz: ZoneInfo = BERLIN, **kw: object) -> Schedule:
    return Schedule.from_dict({"repeat": "daily", "start": start, "end": end, **kw}, tz)


def weekly(days: list[str], start: str, end: str, tz: ZoneInfo = BERLIN, **kw: object) -> Schedule:
    return Schedule.from_dict(
        {"repeat": "weekly", "days": days, "start": start, "end": end, **kw}, tz
    )


def never(start: str, end: str, tz: ZoneInfo = BERLIN) -> Schedule:
    return Schedule.from_dict({"repeat": "never", "start": start, "end": end}, tz)


# -- Instant ---------------------------------------------------------------------------------


def test_instant_sees_one_moment_as_site_wall_clock() -> None:
    i = Instant.of(datetime(2026, 7, 1, 10, 0, tzinfo=UTC), BERLIN)
    assert i.wall == datetime(2026, 7, 1, 12, 0)
    assert i.utc == datetime(2026, 7, 1, 10, 0, tzinfo=UTC).timestamp()
    assert i.weekday == 2
    assert i.day == date(2026, 7, 1)


def test_instant_refuses_naive_now_and_names_it() -> None:
    with pytest.raises(ValueError, match="aware"):
        Instant.of(datetime(2026, 7, 1, 10, 0), BERLIN)


def test_same_moment_in_different_offsets_is_the_same_instant() -> None:
    a = Instant.of(datetime(2026, 7, 1, 10, 0, tzinfo=UTC), NEW_YORK)
    b = Instant.of(datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), NEW_YORK)
    assert a == b


# -- daily -----------------------------------------------------------------------------------


def test_daily_window_opens_at_start_and_closes_after_end() -> None:
    s = daily("08:00", "20:00")
    assert not s.is_open(at(BERLIN, 2026, 11, 20, 7, 59, 59))
    assert s.is_open(at(BERLIN, 2026, 11, 20, 8, 0, 0))
    assert s.is_open(at(BERLIN, 2026, 11, 20, 14, 0, 0))
    assert not s.is_open(at(BERLIN, 2026, 11, 20, 20, 0, 1))


def test_end_is_inclusive_to_the_second() -> None:
    s = daily("08:00", "20:00:00")
    assert s.is_open(at(BERLIN, 2026, 11, 20, 20, 0, 0))
    assert s.is_open(Instant.of(datetime(2026, 11, 20, 20, 0, 0, 999_999, tzinfo=BERLIN), BERLIN))
    assert not s.is_open(at(BERLIN, 2026, 11, 20, 20, 0, 1))


def test_all_day_window_covers_the_last_second_of_the_day() -> None:
    s = daily("00:00:00", "23:59:59")
    last = Instant.of(datetime(2026, 11, 20, 23, 59, 59, 999_999, tzinfo=BERLIN), BERLIN)
    assert s.is_open(last)
    assert open_seconds(s, BERLIN, date(2026, 11, 20), step=60) == 86_400


def test_daily_window_is_in_the_site_zone_not_utc() -> None:
    s = daily("08:00", "09:00", tz=NEW_YORK)
    assert s.is_open(utc(NEW_YORK, 2026, 7, 1, 12, 30))  # 08:30 EDT
    assert not s.is_open(utc(BERLIN, 2026, 7, 1, 8, 30))  # 10:30 in Berlin


def test_overnight_daily_window_crosses_midnight() -> None:
    s = daily("22:00", "06:00")
    assert s.is_open(at(BERLIN, 2026, 11, 20, 23, 0))
    assert s.is_open(at(BERLIN, 2026, 11, 21, 0, 0))
    assert s.is_open(at(BERLIN, 2026, 11, 21, 6, 0, 0))
    assert not s.is_open(at(BERLIN, 2026, 11, 21, 6, 0, 1))
    assert not s.is_open(at(BERLIN, 2026, 11, 21, 12, 0))
    assert not s.is_open(at(BERLIN, 2026, 11, 21, 21, 59, 59))


def test_daily_holiday_exclusion_closes_the_whole_day() -> None:
    s = daily("08:00", "20:00", except_holidays=True)
    xmas = frozenset({date(2026, 12, 25)})
    assert not s.is_open(at(BERLIN, 2026, 12, 25, 12, 0), xmas)
    assert s.is_open(at(BERLIN, 2026, 12, 24, 12, 0), xmas)


def test_holidays_are_ignored_without_except_holidays() -> None:
    s = daily("08:00", "20:00")
    assert s.is_open(at(BERLIN, 2026, 12, 25, 12, 0), frozenset({date(2026, 12, 25)}))


def test_overnight_daily_window_after_a_holiday_eve_belongs_to_its_start_day() -> None:
    s = daily("22:00", "06:00", except_holidays=True)
    xmas = frozenset({date(2026, 12, 25)})
    # Christmas night: starts on the holiday, so closed until 06:00 on the 26th...
    assert not s.is_open(at(BERLIN, 2026, 12, 25, 23, 0), xmas)
    assert not s.is_open(at(BERLIN, 2026, 12, 26, 3, 0), xmas)
    # ...while the early hours of the 25th belong to the night of the 24th: open.
    assert s.is_open(at(BERLIN, 2026, 12, 25, 3, 0), xmas)


def test_daily_window_with_offset_is_absolute() -> None:
    s = daily("08:00Z", "09:00Z", tz=NEW_YORK)
    assert s.is_open(utc(NEW_YORK, 2026, 1, 5, 8, 30))
    assert s.is_open(utc(NEW_YORK, 2026, 7, 5, 8, 30))
    assert not s.is_open(utc(NEW_YORK, 2026, 7, 5, 9, 30))


# -- weekly ----------------------------------------------------------------------------------


def test_weekly_window_only_on_listed_days() -> None:
    s = weekly(["mon", "tue", "wed", "thu", "fri"], "07:00", "19:00")
    assert s.is_open(at(BERLIN, 2026, 11, 20, 12, 0))  # Friday
    assert not s.is_open(at(BERLIN, 2026, 11, 21, 12, 0))  # Saturday


def test_overnight_weekly_window_belongs_to_the_day_it_starts() -> None:
    s = weekly(["fri"], "22:00", "06:00")
    assert s.is_open(at(BERLIN, 2026, 11, 20, 23, 0))  # Friday night
    assert s.is_open(at(BERLIN, 2026, 11, 21, 5, 0))  # Saturday early: Friday's window
    assert not s.is_open(at(BERLIN, 2026, 11, 20, 5, 0))  # Friday early: Thursday's, not listed
    assert not s.is_open(at(BERLIN, 2026, 11, 21, 23, 0))  # Saturday night


def test_overnight_weekly_sunday_window_wraps_to_monday() -> None:
    s = weekly(["sun"], "23:00", "01:00")
    assert s.is_open(at(BERLIN, 2026, 11, 23, 0, 30))  # Monday 00:30
    assert not s.is_open(at(BERLIN, 2026, 11, 22, 0, 30))  # Sunday 00:30 (Saturday's)


def test_weekly_holiday_exclusion_applies_to_the_start_day() -> None:
    s = weekly(["thu", "fri"], "22:00", "06:00", except_holidays=True)
    xmas = frozenset({date(2026, 12, 25)})  # a Friday
    assert not s.is_open(at(BERLIN, 2026, 12, 25, 23, 0), xmas)
    assert not s.is_open(at(BERLIN, 2026, 12, 26, 2, 0), xmas)  # tail of Friday's window
    assert s.is_open(at(BERLIN, 2026, 12, 25, 2, 0), xmas)  # tail of Thursday's window


def test_staff_weekdays_except_holidays_from_the_policy_example() -> None:
    s = weekly(["mon", "tue", "wed", "thu", "fri"], "07:00", "19:00", except_holidays=True)
    holidays = frozenset({date(2026, 12, 25)})
    assert not s.is_open(at(BERLIN, 2026, 12, 25, 9, 0), holidays)
    assert s.is_open(at(BERLIN, 2026, 12, 24, 9, 0), holidays)


# -- never -----------------------------------------------------------------------------------


def test_never_window_is_an_absolute_window_with_inclusive_end() -> None:
    s = never("2026-11-17T13:54:00", "2026-11-18T13:54:00")
    assert not s.is_open(at(BERLIN, 2026, 11, 17, 13, 53, 59))
    assert s.is_open(at(BERLIN, 2026, 11, 17, 13, 54))
    assert s.is_open(Instant.of(datetime(2026, 11, 18, 13, 54, 0, 999_999, tzinfo=BERLIN), BERLIN))
    assert not s.is_open(at(BERLIN, 2026, 11, 18, 13, 54, 1))


def test_never_window_has_ended_only_after_its_end() -> None:
    s = never("2026-11-17T13:54:00", "2026-11-18T13:54:00")
    assert s.is_time_limited()
    assert not s.has_ended(at(BERLIN, 2026, 11, 1, 0, 0))
    assert not s.has_ended(at(BERLIN, 2026, 11, 18, 13, 54, 0))
    assert s.has_ended(at(BERLIN, 2026, 11, 18, 13, 54, 1))


def test_repeating_schedules_never_end() -> None:
    assert not ALWAYS.is_time_limited()
    assert not ALWAYS.has_ended(at(BERLIN, 2099, 1, 1, 0, 0))
    assert not daily("08:00", "09:00").has_ended(at(BERLIN, 2099, 1, 1, 0, 0))


def test_never_window_with_offset_ignores_site_zone() -> None:
    s = never("2026-11-17T12:00:00+00:00", "2026-11-17T13:00:00Z", tz=NEW_YORK)
    assert s.is_open(utc(NEW_YORK, 2026, 11, 17, 12, 30))
    assert not s.is_open(utc(NEW_YORK, 2026, 11, 17, 13, 30))


def test_never_window_naive_times_are_site_wall_clock() -> None:
    s = never("2026-11-17T08:00:00", "2026-11-17T09:00:00", tz=NEW_YORK)
    assert s.is_open(utc(NEW_YORK, 2026, 11, 17, 13, 30))  # 08:30 EST


# -- DST -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day"),
    [(BERLIN, date(2026, 3, 29)), (NEW_YORK, date(2026, 3, 8)), (SYDNEY, date(2026, 10, 4))],
)
def test_spring_forward_window_into_the_gap_is_30_minutes(tz: ZoneInfo, day: date) -> None:
    s = daily("01:30", "02:30", tz=tz)
    # 01:30:00..01:59:59 shows on the clock, 02:00..02:59:59 never does.
    assert open_seconds(s, tz, day) == 30 * 60
    # On an ordinary day the same window is an hour and one second (inclusive end).
    assert open_seconds(s, tz, day + timedelta(days=7), step=1) == 3601


@pytest.mark.parametrize(
    ("tz", "day"),
    [(BERLIN, date(2026, 3, 29)), (NEW_YORK, date(2026, 3, 8)), (SYDNEY, date(2026, 10, 4))],
)
def test_spring_forward_window_starting_in_the_gap_opens_when_the_clock_jumps(
    tz: ZoneInfo, day: date
) -> None:
    s = daily("02:30", "04:00", tz=tz)
    assert not s.is_open(at(tz, day.year, day.month, day.day, 1, 59, 59))
    assert s.is_open(at(tz, day.year, day.month, day.day, 3, 0, 0))
    assert open_seconds(s, tz, day, step=60) == 60 * 60 + 60  # the 04:00 sample: inclusive end


@pytest.mark.parametrize(
    ("tz", "day", "hour"),
    [
        (BERLIN, date(2026, 10, 25), 2),
        (NEW_YORK, date(2026, 11, 1), 1),
        (SYDNEY, date(2026, 4, 5), 2),
    ],
)
def test_fall_back_window_inside_repeated_hour_is_open_both_times(
    tz: ZoneInfo, day: date, hour: int
) -> None:
    s = daily(f"{hour:02d}:00", f"{hour:02d}:29:59", tz=tz)
    y, m, d = day.year, day.month, day.day
    assert s.is_open(at(tz, y, m, d, hour, 15, fold=0))
    assert not s.is_open(at(tz, y, m, d, hour, 45, fold=0))
    assert s.is_open(at(tz, y, m, d, hour, 15, fold=1))
    assert open_seconds(s, tz, day, step=60) == 60 * 60  # 2 x 30 minutes


def test_fall_back_day_business_hours_last_one_hour_longer_in_real_time() -> None:
    s = daily("00:00", "12:00")
    assert open_seconds(s, BERLIN, date(2026, 10, 25), step=60) == 13 * 3600 + 60  # 12:00 incl.


def test_never_window_starting_in_a_fold_uses_first_occurrence_and_ends_at_the_second() -> None:
    s = never("2026-10-25T02:30:00", "2026-10-25T02:30:00")  # Berlin: 02:30 happens twice
    assert s.is_open(at(BERLIN, 2026, 10, 25, 2, 30, fold=0))
    assert s.is_open(at(BERLIN, 2026, 10, 25, 2, 45, fold=0))
    assert s.is_open(at(BERLIN, 2026, 10, 25, 2, 30, fold=1))
    assert not s.is_open(at(BERLIN, 2026, 10, 25, 2, 30, 1, fold=1))


def test_never_window_edges_inside_the_gap_mean_the_jump() -> None:
    # 02:15 does not exist in Berlin on 2026-03-29: the window starts when 03:00 CEST begins.
    s = never("2026-03-29T02:15:00", "2026-03-29T04:00:00")
    assert not s.is_open(utc(BERLIN, 2026, 3, 29, 0, 59, 59))
    assert s.is_open(utc(BERLIN, 2026, 3, 29, 1, 0, 0))
    # A temp key ending inside the gap ends at the jump.
    t = never("2026-03-29T00:00:00", "2026-03-29T02:30:00")
    assert t.is_open(utc(BERLIN, 2026, 3, 29, 0, 59, 59))
    assert not t.is_open(utc(BERLIN, 2026, 3, 29, 1, 0, 0))
    assert t.has_ended(utc(BERLIN, 2026, 3, 29, 1, 0, 0))


def test_overnight_window_across_fall_back_in_sydney() -> None:
    s = weekly(["sat"], "22:00", "06:00", tz=SYDNEY)
    # Sat 4 Apr 2026 22:00 AEDT .. Sun 06:00 AEST: 9 hours of real time (one repeated hour).
    start = datetime(2026, 4, 4, 22, tzinfo=SYDNEY).astimezone(UTC)
    n = 0
    for minute in range(12 * 60):
        n += s.is_open(Instant.of(start + timedelta(minutes=minute), SYDNEY))
    assert n == 9 * 60 + 1  # the 06:00 minute sample counts: inclusive end


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "names"),
    [
        ({"repeat": "monthly", "start": "08:00", "end": "09:00"}, "repeat"),
        ({"repeat": "daily", "start": "8:00", "end": "09:00"}, "start"),
        ({"repeat": "daily", "start": "08:00", "end": "24:00"}, "end"),
        ({"repeat": "daily", "start": "08:00"}, "end"),
        ({"repeat": "daily", "start": "08:00", "end": "09:00", "days": ["mon"]}, "days"),
        ({"repeat": "weekly", "days": ["monday"], "start": "08:00", "end": "09:00"}, "monday"),
        ({"repeat": "weekly", "days": [], "start": "08:00", "end": "09:00"}, "days"),
        ({"repeat": "weekly", "start": "08:00", "end": "09:00"}, "days"),
        ({"repeat": "never", "start": "2026-11-17", "end": "2026-11-18T00:00"}, "start"),
        ({"repeat": "never", "start": "2026-11-18T00:00", "end": "2026-11-17T00:00"}, "before"),
        ({"repeat": "never", "start": "2026-11-17T00:00", "end": "yesterday"}, "yesterday"),
        (
            {
                "repeat": "never",
                "start": "2026-11-17T00:00",
                "end": "2026-11-18T00:00",
                "except_holidays": True,
            },
            "except_holidays",
        ),
        ({"repeat": "daily", "start": "08:00", "end": "09:00", "except_holidays": "yes"}, "yes"),
        ({"repeat": "daily", "start": "08:00+01:00", "end": "09:00"}, "offset"),
        ({"repeat": "daily", "start": 800, "end": "09:00"}, "start"),
    ],
)
def test_bad_schedule_is_refused_naming_the_field(d: dict[str, object], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        Schedule.from_dict(d, BERLIN)


def test_to_dict_is_canonical_and_round_trips() -> None:
    d = {
        "repeat": "weekly",
        "days": ["fri", "mon"],
        "start": "07:00:00",
        "end": "19:00:30",
        "except_holidays": True,
    }
    s = Schedule.from_dict(d, BERLIN)
    assert s.to_dict() == {
        "repeat": "weekly",
        "days": ["mon", "fri"],
        "start": "07:00",
        "end": "19:00:30",
        "except_holidays": True,
    }
    assert Schedule.from_dict(s.to_dict(), BERLIN) == s
    assert ALWAYS.to_dict() == {"repeat": "daily", "start": "00:00", "end": "23:59:59"}
    assert ALWAYS.repeat is Repeat.DAILY


# -- properties ------------------------------------------------------------------------------

ZONES = st.sampled_from([BERLIN, NEW_YORK, SYDNEY, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata")])
TIMES = st.times().map(lambda t: t.replace(microsecond=0))
AWARE = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES
)
HOLIDAYS = st.frozensets(st.dates(date(2025, 1, 1), date(2028, 1, 1)), max_size=20)


def _fmt(t: time) -> str:
    return t.isoformat(timespec="seconds")


@st.composite
def schedules(draw: st.DrawFn, tz: ZoneInfo) -> Schedule:
    repeat = draw(st.sampled_from(list(Repeat)))
    if repeat is Repeat.NEVER:
        a = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)))
        b = a + draw(st.timedeltas(timedelta(0), timedelta(days=400)))
        return Schedule.from_dict(
            {"repeat": "never", "start": a.isoformat(), "end": b.isoformat()}, tz
        )
    d: dict[str, object] = {
        "repeat": repeat.value,
        "start": _fmt(draw(TIMES)),
        "end": _fmt(draw(TIMES)),
        "except_holidays": draw(st.booleans()),
    }
    if repeat is Repeat.WEEKLY:
        d["days"] = draw(st.lists(st.sampled_from(DAY_NAMES), min_size=1, max_size=7))
    return Schedule.from_dict(d, tz)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), tz=ZONES, now=AWARE, holidays=HOLIDAYS)
def test_is_open_never_raises_for_any_aware_datetime(
    data: st.DataObject, tz: ZoneInfo, now: datetime, holidays: frozenset[date]
) -> None:
    s = data.draw(schedules(tz))
    i = Instant.of(now, tz)
    assert isinstance(s.is_open(i, holidays), bool)
    assert isinstance(s.has_ended(i), bool)
    assert Schedule.from_dict(s.to_dict(), tz) == s


@settings(max_examples=300, deadline=None)
@given(tz=ZONES, now=AWARE, start=TIMES, end=TIMES, holidays=HOLIDAYS, ex=st.booleans())
def test_daily_window_and_its_complement_partition_every_moment(
    tz: ZoneInfo,
    now: datetime,
    start: time,
    end: time,
    holidays: frozenset[date],
    ex: bool,
) -> None:
    one_second = timedelta(seconds=1)
    base = datetime(2000, 1, 1)
    c_start = (datetime.combine(base, end) + one_second).time()
    c_end = (datetime.combine(base, start) - one_second).time()
    assume(c_start != start)  # a full-day window has an empty complement
    s = daily(_fmt(start), _fmt(end), tz=tz)
    c = daily(_fmt(c_start), _fmt(c_end), tz=tz)
    i = Instant.of(now, tz)
    assert s.is_open(i) != c.is_open(i)
    # With holiday exclusion, the two still never overlap.
    se = daily(_fmt(start), _fmt(end), tz=tz, except_holidays=ex)
    ce = daily(_fmt(c_start), _fmt(c_end), tz=tz, except_holidays=ex)
    assert not (se.is_open(i, holidays) and ce.is_open(i, holidays))


@settings(max_examples=300, deadline=None)
@given(tz=ZONES, now=AWARE, start=TIMES, end=TIMES, holidays=HOLIDAYS, ex=st.booleans())
def test_weekly_on_every_day_equals_daily(
    tz: ZoneInfo, now: datetime, start: time, end: time, holidays: frozenset[date], ex: bool
) -> None:
    d = daily(_fmt(start), _fmt(end), tz=tz, except_holidays=ex)
    w = weekly(list(DAY_NAMES), _fmt(start), _fmt(end), tz=tz, except_holidays=ex)
    i = Instant.of(now, tz)
    assert d.is_open(i, holidays) == w.is_open(i, holidays)


@settings(max_examples=300, deadline=None)
@given(tz=ZONES, now=AWARE, start=TIMES, end=TIMES, days=st.sets(st.sampled_from(DAY_NAMES)))
def test_weekly_is_the_union_of_its_single_days(
    tz: ZoneInfo, now: datetime, start: time, end: time, days: set[str]
) -> None:
    assume(days)
    i = Instant.of(now, tz)
    whole = weekly(sorted(days), _fmt(start), _fmt(end), tz=tz).is_open(i)
    parts = [weekly([day], _fmt(start), _fmt(end), tz=tz).is_open(i) for day in days]
    assert whole == any(parts)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), tz=ZONES, a=AWARE, b=AWARE)
def test_a_never_window_once_ended_stays_ended_and_is_closed(
    data: st.DataObject, tz: ZoneInfo, a: datetime, b: datetime
) -> None:
    s = data.draw(schedules(tz))
    earlier, later = sorted([Instant.of(a, tz), Instant.of(b, tz)], key=lambda i: i.utc)
    if s.has_ended(earlier):
        assert s.has_ended(later)
        assert not s.is_open(later)
    if s.is_open(later):
        assert not s.has_ended(later)
