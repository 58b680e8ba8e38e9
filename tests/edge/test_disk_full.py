"""A full disk on a real 2 MiB tmpfs: doors keep deciding, nothing opens unrecorded.

The site's data directory is a tmpfs of 2 MiB, filled with a file until 0 bytes are
free; the real Site (store, simulated RS485 bus) runs on it. Events must then be held
in memory in order and written, with a ``storage_unavailable`` alarm, as soon as space
is free again (docs/storage.md, *When storage fails*). Mounting needs root: the test
command runs as root, and this test fails (never skips) when it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.service import Site
from tests.edge.conftest import POLICY, SITE_TOML
from tests.edge.sites import open_site, until
from tests.reliability import Reliability

CARD = ("gate-in", "rf_card", "00C0FFEE")  # p-sam, staff, may open the gate
WRONG_PIN = ("lobby-in", "pin", "4711")
ANN_PIN = ("lobby-in", "pin", "2580")  # p-ann's own PIN


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at ``tmp_path/disk``, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail(
            "this test mounts a 2 MiB tmpfs and needs root (the test command runs as root); "
            "run it as root"
        )
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write ``disk/fill`` until the file system has 0 bytes free."""
    path = disk / "fill"
    with path.open("wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            chunk = b"\0" * size
            while True:
                try:
                    f.write(chunk)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
    assert os.statvfs(disk).f_bavail == 0
    return path


async def present(site: Site, who: tuple[str, str, str]) -> dict[str, Any]:
    return await site.present(*who)


async def all_events(site: Site) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    seq = 0
    while batch := await site.store.events_above(seq, 1000):
        events += batch
        seq = batch[-1]["seq"]
    return events


@contextlib.asynccontextmanager
async def site_on(disk: Path):
    async with open_site(disk, SITE_TOML, POLICY) as site:
        await until(lambda: "doors" in site.hw._last_inputs)
        yield site


async def test_a_full_disk_keeps_deciding_holds_every_event_and_writes_it_when_space_returns(
    small_disk: Path, reliability: Reliability
) -> None:
    async with site_on(small_disk) as site:
        assert site.health()["status"] == "ok"
        before = len(await all_events(site))
        filler = await asyncio.to_thread(fill, small_disk)

        card = await present(site, CARD)
        assert card["granted"] is True
        assert card["result"] == "success"
        wrong = [await present(site, WRONG_PIN) for _ in range(5)]
        # the policy locks a reader out after 3 failures
        assert [w["reason"] for w in wrong] == ["unknown_credential"] * 3 + ["locked_out"] * 2
        health = site.health()
        assert health["status"] == "degraded"
        assert health["degraded"] == ["storage"]
        assert health["storage"]["held"] >= 6
        assert "full" in health["storage"]["error"]

        await asyncio.to_thread(filler.unlink)
        await until(lambda: site.health()["status"] == "ok", timeout=10)
        events = await all_events(site)
        access = [e for e in events[before:] if e["type"] == "access"]
        answered = [card, *wrong]
        assert [e["seq"] for e in access] == [a["event_id"] for a in answered]
        assert [e["reason"] for e in access] == [None] + [w["reason"] for w in wrong]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert (await site.store.verify_chain()).ok
        (alarm,) = [a for a in await site.alarms() if a["kind"] == "storage_unavailable"]
        assert alarm["detail"]["lost"] == 0
        assert alarm["detail"]["dropped"] == 0
        assert alarm["detail"]["held"] >= 6
        assert alarm["event_seq"] > access[-1]["seq"]
        assert "full" in alarm["detail"]["error"]

    # what the site remembers (the lockout) is what it recorded, also after a restart
    async with site_on(small_disk) as site:
        assert (await present(site, ANN_PIN))["reason"] == "locked_out"
    reliability.row(
        test="disk full (2 MiB tmpfs at 0 bytes free)",
        load="1 card + 5 wrong PINs during the outage",
        faults="ENOSPC on every commit, then space freed",
        losses="0",
        held=len(answered),
    )


async def test_past_the_spill_bound_presentations_are_refused_and_nothing_opens(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edge.store._writer.SPILL_LIMIT", 12)
    async with site_on(small_disk) as site:
        filler = await asyncio.to_thread(fill, small_disk)
        answers = [await present(site, WRONG_PIN) for _ in range(12)]
        refused = [a for a in answers if a["reason"] == "storage_unavailable"]
        assert refused, answers
        assert all(a["result"] == "failed" and a["event_id"] is None for a in refused)
        # fail secure: even a valid card is refused and the gate stays locked
        card = await present(site, CARD)
        assert card["granted"] is False
        assert card["reason"] == "storage_unavailable"
        assert site.door("gate")["state"] == "locked"
        held = [a for a in answers if a["event_id"] is not None]

        await asyncio.to_thread(filler.unlink)
        await until(lambda: site.health()["status"] == "ok", timeout=10)
        events = await all_events(site)
        logged = [e["seq"] for e in events if e["type"] == "access"]
        assert logged == [a["event_id"] for a in held]
        (alarm,) = [a for a in await site.alarms() if a["kind"] == "storage_unavailable"]
        assert alarm["detail"]["refused"] == len(refused) + 1
        assert alarm["detail"]["dropped"] == 0
        assert (await site.store.verify_chain()).ok
