"""An enrolled edge and a real cloud service, on SQLite and on the real PostgreSQL.

The edge here is the real thing: the Site with its simulated bus in-process for the
policy path, and the ``doorkeep run`` daemon as a separate process that gets SIGKILLed
for the partition test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud_sync.store import CloudStore
from doorkeep.errors import Conflict
from edge.config import load_site_config
from edge.hardware import Hardware
from edge.service import Site
from edge.sync import enroll_site, start_sync
from tests.cloud_sync.conftest import Server, free_port, keys, open_store  # noqa: F401
from tests.cloud_sync.test_partition import losing_answers
from tests.e2e.processes import RunningDaemon
from tests.edge.conftest import POLICY, ROOT, SITE_TOML, until

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["sqlite", "postgres"])
async def cloud(request: pytest.FixtureRequest, tmp_path: Path, keys) -> Any:  # noqa: F811
    async with open_store(request.param, tmp_path, keys) as store:
        yield store


async def enrolled_site_dir(tmp_path: Path, store: CloudStore, url: str, port: int = 18080) -> Path:
    site_dir = tmp_path / "edge"
    site_dir.mkdir()
    (site_dir / "site.toml").write_text(SITE_TOML.replace("127.0.0.1:18080", f"127.0.0.1:{port}"))
    code = await store.add_site("test", "Test site")
    config = load_site_config(site_dir / "site.toml", board_types=Hardware.board_types())
    await enroll_site(config, url, code)
    return site_dir


async def admin(store: CloudStore, url: str) -> aiohttp.ClientSession:
    token = await store.create_admin_token("e2e")
    return aiohttp.ClientSession(base_url=url, headers={"Authorization": f"Bearer {token}"})


async def test_a_change_made_in_the_cloud_changes_a_decision_at_the_edge(
    cloud: CloudStore, tmp_path: Path
):
    server = Server(cloud)
    await server.start()
    site_dir = await enrolled_site_dir(tmp_path, cloud, server.url)
    async with await admin(cloud, server.url) as api:
        response = await api.put("/api/v1/sites/test/policy", json=POLICY)
        assert response.status in (200, 204), await response.text()
        config = load_site_config(site_dir / "site.toml", board_types=Hardware.board_types())
        assert config.cloud is not None and config.cloud.url == server.url
        async with Site.open(config) as site, contextlib.AsyncExitStack() as stack:
            await start_sync(site, stack)
            await until(
                lambda: site.policy.owner == "cloud" and "p-ann" in site.snapshot.people, timeout=15
            )
            assert (await site.present("gate-in", "pin", "2580"))["granted"]
            version = site.snapshot.version
            response = await api.put(
                "/api/v1/sites/test/credentials/c-ann",
                json={"person": "p-ann", "kind": "pin", "value": "3690"},
            )
            assert response.status in (200, 201, 204), await response.text()
            await until(lambda: site.snapshot.version > version, timeout=15)
            assert (await site.present("gate-in", "pin", "2580"))["reason"] == "unknown_credential"
            assert (await site.present("gate-in", "pin", "3690"))["granted"]
            with pytest.raises(Conflict, match="managed by the cloud"):
                await site.put_entity("people", "p-x", {"kind": "staff"}, actor="admin:local")
            status = await (await api.get("/api/v1/sites/test")).json()
            await until(lambda: site.sync_status()["stale"] is False)
            assert "2580" not in json.dumps(site.policy_document()) and "3690" not in json.dumps(
                status
            )
    await server.stop()


async def present_many(port: int, token: str, n: int) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(n):
            body = {"reader": "gate-in", "kind": "pin", "value": "2580" if i % 2 else "1111"}
            async with http.post(f"http://127.0.0.1:{port}/api/v1/presentations", json=body) as r:
                assert r.status == 200, await r.text()


async def test_every_event_arrives_exactly_once_across_outage_kills_and_lost_answers(
    cloud: CloudStore, tmp_path: Path
):
    lost: list[int] = []
    server = Server(cloud, middlewares=[losing_answers(random.Random(3), lost)])
    await server.start()
    port = free_port()
    site_dir = await enrolled_site_dir(tmp_path, cloud, server.url, port)
    created = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "edge.cli",
            "token",
            "create",
            "--role",
            "installer",
            "-c",
            str(site_dir / "site.toml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip()
    daemon = RunningDaemon(site_dir, port)
    rng = random.Random(11)
    try:
        await daemon.start()
        await present_many(port, token, 10)
        await server.stop()  # the cloud goes away; the doors keep working
        await present_many(port, token, 30)
        await server.start()
        for _ in range(3):  # kill the edge at random moments while it uploads
            await present_many(port, token, 10)
            await asyncio.sleep(rng.uniform(0.0, 0.6))
            await daemon.kill()
            await daemon.start()
        await present_many(port, token, 5)

        async def cloud_has_all() -> bool:
            rows = await cloud.events("test", limit=10_000)
            headers = {"Authorization": f"Bearer {token}"}
            url = f"http://127.0.0.1:{port}/api/v1/events?limit=1"
            async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as r:
                newest = (await r.json())["items"][0]["seq"]
            return len(rows) == newest

        for _ in range(300):
            if await cloud_has_all():
                break
            await asyncio.sleep(0.1)
    finally:
        await daemon.stop()
        await server.stop()
    rows = await cloud.events("test", limit=10_000)
    seqs = sorted(r["seq"] for r in rows)
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a duplicate reached the cloud"
    assert len(seqs) >= 65  # 65 presentations, plus the door events they caused
    assert lost, "no answer was lost: the scenario did not happen"
    assert not [a for a in await cloud.alarms("test") if "hash" in json.dumps(a)]
