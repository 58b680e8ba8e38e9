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
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.auth import AuthStore
from edge.service import Site
from edge.web.app import make_app
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
        assert site.status.health()["status"] == "ok"
        before = len(await all_events(site))
        filler = await asyncio.to_thread(fill, small_disk)

        card = await present(site, CARD)
        assert card["granted"] is True
        assert card["result"] == "success"
        wrong = [await present(site, WRONG_PIN) for _ in range(5)]
        # the policy locks a reader out after 3 failures
        assert [w["reason"] for w in wrong] == ["unknown_credential"] * 3 + ["locked_out"] * 2
        health = site.status.health()
        assert health["status"] == "degraded"
        assert health["degraded"] == ["storage"]
        assert health["storage"]["held"] >= 6
        assert "full" in health["storage"]["error"]

        await asyncio.to_thread(filler.unlink)
        await until(lambda: site.status.health()["status"] == "ok", timeout=10)
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
        await until(lambda: site.status.health()["status"] == "ok", timeout=10)
        events = await all_events(site)
        logged = [e["seq"] for e in events if e["type"] == "access"]
        assert logged == [a["event_id"] for a in held]
        (alarm,) = [a for a in await site.alarms() if a["kind"] == "storage_unavailable"]
        assert alarm["detail"]["refused"] == len(refused) + 1
        assert alarm["detail"]["dropped"] == 0
        assert (await site.store.verify_chain()).ok


# The child holds events on a full disk and prints each answer, then waits to be killed.
CHILD = """
import asyncio, sys
from pathlib import Path
from tests.edge.conftest import POLICY, SITE_TOML
from tests.edge.sites import open_site
from tests.edge.test_disk_full import fill

async def main(disk):
    async with open_site(Path(disk), SITE_TOML, POLICY) as site:
        await asyncio.to_thread(fill, Path(disk))
        for _ in range(4):
            answer = await site.present("lobby-in", "pin", "4711")
            print(answer["event_id"], answer["reason"], flush=True)
        print("held", site.store.storage.held, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


async def test_a_process_killed_while_holding_events_reports_them_lost_at_the_next_start(
    small_disk: Path,
) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(small_disk),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
    )
    assert proc.stdout is not None
    lines = []
    while not lines or not lines[-1].startswith("held"):
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "the child died before it was killed"
        lines.append(line.strip())
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert lines[-1] == "held 4"
    answered = [int(line.split()[0]) for line in lines[:-1]]
    (small_disk / "fill").unlink()

    async with site_on(small_disk) as site:
        await until(lambda: site.status.health()["status"] == "ok", timeout=10)
        (alarm,) = [a for a in await site.alarms() if a["kind"] == "storage_unavailable"]
        assert alarm["detail"]["lost"] == 4
        events = await all_events(site)
        # the lost events never made it, and nothing after them pretends they did
        assert all(e["seq"] < answered[0] or e["type"] == "alarm" for e in events)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert (await site.store.verify_chain()).ok
        # memory is what was recorded: the 3 lost failures did not lock the reader
        assert (await present(site, ANN_PIN))["reason"] == "granted"


async def test_a_locked_database_is_an_io_fault_the_rest_api_answers_without_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real file fault (another process holds the write lock past the busy timeout:
    sqlite3.OperationalError "database is locked") over the real REST API."""
    monkeypatch.setattr("edge.store._db.BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr("edge.store._writer.RETRY_S", 0.05)
    auth = AuthStore.open(":memory:")
    headers = {"Authorization": f"Bearer {auth.create_token('admin', 't-admin')}"}
    try:
        async with (
            site_on(tmp_path / "site") as site,
            TestClient(TestServer(make_app(site, auth, tls=False))) as client,
        ):
            other = sqlite3.connect(site.store.path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:  # a failed assertion must not leave the lock held: the store would wait on it
                reader, kind, value = CARD
                body = {"reader": reader, "kind": kind, "value": value}
                resp = await client.post("/api/v1/presentations", json=body, headers=headers)
                assert resp.status == 200
                answer = await resp.json()
                assert answer["granted"] is True
                health = await (await client.get("/api/v1/health")).json()
                assert health["status"] == "degraded"
                assert health["degraded"] == ["storage"]
                assert "locked" in health["storage"]["error"]
                # a write that is not an event cannot be held: 503, saying why, no traceback
                person = {"id": "p-new", "kind": "staff"}
                resp = await client.put("/api/v1/people/p-new", json=person, headers=headers)
                text = await resp.text()
                assert resp.status == 503, text
                assert (await resp.json())["error"]["code"] == "storage_unavailable"
                assert "Traceback" not in text
            finally:
                other.execute("ROLLBACK")
                other.close()
            await until(lambda: site.status.health()["status"] == "ok", timeout=10)
            health = await (await client.get("/api/v1/health")).json()
            assert health["status"] == "ok"
            assert health["degraded"] == []
            events = await all_events(site)
            assert answer["event_id"] in [e["seq"] for e in events]
            (alarm,) = [a for a in await site.alarms() if a["kind"] == "storage_unavailable"]
            assert alarm["detail"]["failed_writes"] == 1
            assert (await site.store.verify_chain()).ok
    finally:
        auth.close()
