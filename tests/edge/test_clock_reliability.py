"""Reliability rows: clock jumps (±1 h, ±1 year, a 1970 boot clock) on a real site.

Every person presents their PIN again and again while the clock is wrong and after it is
right again; each decision is compared with the right answer at the true time. A grant
the true time would refuse is a *wrong grant* (there must be none); a time-limited grant
held back while the clock is untrusted is a *clock refusal* (the price of safety).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.service import Site
from tests.edge.test_clock_site import PINS, FakeClock, T, clock_alarms, opened, pin
from tests.reliability import Reliability

HOUR = timedelta(hours=1)
YEAR = timedelta(days=365)
# Right answers at the true time: ann is permanent, lim valid for ten more days,
# old's validity ended yesterday, new's starts in ten days.
SHOULD_OPEN = {"ann": True, "lim": True, "old": False, "new": False}


@dataclass(frozen=True)
class Jump:
    name: str
    step: timedelta | None = None  # a step of the wall clock while running
    restart_at: datetime | None = None  # or: the clock the box restarts with
    synced: bool | None = None  # what the NTP status says meanwhile


JUMPS = [
    Jump("+1 h step, unconfirmed", step=HOUR),
    Jump("-1 h step, unconfirmed", step=-HOUR),
    Jump("+1 h step, NTP synchronised", step=HOUR, synced=True),
    Jump("-1 h step, NTP synchronised", step=-HOUR, synced=True),
    Jump("+1 year step while running", step=YEAR),
    Jump("-1 year step while running", step=-YEAR),
    Jump("restart 1 year ahead", restart_at=T + YEAR),
    Jump("restart 1 year behind", restart_at=T - YEAR),
    Jump("restart with a 1970 boot clock", restart_at=datetime(1970, 1, 1, 0, 0, 9, tzinfo=UTC)),
]


@pytest.mark.parametrize("jump", JUMPS, ids=[j.name for j in JUMPS])
async def test_clock_jump(tmp_path: Path, jump: Jump, reliability: Reliability) -> None:
    rounds = reliability.scaled(10)
    tally: Counter[str] = Counter()
    alarms = -1

    async def present_everyone(site: Site, *, clock_wrong: bool) -> None:
        for _ in range(rounds):
            for who, should_open in SHOULD_OPEN.items():
                answer = await pin(site, who)
                opened_ = answer["reason"] in ("granted", "offline")  # no hardware: offline
                tally["decisions"] += 1
                if opened_ and not should_open:
                    tally["wrong_grants"] += 1
                if not opened_ and should_open:
                    assert answer["reason"] == "clock_untrusted", (jump.name, who, answer)
                    assert clock_wrong, (jump.name, who, answer)  # refusals only while wrong
                    tally["clock_refusals"] += 1

    clock = FakeClock(T)
    async with opened(tmp_path, clock, policy=True) as site:
        await present_everyone(site, clock_wrong=False)
        clock.run(120)
        if jump.step is not None:
            clock.synced = jump.synced
            clock.step(jump.step)
            await present_everyone(site, clock_wrong=jump.synced is not True)
            alarms = len(await clock_alarms(site, open_only=False))
            clock.step(-jump.step)  # and back again
            clock.run(30)
            await present_everyone(site, clock_wrong=False)
            assert await clock_alarms(site) == []
    if jump.restart_at is not None:
        wrong = FakeClock(jump.restart_at)
        async with opened(tmp_path, wrong) as site:
            await present_everyone(site, clock_wrong=True)
            alarms = len(await clock_alarms(site, open_only=False))
            wrong.step(T + timedelta(minutes=5) - wrong.wall)  # NTP sets it
            wrong.synced = True
            await present_everyone(site, clock_wrong=False)
            assert await clock_alarms(site) == []
    assert tally["wrong_grants"] == 0
    assert alarms == (0 if jump.synced else 1)
    if jump.synced is not True:
        assert tally["clock_refusals"] == rounds  # lim, while the clock was wrong
    reliability.row(
        test=f"clock: {jump.name}",
        load=f"{tally['decisions']} decisions ({len(PINS)} people x {rounds} x 3 phases)",
        faults=jump.name,
        bad_inputs="-",
        losses="0",
        decisions=tally["decisions"],
        wrong_grants=tally["wrong_grants"],
        clock_refusals=tally["clock_refusals"],
        clock_alarms=alarms,
    )
