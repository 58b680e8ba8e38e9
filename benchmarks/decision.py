"""Decision engine benchmark: latency, throughput, cold start and memory, against peers.

Usage:  .venv/bin/python benchmarks/decision.py [--people 20000] [--decisions 50000]

A generated site of 20k people, 100k credentials, 1k groups and 200 doors. The same
presentations are decided three ways, in the same run:

- doorkeep: ``decide()`` over the indexed in-memory snapshot;
- SQLite per decision: one indexed join query per presentation (credential -> person ->
  groups -> door) on the same data, schedule checked on the rows it returns;
- pycasbin: an RBAC model (person -> group role -> door) on an equivalent policy, after
  the same credential lookup (casbin has no time windows, so it does less work).

Cold start (load the hashed policy from the edge store + index it) and peak RSS are
measured in a fresh subprocess so earlier allocations do not count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doorkeep import policydoc  # noqa: E402
from edge.core.decide import Presentation, decide  # noqa: E402
from edge.core.model import DoorSpec, Memory, ReaderSpec, build_snapshot  # noqa: E402
from edge.core.schedule import Instant, Schedule  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")
SECRET = b"benchmark-secret-0123456789abcdef"
METHODS = frozenset({"pin", "rf_card", "uhf_card", "license_plate", "qr"})
NOW = datetime(2026, 11, 17, 13, 30, tzinfo=UTC)  # a Tuesday afternoon in Berlin


def generate(people: int, groups: int, doors: int, seed: int = 7) -> dict[str, Any]:
    """A valid hashed policy document of the requested size (5 credentials a person)."""
    rng = random.Random(seed)
    door_ids = [f"d{i}" for i in range(doors)]
    buildings = [f"B{i}" for i in range(20)]
    group_list = []
    for i in range(groups):
        kind = rng.random()
        if kind < 0.6:
            sched = {"repeat": "daily", "start": "06:00", "end": "22:00"}
        elif kind < 0.9:
            sched = {
                "repeat": "weekly",
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "07:00",
                "end": "19:00",
                "except_holidays": True,
            }
        else:
            sched = {"repeat": "daily", "start": "22:00", "end": "06:00"}
        group_list.append(
            {"id": f"g{i}", "schedule": sched, "doors": rng.sample(door_ids, rng.randint(3, 12))}
        )
    for i, b in enumerate(buildings):
        group_list[i]["building_default"] = b
    apartments = [
        {
            "id": f"A{i}",
            "building": buildings[i % len(buildings)],
            "number": f"{i // 100}#{i}",
            "valid_until": "2030-01-01T00:00:00" if i % 3 == 0 else None,
        }
        for i in range(people // 2)
    ]
    person_list, creds = [], []
    for i in range(people):
        resident = i % 10 != 0
        person = {
            "id": f"p{i}",
            "kind": "resident" if resident else "staff",
            "groups": [f"g{g}" for g in rng.sample(range(groups), rng.randint(1, 3))],
        }
        if resident:
            person["apartment"] = f"A{i // 2}"
        person_list.append(person)
        creds += [
            {"id": f"c{i}-pin", "person": f"p{i}", "kind": "pin", "value": f"{100000 + i}"},
            {
                "id": f"c{i}-rf1",
                "person": f"p{i}",
                "kind": "rf_card",
                "value": format(0x1000000 + i, "X"),
            },
            {
                "id": f"c{i}-rf2",
                "person": f"p{i}",
                "kind": "rf_card",
                "value": format(0x2000000 + i, "X"),
            },
            {
                "id": f"c{i}-uhf",
                "person": f"p{i}",
                "kind": "uhf_card",
                "value": format(0x3000000 + i, "X"),
            },
            {"id": f"c{i}-qr", "person": f"p{i}", "kind": "qr", "value": f"QR-{i:08d}"},
        ]
    doc = {
        "format": policydoc.FORMAT,
        "settings": {"pin_mode": "pin"},
        "buildings": [{"id": b} for b in buildings],
        "apartments": apartments,
        "people": person_list,
        "credentials": creds,
        "groups": group_list,
        "holidays": [{"date": "2026-12-25"}],
    }
    return policydoc.hash_document(doc, SECRET)


def hardware(doors: int) -> tuple[list[DoorSpec], list[ReaderSpec]]:
    door_specs = [DoorSpec(f"d{i}", METHODS) for i in range(doors)]
    return door_specs, [ReaderSpec(f"r{i}", f"d{i}") for i in range(doors)]


def presentations(n: int, doc: dict[str, Any], doors: int, seed: int = 11) -> list[Presentation]:
    """Mostly people at doors their groups hold (as at a real site), some strays."""
    rng = random.Random(seed)
    people = len(doc["people"])
    group_doors = {g["id"]: g["doors"] for g in doc["groups"]}
    out = []
    for _ in range(n):
        i = rng.randrange(people)
        held = [d for g in doc["people"][i]["groups"] for d in group_doors[g]]
        door = rng.choice(held) if rng.random() < 0.8 else f"d{rng.randrange(doors)}"
        roll = rng.random()
        if roll < 0.4:
            kind, value = "pin", f"{100000 + i}"
        elif roll < 0.8:
            kind, value = "rf_card", format(0x1000000 + i, "X")
        elif roll < 0.9:
            kind, value = "qr", f"QR-{i:08d}"
        else:
            kind, value = "rf_card", format(0x7000000 + i, "X")  # unknown card
        out.append(Presentation(f"r{door[1:]}", kind, value))
    return out


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, samples_ns: list[int]) -> dict[str, Any]:
    us = [s / 1000 for s in samples_ns]
    return {
        "engine": name,
        "decisions": len(us),
        "per_s": round(len(us) / (sum(us) / 1e6)),
        "p50_us": round(percentile(us, 0.50), 2),
        "p99_us": round(percentile(us, 0.99), 2),
        "mean_us": round(statistics.fmean(us), 2),
    }


def bench_doorkeep(policy: Any, items: list[Presentation]) -> tuple[dict[str, Any], list[bool]]:
    memory = Memory()
    samples, results = [], []
    clock = time.perf_counter_ns
    for p in items:
        t0 = clock()
        d = decide(policy, p, NOW, memory)
        samples.append(clock() - t0)
        results.append(d.granted)
    return summary("doorkeep decide()", samples), results


def build_sqlite(doc: dict[str, Any], path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE credentials (hmac TEXT PRIMARY KEY, person TEXT, kind TEXT, active INT);
        CREATE TABLE people (id TEXT PRIMARY KEY, kind TEXT, apartment TEXT, active INT);
        CREATE TABLE person_groups (person TEXT, grp TEXT, PRIMARY KEY (person, grp));
        CREATE TABLE group_doors (grp TEXT, door TEXT, schedule TEXT, PRIMARY KEY (grp, door));
        """
    )
    conn.executemany(
        "INSERT INTO credentials VALUES (?,?,?,1)",
        [(c["value_hmac"], c["person"], c["kind"]) for c in doc["credentials"]],
    )
    conn.executemany(
        "INSERT INTO people VALUES (?,?,?,1)",
        [(p["id"], p["kind"], p.get("apartment")) for p in doc["people"]],
    )
    conn.executemany(
        "INSERT INTO person_groups VALUES (?,?)",
        [(p["id"], g) for p in doc["people"] for g in p["groups"]],
    )
    conn.executemany(
        "INSERT INTO group_doors VALUES (?,?,?)",
        [(g["id"], d, json.dumps(g["schedule"])) for g in doc["groups"] for d in g["doors"]],
    )
    conn.commit()
    return conn


