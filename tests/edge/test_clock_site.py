"""The clock guard on a real site: a wrong clock never grants a time-limited credential.

The site reads an injected clock object (wall clock, monotonic clock, NTP flag); nothing
patches ``time`` globally. "True time" is ``T``; people are valid relative to it.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.service import Site
from tests.edge.conftest import POLICY, SITE_TOML

T = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class FakeClock:
    """A settable wall clock, a monotonic clock and an NTP flag, as the site reads them."""

    def __init__(self, wall: datetime, *, synced: bool | None = None) -> None:
        self.wall = wall
        self.mono = 5_000.0
        self.synced = synced

    def __call__(self) -> datetime:
        return self.wall

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def synchronised(self) -> bool | None:
        return self.synced

    def run(self, seconds: float) -> None:
        """Time passes: both clocks move on together."""
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def step(self, delta: timedelta) -> None:
        """Someone sets the wall clock; the monotonic clock does not move."""
        self.wall += delta


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def clock_policy() -> dict[str, Any]:
    doc = copy.deepcopy(POLICY)
    doc["people"] += [
        # validity ended yesterday
        {"id": "p-old", "kind": "staff", "groups": ["g-all"], "valid_until": iso(T - DAY)},
        # not valid before ten days from now
        {"id": "p-new", "kind": "staff", "groups": ["g-all"], "valid_from": iso(T + 10 * DAY)},
        # valid now, for another ten days: time-limited but right
        {"id": "p-lim", "kind": "staff", "groups": ["g-all"], "valid_until": iso(T + 10 * DAY)},
    ]
    doc["credentials"] += [
        {"id": "c-old", "person": "p-old", "kind": "pin", "value": "3141"},
        {"id": "c-new", "person": "p-new", "kind": "pin", "value": "2718"},
        {"id": "c-lim", "person": "p-lim", "kind": "pin", "value": "1618"},
    ]
    return doc


PINS = {"ann": "2580", "old": "3141", "new": "2718", "lim": "1618"}


@asynccontextmanager
async def opened(directory: Path, clock: FakeClock, *, policy: bool = False) -> AsyncIterator[Site]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.toml").write_text(SITE_TOML)
    async with Site.open(directory / "site.toml", clock=clock, with_hardware=False) as site:
        if policy:
            await site.apply_policy(clock_policy(), actor="test")
        yield site


async def pin(site: Site, who: str, **kw: Any) -> dict[str, Any]:
    return await site.present("gate-in", "pin", PINS[who], **kw)


async def clock_alarms(site: Site, *, open_only: bool = True) -> list[dict[str, Any]]:
    return [a for a in await site.alarms(open_only=open_only) if a["kind"] == "clock"]


def refused_for_clock(answer: dict[str, Any]) -> bool:
    return answer["granted"] is False and answer["reason"] == "clock_untrusted"


def decided(answer: dict[str, Any]) -> bool:
    """The decision itself (no hardware here: a grant's result is ``offline``)."""
    return answer["reason"] in ("granted", "offline")


Check = Callable[[dict[str, Any]], bool]


async def test_restart_with_the_clock_30_days_behind_refuses_the_expired_person(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T)
    async with opened(tmp_path, clock, policy=True) as site:
        assert decided(await pin(site, "ann"))
        assert (await pin(site, "old"))["reason"] == "outside_validity"
        clock.run(600)
    # the box restarts with an RTC thirty days behind
    clock = FakeClock(T - 30 * DAY)
    async with opened(tmp_path, clock) as site:
        assert refused_for_clock(await pin(site, "old"))
        assert refused_for_clock(await pin(site, "lim"))
        assert decided(await pin(site, "ann"))  # permanent credentials keep working
        assert site.status.health()["clock_ok"] is False
        [alarm] = await clock_alarms(site)
        assert alarm["detail"]["problem"] == "behind_high_water"


async def test_a_30_day_forward_jump_while_running_refuses_the_not_yet_valid(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T)
    async with opened(tmp_path, clock, policy=True) as site:
        assert (await pin(site, "new"))["reason"] == "outside_validity"
        clock.run(60)
        clock.step(30 * DAY)
        assert refused_for_clock(await pin(site, "new"))
        assert decided(await pin(site, "ann"))
        [alarm] = await clock_alarms(site)
        assert alarm["detail"]["problem"] == "stepped"


async def test_one_presentation_400_days_ahead_in_at_poisons_nothing(tmp_path: Path) -> None:
    clock = FakeClock(T)
    async with opened(tmp_path, clock, policy=True) as site:
        # simulation mode decides "as of" that time, with the real clock trusted
        assert (await pin(site, "lim", at=T + 400 * DAY))["reason"] == "outside_validity"
        clock.run(5)
        assert decided(await pin(site, "lim"))
        assert site.status.health()["clock_ok"] is True
        assert await clock_alarms(site, open_only=False) == []
    clock.run(5)
    async with opened(tmp_path, clock) as site:  # nor after a restart
        assert decided(await pin(site, "lim"))


async def test_a_400_day_jump_once_leaves_nothing_sticky_when_the_clock_returns(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T)
    async with opened(tmp_path, clock, policy=True) as site:
        assert decided(await pin(site, "lim"))
        clock.run(10)
        clock.step(400 * DAY)
        assert refused_for_clock(await pin(site, "lim"))
        assert (await pin(site, "old"))["reason"] == "clock_untrusted"
        assert len(await clock_alarms(site)) == 1
        clock.run(10)
        clock.step(-400 * DAY)  # NTP (or a person) puts it right
        assert decided(await pin(site, "lim"))
        assert (await pin(site, "old"))["reason"] == "outside_validity"
        assert site.status.health()["clock_ok"] is True
        assert await clock_alarms(site) == []  # resolved by itself, still on record
        [record] = await clock_alarms(site, open_only=False)
        assert record["resolved"] is True
    clock.run(10)
    async with opened(tmp_path, clock) as site:  # and the restart keeps trusting it
        assert decided(await pin(site, "lim"))
        assert await clock_alarms(site) == []


async def test_a_1970_boot_clock_refuses_time_limited_until_ntp_sets_it(tmp_path: Path) -> None:
    clock = FakeClock(T)
    async with opened(tmp_path, clock, policy=True):
        pass
    clock = FakeClock(datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC))  # RTC lost power
    async with opened(tmp_path, clock) as site:
        assert refused_for_clock(await pin(site, "lim"))
        assert refused_for_clock(await pin(site, "new"))
        assert decided(await pin(site, "ann"))
        [alarm] = await clock_alarms(site)
        assert alarm["detail"]["problem"] == "before_floor"
        # NTP comes up and sets the clock
        clock.step(T + timedelta(minutes=2) - clock.wall)
        clock.synced = True
        assert decided(await pin(site, "lim"))
        assert await clock_alarms(site) == []


