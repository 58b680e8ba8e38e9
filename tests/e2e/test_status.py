"""``doorkeep status`` against a running ``doorkeep run`` (TLS, the site's certificate pinned).

The site gets one Ethernet relay board served by the simulator in this process, so the
test can silence it (``SimBoard.offline``) while the daemon runs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import write_site_toml
from rs485.sim import SimulatedTcpServer
from tests.e2e.conftest import DOORKEEP, Daemon

WAIT_S = 20.0


class TcpBoards:
    """A simulated Modbus TCP board on an event loop in a thread of the test process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sim-tcp")
        self._thread.start()
        self.server = SimulatedTcpServer({1: "modbus-tcp-relay-8"}, framing="mbap")
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(10)

    def set_offline(self, offline: bool) -> None:
        def flip() -> None:
            self.server.board(1).offline = offline

        self.loop.call_soon_threadsafe(flip)

    def close(self) -> None:
        done = asyncio.run_coroutine_threadsafe(self.server.__aexit__(None, None, None), self.loop)
        done.result(10)
        asyncio.run_coroutine_threadsafe(self.loop.shutdown_default_executor(), self.loop).result(
            10
        )
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def tcp_boards() -> Iterator[TcpBoards]:
    boards = TcpBoards()
    try:
        yield boards
    finally:
        boards.close()


@pytest.fixture
def eth_daemon(tmp_path: Path, site_template: Path, tcp_boards: TcpBoards) -> Iterator[Daemon]:
    template = tmp_path / "template"
    shutil.copytree(site_template, template)
    cfg = tomllib.loads((template / "site.toml").read_text())
    server = tcp_boards.server
    cfg["board"].append(
        {"id": "eth", "type": "modbus-tcp-relay-8", "host": server.host, "port": server.port}
    )
    gate = cfg["door"][0]
    cfg["door"].append(
        {**gate, "id": "garage", "name": "Garage", "relay": "eth:1", "contact": "eth:in1"}
    )
    cfg["door"][-1].pop("exit_button", None)
    write_site_toml(template / "site.toml", cfg)
    d = Daemon(tmp_path / "site", template)
    try:
        yield d
    finally:
        d.close()


def status(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DOORKEEP, "status", "-c", str(daemon.config), *args],
        capture_output=True,
        text=True,
        env=daemon.env,
        check=False,
        timeout=30,
    )


def status_until(daemon: Daemon, code: int) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + WAIT_S
    while True:
        out = status(daemon)
        if out.returncode == code or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_status_names_every_component_and_fails_when_a_board_or_the_daemon_is_gone(
    eth_daemon: Daemon, tcp_boards: TcpBoards
) -> None:
    out = status_until(eth_daemon, 0)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("site demo: ok")
    for name in ("storage", "bus ", "board relays-a", "board eth", "reader gate-in", "clock"):
        assert name in out.stdout, out.stdout
    assert "FAIL" not in out.stdout
    as_json = json.loads(status(eth_daemon, "--json").stdout)
    assert as_json["status"] == "ok"
    assert {"name": "board eth", "ok": True, "reason": ""} in as_json["components"]

    tcp_boards.set_offline(True)
    out = status_until(eth_daemon, 1)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.startswith("site demo: degraded")
    failing = [line for line in out.stdout.splitlines() if "FAIL" in line]
    assert len(failing) == 1, out.stdout
    assert "board eth: not answering" in failing[0]
    assert f"{tcp_boards.server.host}:{tcp_boards.server.port}" in failing[0]

    tcp_boards.set_offline(False)
    assert status_until(eth_daemon, 0).returncode == 0

    eth_daemon.close()
    out = status(eth_daemon)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert "does not answer at https://127.0.0.1:" in out.stderr
