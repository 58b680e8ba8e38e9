"""DNS rebinding (issue 9, finding 12): a page on another name that resolves to the
gateway sends that name as Host and a matching Origin. The Origin check alone compared
the two and let it through; the Host must be one of the gateway's own names."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.auth import AuthStore
from edge.config import SiteConfigError, parse_site_config
from edge.loginlimit import LoginLimiter
from edge.service import Site
from edge.web.app import make_app
from tests.edge.sites import open_site
from tests.edge.web import sample
from tests.edge.web.conftest import PASSWORD, Api, Clock

EVIL = "rebind.attacker.example:8080"


async def forged(api: Api, method: str, path: str, host: str, **kw: Any) -> Any:
    headers = {"Host": host, "Origin": f"http://{host}", **kw.pop("headers", {})}
    return await api.client.request(method, path, headers=headers, **kw)


async def test_a_forged_host_with_a_matching_origin_cannot_log_in(api: Api) -> None:
    resp = await forged(
        api, "POST", "/api/v1/auth/login", EVIL, json={"username": "alice", "password": PASSWORD}
    )
    body = await resp.json()
    assert resp.status == 421, body
    assert body["error"]["code"] == "wrong_host"
    assert "rebind.attacker.example" in body["error"]["message"]
    assert "[web] allowed_hosts" in body["error"]["message"]
    assert "Set-Cookie" not in resp.headers
    audit, _ = await api.site.audit_log()
    assert [a for a in audit if a["action"] == "auth.login"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/auth/setup"),
        ("POST", "/api/v1/auth/setup"),
        ("GET", "/api/v1/health"),
        ("GET", "/"),
        ("GET", "/static/app.js"),
    ],
)
async def test_a_forged_host_gets_nothing_not_even_the_ui(api: Api, method: str, path: str) -> None:
    resp = await forged(
        api, method, path, EVIL, json={"code": "X", "username": "x", "password": "p" * 12}
    )
    assert resp.status == 421
    assert (await resp.json())["error"]["code"] == "wrong_host"


async def test_a_forged_host_is_refused_even_with_a_valid_token(api: Api) -> None:
    resp = await forged(api, "GET", "/api/v1/doors", EVIL, headers=api.token("admin"))
    assert resp.status == 421


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8080",
        "localhost:8080",
        "LocalHost",
        "[::1]:8080",
        "192.168.1.20:8080",  # an address typed in the browser cannot be rebound
        "[fe80::1]",
        socket.gethostname(),
        socket.gethostname() + ".local:8080",
        f"doorkeep-{sample.SITE_ID}.local:8443",  # the TLS certificate's name
        f"{sample.SITE_ID}.local",
    ],
)
async def test_the_gateways_own_names_and_addresses_are_accepted(api: Api, host: str) -> None:
    resp = await forged(
        api, "POST", "/api/v1/auth/login", host, json={"username": "alice", "password": PASSWORD}
    )
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def named_site(tmp_path: Path) -> AsyncIterator[Site]:
    toml = sample.SITE_TOML.replace(
        'listen = "127.0.0.1:8080"',
        'listen = "0.0.0.0:8080"\nallowed_hosts = ["doors.example.org", "Gate.Example.ORG"]',
    )
    async with open_site(tmp_path / "site", toml, sample.POLICY) as site:
        yield site


async def test_allowed_hosts_of_site_toml_are_accepted_and_nothing_else(
    named_site: Site, clock: Clock
) -> None:
    auth = AuthStore.open(":memory:", clock=clock)
    auth.create_user("alice", PASSWORD, "admin")
    app = make_app(named_site, auth, tls=False, limiter=LoginLimiter(clock))
    async with TestClient(TestServer(app)) as client:
        api = Api(client, auth, named_site)
        for host, status in [
            ("doors.example.org", 200),
            ("gate.example.org:8080", 200),
            ("doors.example.org.evil.example", 421),
            ("evil.example", 421),
            ("0.0.0.0:8080", 200),
        ]:
            resp = await forged(
                api,
                "POST",
                "/api/v1/auth/login",
                host,
                json={"username": "alice", "password": PASSWORD},
            )
            assert resp.status == status, (host, await resp.text())
    auth.close()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('["http://doors.example.org"]', "host name"),
        ('["doors.example.org:8080"]', "host name"),
        ('["a b"]', "host name"),
        ('[""]', "host name"),
        ("[1]", "host name"),
        ('"doors.example.org"', "a list"),
    ],
)
def test_allowed_hosts_are_validated(tmp_path: Path, value: str, words: str) -> None:
    toml = sample.SITE_TOML.replace(
        'listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:8080"\nallowed_hosts = {value}'
    )
    with pytest.raises(SiteConfigError) as info:
        parse_site_config(toml, tmp_path / "site.toml")
    message = str(info.value)
    assert "[web]" in message
    assert "allowed_hosts" in message
    assert words in message


def test_allowed_hosts_reach_the_config(tmp_path: Path) -> None:
    toml = sample.SITE_TOML.replace(
        'listen = "127.0.0.1:8080"',
        'listen = "127.0.0.1:8080"\nallowed_hosts = ["Doors.example.org"]',
    )
    config = parse_site_config(toml, tmp_path / "site.toml")
    assert config.web.allowed_hosts == ("doors.example.org",)
