"""Edge store measurements: group-commit write rate, filtered search on a large log,
chain verification, retention. Results go to docs/performance.md ("Edge store").

    .venv/bin/python -m benchmarks.store [--events 1000000] [--dir /tmp/bench]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.store import EdgeStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DOORS = [f"door-{i}" for i in range(20)]
BURST = 200  # concurrent record_event calls per gather (a busy site sees a handful)


def event(i: int, span_s: int) -> dict:
    return {
        "at": (T0 + timedelta(seconds=i * span_s)).isoformat(),
        "type": "access",
        "action": "card",
        "result": "failed" if i % 7 == 0 else "success",
        "reason": "outside_schedule" if i % 7 == 0 else None,
        "door": DOORS[i % len(DOORS)],
        "reader": f"{DOORS[i % len(DOORS)]}-in",
        "person": f"p{i % 5000}",
        "apartment": f"A{i % 1200}",
        "credential_kind": "rf_card",
        "detail": {"floors": ["7"]},
    }


async def timed(label: str, coro, results: list) -> object:
    start = time.perf_counter()
    value = await coro
    results.append((label, (time.perf_counter() - start) * 1000))
    return value


async def main(n: int, base: Path) -> None:
    path = base / "bench.db"
    path.unlink(missing_ok=True)
    span_s = max(1, int(60 * 86400 / n))  # n events spread over 60 days
    async with EdgeStore.open(path, site_id="bench") as store:
        # 1. single caller, one event at a time: latency of one durable commit
        lat = []
        for i in range(200):
            t = time.perf_counter()
            await store.record_event(event(i, span_s), memory_rows={"k": i})
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        print(
            f"single-caller record_event: p50 {statistics.median(lat):.2f} ms, "
            f"p99 {lat[int(len(lat) * 0.99)]:.2f} ms"
        )
        # 2. bulk: bursts of concurrent calls (group commit)
        lags: list[float] = []
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def probe() -> None:
            while not stop.is_set():
                s = loop.time()
                await asyncio.sleep(0.005)
                lags.append(loop.time() - s - 0.005)

        probe_task = asyncio.create_task(probe())
        start = time.perf_counter()
        stats0 = (store.writer_stats.items, store.writer_stats.commits)
        i = 200
        while i < n:
            burst = range(i, min(n, i + BURST))
            await asyncio.gather(
                *(store.record_event(event(j, span_s), memory_rows={"k": j}) for j in burst)
            )
            i = burst[-1] + 1
        took = time.perf_counter() - start
        stop.set()
        await probe_task
        items = store.writer_stats.items - stats0[0]
        commits = store.writer_stats.commits - stats0[1]
        print(
            f"bulk record_event: {n - 200} events in {took:.1f} s = {(n - 200) / took:,.0f}/s, "
            f"{items / max(commits, 1):.0f} events per commit, "
            f"loop lag p99 {sorted(lags)[int(len(lags) * 0.99)] * 1000:.1f} ms, "
            f"max {max(lags) * 1000:.1f} ms"
        )
        size = path.stat().st_size / 1e6
        print(f"database size: {size:.0f} MB ({size * 1e6 / n:.0f} B/event)")

        # 3. queries on the full log
        results: list = []
        mid = T0 + timedelta(seconds=n * span_s // 2)
        await timed("newest 100", store.query_events(limit=100), results)
        await timed("door=door-3, 100", store.query_events(door="door-3"), results)
        await timed("person=p42, 100", store.query_events(person="p42"), results)
        await timed(
            "apartment=A7 result=failed",
            store.query_events(apartment="A7", result="failed"),
            results,
        )
        await timed(
            "one day window, 100",
            store.query_events(since=mid, until=mid + timedelta(days=1)),
            results,
        )
        await timed(
            "door + day window (old)",
            store.query_events(
                door="door-3", since=T0 + timedelta(days=2), until=T0 + timedelta(days=3)
            ),
            results,
        )
        _page, cursor = await store.query_events(door="door-5", limit=100)
        for _ in range(50):
            _page, cursor = await store.query_events(door="door-5", limit=100, cursor=cursor)
        await timed(
            "door=door-5 page 52",
            store.query_events(door="door-5", limit=100, cursor=cursor),
            results,
        )
        await timed("events_above (outbox 500)", store.events_above(n // 2, 500), results)
        report = await timed("verify_chain (all)", store.verify_chain(), results)
        await timed(
            "redact apartment A9", store.redact_apartment_events("A9", actor="bench"), results
        )
        reads: list[float] = []

        async def card_reads_during(task: asyncio.Future) -> None:
            k = 0
            while not task.done():
                t = time.perf_counter()
                await store.record_event(event(n + k, span_s))
                reads.append((time.perf_counter() - t) * 1000)
                k += 1
                await asyncio.sleep(0.01)

        prune = asyncio.ensure_future(
            timed(
                "prune 30 days",
                store.prune(now=T0 + timedelta(days=60), only_acknowledged=False),
                results,
            )
        )
        await card_reads_during(prune)
        await prune
        print(
            f"record_event during the prune: {len(reads)} calls, max {max(reads):.1f} ms, "
            f"median {statistics.median(reads):.1f} ms"
        )
        report2 = await timed("verify_chain (after prune)", store.verify_chain(), results)
        for label, ms in results:
            print(f"{label:32s} {ms:9.1f} ms")
        print(f"chain: {report}; after prune: {report2}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="doorkeep-bench-"))
    print(
        f"{args.events} events in {directory} "
        f"(SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs)"
    )
    asyncio.run(main(args.events, directory))
