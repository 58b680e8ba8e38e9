"""``doorkeep run`` as its own process for tests that kill and restart it (crash safety,
the cloud partition, enrollment): async start/kill/stop, logging to a file in the site's
directory (not a pipe nobody reads: a full pipe would stall the daemon's logging).
The browser tests' daemon is ``tests/e2e/conftest.py: Daemon``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


class RunningDaemon:
    """``doorkeep run -c SITE_DIR/site.toml`` answering on 127.0.0.1:``port`` over HTTP."""

    def __init__(self, site_dir: Path, port: int) -> None:
        self.site_dir, self.port = site_dir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = site_dir / "daemon.log"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    async def start(self) -> None:
        """Start the daemon and wait (up to 15 s) until its /health answers 200."""
        log = self.log.open("ab")
        self.proc = await asyncio.to_thread(  # off the loop, as are the waits below
            subprocess.Popen,
            [sys.executable, "-m", "edge.cli", "run", "-c", str(self.site_dir / "site.toml")],
            cwd=ROOT,
            env={**os.environ, "DOORKEEP_MDNS": "0"},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()  # the child has its own copy
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{self.port}/api/v1/health") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"the daemon did not start:\n{self.tail()}")

    async def kill(self) -> None:
        """SIGKILL: the process dies wherever it is."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)

    async def stop(self) -> None:
        """SIGTERM, as systemd stops it; a daemon that ignores it for 15 s fails the test."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
                raise AssertionError(
                    f"the daemon ignored SIGTERM for 15 s:\n{self.tail()}"
                ) from None
