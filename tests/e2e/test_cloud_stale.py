"""An attacked site looks stale: a proxy between the site and the real cloud that answers
every bundle poll with 204 itself (hiding a revocation) cannot keep the site fresh.

The real Site with its simulated bus in-process, the real cloud service behind an HTTP
proxy that forwards everything else, on SQLite and on the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import pytest
from aiohttp import web

from cloud_sync import client as client_mod
from edge import sync as edge_sync
from edge.config import load_site_config
from edge.hardware import Hardware
from edge.service import Site
from edge.sync import start_sync
from tests.cloud_sync.conftest import (  # noqa: F401
    Server,
    backend_name,
    free_port,
    keys,
    open_store,
)
from tests.e2e.test_cloud_edge import admin, enrolled_site_dir
from tests.edge.conftest import POLICY, until

if TYPE_CHECKING:
    from pathlib import Path

    from cloud_sync.store import CloudStore
    from tests.reliability import Reliability

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["sqlite", "postgres"])
async def cloud(request: pytest.FixtureRequest, tmp_path: Path, keys) -> Any:  # noqa: F811
    async with open_store(request.param, tmp_path, keys) as store:
        yield store


class Proxy:
    """An HTTP proxy in front of ``upstream``; with ``hijack`` set it answers bundle polls
    with 204 itself instead of forwarding them."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hijack = False
        self.hijacked = 0

    async def __aenter__(self) -> Self:
        self.http = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
        await self.http.close()

    async def forward(self, request: web.Request) -> web.Response:
        if self.hijack and request.path == "/api/v1/sync/bundle":
            self.hijacked += 1
            return web.Response(status=204)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self.http.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as resp:
            body = await resp.read()
            keep = ("Content-Type", "Doorkeep-Resend-From")
            return web.Response(
                status=resp.status,
                body=body,
                headers={k: resp.headers[k] for k in keep if k in resp.headers},
            )


async def stale_alarms(site: Site) -> list[dict[str, Any]]:
    return [a for a in await site.alarms(open_only=True) if a["kind"] == "policy_stale"]


async def test_a_proxy_answering_204_makes_the_site_stale_and_raises_an_alarm(
    cloud: CloudStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reliability: Reliability
) -> None:
    stale_after_s = 1.5
    monkeypatch.setattr(edge_sync, "STALE_AFTER_S", stale_after_s)
    monkeypatch.setattr(client_mod, "STALE_CHECK_S", 0.05)
    monkeypatch.setattr(client_mod, "BACKOFF_S", (0.05, 0.4))
    server = Server(cloud)
    await server.start()
    async with Proxy(server.url) as proxy:
        site_dir = await enrolled_site_dir(tmp_path, cloud, proxy.url)
        async with await admin(cloud, server.url) as api:
            response = await api.put("/api/v1/sites/test/policy", json=POLICY)
            assert response.status in (200, 204), await response.text()
            config = load_site_config(site_dir / "site.toml", board_types=Hardware.board_types())
            async with Site.open(config) as site, contextlib.AsyncExitStack() as stack:
                # a short long-poll, so that fresh answers keep coming while all is well
                monkeypatch.setattr(client_mod, "POLL_WAIT_S", 0.3)
                await start_sync(site, stack)
                await until(lambda: "p-ann" in site.snapshot.people, timeout=15)
                assert (await site.present("gate-in", "pin", "2580"))["granted"]
                await until(lambda: site.sync_status()["last_contact"] is not None, timeout=5)
                assert site.sync_status()["stale"] is False
                # Now the path is attacked, and the cloud revokes Ann's PIN behind it.
                proxy.hijack = True
                # polls are sequential: once one is hijacked, none is held by the real cloud
                await until(lambda: proxy.hijacked >= 1, timeout=10)
                response = await api.delete("/api/v1/sites/test/credentials/c-ann")
                assert response.status in (200, 204), await response.text()
                await until(lambda: site.sync_status()["stale"] is True, timeout=15)
                async with asyncio.timeout(5):  # the staleness check raises it
                    while not (alarms := await stale_alarms(site)):
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                assert len(await stale_alarms(site)) == 1, alarms  # one alarm, not one a check
                assert site.snapshot.version < (await cloud.policy("test"))[0]  # the hidden change
                hijacked = proxy.hijacked
                # The attack ends: the revocation arrives, the site is fresh again.
                proxy.hijack = False
                await until(
                    lambda: all(c["id"] != "c-ann" for c in site.policy_document()["credentials"]),
                    timeout=15,
                )
                await until(lambda: site.sync_status()["stale"] is False, timeout=5)
                assert (await site.present("gate-in", "pin", "2580"))["granted"] is False
    await server.stop()
    backend = backend_name(cloud)
    reliability.row(
        test=f"cloud ({backend}): proxy answers 204 to bundle polls, hiding a revocation",
        load="1 site, long-poll 0.3 s",
        faults=f"{hijacked} bundle polls answered 204 by the proxy",
        bad_inputs="unsigned 204s",
        losses="0",
        stale_after_s=stale_after_s,
    )
