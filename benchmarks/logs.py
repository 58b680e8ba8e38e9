"""Door-log filters on a large log: what the Logs page and ``doorkeep events`` ask.
Results go to docs/performance.md ("Door-log filters").

    .venv/bin/python -m benchmarks.logs [--events 1000000] [--dir /tmp/bench]

The log is filled straight into SQLite (rows shaped as the site writes them, chain
hashes left out: searching does not read them), then each filter of ``GET /events``
is timed through ``EdgeStore.query_events`` (newest 100, the UI's page) with the index
SQLite chose. Last, the write cost of the indexes of migration 3: bursts of
``record_event`` on a fresh database with and without them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.store import EdgeStore, Scope, _events, _schema
from edge.store._chain import time_key

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BUILDINGS = [f"B{i}" for i in range(10)]
DOORS = [f"door-{i}" for i in range(20)]  # door-2k and door-2k+1 belong to building Bk
APARTMENTS = 1200  # A<i> is in building B<i % 10>
PEOPLE = 5000  # p<i> lives in A<i % 1200>
TEMP_KEYS = 200
REASONS = ("outside_schedule", "unknown_credential", "no_access")
BURST = 200


def row(i: int, span_s: int) -> tuple[Any, ...]:
    """Event i: mostly residents' cards; every 20th a visitor's temp key, every 100th an
    operator's remote unlock; every 7th refused for one of three reasons."""
    at = T0 + timedelta(seconds=i * span_s)
    door = DOORS[i % len(DOORS)]
    detail: dict[str, Any] = {}
    person: str | None = f"p{i % PEOPLE}"
    apartment: str | None = f"A{i % PEOPLE % APARTMENTS}"
    kind, action = "rf_card", "presentation"
    if i % 100 == 0:
        person, apartment, kind, action = None, None, "remote", "remote_unlock"
        detail["actor"] = f"admin:op{i // 100 % 5}"
    elif i % 20 == 0:
        person, kind = None, "pin"
        detail["temp_key"] = f"t{i // 20 % TEMP_KEYS}"
    else:
        detail["credential"] = f"c{i % PEOPLE}"
    failed = i % 7 == 0 and action == "presentation"
    return (
        i + 1,
        at.isoformat(),
        time_key(at),
        "access" if action == "presentation" else "door",
        action,
        "failed" if failed else "success",
        REASONS[i % 3] if failed else None,
        door,
        f"{door}-in",
        person,
        apartment,
        kind,
        json.dumps(detail),
        "-",
    )


def fill(path: Path, n: int) -> None:
    span_s = max(1, int(60 * 86400 / n))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    sql = (
        "INSERT INTO events (seq, at, ts, type, action, result, reason, door, reader, person, "
        "apartment, credential_kind, detail, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    chunk = 50_000
    for start in range(0, n, chunk):
        conn.executemany(sql, (row(i, span_s) for i in range(start, min(n, start + chunk))))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('head_seq', ?)", (str(n),))
    conn.execute("COMMIT")
    conn.close()


def building_scope(b: int) -> Scope:
    apartments = tuple(f"A{i}" for i in range(APARTMENTS) if i % 10 == b)
    return Scope(apartments, (DOORS[2 * b], DOORS[2 * b + 1]))


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("newest 100", {}),
    ("apartment = A7", {"apartment": "A7"}),
    ("reason = no_access", {"reason": "no_access"}),
    ("building = B3 (120 apartments, 2 doors)", {"scope": building_scope(3)}),
    ("building = B3 and result = failed", {"scope": building_scope(3), "result": "failed"}),
    ("initiated_by = p42 (a person)", {"initiated_by": "p42"}),
    ("initiated_by = admin:op3 (an operator)", {"initiated_by": "admin:op3"}),
    ("credential_kind = remote", {"credential_kind": "remote"}),
    ("action = remote_unlock", {"action": "remote_unlock"}),
    ("temp_key = t41", {"temp_key": "t41"}),
    ("credential = c123", {"credential": "c123"}),
    ("apartment = A7 and reason = no_access", {"apartment": "A7", "reason": "no_access"}),
    ("door = door-3 and reason = no_access", {"door": "door-3", "reason": "no_access"}),
]


async def time_queries(path: Path, label: str) -> list[tuple[str, float, str]]:
    out = []
    async with EdgeStore.open(path, site_id="bench") as store:
        for name, query in QUERIES:
            await store.query_events(**query)  # warm the page cache once
            took = []
            for _ in range(5):
                start = time.perf_counter()
                rows, _cursor = await store.query_events(**query)
                took.append((time.perf_counter() - start) * 1000)
            sql, args = _events.search_sql(
                {k: v for k, v in query.items() if k not in ("scope", "initiated_by")},
                since=None,
                until=None,
                cursor=None,
                initiated_by=query.get("initiated_by"),
                scope=query.get("scope"),
            )
            conn = sqlite3.connect(path)
            plan = conn.execute("EXPLAIN QUERY PLAN " + sql, [*args, 100]).fetchall()
            conn.close()
            indexes = sorted({w for p in plan for w in p[3].split() if w.startswith("events_")})
            out.append((name, statistics.median(took), ", ".join(indexes) or "seq (pk)"))
            assert rows, name
    print(f"--- {label}")
    for name, ms, index in out:
        print(f"{name:42s} {ms:8.1f} ms   {index}")
    return out


async def write_rate(base: Path, with_new: bool, n: int = 20_000) -> float:
    path = base / f"write-{with_new}.db"
    path.unlink(missing_ok=True)
    if not with_new:  # the database as it was before migration 3: without its indexes
        async with EdgeStore.open(path, site_id="w"):
            pass
        conn = sqlite3.connect(path)
        for name in ("action", "credential_kind", *_schema.DETAIL_KEYS):
            conn.execute(f"DROP INDEX events_{name}_seq")
        conn.close()
    if True:
        async with EdgeStore.open(path, site_id="w") as store:
            start = time.perf_counter()
            for i in range(0, n, BURST):
                events = []
                for j in range(i, i + BURST):
                    values = row(j, 1)
                    events.append(
                        {
                            "at": values[1],
                            "type": values[3],
                            "action": values[4],
                            "result": values[5],
                            "reason": values[6],
                            "door": values[7],
                            "reader": values[8],
                            "person": values[9],
                            "apartment": values[10],
                            "credential_kind": values[11],
                            "detail": json.loads(values[12]),
                        }
                    )
                await asyncio.gather(*(store.record_event(e) for e in events))
            return n / (time.perf_counter() - start)
    return 0.0


async def main(n: int, base: Path) -> None:
    path = base / "logs.db"
    path.unlink(missing_ok=True)
    async with EdgeStore.open(path, site_id="bench"):
        pass  # the schema, migrated
    start = time.perf_counter()
    fill(path, n)
    size = path.stat().st_size / 1e6
    print(f"filled {n} events in {time.perf_counter() - start:.0f} s; {size:.0f} MB")
    await time_queries(path, "without statistics (as a site's database is)")
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    conn.close()
    await time_queries(path, "with ANALYZE statistics (for comparison)")
    rates = [(await write_rate(base, False), await write_rate(base, True)) for _ in range(3)]
    before = statistics.median(r[0] for r in rates)
    after = statistics.median(r[1] for r in rates)
    print(
        f"record_event bursts of {BURST}: {before:,.0f}/s before migration 3, "
        f"{after:,.0f}/s with its 5 indexes ({after / before:.2f}x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="doorkeep-bench-"))
    print(f"{args.events} events in {directory} (SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs)")  # fmt: skip
    asyncio.run(main(args.events, directory))
