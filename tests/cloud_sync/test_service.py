"""The cloud service end to end at library level: admin API → signed bundle → SyncClient."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import sqlalchemy as sa

from cloud_sync import client as client_mod
from cloud_sync import service as service_mod
from cloud_sync.bundle import VerifiedBundle
from cloud_sync.client import Enrollment, SyncClient, enroll
from cloud_sync.store import CloudStore, metadata
from doorkeep.errors import AuthError

from .conftest import FakeEdge, FakeOutbox, Server, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from cloud_sync.keys import CloudKeys

CARD = "00209CBF"
PIN = "4711"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "BACKOFF_S", (0.01, 0.1))
    monkeypatch.setattr(client_mod, "UPLOAD_INTERVAL_S", 0.05)
    monkeypatch.setattr(client_mod, "STALE_CHECK_S", 0.02)


class Admin:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.http.request(method, self.url + "/api/v1" + path, json=body) as resp:
            text = await resp.text()
            assert resp.status == status, text
            return await resp.json() if text else None


@pytest.fixture
async def admin(server: Server) -> AsyncIterator[Admin]:
    token = await server.store.create_admin_token("test")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        yield Admin(http, server.url)


def starter_policy() -> dict[str, Any]:
    return {
        "format": "doorkeep.policy/1",
        "buildings": [{"id": "B1", "name": "Building 1"}],
        "apartments": [{"id": "B1-203", "building": "B1", "number": "2#203", "name": "Apt"}],
        "people": [
            {
                "id": "p-judy",
                "kind": "resident",
                "apartment": "B1-203",
                "role": "master",
                "name": "Judy",
                "groups": ["g-b1"],
            }
        ],
        "credentials": [
            {"id": "c1", "person": "p-judy", "kind": "pin", "value": PIN},
            {"id": "c2", "person": "p-judy", "kind": "rf_card", "value": CARD},
        ],
        "groups": [
            {
                "id": "g-b1",
                "name": "B1",
                "building_default": "B1",
                "schedule": {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"},
                "doors": ["gate", "lobby"],
            }
        ],
    }


async def enrolled_client(
    server: Server, admin: Admin, edge: FakeEdge, outbox: FakeOutbox, site: str = "s1"
) -> tuple[SyncClient, Enrollment]:
    made = await admin.call("POST", "/sites", {"id": site, "name": "Site"}, status=201)
    enrollment = await enroll(server.url, made["enrollment_code"])
    client = SyncClient(
        server.url,
        enrollment,
        state=edge,
        apply_bundle=edge.apply_bundle,
        outbox=outbox,
        inventory=edge.inventory,
        on_alarm=edge.on_alarm,
        poll_wait_s=5,
    )
    return client, enrollment


async def test_admin_change_reaches_the_edge_with_version_and_digest(
    server: Server, admin: Admin
) -> None:
    edge, outbox = FakeEdge(), FakeOutbox()
    client, enrollment = await enrolled_client(server, admin, edge, outbox)
    assert enrollment.site_id == "s1"
    async with client:
        await edge.wait_version(1)  # the enrollment snapshot
        answer = await admin.call("PUT", "/sites/s1/policy", starter_policy())
        await edge.wait_version(answer["version"])
        site = await admin.call("GET", "/sites/s1")
        assert edge.digest() == answer["digest"] == site["cloud_digest"]
        assert edge.applied[-1].kind == "delta"
        # one entity through the entity API: arrives as a small delta
        await admin.call(
            "POST",
            "/sites/s1/people",
            {"id": "p-cathy", "kind": "staff", "name": "Cathy", "groups": []},
            status=201,
        )
        await edge.wait_version(answer["version"] + 1)
        last = edge.applied[-1]
        assert last.kind == "delta"
        assert last.delta is not None
        assert [p["id"] for p in last.delta["upserts"]["people"]] == ["p-cathy"]
        assert any(p["id"] == "p-cathy" for p in edge.doc["people"])
        # the site reports what it applied
        async with asyncio.timeout(5):
            while (await admin.call("GET", "/sites/s1"))["reported_version"] != edge.version():
                await asyncio.sleep(0.02)
        site = await admin.call("GET", "/sites/s1")
        assert site["in_sync"] is True
        assert site["last_contact"] is not None
        assert site["inventory"]["timezone"] == "Europe/Berlin"
        assert not client.stale


async def test_plaintext_credentials_never_leave_or_rest(server: Server, admin: Admin) -> None:
    await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    await admin.call("PUT", "/sites/s1/policy", starter_policy())
    policy = await admin.call("GET", "/sites/s1/policy")
    cred = await admin.call("GET", "/sites/s1/credentials/c2")
    assert "value" not in cred
    assert len(cred["value_hmac"]) == 64
    assert CARD not in str(policy)
    assert PIN not in str(policy)
    dump = []
    async with server.store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            dump += [repr(tuple(r)) for r in await conn.execute(sa.select(table))]
    blob = "\n".join(dump)
    assert CARD not in blob
    assert CARD.lower() not in blob
    assert f'"{PIN}"' not in blob
    # ...but the sealed copy recovers them for re-hashing and export
    plain = await server.store.policies.plaintext_policy("s1")
    assert {c["id"]: c["value"] for c in plain["credentials"]} == {"c1": PIN, "c2": CARD}


async def test_invalid_policy_is_refused_with_every_issue(server: Server, admin: Admin) -> None:
    await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    bad = starter_policy()
    bad["credentials"][0]["value"] = "9123"  # people's PINs never start with 9
    bad["people"][0]["groups"] = ["g-missing"]
    answer = await admin.call("PUT", "/sites/s1/policy", bad, status=422)
    assert answer["error"]["code"] == "policy_invalid"  # the same code as the edge's
    entities = {i["entity"] for i in answer["error"]["issues"]}
    assert {"credentials/c1", "people/p-judy"} <= entities
    assert "9123" not in str(answer)
    assert (await admin.call("GET", "/sites/s1"))["cloud_version"] == 0


async def test_admin_api_errors(server: Server, admin: Admin) -> None:
    async with aiohttp.ClientSession() as anon, anon.get(server.url + "/api/v1/sites") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"
    await admin.call("GET", "/sites/nope", status=404)
    await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    await admin.call("POST", "/sites", {"id": "s1"}, status=409)
    await admin.call("POST", "/sites", {"id": "Bad Id"}, status=422)
    await admin.call("PUT", "/sites/s1/policy", starter_policy())
    await admin.call("DELETE", "/sites/s1/groups/g-b1", status=409)
    await admin.call("GET", "/sites/s1/gizmos", status=404)
    await admin.call("DELETE", "/sites/s1/people/p-judy", status=204)
    assert await admin.call("GET", "/sites/s1/credentials") == []  # deleted with their person
    spec = await admin.call("GET", "/openapi.json")
    assert "/api/v1/sites/{site}/policy" in spec["paths"]
    assert spec["paths"]["/api/v1/sites"]["get"]["security"] == [{"bearer": []}]


async def test_enrollment_code_is_one_time(server: Server, admin: Admin) -> None:
    made = await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    first = await enroll(server.url, made["enrollment_code"])
    assert first.key_id == server.store.keys.signer.key_id
    assert first.secret_bytes == await server.store.registry.site_secret("s1")
    with pytest.raises(AuthError):
        await enroll(server.url, made["enrollment_code"])
    assert "****" in repr(first)
    assert first.token not in repr(first)


async def test_events_endpoint_acknowledges_and_lists(server: Server, admin: Admin) -> None:
    edge, outbox = FakeEdge(), FakeOutbox()
    client, _ = await enrolled_client(server, admin, edge, outbox)
    outbox.add(30)
    async with client:
        async with asyncio.timeout(10):
            while outbox.acked < 30:
                client.poke()
                await asyncio.sleep(0.02)
    rows = await admin.call("GET", "/sites/s1/events?limit=5")
    assert [r["seq"] for r in rows] == [30, 29, 28, 27, 26]
    async with admin.http.get(admin.url + "/api/v1/sites/s1/events?limit=5") as resp:
        cursor = resp.headers["Doorkeep-Next-Cursor"]
    older = await admin.call("GET", f"/sites/s1/events?limit=5&cursor={cursor}")
    assert [r["seq"] for r in older] == [25, 24, 23, 22, 21]
    await admin.call("GET", "/sites/s1/events?cursor=garbage", status=400)
    assert (await admin.call("GET", "/sites/s1"))["watermark"] == 30


async def test_client_turns_stale_after_silence_and_raises_one_alarm(
    server: Server, admin: Admin
) -> None:
    edge, outbox = FakeEdge(), FakeOutbox()
    _client, enrollment = await enrolled_client(server, admin, edge, outbox)
    await server.stop()  # the cloud goes silent
    now = [1000.0]
    silent = SyncClient(
        server.url,
        enrollment,
        state=edge,
        apply_bundle=edge.apply_bundle,
        outbox=outbox,
        inventory=edge.inventory,
        on_alarm=edge.on_alarm,
        stale_after_s=60,
        clock=lambda: now[0],
    )
    async with silent:
        await asyncio.sleep(0.1)
        assert not silent.stale
        now[0] += 61
        async with asyncio.timeout(5):
            while not edge.alarms:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
    assert silent.stale
    assert [k for k, _ in edge.alarms] == ["policy_stale"]
    await server.start()


async def test_notify_wakes_a_long_poll_in_another_worker(tmp_path: Path, keys: CloudKeys) -> None:
    """PostgreSQL: a change committed by worker A wakes a long-poll held by worker B."""
    async with (
        open_store("postgres", tmp_path, keys) as a,
        CloudStore(a.url, keys, pg_schema=a.pg_schema) as b,
    ):
        await a.add_site("s1")
        watcher = b.notifier.watch("s1")
        await a.change_policy(
            "s1", lambda d: {**d, "holidays": [{"date": "2026-12-25", "name": "X"}]}, actor="t"
        )
        await asyncio.wait_for(watcher.wait(), 5)
        assert await b.current_version("s1") == 1


async def test_client_survives_an_edge_that_fails_to_apply(server: Server, admin: Admin) -> None:
    edge, outbox = FakeEdge(), FakeOutbox()
    failures = [RuntimeError("disk full"), OSError("read-only file system")]
    real_apply = edge.apply_bundle

    async def flaky_apply(bundle: VerifiedBundle) -> None:
        if failures:
            raise failures.pop(0)
        await real_apply(bundle)

    made = await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    enrollment = await enroll(server.url, made["enrollment_code"])
    client = SyncClient(
        server.url,
        enrollment,
        state=edge,
        apply_bundle=flaky_apply,
        outbox=outbox,
        inventory=edge.inventory,
        on_alarm=edge.on_alarm,
        poll_wait_s=5,
    )
    async with client:
        await edge.wait_version(1)
    assert failures == []
    assert edge.version() == 1


async def test_site_and_admin_credentials_do_not_cross(server: Server, admin: Admin) -> None:
    made = await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    site = await enroll(server.url, made["enrollment_code"])
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {site.token}"}) as http:
        async with http.get(server.url + "/api/v1/sites") as resp:
            assert resp.status == 401  # a site cannot read other sites
        async with http.post(
            server.url + "/api/v1/sync/events", json={"epoch": "e", "events": []}
        ) as resp:
            assert resp.status == 200
    admin_token = admin.http.headers["Authorization"]
    async with (
        aiohttp.ClientSession(headers={"Authorization": admin_token}) as http,
        http.get(server.url + "/api/v1/sync/bundle") as resp,
    ):
        assert resp.status == 401  # an admin token is no site credential


async def test_guessing_enrollment_codes_is_throttled(server: Server, admin: Admin) -> None:
    made = await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for i in range(service_mod.ENROLL_FAILURES + 1):
            async with http.post(
                server.url + "/api/v1/enroll", json={"code": f"WRONG-{i:05d}"}
            ) as resp:
                statuses.append(resp.status)
        async with http.post(
            server.url + "/api/v1/enroll", json={"code": made["enrollment_code"]}
        ) as resp:
            statuses.append(resp.status)
            body = await resp.json()
    assert statuses == [401] * service_mod.ENROLL_FAILURES + [429, 429]
    assert body["error"]["code"] == "too_many_attempts"
    # a minute later the right code works: the refused attempt did not spend it
    assert server.runner is not None
    limiter = server.runner.app[service_mod.LIMITER]
    limiter.clock = lambda: time.monotonic() + service_mod.ENROLL_WINDOW_S + 1
    assert (await enroll(server.url, made["enrollment_code"])).site_id == "s1"


async def test_alarms_list_and_resolve(server: Server, admin: Admin) -> None:
    await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    await server.store.ingest("s1", "e", [{"seq": 1, "hash": "a"}])
    await server.store.ingest("s1", "e", [{"seq": 1, "hash": "b"}])  # forged re-send
    (alarm,) = await admin.call("GET", "/sites/s1/alarms")
    assert alarm["kind"] == "event_conflict"
    resolved = await admin.call("POST", f"/sites/s1/alarms/{alarm['id']}/resolve")
    assert resolved["resolved_at"] is not None
    assert await admin.call("GET", "/sites/s1/alarms") == []
    assert len(await admin.call("GET", "/sites/s1/alarms?all=1")) == 1
    await admin.call("POST", "/sites/s1/alarms/999/resolve", status=404)