async def test_a_1970_clock_on_a_brand_new_site_is_not_trusted(tmp_path: Path) -> None:
    clock = FakeClock(datetime(1970, 1, 1, 0, 1, tzinfo=UTC))
    async with opened(tmp_path, clock, policy=True) as site:
        assert refused_for_clock(await pin(site, "lim"))
        assert decided(await pin(site, "ann"))
        assert len(await clock_alarms(site)) == 1


async def test_an_ntp_step_of_an_hour_is_accepted_when_ntp_is_synchronised(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T, synced=True)
    async with opened(tmp_path, clock, policy=True) as site:
        for delta in (timedelta(hours=1), timedelta(hours=-1), timedelta(hours=-1)):
            clock.run(30)
            clock.step(delta)
            assert decided(await pin(site, "lim"))
            assert site.status.health()["clock_ok"] is True
        assert await clock_alarms(site, open_only=False) == []


async def test_an_unconfirmed_hour_step_is_untrusted_until_confirmed(tmp_path: Path) -> None:
    clock = FakeClock(T)
    async with opened(tmp_path, clock, policy=True) as site:
        clock.run(30)
        clock.step(timedelta(hours=-1))
        assert refused_for_clock(await pin(site, "lim"))
        assert len(await clock_alarms(site)) == 1
        clock.synced = True  # NTP agrees with the new time: it was a correction
        assert decided(await pin(site, "lim"))
        assert await clock_alarms(site) == []


async def test_the_clouds_signed_time_confirms_a_step_it_agrees_with(tmp_path: Path) -> None:
    # No NTP on this gateway; the cloud's last signed "nothing new" says what time it is
    # (edge/sync.py registers SyncClient.vouches_for; tests/cloud_sync/test_stale.py).
    clock = FakeClock(T)
    cloud_time = [T.timestamp()]
    async with opened(tmp_path, clock, policy=True) as site:
        site.clock_guard.vouchers.append(lambda wall: abs(wall - cloud_time[0]) <= 3)
        clock.run(30)
        cloud_time[0] += 30
        clock.step(timedelta(hours=-1))  # the cloud still says T + 30 s: a wrong step
        assert refused_for_clock(await pin(site, "lim"))
        cloud_time[0] -= 3600  # the cloud agrees: the step was a correction
        assert decided(await pin(site, "lim"))
        assert await clock_alarms(site) == []


async def test_small_steps_and_dst_changes_are_tolerated(tmp_path: Path) -> None:
    # Europe/Berlin leaves summer time at 01:00 UTC on 2026-10-25: UTC does not jump
    clock = FakeClock(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    async with opened(tmp_path, clock, policy=True) as site:
        clock.run(3600)
        clock.step(timedelta(seconds=20))  # an unconfirmed small correction
        assert site.status.health()["clock_ok"] is True
        assert decided(await pin(site, "ann"))
        assert await clock_alarms(site, open_only=False) == []


async def test_hold_open_schedules_do_not_hold_doors_open_on_an_untrusted_clock(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T)
    async with opened(tmp_path, clock) as site:
        doc = clock_policy()
        every_day = {"repeat": "daily", "start": "00:00", "end": "23:59:59"}
        doc["hold_open"] = [{"door": "gate", "schedule": every_day}]
        await site.apply_policy(doc, actor="test")
        assert await site.door_control.hold_open_tick(clock.now()) == {"gate"}
        clock.step(-400 * DAY)
        assert await site.door_control.hold_open_tick(clock.now()) == set()  # fail secure
        clock.step(400 * DAY)
        assert await site.door_control.hold_open_tick(clock.now()) == {"gate"}