def bench_sqlite(
    conn: sqlite3.Connection, items: list[Presentation], doors: dict[str, str]
) -> tuple[dict[str, Any], list[bool]]:
    from doorkeep.policydoc import credential_hmac

    query = """
        SELECT gd.schedule FROM credentials c
        JOIN people p ON p.id = c.person AND p.active = 1
        JOIN person_groups pg ON pg.person = p.id
        JOIN group_doors gd ON gd.grp = pg.grp AND gd.door = ?
        WHERE c.hmac = ? AND c.active = 1
    """
    holidays = frozenset({datetime(2026, 12, 25).date()})
    schedules: dict[str, Schedule] = {}
    samples, results = [], []
    clock = time.perf_counter_ns
    for p in items:
        t0 = clock()
        key = credential_hmac(SECRET, p.kind, p.value)
        rows = conn.execute(query, (doors[p.reader], key)).fetchall()
        at = Instant.of(NOW, TZ)
        granted = False
        for (text,) in rows:
            sched = schedules.get(text) or schedules.setdefault(
                text, Schedule.from_dict(json.loads(text), TZ)
            )
            if sched.is_open(at, holidays):
                granted = True
                break
        samples.append(clock() - t0)
        results.append(granted)
    return summary("SQLite query per decision", samples), results


def bench_casbin(
    doc: dict[str, Any], items: list[Presentation], doors: dict[str, str]
) -> tuple[dict[str, Any], list[bool], float]:
    import casbin

    from doorkeep.policydoc import credential_hmac

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.conf"
        model.write_text(
            "[request_definition]\nr = sub, obj\n\n[policy_definition]\np = sub, obj\n\n"
            "[role_definition]\ng = _, _\n\n[policy_effect]\ne = some(where (p.eft == allow))\n\n"
            "[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj\n"
        )
        lines = [f"p, {g['id']}, {d}" for g in doc["groups"] for d in g["doors"]]
        lines += [f"g, {p['id']}, {g}" for p in doc["people"] for g in p["groups"]]
        policy_file = Path(tmp) / "policy.csv"
        policy_file.write_text("\n".join(lines) + "\n")
        t0 = time.perf_counter()
        enforcer = casbin.Enforcer(str(model), str(policy_file))
        load_s = time.perf_counter() - t0
    owner = {c["value_hmac"]: c["person"] for c in doc["credentials"]}
    samples, results = [], []
    clock = time.perf_counter_ns
    for p in items:
        t0 = clock()
        person = owner.get(credential_hmac(SECRET, p.kind, p.value))
        granted = person is not None and enforcer.enforce(person, doors[p.reader])
        samples.append(clock() - t0)
        results.append(granted)
    return summary("pycasbin RBAC (no schedules)", samples), results, load_s


