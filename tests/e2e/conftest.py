"""Browser test fixtures: a TLS gateway in a background thread and headless Chromium.

The gateway serves the real web app (edge.web.app.make_app) over TLS with the site's
self-signed certificate; behind it sits the in-memory site facade of the web tests
until the browser tests move onto the real daemon. Chromium is Debian's
/usr/bin/chromium driven by Playwright, with a fresh profile per test.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import BrowserContext, Page, sync_playwright

from edge.auth import AuthStore
from edge.tls import ensure_certificate, server_context
from edge.web.app import make_app
from tests.edge.web.fake_site import FakeSite

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ADMIN = ("admin", "correct horse battery staple")


class Gateway:
    """One site gateway on a free loopback port, its event loop in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.site = FakeSite(pulse_s=2.0)
        self.auth = AuthStore.open(data_dir / "auth.db")
        self.setup_code = self.auth.new_setup_code()
        cert, key = ensure_certificate(data_dir, site_id=self.site.site_id)
        self._ssl = server_context(cert, key)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self.port = self.run(self._start())
        self.url = f"https://127.0.0.1:{self.port}"
        self._client_ssl = ssl.create_default_context()
        self._client_ssl.check_hostname = False
        self._client_ssl.verify_mode = ssl.CERT_NONE
        self.token: str | None = None

    async def _start(self) -> int:
        app = make_app(self.site, self.auth, tls=True)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        tcp = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await tcp.start()
        return int(self._runner.addresses[0][1])

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a plain function of the site on the gateway's loop."""

        async def wrapped() -> Any:
            return fn(*args)

        return self.run(wrapped())

    def make_admin(self) -> None:
        """Finish onboarding without the browser (for tests that start logged out)."""
        self.auth.complete_setup(self.setup_code, *ADMIN)
        self.token = self.auth.create_token("admin", "e2e")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A REST call with the admin token, as another client of the same site."""
        assert self.token, "call make_admin() first"
        req = urllib.request.Request(
            f"{self.url}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self._client_ssl, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def close(self) -> None:
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
        self.auth.close()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path / "data")
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser(playwright_driver: Any, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh Chromium profile (user-data-dir) per test; downloads allowed."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        ignore_https_errors=True,
        accept_downloads=True,
        viewport={"width": 1280, "height": 860},
    )
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Page:
    page = browser.pages[0] if browser.pages else browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def login(page: Page, gateway: Gateway) -> None:
    """Log in through the UI as the admin."""
    page.goto(gateway.url + "/")
    page.get_by_label("User name").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def shot(page: Page, name: str) -> None:
    """Save a screenshot of the current page into docs/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('toast').hidden = true")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
