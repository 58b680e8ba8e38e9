"""Library search benchmark: the entity list contract at 20,000 people.

Usage:  .venv/bin/python benchmarks/library.py [--people 20000] [--runs 20]

The generated site of benchmarks/decision.py (20k people, 100k hashed credentials, 10k
apartments in 20 buildings), with names. Measured, per list request of the contract
(doorkeep/listing.py, edge/site/pm.py):

- the index build, once per policy version (worker thread);
- each query's search (worker thread): median and worst of ``--runs``;
- the answer's serialisation (worker thread too, edge/web/handlers/policy.py), for a
  50-item page and for the unpaged list; what stays on the event loop is parsing the
  query (``Query.of``) and handing the text to aiohttp;
- for comparison, the list as it was served before (a deep copy of the whole list plus
  its serialisation, all on the loop).

Left out: HTTP parsing and the socket (a few hundred µs, the same for every endpoint),
the thread hand-off (tens of µs), the GIL the worker holds while the loop waits.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.decision import generate  # noqa: E402
from doorkeep import listing  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 17, 13, 30, tzinfo=UTC)
SURNAMES = ("Wong", "Müller", "Garcia", "Nakamura", "Okafor", "Smith", "Rossi", "Kowalski")

QUERIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("people, page 1 of 50", {"limit": 50}),
    ("people q=wong (name), 50", {"q": "wong", "limit": 50}),
    ("people building=B7, 50", {"building": "B7", "limit": 50}),
    ("people group=g3", {"group": "g3"}),
    ("people q=p1234 offset=0", {"q": "p1234", "limit": 50}),
    ("credentials building=B3 kind=pin, 50", {"building": "B3", "kind": "pin", "limit": 50}),
    ("credentials holder=nakamura, 50", {"holder": "nakamura", "limit": 50}),
    ("credentials q=c19999 (id)", {"q": "c19999"}),
    ("apartments building=B1, 50", {"building": "B1", "limit": 50}),
)


def named(doc: dict[str, Any], seed: int = 3) -> dict[str, Any]:
    rng = random.Random(seed)
    for i, person in enumerate(doc["people"]):
        person["name"] = f"Person{i} {rng.choice(SURNAMES)}"
    return doc


def kind_of(title: str) -> str:
    return title.split(" ", 1)[0].rstrip(",")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    doc = named(generate(args.people, 1000, 200))
    counts = {k: len(doc.get(k) or []) for k in ("people", "credentials", "apartments")}
    print(f"site: {counts}")

    started = time.perf_counter()
    index = listing.EntityIndex(doc)
    build = time.perf_counter() - started
    print(f"index build (thread, once per policy version): {ms(build)} ms")

    print("| query | total | search median ms | worst ms | serialise ms | on loop ms |")
    print("|---|---|---|---|---|---|")
    for title, params in QUERIES:
        kind = kind_of(title)
        times, loop_times, dump_times, total = [], [], [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            query = listing.Query.of(kind, params)
            t1 = time.perf_counter()
            answer = listing.search(index, kind, query, now=NOW, tz=TZ)
            t2 = time.perf_counter()
            json.dumps(answer)
            t3 = time.perf_counter()
            times.append(t2 - t1)
            dump_times.append(t3 - t2)
            loop_times.append(t1 - t0)
            total = answer["total"]
        print(
            f"| {title} | {total} | {ms(statistics.median(times))} | {ms(max(times))} "
            f"| {ms(statistics.median(dump_times))} | {ms(statistics.median(loop_times))} |"
        )

    for kind in ("people", "credentials"):
        answer = listing.search(index, kind, listing.Query(), now=NOW, tz=TZ)
        t0 = time.perf_counter()
        json.dumps(answer)
        unpaged = time.perf_counter() - t0
        t0 = time.perf_counter()
        json.dumps({"items": copy.deepcopy(doc[kind])})
        before = time.perf_counter() - t0
        print(
            f"unpaged {kind} ({len(doc[kind])}): {ms(unpaged)} ms serialising (thread); "
            f"before this change {ms(before)} ms (deep copy + serialising, all on the loop)"
        )


if __name__ == "__main__":
    main()
