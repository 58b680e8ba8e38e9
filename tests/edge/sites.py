"""Real sites for tests: site.toml in a folder, SQLite in its data folder, simulated boards.

`open_site` is what the fixtures use on the test's own event loop; `SiteThread` runs one on
an event loop in a thread, for servers that blocking clients call (schemathesis, Chromium).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from edge.service import Site

T = TypeVar("T")


@contextlib.asynccontextmanager
async def open_site(
    directory: Path, site_toml: str, policy: Mapping[str, Any] | None = None
) -> AsyncIterator[Site]:
    """Write ``site_toml`` into ``directory``, open the site there, apply ``policy``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.toml").write_text(site_toml)
    async with Site.open(directory / "site.toml") as site:
        if policy is not None:
            await site.apply_policy(copy.deepcopy(dict(policy)), actor="test")
        yield site


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds (polling the simulator's state)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class SiteThread:
    """A real site running on its own event loop in a daemon thread."""

    def __init__(
        self, directory: Path, site_toml: str, policy: Mapping[str, Any] | None = None
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="site", daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()
        self.site: Site = self.run(
            self._stack.enter_async_context(open_site(directory, site_toml, policy))
        )

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the site's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a plain function on the site's loop (the site is not thread-safe)."""

        async def wrapped() -> T:
            return fn(*args)

        return self.run(wrapped())

    def close(self) -> None:
        """Close the site, then stop the loop and its thread."""
        self.run(self._stack.aclose())
        # the loop's executor threads (the site and auth use to_thread) end here, not at exit
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
