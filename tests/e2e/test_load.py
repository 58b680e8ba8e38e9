"""Load: presentations at a steady 200/s to the real ``doorkeep run`` daemon over HTTP.

The daemon runs a simulated site (a pymodbus relay board on a pseudo-terminal, three
doors) as a subprocess, as an installer runs it. The client sends open-loop — one
presentation every 5 ms whether or not earlier answers came back — so a daemon that falls
behind shows it as latency, not as a slower test. Nothing may be dropped: every answer is
a 200 with an ``event_id``, every one of those events is in the log, and the log's seqs
have no gap. The short run holds the rate for ``reliability.scaled(10)`` seconds; the
long run (``benchmarks/reliability.py --long``) for the issue's 10 minutes.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import statistics
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.config import write_site_toml
from tests.reliability import Reliability

from .conftest import Daemon

RATE = 200  # presentations per second
BAUD = 115200
# (reader, kind, value, granted), sent in turn: one in four is a grant (50/s), the rest are
# refusals of three kinds. A grant waits for its relay's acknowledgement on the one RS485
# bus (~6 ms at 115200 baud on the simulator, ~30 ms at 9600), which bounds grants, not
# presentations: one 9600-baud bus carries ~30 grants/s. No wrong PINs: a reader lockout
# would change what is measured (tests/edge/test_lockout*.py measure guessing).
MIX = [
    ("gate-in", "rf_card", "00209CBF", True),
    ("plant-in", "pin", "4711", False),  # the resident may not enter the plant room
    ("lobby-in", "rf_card", "00C0FFEE", False),  # an unknown card
    ("gate-in", "rf_card", "00BADCAB", False),
    ("lobby-in", "pin", "4711", True),
    ("plant-in", "rf_card", "00DEFACE", False),
    ("gate-in", "pin", "4711", True),
    ("plant-in", "pin", "4711", False),
]
GRANTS_PER_S = RATE * sum(g for *_, g in MIX) // len(MIX)


@pytest.fixture(scope="module")
def load_template(site_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e2e site with its bus at 115200 baud."""
    root = tmp_path_factory.mktemp("load") / "site"
    shutil.copytree(site_template, root)
    cfg = tomllib.loads((root / "site.toml").read_text())
    for bus in cfg["bus"]:
        bus["baudrate"] = BAUD
    write_site_toml(root / "site.toml", cfg)
    return root


@pytest.fixture
def load_daemon(tmp_path: Path, load_template: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "site", load_template)
    try:
        yield d
    finally:
        d.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def all_events(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{base}/events", params=params) as r:
            assert r.status == 200, await r.text()
            page = await r.json()
        events += page["items"]
        cursor = page["cursor"]
        if not cursor:
            return events


def check_answers(
    answers: list[tuple[int, int, dict[str, Any]]], events: list[dict[str, Any]], total: int
) -> None:
    """Every presentation answered, decided right and in the log, with no seq gap."""
    bad = [(i, s, a) for i, s, a in answers if s != 200 or not isinstance(a.get("event_id"), int)]
    assert not bad, f"{len(bad)} of {total} dropped or refused, e.g. {bad[:3]}"
    wrong = [(i, a) for i, _, a in answers if a["granted"] is not MIX[i % len(MIX)][3]]
    assert not wrong, f"{len(wrong)} wrong decisions under load, e.g. {wrong[:3]}"
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap in the log's seqs"
    logged = set(seqs)
    missing = [a["event_id"] for _, _, a in answers if a["event_id"] not in logged]
    assert not missing, f"{len(missing)} answered presentations are not in the log"
    access = [e for e in events if e["type"] == "access"]
    assert len(access) == total  # the fixture's site had no access events before
    unlocked = [e for e in events if e["type"] == "door" and e["action"] == "unlocked"]
    assert unlocked, "no door unlocked: the grants did not reach the relays"


async def test_200_presentations_a_second_to_the_daemon_drop_nothing(
    load_daemon: Daemon, reliability: Reliability
) -> None:
    daemon = load_daemon
    seconds = reliability.scaled(10, long=600)
    total = RATE * seconds
    token = (
        await asyncio.to_thread(
            daemon.cli, "token", "create", "--role", "installer", "-c", str(daemon.config)
        )
    ).strip()
    base = f"{daemon.url}/api/v1"
    answers: list[tuple[int, int, dict[str, Any]]] = []  # (i, status, body)
    latencies: list[float] = []
    rss = [rss_mib(daemon.proc.pid)]

    connector = aiohttp.TCPConnector(ssl=False, limit=64)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def present(i: int) -> None:
            reader, kind, value, _ = MIX[i % len(MIX)]
            body = {"reader": reader, "kind": kind, "value": value}
            start = time.perf_counter()
            async with http.post(f"{base}/presentations", json=body) as r:
                answer = await r.json(content_type=None)
                status = r.status
            latencies.append(time.perf_counter() - start)
            answers.append((i, status, answer))

        # Only the requests in flight are kept, and once a second what survived so far is
        # frozen out of the GC: in the --long run a full collection over 120,000 finished
        # tasks stopped this client's loop for 1.7 s, and its timers counted that too.
        in_flight: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter()
        try:
            for i in range(total):
                delay = t0 + i / RATE - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(present(i))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                if i % RATE == 0:
                    rss.append(rss_mib(daemon.proc.pid))
                    gc.freeze()
            sent_s = time.perf_counter() - t0
            await asyncio.gather(*in_flight)
        finally:
            gc.unfreeze()
        rss.append(rss_mib(daemon.proc.pid))
        events = await all_events(http, base)

    assert daemon.proc.poll() is None, daemon.logs()[-3000:]
    # The checks walk every answer and event (120,000 in the --long run): off the loop.
    await asyncio.to_thread(check_answers, answers, events, total)

    p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 99) * 1000
    reliability.row(
        test="load: presentations to the daemon over HTTPS",
        load=f"{RATE}/s ({GRANTS_PER_S}/s granted) for {seconds} s: {total} presentations"
        f" sent in {sent_s:.1f} s, one {BAUD}-baud bus, 3 doors",
        losses=f"0 of {total} answers, 0 of {len(events)} events, 0 seq gaps",
        p50_ms=round(p50, 1),
        p99_ms=round(p99, 1),
        rss_mib_start=round(rss[0], 1),
        rss_mib_max=round(max(rss), 1),
        events_logged=len(events),
    )