COLD_START = """
import asyncio, json, resource, sys, time
from pathlib import Path
from zoneinfo import ZoneInfo
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
from edge.store import EdgeStore
from edge.core.model import build_snapshot
from benchmarks.decision import hardware, SECRET
async def main():
    async with EdgeStore.open(Path({db!r}), site_id="bench") as store:
        t1 = time.perf_counter()
        state = store.load_policy()
        doors, readers = hardware({doors})
        snap = build_snapshot(state.doc, tz=ZoneInfo("Europe/Berlin"), secret=SECRET, doors=doors, readers=readers)
        t2 = time.perf_counter()
        assert len(snap.people) == {people}
        print(json.dumps({{"load_index_s": t2 - t1, "process_s": t2 - t0,
                          "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
asyncio.run(main())
"""


async def prepare_store(doc: dict[str, Any], db: Path) -> None:
    from edge.store import EdgeStore

    async with EdgeStore.open(db, site_id="bench") as store:
        await store.apply_policy_change(
            upserts={k: doc.get(k, []) for k in policydoc.ENTITY_KINDS},
            deletes={},
            settings=doc.get("settings"),
            replace=True,
            version=1,
            digest=policydoc.policy_digest(doc),
            owner="local",
            audit=[],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--doors", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument(
        "--peer-decisions",
        type=int,
        default=2_000,
        help="decisions run through pycasbin (about 1000x slower)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = parser.parse_args()

    t0 = time.perf_counter()
    doc = generate(args.people, args.groups, args.doors)
    gen_s = time.perf_counter() - t0
    door_specs, readers = hardware(args.doors)
    policy = build_snapshot(doc, tz=TZ, secret=SECRET, doors=door_specs, readers=readers)
    items = presentations(args.decisions, doc, args.doors)
    reader_door = {r.id: r.door for r in readers}

    ours, ours_results = bench_doorkeep(policy, items)
    with tempfile.TemporaryDirectory() as tmp:
        conn = build_sqlite(doc, Path(tmp) / "peer.db")
        sql, sql_results = bench_sqlite(conn, items, reader_door)
        conn.close()
        db = Path(tmp) / "edge.db"
        asyncio.run(prepare_store(doc, db))
        script = COLD_START.format(root=str(ROOT), db=str(db), doors=args.doors, people=args.people)
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        cold = json.loads(out.stdout.strip().splitlines()[-1])
    cas, _cas_results, cas_load = bench_casbin(doc, items[: args.peer_decisions], reader_door)

    agree_sql = sum(a == b for a, b in zip(ours_results, sql_results, strict=True)) / len(items)
    result = {
        "site": {
            "people": args.people,
            "credentials": len(doc["credentials"]),
            "groups": args.groups,
            "doors": args.doors,
            "generate_and_hash_s": round(gen_s, 2),
        },
        "engines": [ours, sql, cas],
        "ratios": {
            "sqlite_p99_over_doorkeep": round(sql["p99_us"] / ours["p99_us"], 1),
            "casbin_p99_over_doorkeep": round(cas["p99_us"] / ours["p99_us"], 1),
            "doorkeep_throughput_over_sqlite": round(ours["per_s"] / sql["per_s"], 1),
            "doorkeep_throughput_over_casbin": round(ours["per_s"] / cas["per_s"], 1),
        },
        "agreement_with_sqlite": round(agree_sql, 4),
        "grant_rate": round(sum(ours_results) / len(items), 3),
        "cold_start": {k: round(v, 3) for k, v in cold.items()},
        "casbin_load_s": round(cas_load, 2),
        "targets": {
            "p99_us<=50": ours["p99_us"] <= 50,
            "cold_start_s<=2": cold["load_index_s"] <= 2,
            "rss_mb<=200": cold["rss_mb"] <= 200,
        },
        "bench_process_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"site: {result['site']}")
    print(f"{'engine':32} {'decisions/s':>12} {'p50 us':>8} {'p99 us':>8}")
    for e in result["engines"]:
        print(f"{e['engine']:32} {e['per_s']:>12} {e['p50_us']:>8} {e['p99_us']:>8}")
    print(f"ratios: {result['ratios']}")
    print(
        f"agreement with SQLite peer: {result['agreement_with_sqlite']:.2%}, grant rate {result['grant_rate']}"
    )
    print(
        f"cold start (fresh process, load + index): {result['cold_start']}; casbin load {cas_load:.2f}s"
    )
    print(f"targets met: {result['targets']}")


if __name__ == "__main__":
    main()
