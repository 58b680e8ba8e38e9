"""A real Mosquitto broker for tests: a free loopback port, a temp config, stop and restart.

Tests that need a broker use the ``mosquitto`` fixture (see tests/edge/test_mqtt.py) or
``async with Mosquitto(tmp_dir) as broker``. ``stop()`` and ``start()`` keep the port, so a
client that reconnects by itself finds the broker again; with ``persistence=True`` retained
messages and persistent sessions survive the restart, as on a real installation.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

MOSQUITTO = "/usr/sbin/mosquitto"
START_TIMEOUT_S = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One broker process on ``127.0.0.1:port``; anonymous clients allowed."""

    def __init__(self, directory: Path, *, persistence: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        self.host = "127.0.0.1"
        self.url = f"mqtt://{self.host}:{self.port}"
        self.log = directory / "mosquitto.log"
        self.conf = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # started as root, mosquitto would drop to user "mosquitto", which cannot
            # write its log and persistence file into our private temp directory
            f"user {getpass.getuser()}",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {directory}/"]
        self.conf.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        if self._proc is not None:
            raise RuntimeError("the broker is already running")
        # Popen waits for the child to exec: on a loaded machine that is long enough to
        # block the loop (the suite's loop guard), so it runs in a thread
        self._proc = await asyncio.to_thread(
            subprocess.Popen,
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                self._proc = None
                raise RuntimeError(f"mosquitto exited at start: {err}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if loop.time() > deadline:
                    await self.stop()
                    raise RuntimeError("mosquitto did not accept connections in time") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        """Terminate the broker (SIGTERM: it saves its persistence file) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
        if proc.stderr is not None:
            proc.stderr.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
