"""Fixtures for the REST API tests: the app over a real site (SQLite, simulated RS485 bus)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import edge.auth as auth_mod
import rs485.bus
from edge.auth import AuthStore
from edge.loginlimit import LoginLimiter
from edge.service import Site
from edge.web.app import make_app
from tests.edge.sites import open_site
from tests.edge.web import sample

PASSWORD = "correct horse battery staple"


class Clock:
    """A settable clock for sessions and the login limiter."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    # The production cost (2**14) is measured in docs/security.md; tests need speed only.
    monkeypatch.setattr(auth_mod, "SCRYPT_N", 2**8)


@pytest.fixture(autouse=True)
def short_bus_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # A scan waits 50 ms at each of 247 addresses (12 s); the site's board is at address 1.
    monkeypatch.setattr(rs485.bus, "SCAN_ADDRESSES", range(1, 5))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with open_site(tmp_path / "site", sample.SITE_TOML, sample.POLICY) as running:
        # Alarm 1: an open alarm for the alarm endpoints to list and resolve.
        await running.log.raise_alarm("held_open", source="lobby", door="lobby")
        yield running


@pytest.fixture
def auth(clock: Clock) -> Iterator[AuthStore]:
    store = AuthStore.open(":memory:", clock=clock)
    yield store
    store.close()


class Api:
    """A test client with helpers: tokens per role, a logged-in cookie session."""

    def __init__(
        self, client: TestClient[web.Request, web.Application], auth: AuthStore, site: Site
    ) -> None:
        self.client = client
        self.auth = auth
        self.site = site
        self.tokens: dict[str, str] = {}
        self.csrf: str | None = None

    def token(self, role: str) -> dict[str, str]:
        if role not in self.tokens:
            self.tokens[role] = self.auth.create_token(role, f"t-{role}")
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def login(self, username: str = "alice", password: str = PASSWORD) -> Any:
        resp = await self.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        body = await resp.json()
        if resp.status == 200:
            self.csrf = body["csrf_token"]
        return resp

    def csrf_headers(self) -> dict[str, str]:
        assert self.csrf
        return {"X-CSRF-Token": self.csrf}


async def _api(site: Site, auth: AuthStore, clock: Clock, *, tls: bool) -> AsyncIterator[Api]:
    auth.create_user("alice", PASSWORD, "admin")
    app = make_app(site, auth, tls=tls, limiter=LoginLimiter(clock))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, auth, site)


@pytest.fixture
async def api(site: Site, auth: AuthStore, clock: Clock) -> AsyncIterator[Api]:
    async for a in _api(site, auth, clock, tls=False):
        yield a


@pytest.fixture
async def tls_api(site: Site, auth: AuthStore, clock: Clock) -> AsyncIterator[Api]:
    """The app as configured for TLS (cookie flags); the test client still speaks HTTP."""
    async for a in _api(site, auth, clock, tls=True):
        yield a
