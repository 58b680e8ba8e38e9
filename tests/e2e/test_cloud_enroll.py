"""Enrolling a working standalone site keeps every credential working.

The real thing end to end: ``doorkeep policy apply`` on a standalone site, a real cloud
(``doorkeep cloud serve`` on SQLite and on the real PostgreSQL, in a fresh database),
``doorkeep enroll``, the ``doorkeep run`` daemon, a change made in the cloud, and
``doorkeep unenroll``. PIN 1234 is checked at every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import pytest

from tests.cloud_sync.conftest import PG_DSN, free_port
from tests.e2e.processes import RunningDaemon
from tests.edge.conftest import POLICY, ROOT, SITE_TOML

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.postgres

PIN = "1234"


async def doorkeep(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "edge.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DOORKEEP_MDNS": "0"},
        check=False,
        timeout=120,
    )
    if ok:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


@contextlib.asynccontextmanager
async def database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/cloud.db"
        return
    name = "dk_e2e_" + secrets.token_hex(5)
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        yield PG_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


@contextlib.asynccontextmanager
async def cloud_serve(db: str, keys: Path, cwd: Path) -> AsyncIterator[str]:
    port = free_port()
    log = (cwd / "cloud.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "cloud", "--db", db, "--key-dir", str(keys),
         "serve", "--listen", f"127.0.0.1:{port}"],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url + "/api/v1/openapi.json") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 15)
        log.close()


async def present(port: int, token: str, value: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"reader": "gate-in", "kind": "pin", "value": value}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"http://127.0.0.1:{port}/api/v1/presentations", json=body) as r,
    ):
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def decide(config: str, value: str, cwd: Path) -> dict[str, Any]:
    out = await doorkeep(
        "decide", "--reader", "gate-in", "--kind", "pin", "--value", value, "-c", config, cwd=cwd
    )
    return dict(json.loads(out.stdout))


async def until_in_sync(admin: aiohttp.ClientSession, url: str, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            async with admin.get(url + "/api/v1/sites/test") as r:
                status = dict(await r.json())
            if status["in_sync"] and not status["force_snapshot"]:
                return status
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_enrolling_a_working_site_keeps_pin_1234_working(backend: str, tmp_path: Path):
    site = tmp_path / "edge"
    site.mkdir()
    port = free_port()
    (site / "site.toml").write_text(SITE_TOML.replace("127.0.0.1:18080", f"127.0.0.1:{port}"))
    config = str(site / "site.toml")
    policy = copy.deepcopy(POLICY)
    policy["credentials"].append(
        {"id": "c-sam-pin", "person": "p-sam", "kind": "pin", "value": PIN}
    )
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    await doorkeep("policy", "apply", str(tmp_path / "policy.json"), "-c", config, cwd=tmp_path)
    assert (await decide(config, PIN, tmp_path))["granted"]  # before: a working standalone site

    keys = tmp_path / "keys"
    async with database(backend, tmp_path) as db, cloud_serve(db, keys, tmp_path) as url:
        added = await doorkeep("cloud", "--db", db, "--key-dir", str(keys), "site", "add", "test",
                               cwd=tmp_path)  # fmt: skip
        code = added.stdout.split()[-1]
        made = await doorkeep("cloud", "--db", db, "--key-dir", str(keys), "token", "create",
                              cwd=tmp_path)  # fmt: skip
        admin_token = made.stdout.split()[-1]
        await doorkeep("enroll", url, code, "-c", config, cwd=tmp_path)
        assert (await decide(config, PIN, tmp_path))["granted"]  # right after enroll
        token = (await doorkeep("token", "create", "--role", "installer", "-c", config,
                                cwd=tmp_path)).stdout.strip()  # fmt: skip
        daemon = RunningDaemon(site, port)
        headers = {"Authorization": f"Bearer {admin_token}"}
        async with aiohttp.ClientSession(headers=headers) as admin:
            try:
                await daemon.start()
                # the first bundle poll answers at once with the site's own policy
                status = await until_in_sync(admin, url, timeout=15)
                assert (await present(port, token, PIN))["granted"]  # after the first bundle
                async with admin.get(url + "/api/v1/sites/test/credentials") as r:
                    ids = {c["id"] for c in await r.json()}
                assert {"c-ann", "c-sam", "c-sam-pin"} <= ids  # the policy went to the cloud
                # a change made in the cloud reaches the site; PIN 1234 still works
                body = {"person": "p-ann", "kind": "pin", "value": "3690"}
                async with admin.put(url + "/api/v1/sites/test/credentials/c-ann2", json=body) as r:
                    assert r.status in (200, 201), await r.text()
                async with asyncio.timeout(15):
                    while (await until_in_sync(admin, url, 15))["cloud_version"] <= status[
                        "cloud_version"
                    ]:
                        await asyncio.sleep(0.1)
                assert (await present(port, token, "3690"))["granted"]
                assert (await present(port, token, PIN))["granted"]  # after a cloud-side change
            finally:
                await daemon.stop()
    applied = await doorkeep("policy", "apply", str(tmp_path / "policy.json"), "-c", config,
                             cwd=tmp_path, ok=False)  # fmt: skip
    assert applied.returncode == 1 and "managed by the cloud" in applied.stderr
    await doorkeep("unenroll", "-c", config, cwd=tmp_path)
    assert (await decide(config, PIN, tmp_path))["granted"]  # after unenroll
    assert (await decide(config, "3690", tmp_path))["granted"]  # the cloud's last policy stays
    # ...and it is the site's to edit again
    await doorkeep("policy", "apply", str(tmp_path / "policy.json"), "-c", config, cwd=tmp_path)
    assert (await decide(config, PIN, tmp_path))["granted"]
