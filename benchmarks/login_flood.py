"""Login flood benchmark: presentation latency over HTTP to the real daemon, with and
without a flood of bad logins (issue 9, finding 7).

Run: .venv/bin/python benchmarks/login_flood.py [--presentations 300] [--flood 200]
         [--addresses 200]

``doorkeep run`` (a subprocess, production scrypt cost) serves the simulated site of the
REST tests. Presentations (``POST /api/v1/presentations`` with an installer token, PIN
of tests/edge/web/sample.py) are sent one after another at ~50/s; p50/p99 of their round
trip are taken alone, then while ``--flood`` concurrent clients each send a bad login every
``--pause`` s (a 200-request burst a second by default; unknown users, so each costs two
scrypt runs; ``--pause 0`` hammers without pause), from ``--addresses`` different
loopback source addresses (127.0.0.x) so the per-address limit does not stop them all
at once. Target: p99 < 50 ms during the flood.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.edge.web import sample  # noqa: E402 - after the path

DOORKEEP = [sys.executable, "-m", "edge.cli"]
PIN = {"reader": "gate-in", "kind": "pin", "value": "4711"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([*DOORKEEP, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    return out.stdout


@contextlib.contextmanager
def daemon(root: Path) -> Any:
    port = free_port()
    env = {**os.environ, "DOORKEEP_MDNS": "0", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    toml = sample.SITE_TOML.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    (root / "site.toml").write_text(toml)
    (root / "policy.json").write_text(json.dumps(sample.POLICY))
    cfg = str(root / "site.toml")
    cli(env, "policy", "apply", str(root / "policy.json"), "-c", cfg)
    token = cli(env, "token", "create", "--role", "installer", "--name", "bench", "-c", cfg).strip()
    log = (root / "daemon.log").open("w+")
    proc = subprocess.Popen(
        [*DOORKEEP, "run", "-c", cfg], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        deadline = time.monotonic() + 60
        while not re.search("serving http://", (root / "daemon.log").read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "doorkeep run did not start:\n" + (root / "daemon.log").read_text()
                )
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


async def presentations(url: str, token: str, n: int) -> list[float]:
    times: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(n):
            start = time.perf_counter()
            async with http.post(url + "/api/v1/presentations", json=PIN) as resp:
                await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"presentation answered {resp.status}")
            times.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)
    return times


async def flood(
    url: str, clients: int, addresses: int, pause: float, stop: asyncio.Event
) -> dict[int, int]:
    statuses: dict[int, int] = {}
    names = itertools.count()

    async def one(i: int) -> None:
        local = (f"127.0.0.{2 + i % addresses % 250}", 0)
        conn = aiohttp.TCPConnector(local_addr=local, force_close=True)
        async with aiohttp.ClientSession(connector=conn) as http:
            while not stop.is_set():
                body = {"username": f"guess{next(names)}", "password": "not the password"}
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(url + "/api/v1/auth/login", json=body) as resp:
                        await resp.read()
                        statuses[resp.status] = statuses.get(resp.status, 0) + 1
                await asyncio.sleep(pause)

    await asyncio.gather(*(one(i) for i in range(clients)))
    return statuses


def pct(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100)[int(q) - 1] if q < 100 else max(times)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, daemon(Path(tmp)) as (url, token):
        await presentations(url, token, 20)  # warm up
        quiet = await presentations(url, token, args.presentations)
        stop = asyncio.Event()
        flooding = asyncio.create_task(flood(url, args.flood, args.addresses, args.pause, stop))
        await asyncio.sleep(1.0)  # let the flood fill the hash pool's queue
        loud = await presentations(url, token, args.presentations)
        stop.set()
        statuses = await flooding
    print(f"presentations over HTTP to doorkeep run, n={args.presentations} each")
    print(f"  alone:       p50 {statistics.median(quiet):6.1f} ms  p99 {pct(quiet, 99):6.1f} ms")
    print(f"  login flood: p50 {statistics.median(loud):6.1f} ms  p99 {pct(loud, 99):6.1f} ms")
    print(
        f"  flood: {args.flood} clients from {min(args.addresses, 250)} addresses, "
        f"one bad login each per {args.pause} s; answers {statuses}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presentations", type=int, default=300)
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--addresses", type=int, default=200)
    parser.add_argument("--pause", type=float, default=1.0, help="s between a client's logins")
    asyncio.run(main(parser.parse_args()))
