"""Cloud sync benchmark: change latency, big snapshots, event ingest, many long-polls.

Run: .venv/bin/python benchmarks/sync.py [--changes 200] [--credentials 100000]
         [--events 100000] [--sites 1000] [--only latency,snapshot,ingest,fanout]

PostgreSQL: $DOORKEEP_TEST_PG (default the test DSN); every run uses a fresh schema.

1. change -> applied: an admin API ``PUT /sites/s/people/p`` on loopback until the
   SyncClient's ``apply_bundle`` callback has the new version (verified delta), SQLite and
   PostgreSQL stores. Target p50 <= 100 ms.
2. 100k-credential snapshot: hash the plaintext document with the site secret (the cloud's
   write path), build + sign the snapshot, verify it (signature + digest), apply it to a
   dict. Target build + verify + apply <= 3 s.
3. ingest: ``CloudStore.ingest`` in batches of 1000 (exactly-once checks, watermark) into
   PostgreSQL vs asyncpg ``copy_records_to_table`` of the same rows into a bare table of
   the same shape. Target >= 20k events/s and >= 0.3x raw COPY.
4. fan-out: N sites long-polling one cloud *process* (a subprocess, PostgreSQL store with
   LISTEN/NOTIFY); each site's policy changed in turn; wake-up = change sent -> that
   site's poll answered. RSS of the cloud process with every poll open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
from aiohttp import web

from cloud_sync import bundle as bundles
from cloud_sync.client import Enrollment, SyncClient
from cloud_sync.keys import CloudKeys
from cloud_sync.service import make_app
from cloud_sync.store import CloudStore
from doorkeep import policydoc

PG = os.environ.get(
    "DOORKEEP_TEST_PG", "postgresql://doorkeep:doorkeep@127.0.0.1:5432/doorkeep_test"
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def pg_schema():
    name = "dk_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await conn.close()


@contextlib.asynccontextmanager
async def open_store(backend: str, tmp: Path, keys: CloudKeys):
    if backend == "sqlite":
        async with CloudStore(f"sqlite:///{tmp}/cloud-{secrets.token_hex(3)}.db", keys) as store:
            yield store
    else:
        async with (
            pg_schema() as schema,
            CloudStore(PG, keys, pg_schema=schema, pool_size=20) as store,
        ):
            yield store


class Edge:
    def __init__(self) -> None:
        self.doc = policydoc.empty_document()
        self.v = 0
        self.d: str | None = None
        self.waiters: dict[int, asyncio.Future[float]] = {}

    def version(self) -> int:
        return self.v

    def digest(self) -> str | None:
        return self.d

    async def apply(self, bundle: bundles.VerifiedBundle) -> None:
        self.doc = bundle.apply_to(self.doc)
        self.v, self.d = bundle.version, bundle.digest
        fut = self.waiters.pop(bundle.version, None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    async def alarm(self, kind: str, message: str) -> None:
        print("edge alarm:", kind, message)


class Outbox:
    epoch = "bench"

    async def batch_above(self, _seq: int, _limit: int) -> list[dict[str, Any]]:
        return []

    async def acknowledged(self, _seq: int) -> None:
        return None


def base_policy() -> dict[str, Any]:
    return {
        "format": "doorkeep.policy/1",
        "buildings": [{"id": "B1", "name": "B1"}],
        "groups": [
            {
                "id": "g-b1",
                "name": "B1",
                "building_default": "B1",
                "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59"},
                "doors": ["gate"],
            }
        ],
        "people": [
            {"id": f"p{i}", "kind": "staff", "name": f"P{i}", "groups": ["g-b1"]} for i in range(50)
        ],
    }


async def bench_latency(backend: str, changes: int, tmp: Path) -> dict[str, Any]:
    keys = CloudKeys.load(tmp / "keys")
    async with open_store(backend, tmp, keys) as store:
        runner = web.AppRunner(make_app(store))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}"
        token = await store.create_admin_token()
        info = await store.enroll(await store.add_site("s"))
        await store.change_policy("s", lambda _d: base_policy(), actor="bench")
        enrollment = Enrollment(
            url=url, **{k: info[k] for k in ("site_id", "token", "key_id", "public_key", "secret")}
        )
        edge = Edge()
        client = SyncClient(
            url,
            enrollment,
            state=edge,
            apply_bundle=edge.apply,
            outbox=Outbox(),
            inventory=lambda: {"doors": ["gate"]},
            on_alarm=edge.alarm,
        )
        samples: list[float] = []
        async with (
            client,
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            target = await store.current_version("s")
            while edge.v < target:  # noqa: ASYNC110 - a one-off wait for the first snapshot
                await asyncio.sleep(0.01)
            for i in range(changes):
                expected = edge.v + 1
                fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                edge.waiters[expected] = fut
                body = {
                    "id": f"p{i % 50}",
                    "kind": "staff",
                    "name": f"renamed {i}",
                    "groups": ["g-b1"],
                }
                started = time.perf_counter()
                async with http.put(f"{url}/api/v1/sites/s/people/p{i % 50}", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                done = await asyncio.wait_for(fut, 10)
                samples.append((done - started) * 1000)
        await runner.cleanup()
    return {
        "p50_ms": pct(samples, 50),
        "p99_ms": pct(samples, 99),
        "mean_ms": statistics.fmean(samples),
        "n": changes,
    }


def bench_snapshot(n_credentials: int) -> dict[str, Any]:
    people = n_credentials // 2
    doc = policydoc.empty_document()
    doc["buildings"] = [{"id": "B1", "name": "B1"}]
    doc["groups"] = [
        {
            "id": "g-b1",
            "name": "B1",
            "building_default": "B1",
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59"},
            "doors": ["gate"],
        }
    ]
    doc["people"] = [
        {"id": f"p{i}", "kind": "staff", "name": f"Person {i}", "groups": ["g-b1"]}
        for i in range(people)
    ]
    creds = []
    for i in range(people):
        creds.append(
            {"id": f"c{i}a", "person": f"p{i}", "kind": "rf_card", "value": f"{i + 1000000:08X}"}
        )
        creds.append(
            {"id": f"c{i}b", "person": f"p{i}", "kind": "pin", "value": f"{i + 100000:07d}"[:8]}
        )
    doc["credentials"] = creds
    secret = secrets.token_bytes(32)
    signer = bundles.generate_signer()
    t0 = time.perf_counter()
    hashed = policydoc.canonical_document(policydoc.hash_document(doc, secret))
    t1 = time.perf_counter()
    digest = policydoc.policy_digest(hashed)
    data = bundles.build_snapshot(
        signer, site_id="s", version=1, document=hashed, digest=digest, now=datetime.now(UTC)
    )
    t2 = time.perf_counter()
    verified = bundles.verify_bundle(
        data,
        trusted_keys={signer.key_id: signer.private_key.public_key()},
        site_id="s",
        current_version=0,
        current_digest=None,
        now=datetime.now(UTC),
    )
    t3 = time.perf_counter()
    applied = verified.apply_to(policydoc.empty_document())
    t4 = time.perf_counter()
    assert len(applied["credentials"]) == len(creds)
    return {
        "credentials": len(creds),
        "bytes": len(data),
        "hash_s": t1 - t0,
        "build_s": t2 - t1,
        "verify_s": t3 - t2,
        "apply_s": t4 - t3,
        "build_verify_apply_s": t4 - t1,
    }


def event_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "seq": s,
            "at": f"2026-11-25T10:{s // 60 % 60:02d}:{s % 60:02d}+01:00",
            "type": "access",
            "action": "present",
            "result": "success",
            "reason": None,
            "door": "gate",
            "reader": "gate-in",
            "person": f"p{s % 500}",
            "apartment": None,
            "credential_kind": "rf_card",
            "detail": {},
            "hash": f"{s:064x}",
        }
        for s in range(1, n + 1)
    ]


async def bench_ingest(n: int, tmp: Path, rounds: int = 5) -> dict[str, Any]:
    """Ours and raw COPY alternate in ``rounds`` rounds (n/rounds events each), so load from
    anything else on the machine hits both alike; the ratio is the median of the rounds."""
    keys = CloudKeys.load(tmp / "keys")
    per_round = n // rounds
    rows = event_rows(per_round)
    now = time.time()
    ours: list[float] = []
    raw_1000: list[float] = []
    raw_one: list[float] = []
    async with open_store("postgres", tmp, keys) as store:
        await store.add_site("s")
        conn = await asyncpg.connect(
            PG, server_settings={"search_path": store.pg_schema or "public"}
        )
        try:
            await conn.execute(
                "CREATE TABLE raw_events (site_id text, epoch text, seq bigint, hash text, "
                "at text, type text, body text, received_at double precision, "
                "PRIMARY KEY (site_id, epoch, seq))"
            )
            for r in range(rounds):
                t0 = time.perf_counter()
                for i in range(0, per_round, 1000):
                    result = await store.ingest("s", f"e{r}", rows[i : i + 1000])
                ours.append(time.perf_counter() - t0)
                assert result.watermark == per_round
                # the raw side gets its rows ready-made: JSON encoding is not part of COPY
                records = [
                    ("s", f"a{r}", x["seq"], x["hash"], x["at"], x["type"], json.dumps(x), now)
                    for x in rows
                ]
                t0 = time.perf_counter()
                for i in range(0, per_round, 1000):
                    await conn.copy_records_to_table("raw_events", records=records[i : i + 1000])
                raw_1000.append(time.perf_counter() - t0)
                records = [("s", f"b{r}", *x[2:]) for x in records]
                t0 = time.perf_counter()
                await conn.copy_records_to_table("raw_events", records=records)
                raw_one.append(time.perf_counter() - t0)
        finally:
            await conn.close()
        http_per_s = await ingest_over_http(store, rows)
    return {
        "events": per_round * rounds,
        "http_ingest_per_s": http_per_s,
        "ingest_per_s": per_round * rounds / sum(ours),
        "copy_1000_per_s": per_round * rounds / sum(raw_1000),
        "copy_single_per_s": per_round * rounds / sum(raw_one),
        "ratio_vs_copy_1000": statistics.median(r / o for r, o in zip(raw_1000, ours, strict=True)),
        "ratio_vs_copy_single": statistics.median(
            r / o for r, o in zip(raw_one, ours, strict=True)
        ),
    }


async def ingest_over_http(store: CloudStore, rows: list[dict[str, Any]]) -> float:
    """Events/s through the real endpoint: aiohttp on loopback, JSON posts of 1000 rows."""
    runner = web.AppRunner(make_app(store))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        token = (await store.enroll(await store.add_site("h")))["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            t0 = time.perf_counter()
            for i in range(0, len(rows), 1000):
                body = {"epoch": "http", "events": rows[i : i + 1000]}
                async with http.post(f"http://127.0.0.1:{port}/api/v1/sync/events", json=body) as r:
                    answer = await r.json()
            elapsed = time.perf_counter() - t0
        assert answer["watermark"] == len(rows)
    finally:
        await runner.cleanup()
    return len(rows) / elapsed


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def bench_fanout(n_sites: int, tmp: Path) -> dict[str, Any]:
    keys_dir = tmp / "fan-keys"
    keys = CloudKeys.load(keys_dir)
    async with pg_schema() as schema:
        async with CloudStore(PG, keys, pg_schema=schema) as store:
            token = await store.create_admin_token()
            site_tokens = {}
            for i in range(n_sites):
                site = f"site-{i}"
                site_tokens[site] = (await store.enroll(await store.add_site(site)))["token"]
            versions = {s: await store.current_version(s) for s in site_tokens}
        port = free_port()
        code = (
            "import asyncio,sys; from cloud_sync.service import serve; "
            f"asyncio.run(serve({PG!r}, '127.0.0.1:{port}', {str(keys_dir)!r}, "
            f"pg_schema={schema!r}))"
        )
        # The cloud runs in its own process so its RSS is its own; starting it is one-off.
        here = Path(__file__).resolve().parent.parent  # noqa: ASYNC240 - no I/O, just the path
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=here)  # noqa: ASYNC220
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                await asyncio.sleep(0.05)
            rss_idle = rss_kb(proc.pid)
            answered: dict[str, float] = {}
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def poll(site: str) -> None:
                    params = {"version": str(versions[site]), "wait": "50"}
                    headers = {"Authorization": f"Bearer {site_tokens[site]}"}
                    async with http.get(
                        f"{url}/api/v1/sync/bundle", params=params, headers=headers
                    ) as resp:
                        await resp.read()
                        assert resp.status == 200, resp.status
                    answered[site] = time.perf_counter()

                polls = [asyncio.create_task(poll(s)) for s in site_tokens]
                await asyncio.sleep(3)  # every poll connected and parked
                rss_polling = rss_kb(proc.pid)
                sent: dict[str, float] = {}
                admin = {"Authorization": f"Bearer {token}"}
                body = {"id": "p1", "kind": "staff", "name": "Night guard", "groups": []}
                started = time.perf_counter()
                for site in site_tokens:
                    sent[site] = time.perf_counter()
                    async with http.put(
                        f"{url}/api/v1/sites/{site}/people/p1", json=body, headers=admin
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                await asyncio.wait_for(asyncio.gather(*polls), 60)
                total = time.perf_counter() - started
            wake = [(answered[s] - sent[s]) * 1000 for s in site_tokens]
        finally:
            proc.terminate()
            proc.wait(10)
    return {
        "sites": n_sites,
        "rss_idle_mb": rss_idle / 1024,
        "rss_polling_mb": rss_polling / 1024,
        "wake_p50_ms": pct(wake, 50),
        "wake_p99_ms": pct(wake, 99),
        "all_changes_s": total,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--credentials", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--only", default="latency,snapshot,ingest,fanout")
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if "latency" in only:
            for backend in ("sqlite", "postgres"):
                results[f"latency_{backend}"] = r = await bench_latency(backend, args.changes, tmp)
                print(
                    f"change -> applied ({backend}): p50 {r['p50_ms']:.1f} ms, "
                    f"p99 {r['p99_ms']:.1f} ms, n={r['n']}"
                )
        if "snapshot" in only:
            results["snapshot"] = r = bench_snapshot(args.credentials)
            print(
                f"snapshot {r['credentials']} credentials, {r['bytes'] / 1e6:.1f} MB: "
                f"hash {r['hash_s']:.2f} s, build+sign {r['build_s']:.2f} s, "
                f"verify {r['verify_s']:.2f} s, apply {r['apply_s']:.2f} s "
                f"= {r['build_verify_apply_s']:.2f} s"
            )
        if "ingest" in only:
            results["ingest"] = r = await bench_ingest(args.events, tmp)
            print(
                f"ingest {r['events']} events into PostgreSQL: {r['ingest_per_s']:.0f}/s; "
                f"raw COPY in batches of 1000 {r['copy_1000_per_s']:.0f}/s "
                f"(ratio {r['ratio_vs_copy_1000']:.2f}); one COPY "
                f"{r['copy_single_per_s']:.0f}/s (ratio {r['ratio_vs_copy_single']:.2f}); "
                f"through the HTTP endpoint {r['http_ingest_per_s']:.0f}/s"
            )
        if "fanout" in only:
            results["fanout"] = r = await bench_fanout(args.sites, tmp)
            print(
                f"{r['sites']} sites long-polling one cloud process: "
                f"RSS idle {r['rss_idle_mb']:.0f} MB, polling {r['rss_polling_mb']:.0f} MB; "
                f"wake-up p50 {r['wake_p50_ms']:.1f} ms, "
                f"p99 {r['wake_p99_ms']:.1f} ms"
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
