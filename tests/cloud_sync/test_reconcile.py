"""The reconciliation job against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
import sqlalchemy as sa

from cloud_sync.reconcile import reconcile
from cloud_sync.store import sites

if TYPE_CHECKING:
    from cloud_sync.store import CloudStore

    from .conftest import Server

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def policy(temp_key_end: str = "2026-11-18T13:54:00") -> dict[str, Any]:
    return {
        "format": "doorkeep.policy/1",
        "buildings": [{"id": "B1", "name": "Building 1"}],
        "apartments": [
            {
                "id": "A1",
                "building": "B1",
                "number": "1",
                "name": "Leased",
                "valid_until": "2027-01-01T00:00:00",
                "auto_delete": True,
            },
            {"id": "A2", "building": "B1", "number": "2", "name": "Owned"},
        ],
        "people": [
            {
                "id": "p-tenant",
                "kind": "resident",
                "apartment": "A1",
                "role": "master",
                "name": "T",
                "groups": ["g-b1"],
            },
            {
                "id": "p-owner",
                "kind": "resident",
                "apartment": "A2",
                "role": "master",
                "name": "O",
                "groups": ["g-b1"],
            },
        ],
        "credentials": [
            {"id": "c-tenant", "person": "p-tenant", "kind": "rf_card", "value": "12345678"},
            {"id": "c-owner", "person": "p-owner", "kind": "rf_card", "value": "87654321"},
        ],
        "groups": [
            {
                "id": "g-b1",
                "name": "B1",
                "building_default": "B1",
                "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59"},
                "doors": ["gate"],
            }
        ],
        "temp_keys": [
            {
                "id": "t-old",
                "name": "Visitor",
                "apartment": "A2",
                "kind": "pin",
                "code": "91487640",
                "schedule": {
                    "repeat": "never",
                    "start": "2026-11-17T13:54:00",
                    "end": temp_key_end,
                },
                "uses_per_door": 1,
                "doors": ["gate"],
            },
            {
                "id": "t-shared",
                "name": "Courier",
                "apartment": "A2",
                "kind": "pin",
                "code": "91487641",
                "schedule": {
                    "repeat": "never",
                    "start": "2027-01-10T00:00:00",
                    "end": "2027-02-01T00:00:00",
                },
                "uses_per_door": 1,
                "doors": ["gate"],
            },
        ],
        "reservations": [
            {
                "id": "r-past",
                "door": "gate",
                "person": "p-owner",
                "start": "2027-01-02T18:00:00",
                "end": "2027-01-02T19:00:00",
            }
        ],
    }


async def enrolled_site(store: CloudStore, site: str, *, silent: bool = False) -> None:
    await store.enroll(await store.add_site(site))
    await store.change_policy(site, lambda _d: policy(), actor="test")
    version, digest, _ = await store.policy(site)
    await store.report(
        site,
        version=version,
        digest=digest,
        inventory={"timezone": "Europe/Berlin", "doors": ["gate"]},
    )
    if silent:  # last heard two hours ago
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.update(sites).where(sites.c.id == site).values(last_contact=NOW - 7200)
            )


async def test_expired_leases_temp_keys_and_reservations_become_policy_changes(
    store: CloudStore,
) -> None:
    store.clock = lambda: NOW
    await enrolled_site(store, "s1")
    before, _, _ = await store.policy("s1")
    report = await reconcile(store, now=NOW)
    version, _digest, doc = await store.policy("s1")
    assert version == before + 1
    assert [p["id"] for p in doc["people"]] == ["p-owner"]
    assert [c["id"] for c in doc["credentials"]] == ["c-owner"]
    assert [t["id"] for t in doc["temp_keys"]] == ["t-shared"]
    assert doc["reservations"] == []
    kinds = sorted((f.kind, f.detail) for f in report.findings)
    assert kinds == [
        ("expired", "people/p-tenant (lease ended)"),
        ("expired", "reservations/r-past (ended)"),
        ("expired", "temp_keys/t-old (ended)"),
    ]
    again = await reconcile(store, now=NOW)
    assert [f for f in again.findings if f.kind == "expired"] == []  # idempotent


async def test_digest_mismatch_and_site_ahead_force_a_snapshot(store: CloudStore) -> None:
    store.clock = lambda: NOW
    await enrolled_site(store, "s1")
    await enrolled_site(store, "s2")
    await reconcile(store, now=NOW)  # clear the expired entries first
    v1, _d1, _ = await store.policy("s1")
    await store.report("s1", version=v1, digest="sha256:" + "0" * 64, inventory=None)  # drifted
    v2, d2, _ = await store.policy("s2")
    await store.report(
        "s2", version=v2 + 5, digest=d2, inventory=None
    )  # cloud restored from backup
    report = await reconcile(store, now=NOW)
    found = {(f.site, f.kind) for f in report.findings}
    assert {("s1", "digest_mismatch"), ("s2", "site_ahead")} <= found
    # the drifted site's next poll gets a full snapshot, newer than what it holds
    data = await store.bundle_for("s1", v1, "sha256:" + "0" * 64)
    assert data is not None
    assert json.loads(data)["signed"]["kind"] == "snapshot"
    assert json.loads(data)["signed"]["version"] == v1 + 1
    data = await store.bundle_for("s2", v2 + 5, d2)
    assert data is not None
    assert json.loads(data)["signed"]["version"] == v2 + 6
    row = next(s for s in report.sites if s.site == "s1")
    assert row.in_sync is False


async def test_gap_asks_the_site_to_resend(store: CloudStore, server: Server) -> None:
    store.clock = lambda: NOW
    await enrolled_site(store, "s1")
    code = await store.new_enrollment_code("s1")
    token = (await store.enroll(code))["token"]
    await store.ingest("s1", "e1", [{"seq": s, "hash": f"h{s}"} for s in (1, 2, 4, 5)])
    report = await reconcile(store, now=NOW)
    (gap,) = [f for f in report.findings if f.kind == "gap"]
    assert "seq 3 missing" in gap.detail
    assert await store.resend_from("s1") == 3
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        version = await store.current_version("s1")
        async with http.get(
            server.url + "/api/v1/sync/bundle", params={"version": str(version)}
        ) as resp:
            assert resp.status == 204
            assert resp.headers["Doorkeep-Resend-From"] == "3"
    done = await store.ingest("s1", "e1", [{"seq": s, "hash": f"h{s}"} for s in (3, 4, 5)])
    assert (done.watermark, done.resend_from) == (5, None)


async def test_silent_site_raises_an_alarm_until_it_is_back(store: CloudStore) -> None:
    store.clock = lambda: NOW
    await enrolled_site(store, "s1", silent=True)
    report = await reconcile(store, now=NOW, silent_after_s=3600)
    assert [f.kind for f in report.findings if f.site == "s1" and f.kind == "silent"] == ["silent"]
    assert [a["kind"] for a in await store.alarms("s1")] == ["silent"]
    await reconcile(store, now=NOW, silent_after_s=3600)
    assert len(await store.alarms("s1")) == 1  # one open alarm, not one per run
    await store.touch("s1")
    await reconcile(store, now=NOW, silent_after_s=3600)
    assert await store.alarms("s1") == []


async def test_temp_key_uses_are_summed_across_sites(store: CloudStore) -> None:
    store.clock = lambda: NOW
    await enrolled_site(store, "s1")
    await enrolled_site(store, "s2")
    use = {
        "seq": 1,
        "type": "access",
        "result": "success",
        "credential_kind": "pin",
        "detail": {"temp_key": "t-shared"},
    }
    await store.ingest(
        "s1", "e1", [use]
    )  # used once at s1: with 1 use x 1 door it is used up everywhere
    report = await reconcile(store, now=NOW)
    assert report.temp_key_uses == {"t-shared": 1}
    for site in ("s1", "s2"):
        _v, _d, doc = await store.policy(site)
        assert "t-shared" not in [t["id"] for t in doc["temp_keys"]]
    assert {(f.site, f.kind) for f in report.findings if f.kind == "temp_key_used_up"} == {
        ("s1", "temp_key_used_up"),
        ("s2", "temp_key_used_up"),
    }


async def test_report_reads_as_a_table_and_as_json(store: CloudStore) -> None:
    store.clock = lambda: NOW
    await enrolled_site(store, "s1")
    await store.add_site("s2")  # not enrolled yet
    report = await reconcile(store, now=NOW)
    table = report.table()
    assert table.splitlines()[0].split() == [
        "site",
        "enrolled",
        "last",
        "contact",
        "cloud",
        "v",
        "site",
        "v",
        "in",
        "sync",
        "watermark",
    ]
    assert "s2" in table
    assert "never" in table
    data = json.loads(report.to_json())
    assert {s["site"] for s in data["sites"]} == {"s1", "s2"}
    assert all({"site", "kind", "detail", "action"} <= set(f) for f in data["findings"])
