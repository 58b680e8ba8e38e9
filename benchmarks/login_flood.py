"""Login flood benchmark: presentation latency over HTTP to the real daemon, with and
without a flood of bad logins (issue 9, finding 7).

Run: .venv/bin/python benchmarks/login_flood.py [--presentations 300] [--flood 200]
         [--addresses 200] [--pause 1.0] [--generator-nice 19] [--source DIR]
         [--json FILE] [--board peer|sim] [--tls]

``doorkeep run`` (a subprocess, production scrypt cost) serves the site of the REST
tests. Its relay board is by default an Ethernet one (``modbus-tcp-generic``): a plain
pymodbus TCP server in a process of its own, as a real board is its own device;
``--board sim`` puts it on the simulated RS485 bus inside the daemon instead, whose
pymodbus server then shares the daemon's event loop with the flood. ``--tls`` serves and
floods over HTTPS (a TLS handshake per bad login). Presentations (``POST /api/v1/presentations`` with an installer token, PIN
of tests/edge/web/sample.py, one keep-alive connection) are sent one after another at
~50/s from this process; p50/p99 of their round trip are taken alone, then while
``--flood`` concurrent clients each send a bad login every ``--pause`` s (a 200-request
burst a second by default; unknown users; ``--pause 0`` hammers without pause), each on
a new connection, from ``--addresses`` different loopback source addresses (127.0.0.x)
so the per-address limit does not stop them all at once.

The flood comes from a process of its own (this script with ``--generate``), a plain
asyncio HTTP/1.1 client far cheaper than aiohttp's, run at ``--generator-nice`` (19 by
default): on a gateway the attacker is another host, here it shares the two cores, and
at the lowest priority it takes what the daemon leaves. ``--generator-nice 0`` makes it
compete as an equal. ``--source DIR`` runs the daemon from another checkout (A/B runs);
``--json FILE`` writes every round trip (ms) of both phases, to pool several runs.

The last line is the summary: ``RESULT login-flood p99 … ms (target < 50 ms): met|NOT met``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.edge.web import sample  # noqa: E402 - after the path

PIN = {"reader": "gate-in", "kind": "pin", "value": "4711"}
TARGET_P99_MS = 50.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "edge.cli", *args]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(out.stdout + out.stderr)
    return out.stdout


_SIM_BOARD = re.compile(r"\[\[bus\]\].*?\n\n\[\[board\]\].*?\n\n", re.DOTALL)


def site_toml(port: int, *, board_port: int | None, tls: bool) -> str:
    """The sample site on ``port``; with ``board_port`` its relay board is an Ethernet one
    (``modbus-tcp-generic``) served by the peer process instead of the in-process
    simulated RS485 bus."""
    toml = sample.SITE_TOML.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    if tls:
        toml = toml.replace("tls = false", "tls = true")
    if board_port is not None:
        board = (
            f'[[board]]\nid = "{sample.BOARD}"\ntype = "modbus-tcp-generic"\n'
            f'host = "127.0.0.1"\nport = {board_port}\noptions = {{ relays = 8 }}\n\n'
        )
        toml, swapped = _SIM_BOARD.subn(board, toml)
        assert swapped == 1, "the sample site's bus and board were not found"
    return toml


@contextlib.contextmanager
def board_peer(args: argparse.Namespace) -> Any:
    """The relay board as its own process (``--board peer``): a plain pymodbus Modbus TCP
    server, as an Ethernet relay board is its own device; yields its port (None: sim)."""
    if args.board == "sim":
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-board", str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "serving":
        raise SystemExit("the board peer did not start")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


async def serve_board(port: int) -> None:
    """``--serve-board``: pymodbus' own server and datastore (tests/rs485/modbus_peer.py)."""
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusTcpServer

    from tests.rs485.modbus_peer import _device

    server = ModbusTcpServer([_device(1)], framer=FramerType.SOCKET, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    print("serving", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.shutdown()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def daemon(root: Path, source: Path, args: argparse.Namespace, board_port: int | None) -> Any:
    """``doorkeep run`` of ``source``'s code on the sample site: (url, token, pid)."""
    port = free_port()
    env = {**os.environ, "DOORKEEP_MDNS": "0", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(source)}
    toml = site_toml(port, board_port=board_port, tls=args.tls)
    (root / "site.toml").write_text(toml)
    (root / "policy.json").write_text(json.dumps(sample.POLICY))
    cfg = str(root / "site.toml")
    cli(env, "policy", "apply", str(root / "policy.json"), "-c", cfg)
    token = cli(env, "token", "create", "--role", "installer", "--name", "bench", "-c", cfg).strip()
    log = (root / "daemon.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "-c", cfg],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not re.search("serving https?://", (root / "daemon.log").read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "doorkeep run did not start:\n" + (root / "daemon.log").read_text()
                )
            time.sleep(0.05)
        yield f"{'https' if args.tls else 'http'}://127.0.0.1:{port}", token, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def presentations(url: str, token: str, n: int) -> list[float]:
    times: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(n):
            start = time.perf_counter()
            post = http.post(url + "/api/v1/presentations", json=PIN, ssl=False)
            async with post as resp:
                await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"presentation answered {resp.status}")
            times.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)
    return times


# -- the flood generator (its own process) ----------------------------------------------


