"""The systemd watchdog: pinged while the site works, withheld when it does not.

A real site over the pty-simulated bus, `doorkeep run`'s own watchdog task, and a unix
datagram socket standing in for systemd's NOTIFY_SOCKET. A bus owner is made to hang by
holding its transaction (fault injection on our own Bus). A stuck event loop needs no
test of its own: the ping is sent from the loop, so a loop that does not run sends none.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge import daemon
from edge.service import Site


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
