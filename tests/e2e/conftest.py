"""Browser test fixtures: the real daemon on a simulated site, and headless Chromium.

`daemon` is ``doorkeep init`` + ``doorkeep policy apply`` + ``doorkeep run`` as
subprocesses: a simulated RS485 bus (pymodbus on a pseudo-terminal) with one relay
board, three doors and their readers, served over TLS with the site's self-signed
certificate on a free loopback port. `gateway` is the web app over a real site opened
in-process (tests/edge/web/sample.py), for the one UI state the daemon cannot reach
without a cloud (a cloud-owned policy). Chromium is Debian's /usr/bin/chromium driven
by Playwright, with a fresh profile (user-data-dir) per test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import BrowserContext, Page, sync_playwright

from edge.auth import AuthStore
from edge.config import default_site_dict, write_site_toml
from edge.tls import ensure_certificate, server_context
from edge.web.app import make_app
from tests.edge.sites import SiteThread
from tests.edge.web import sample
from tests.edge.web.sample import sample_policy

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
# The docs' screenshots are refreshed only when asked (DOORKEEP_SCREENSHOTS=docs), so a
# test run never changes tracked files; otherwise they land in a scratch folder.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("DOORKEEP_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "doorkeep-screenshots"
)
ADMIN = ("admin", "correct horse battery staple")


class Gateway:
    """One site gateway on a free loopback port, its event loop in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self._site_thread = SiteThread(data_dir / "site", sample.SITE_TOML, sample.POLICY)
        self.site = self._site_thread.site
        self.auth = AuthStore.open(data_dir / "auth.db")
        self.setup_code = self.auth.new_setup_code()
        cert, key = ensure_certificate(data_dir, hostname="doorkeep-demo.local")
        self._ssl = server_context(cert, key)
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
        return self._site_thread.run(coro)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call a plain function of the site on the gateway's loop."""
        return self._site_thread.call(fn, *args)

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
        self._site_thread.close()
        self.auth.close()


DOORKEEP = [sys.executable, "-m", "edge.cli"]
DAEMON_START_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _site_toml(port: int) -> dict[str, Any]:

    cfg = default_site_dict("demo", "Europe/Berlin", simulation=True)
    cfg["site"]["name"] = "Demo community"
    cfg["web"] = {"listen": f"127.0.0.1:{port}", "tls": True}
    gate = cfg["door"][0]
    cfg["door"] += [
        {**gate, "id": "lobby", "name": "Lobby", "relay": "relays-a:2",
         "contact": "relays-a:in3", "exit_button": "relays-a:in4"},
        {**gate, "id": "plant", "name": "Plant room", "relay": "relays-a:3",
         "contact": "relays-a:in5", "exit_button": "relays-a:in6"},
    ]  # fmt: skip
    cfg["reader"] += [
        {"id": "lobby-in", "door": "lobby", "type": "sim", "direction": "in"},
        {"id": "plant-in", "door": "plant", "type": "sim", "direction": "in"},
    ]
    return cfg


class Daemon:
    """``doorkeep run`` on a simulated site; the same helpers as `Gateway`."""

    def __init__(self, root: Path, template: Path) -> None:
        self.root = root
        self.env = {**os.environ, "DOORKEEP_MDNS": "0", "PYTHONUNBUFFERED": "1"}
        shutil.copytree(template, root)  # init + policy apply once per session
        self.port = _free_port()
        self.config = root / "site.toml"
        cfg = tomllib.loads(self.config.read_text())
        cfg["web"]["listen"] = f"127.0.0.1:{self.port}"
        write_site_toml(self.config, cfg)
        self.log = (root / "daemon.log").open("w+")
        self.proc = subprocess.Popen(
            [*DOORKEEP, "run", "-c", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=root,
        )
        self.setup_code = self._wait_for(r"setup code: (\S+)")
        self.url = f"https://127.0.0.1:{self.port}"
        self._client_ssl = ssl.create_default_context()
        self._client_ssl.check_hostname = False
        self._client_ssl.verify_mode = ssl.CERT_NONE
        self.token: str | None = None

    @staticmethod
    def template(root: Path) -> Path:
        """``doorkeep init`` and ``doorkeep policy apply``: the site every test copies."""
        env = {**os.environ, "DOORKEEP_MDNS": "0"}
        _cli(env, "init", str(root), "--site-id", "demo", "--simulation", "--tls")
        write_site_toml(root / "site.toml", _site_toml(_free_port()))
        policy = root / "policy.json"
        policy.write_text(json.dumps(sample_policy()))
        _cli(env, "policy", "apply", str(policy), "-c", str(root / "site.toml"))
        return root

    def cli(self, *args: str) -> str:
        return _cli(self.env, *args)

    def _wait_for(self, pattern: str) -> str:
        deadline = time.monotonic() + DAEMON_START_S
        while time.monotonic() < deadline:
            self.log.seek(0)
            text = self.log.read()
            if (m := re.search(pattern, text)) and "serving https://" in text:
                return m.group(1)
            assert self.proc.poll() is None, f"doorkeep run exited:\n{text}"
            time.sleep(0.05)
        raise AssertionError(f"doorkeep run did not start:\n{text}")

    def make_admin(self) -> None:
        """Finish onboarding over the REST API, then make an admin API token with the
        session (cookie + CSRF token), as the settings page does."""
        body = {"code": self.setup_code, "username": ADMIN[0], "password": ADMIN[1]}
        me, cookie = self.request("POST", "/auth/setup", body, want_cookie=True)
        headers = {"Cookie": cookie, "X-CSRF-Token": me["csrf_token"]}
        made = self.request("POST", "/tokens", {"name": "e2e", "role": "admin"}, headers=headers)
        self.token = made["token"]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        want_cookie: bool = False,
    ) -> Any:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(
            f"{self.url}/api/v1{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        with urllib.request.urlopen(req, context=self._client_ssl, timeout=10) as resp:
            raw = resp.read()
            cookie = resp.headers.get("Set-Cookie", "").split(";")[0]
        data = json.loads(raw) if raw else None
        return (data, cookie) if want_cookie else data

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A REST call with the admin token, as another client of the same site."""
        assert self.token, "call make_admin() first"
        return self.request(method, path, body, self.token)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()

    def logs(self) -> str:
        return (self.root / "daemon.log").read_text()


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([*DOORKEEP, *args], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def site_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Daemon.template(tmp_path_factory.mktemp("template") / "site")


@pytest.fixture
def daemon(tmp_path: Path, site_template: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "site", site_template)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(tmp_path / "data")
    try:
        yield gw
    finally:
        gw.close()


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    # Module scope: the sync driver's own event loop is gone before other modules'
    # asyncio tests run.
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


def login(page: Page, gateway: Gateway | Daemon) -> None:
    """Log in through the UI as the admin."""
    page.goto(gateway.url + "/")
    page.get_by_label("User name").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def shot(page: Page, name: str) -> None:
    """Save a screenshot of the current page (docs/screenshots/ with DOORKEEP_SCREENSHOTS=docs)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('toast').hidden = true")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