async def generate(url: str, clients: int, addresses: int, pause: float) -> dict[str, int]:
    """Bad logins from ``clients`` loops until SIGTERM; the answers counted by status."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tls = None
    if parts.scheme == "https":  # a new TLS handshake per login, as a browser-less attacker
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    head = (
        f"POST /api/v1/auth/login HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n"
    )
    statuses: dict[str, int] = {}
    names = itertools.count()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def one(i: int) -> None:
        local = (f"127.0.0.{2 + i % addresses % 250}", 0)
        while not stop.is_set():
            body = json.dumps({"username": f"guess{next(names)}", "password": "not it at all"})
            try:
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=local, ssl=tls
                )
                writer.write(head.replace("{n}", str(len(body))).encode() + body.encode())
                status = (await reader.readline()).split(b" ")[1].decode()
                await reader.read()  # to the end: the server closes (Connection: close)
                writer.close()
            except (OSError, IndexError, ssl.SSLError):
                status = "error"
            statuses[status] = statuses.get(status, 0) + 1
            await asyncio.sleep(pause)

    print("flooding", flush=True)
    await asyncio.gather(*(one(i) for i in range(clients)))
    return statuses


@contextlib.contextmanager
def generator(url: str, args: argparse.Namespace) -> Any:
    """The flood in its own process at ``args.generator_nice``; yields its answer counts."""
    command = [
        sys.executable,
        __file__,
        "--generate",
        url,
        f"--flood={args.flood}",
        f"--addresses={args.addresses}",
        f"--pause={args.pause}",
        f"--generator-nice={args.generator_nice}",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "flooding":
        raise SystemExit("the flood generator did not start")
    counts: dict[str, int] = {}
    try:
        yield counts
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        counts.update(json.loads(out or "{}"))


# -- the run ----------------------------------------------------------------------------


def pct(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100)[int(q) - 1] if q < 100 else max(times)


def line(name: str, times: list[float]) -> str:
    return f"  {name:<12} p50 {statistics.median(times):6.1f} ms  p99 {pct(times, 99):6.1f} ms"


async def flood_phase(
    url: str, token: str, pid: int, args: argparse.Namespace
) -> tuple[list[float], dict[str, int], float]:
    with generator(url, args) as counts:
        await asyncio.sleep(1.0)  # let the flood fill the hash pool's queue
        start_cpu, start = cpu_seconds(pid), time.monotonic()
        loud = await presentations(url, token, args.presentations)
        cpu = (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)
    return loud, counts, cpu


async def main(args: argparse.Namespace) -> None:
    source = args.source
    with (
        tempfile.TemporaryDirectory() as tmp,
        board_peer(args) as board_port,
        daemon(Path(tmp), source, args, board_port) as (url, token, pid),
    ):
        await presentations(url, token, 20)  # warm up
        load_before = os.getloadavg()[0]
        quiet = await presentations(url, token, args.presentations)
        loud, counts, cpu = await flood_phase(url, token, pid, args)
        load_after = os.getloadavg()[0]
    p99 = pct(loud, 99)
    board = "a pymodbus TCP board in its own process" if args.board == "peer" else "sim bus"
    print(
        f"presentations over {'HTTPS' if args.tls else 'HTTP'} to doorkeep run ({source}), "
        f"relay board: {board}, n={args.presentations} each"
    )
    print(line("alone:", quiet))
    print(line("login flood:", loud))
    print(
        f"  flood: {args.flood} clients from {min(args.addresses, 250)} addresses, one bad "
        f"login each per {args.pause} s, generator at nice {args.generator_nice}; "
        f"answers {dict(sorted(counts.items()))}; daemon CPU {cpu * 100:.0f}% of a core"
    )
    if args.json:
        samples = json.dumps({"alone": quiet, "flood": loud})
        await asyncio.to_thread(Path(args.json).write_text, samples)
    verdict = "met" if p99 < TARGET_P99_MS else "NOT met"
    print(
        f"RESULT login-flood ({'https' if args.tls else 'http'}, board {args.board}) "
        f"p99 {p99:.1f} ms (target < {TARGET_P99_MS:.0f} ms): {verdict}; "
        f"alone p99 {pct(quiet, 99):.1f} ms; load average {load_before:.2f} -> {load_after:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presentations", type=int, default=300)
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--addresses", type=int, default=200)
    parser.add_argument("--pause", type=float, default=1.0, help="s between a client's logins")
    parser.add_argument(
        "--generator-nice", type=int, default=19, help="niceness of the flood process"
    )
    parser.add_argument("--source", help="checkout whose daemon runs (default: this one)")
    parser.add_argument("--json", help="write every round trip (ms) to this file")
    parser.add_argument(
        "--board",
        choices=("peer", "sim"),
        default="peer",
        help="the relay board: a pymodbus TCP server in its own process (default, as an "
        "Ethernet board), or the simulated RS485 bus inside the daemon",
    )
    parser.add_argument("--tls", action="store_true", help="serve (and flood) over HTTPS")
    parser.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--serve-board", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_board:
        asyncio.run(serve_board(parsed.serve_board))
    elif parsed.generate:
        os.nice(parsed.generator_nice)
        result = asyncio.run(
            generate(parsed.generate, parsed.flood, parsed.addresses, parsed.pause)
        )
        print(json.dumps(result))
    else:
        parsed.source = Path(parsed.source).resolve() if parsed.source else ROOT
        asyncio.run(main(parsed))
