"""Store lifecycle, keys, bundle selection and the CLI command functions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from cloud_sync import commands
from cloud_sync.keys import CloudKeys
from cloud_sync.service import serve
from cloud_sync.store import MIGRATIONS, CloudStore
from cloud_sync.store import _db as db_mod
from cloud_sync.store import _policy as policy_mod

from .conftest import free_port, open_store

if TYPE_CHECKING:
    from pathlib import Path


async def test_reopening_keeps_data_and_migrations_are_idempotent(
    tmp_path: Path, keys: CloudKeys
) -> None:
    url = f"sqlite:///{tmp_path}/cloud.db"
    async with CloudStore(url, keys) as first:
        await first.add_site("s1")
        assert await first.db.migrate() == len(MIGRATIONS)
    async with CloudStore(url, keys) as again:
        assert await again.registry.site_ids() == ["s1"]
        assert await again.db.migrate() == len(MIGRATIONS)


async def test_postgres_migrations_run_once_when_workers_start_together(
    tmp_path: Path, keys: CloudKeys
) -> None:
    async with open_store("postgres", tmp_path, keys) as first:
        others = [CloudStore(first.url, keys, pg_schema=first.pg_schema) for _ in range(3)]
        opened = await asyncio.gather(*(o.__aenter__() for o in others))
        try:
            assert all(await asyncio.gather(*(o.db.migrate() for o in opened))) is True
            async with first.engine.connect() as conn:
                rows = (await conn.exec_driver_sql("SELECT version FROM schema_version")).all()
            assert rows == [(len(MIGRATIONS),)]
        finally:
            await asyncio.gather(*(o.__aexit__(None, None, None) for o in opened))


def test_keys_are_private_files_and_stable(tmp_path: Path) -> None:
    first = CloudKeys.load(tmp_path / "k")
    for name in ("signing.key", "export.key"):
        assert stat.S_IMODE((tmp_path / "k" / name).stat().st_mode) == 0o600
    again = CloudKeys.load(tmp_path / "k")
    assert again.signer.key_id == first.signer.key_id
    sealed = first.seal(b"4711", "values:s1")
    assert again.open(sealed, "values:s1") == b"4711"
    with pytest.raises(InvalidTag):
        again.open(sealed, "values:s2")  # bound to its site


async def test_site_far_behind_gets_a_snapshot(
    store: CloudStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy_mod, "DELTA_RETENTION", 3)
    await store.add_site("s1")
    for day in range(1, 7):
        await store.change_policy(
            "s1",
            lambda d, day=day: {**d, "holidays": [{"date": f"2026-12-{day:02d}", "name": "x"}]},
            actor="t",
        )
    version, digest, _ = await store.policy("s1")
    near = json.loads(await store.bundle_for("s1", version - 2, None) or b"{}")["signed"]
    far = json.loads(await store.bundle_for("s1", 1, None) or b"{}")["signed"]
    assert (near["kind"], near["prev_version"]) == ("delta", version - 2)
    assert far["kind"] == "snapshot"
    assert far["digest"] == digest
    assert await store.bundle_for("s1", version, digest) is None


async def test_commands_for_the_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/c.db"
    code = await commands.site_add(db, "community-1", key_dir=str(tmp_path / "keys"))
    assert len(code) == 11
    assert code[5] == "-"
    token = await commands.token_create(db, key_dir=str(tmp_path / "keys"))
    assert token.startswith("dka_")
    report = await commands.reconcile(db, key_dir=str(tmp_path / "keys"))
    assert [s.site for s in report.sites] == ["community-1"]


async def test_serve_answers_until_cancelled(tmp_path: Path) -> None:
    port = free_port()
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve(f"sqlite:///{tmp_path}/s.db", f"127.0.0.1:{port}", tmp_path / "keys", ready=ready.set)
    )
    await asyncio.wait_for(ready.wait(), 10)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/api/v1/openapi.json") as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["openapi"].startswith("3.1")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (tmp_path / "keys" / "signing.key").exists()


async def test_migration_3_brings_an_old_events_table_up_to_date(store: CloudStore) -> None:
    await store.add_site("s1")
    async with store.engine.begin() as conn:  # make it look like a schema-2 database
        await conn.exec_driver_sql("DROP INDEX IF EXISTS events_site_ts")
        await conn.exec_driver_sql("ALTER TABLE events DROP COLUMN at_ts")
        await conn.exec_driver_sql("UPDATE schema_version SET version = 2")
        await conn.exec_driver_sql(
            "INSERT INTO events (site_id, epoch, seq, hash, at, type, body, received_at) "
            "VALUES ('s1', 'e', 1, 'h', '2026-10-25T02:10:00+01:00', 'access', '{\"seq\": 1}', 0)"
        )
    assert await store.db.migrate() == len(MIGRATIONS)
    (event,) = await store.events("s1")
    assert event["_cursor"][0] == datetime(2026, 10, 25, 1, 10, tzinfo=UTC).timestamp()


async def test_a_schema_1_store_with_data_is_brought_up_to_date(store: CloudStore) -> None:
    # The first release's store: no indexes of migration 2, no event time of migration 3.
    await store.add_site("s1")
    async with store.engine.begin() as conn:
        for index in ("events_site_at", "alarms_site_open", "events_site_ts"):
            await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
        await conn.exec_driver_sql("ALTER TABLE events DROP COLUMN at_ts")
        await conn.exec_driver_sql("UPDATE schema_version SET version = 1")
        await conn.exec_driver_sql(
            "INSERT INTO events (site_id, epoch, seq, hash, at, type, body, received_at) "
            "VALUES ('s1', 'e', 1, 'h', '2026-03-29T01:30:00+00:00', 'access', '{\"seq\": 1}', 0)"
        )
    assert await store.db.migrate() == len(MIGRATIONS)
    assert await store.registry.site_ids() == ["s1"]
    (event,) = await store.events("s1")
    assert event["_cursor"][0] == datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp()


async def test_events_sort_by_real_time_across_dst_and_page_with_a_cursor(
    store: CloudStore,
) -> None:
    await store.add_site("s1")
    times = [
        "2026-10-25T01:50:00+02:00",  # 23:50Z the day before
        "2026-10-25T02:30:00+02:00",  # 00:30Z
        "2026-10-25T02:10:00+01:00",  # 01:10Z: after the fall-back, later although it reads earlier
        "2026-10-25T02:40:00+01:00",  # 01:40Z
    ]
    await store.ingest(
        "s1", "e", [{"seq": i + 1, "at": t, "hash": f"h{i}"} for i, t in enumerate(times)]
    )
    first = await store.events("s1", limit=2)
    assert [e["seq"] for e in first] == [4, 3]
    second = await store.events("s1", limit=2, before=tuple(first[-1]["_cursor"]))
    assert [e["seq"] for e in second] == [2, 1]
    window = await store.events("s1", since="2026-10-25T00:00:00Z", until="2026-10-25T01:30:00Z")
    assert [e["seq"] for e in window] == [3, 2]


@pytest.mark.postgres
async def test_a_dropped_listen_connection_reconnects_and_wakes_every_watcher(
    tmp_path: Path, keys: CloudKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_mod, "LISTEN_BACKOFF", (0.01, 0.05))
    async with open_store("postgres", tmp_path, keys) as store:
        await store.add_site("s1")
        missed = store.notifier.watch("s1")
        async with store.engine.connect() as conn:
            killed = await conn.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE query LIKE :listen"
                ),
                {"listen": f"LISTEN %{store.channel}%"},
            )
        assert killed == 1
        # Whatever was notified while nobody listened: every watcher is woken on reconnect.
        await asyncio.wait_for(missed.wait(), 5)
        watcher = store.notifier.watch("s1")
        await store.change_policy(
            "s1", lambda d: {**d, "holidays": [{"date": "2026-12-25", "name": "X"}]}, actor="t"
        )
        await asyncio.wait_for(watcher.wait(), 5)


async def test_a_store_from_a_newer_doorkeep_is_refused_and_left_as_it_was(
    tmp_path: Path, keys: CloudKeys
) -> None:
    from cloud_sync.store import SchemaTooNewError

    url = f"sqlite:///{tmp_path}/cloud.db"
    async with CloudStore(url, keys) as store:
        await store.add_site("s1")
        async with store.engine.begin() as conn:  # as a newer doorkeep would leave it
            await conn.execute(
                sa.text(f"UPDATE schema_version SET version = {len(MIGRATIONS) + 1}")
            )
    with pytest.raises(SchemaTooNewError, match="upgrade doorkeep or restore"):
        async with CloudStore(url, keys):
            pass
    with sqlite3.connect(tmp_path / "cloud.db") as conn:  # nothing was migrated "down"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (len(MIGRATIONS) + 1,)
        ]


def test_the_cloud_commands_refuse_a_newer_store_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cloud.db"
    keys = ["--key-dir", str(tmp_path / "keys")]
    doorkeep = [sys.executable, "-m", "edge.cli", "cloud", "--db", url, *keys]
    subprocess.run([*doorkeep, "site", "add", "s1"], check=True, capture_output=True, timeout=60)
    with sqlite3.connect(tmp_path / "cloud.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    added = subprocess.run(
        [*doorkeep, "site", "add", "s2"], capture_output=True, text=True, check=False, timeout=60
    )
    assert (tmp_path / "keys" / "signing.key").exists()  # nothing left in the checkout
    assert added.returncode == 1
    assert "Traceback" not in added.stderr
    refused = (
        f"error: the cloud store's schema version {len(MIGRATIONS) + 1} is newer than this "
        f"doorkeep supports ({len(MIGRATIONS)}); upgrade doorkeep or restore an older backup"
    )
    assert [line for line in added.stderr.splitlines() if line.startswith("error:")] == [refused]
