"""The systemd watchdog: pinged while the site works, withheld when it does not.

A real site over the pty-simulated bus, `doorkeep run`'s own watchdog task, and a unix
datagram socket standing in for systemd's NOTIFY_SOCKET. A bus owner is made to hang by
holding its transaction (fault injection on our own Bus); the event loop, by stalling it;
a reader driver, by failing it; an OSDP panel, by holding libosdp's status call.
`doorkeep run` as a process tells systemd READY=1 once it serves and STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge import daemon
from edge.readers import Feedback, Readers
from edge.readers.osdp_bus import OsdpBus
from edge.service import Site
from tests.edge.readers.osdp_pd import pty_pair
from tests.edge.readers.test_osdp import site_toml as osdp_site_toml
from tests.edge.sites import open_site, until
from tests.edge.web import sample


class Systemd:
    """The receiving end of NOTIFY_SOCKET: when each WATCHDOG=1 arrived."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.pings: list[float] = []

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 256)
            if data == b"WATCHDOG=1":
                self.pings.append(time.monotonic())

    def since(self, moment: float) -> int:
        return sum(1 for t in self.pings if t >= moment)


@pytest.fixture
async def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Systemd]:
    path = tmp_path / "notify"
    listener = Systemd(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setattr(daemon, "WATCHDOG_S", 0.05)
    monkeypatch.setattr(daemon, "BUS_STALL_S", 0.3)
    task = asyncio.create_task(listener.pump())
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.sock.close()


async def test_a_stuck_bus_owner_stops_the_pings_until_it_works_again(
    site: Site, systemd: Systemd, caplog: pytest.LogCaptureFixture
) -> None:
    bus = site.hw.buses["rs485-1"]
    release = asyncio.Event()
    real = bus._transact

    async def hung(tx):  # the owner never comes back from this transaction
        await release.wait()
        return await real(tx)

    watchdog = asyncio.create_task(daemon._watchdog(site))
    try:
        await asyncio.sleep(0.3)
        assert systemd.since(0) >= 3  # a working site is pinged
        bus._transact = hung  # type: ignore[method-assign]
        relay = asyncio.create_task(site.relay_test("doors", 1, ms=100, actor="test"))
        await asyncio.sleep(daemon.BUS_STALL_S + 0.1)
        stalled_at = time.monotonic()
        await asyncio.sleep(0.5)
        assert systemd.since(stalled_at) == 0  # systemd will restart it
        release.set()
        bus._transact = real  # type: ignore[method-assign]
        await relay
        recovered = time.monotonic()
        await asyncio.sleep(0.3)
        assert systemd.since(recovered) >= 3
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.daemon"]
    assert sum("not pinging systemd" in line for line in lines) == 1  # once, not per tick
    assert any("rs485-1" in line for line in lines)
    assert sum("work again" in line for line in lines) == 1


@pytest.mark.blocking_ok("the test stalls the event loop on purpose: a stuck loop must not ping")
async def test_a_stuck_event_loop_sends_no_ping(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setattr(daemon, "WATCHDOG_S", 0.05)

        def drain() -> list[bytes]:
            got = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    got.append(sock.recv(256))
            return got

        watchdog = asyncio.create_task(daemon._watchdog(site))
        try:
            await asyncio.sleep(0.3)
            assert drain().count(b"WATCHDOG=1") >= 3  # a running loop pings
            time.sleep(0.5)  # the loop is stuck: ten intervals pass with nothing run
            assert drain() == []  # so systemd (WatchdogSec=) restarts it
            await asyncio.sleep(0.3)
            assert drain().count(b"WATCHDOG=1") >= 3
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog


def test_doorkeep_run_says_ready_pings_and_says_stopping_on_sigterm(tmp_path: Path) -> None:
    doorkeep = [sys.executable, "-m", "edge.cli"]
    made = subprocess.run(
        [*doorkeep, "init", str(tmp_path / "s"), "--site-id", "s1", "--simulation"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    toml = tmp_path / "s" / "site.toml"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    toml.write_text(re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:{port}"', toml.read_text()))
    notify = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(60)
        proc = subprocess.Popen(
            [*doorkeep, "run", "-c", str(toml)],
            env={**os.environ, "NOTIFY_SOCKET": str(notify)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            said: list[bytes] = []
            while not {b"READY=1", b"WATCHDOG=1"} <= set(said):
                said.append(sock.recv(256))
            assert said[0] == b"READY=1"  # nothing before it: systemd starts After= units then
            proc.send_signal(signal.SIGTERM)
            while said[-1] != b"STOPPING=1":
                said.append(sock.recv(256))
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err


class Failing:
    """A reader driver of our own interface whose run fails once it has started."""

    def __init__(self) -> None:
        self.fail = asyncio.Event()

    async def run(self, hub: Readers) -> None:
        await self.fail.wait()
        raise RuntimeError("the reader's port vanished in a way nobody handled")

    async def feedback(self, reader_id: str, signal: Feedback) -> None:
        pass


async def test_a_failed_reader_driver_stops_the_pings_and_shows_in_health(
    tmp_path: Path, systemd: Systemd, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_site(tmp_path, sample.SITE_TOML, sample.POLICY) as site:
        driver = Failing()
        site.readers.attach(driver, ["gate-in"])
        readers = asyncio.create_task(site.readers.run())
        watchdog = asyncio.create_task(daemon._watchdog(site))
        try:
            await asyncio.sleep(0.3)
            assert systemd.since(0) >= 3
            driver.fail.set()
            await readers  # the hub logs the failure and keeps the other drivers
            failed_at = time.monotonic()
            await asyncio.sleep(0.5)
            assert systemd.since(failed_at) == 0  # a restart starts the driver again
            health = site.status.health()
            assert "reader gate-in" in health["degraded"]
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.daemon"]
    assert sum("not pinging systemd" in line for line in lines) == 1
    assert any("reader driver Failing" in line for line in lines)


async def test_a_stuck_osdp_panel_stops_the_pings_until_it_answers_again(
    tmp_path: Path, systemd: Systemd, caplog: pytest.LogCaptureFixture
) -> None:
    with pty_pair(tmp_path) as (port, _peer):
        async with open_site(tmp_path / "site", osdp_site_toml(port), sample.POLICY) as site:
            bus = next(d for d in site.readers._all if isinstance(d, OsdpBus))
            await until(lambda: bus._cp is not None and bus._looked is not None, timeout=10)
            cp = bus._cp
            assert cp is not None
            release = threading.Event()
            real = cp.status

            def hung() -> int:  # libosdp's status call never returns (fault injection)
                release.wait()
                return int(real())

            watchdog = asyncio.create_task(daemon._watchdog(site))
            try:
                await asyncio.sleep(0.3)
                assert systemd.since(0) >= 3
                cp.status = hung
                await asyncio.sleep(daemon.BUS_STALL_S + 0.2)
                stalled_at = time.monotonic()
                await asyncio.sleep(0.5)
                assert systemd.since(stalled_at) == 0
                cp.status = real
                release.set()
                await until(lambda: bus.stalled(daemon.BUS_STALL_S) is None, timeout=5)
                recovered = time.monotonic()
                await asyncio.sleep(0.3)
                assert systemd.since(recovered) >= 3
            finally:
                release.set()
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.daemon"]
    assert sum("not pinging systemd" in line for line in lines) == 1
    assert any("OSDP bus osdp-1" in line for line in lines)
    assert sum("work again" in line for line in lines) == 1
