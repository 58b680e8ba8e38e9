"""The readers hub over a real site: reads take the presentation path, feedback follows the
answer, a reader alarm is raised once per outage, GET /readers shows the link state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from doorkeep.errors import Conflict, NotFound
from edge.readers import Feedback, Readers
from tests.edge.sites import open_site
from tests.edge.web import sample


class Recorder:
    """A driver of our own interface that records the feedback it is asked to show."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, Feedback]] = []
        self.ran = asyncio.Event()

    async def run(self, hub: Readers) -> None:
        self.ran.set()
        await asyncio.Event().wait()

    async def feedback(self, reader_id: str, signal: Feedback) -> None:
        self.shown.append((reader_id, signal))


async def test_a_read_opens_the_door_and_the_reader_shows_the_answer(tmp_path: Path) -> None:
    async with open_site(tmp_path, sample.SITE_TOML, sample.POLICY) as site:
        driver = Recorder()
        site.readers.attach(driver, ["gate-in"])
        granted = await site.readers.read("gate-in", "pin", "4711")
        denied = await site.readers.read("gate-in", "pin", "9999")
        assert granted["granted"] is True
        assert denied["granted"] is False
        assert driver.shown == [("gate-in", Feedback.GRANTED), ("gate-in", Feedback.DENIED)]
        events, _ = await site.events(type="access")
        assert [e["reader"] for e in events] == ["gate-in", "gate-in"]
        assert site.readers.state("gate-in").last_seen is not None


async def test_a_locked_out_reader_shows_locked_out(tmp_path: Path) -> None:
    async with open_site(tmp_path, sample.SITE_TOML, sample.POLICY) as site:
        driver = Recorder()
        site.readers.attach(driver, ["lobby-in"])
        for _ in range(6):
            answer = await site.readers.read("lobby-in", "pin", "0000")
        assert answer["reason"] == "locked_out"
        assert driver.shown[-1] == ("lobby-in", Feedback.LOCKED_OUT)


async def test_one_alarm_per_outage(tmp_path: Path) -> None:
    async with open_site(tmp_path, sample.SITE_TOML, sample.POLICY) as site:
        for _ in range(3):
            await site.readers.alarm("gate-in", "reader_offline", "no answer")
        site.readers.clear("gate-in", "reader_offline")
        await site.readers.alarm("gate-in", "reader_offline", "no answer")
        alarms = [a for a in await site.alarms() if a["kind"] == "reader_offline"]
        assert len(alarms) == 2
        assert all(a["source"] == "reader:gate-in" for a in alarms)


async def test_status_lists_every_reader_with_its_link(tmp_path: Path) -> None:
    async with open_site(tmp_path, sample.SITE_TOML, sample.POLICY) as site:
        site.readers.mark("plant-in", online=False, reason="no poll reply")
        rows = {r["id"]: r for r in site.readers.status()}
        assert set(rows) == set(sample.READERS)
        assert rows["plant-in"]["online"] is False
        assert rows["gate-in"]["online"] is None  # a sim reader has no link of its own
        health = site.status.health()
        assert health["status"] == "degraded"
        assert health["degraded"] == ["reader plant-in"]


async def test_a_driver_runs_with_the_site(tmp_path: Path) -> None:
    async with open_site(tmp_path, sample.SITE_TOML, sample.POLICY) as site:
        driver = Recorder()
        site.readers.attach(driver, ["gate-in"])
        task = asyncio.create_task(site.readers.run())
        await asyncio.wait_for(driver.ran.wait(), 2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_only_an_osdp_reader_is_provisioned(tmp_path: Path) -> None:
    async with open_site(tmp_path, sample.SITE_TOML, sample.POLICY) as site:
        with pytest.raises(Conflict, match="only OSDP readers"):
            await site.readers.provision("gate-in", 30)
        with pytest.raises(NotFound, match="not in site"):
            await site.readers.provision("nope", 30)
