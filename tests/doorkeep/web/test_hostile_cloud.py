"""Hostile input to the cloud API, which shares the web toolkit with the edge (issue 9,
finding 10): deep JSON and huge cursors are clear 400s with no traceback, on the real
service over SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from tests.cloud_sync.conftest import Server, keys, server, store  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

NESTED = b"[" * 50_000 + b"]" * 50_000


@pytest.fixture
async def http(server: Server) -> AsyncIterator[aiohttp.ClientSession]:  # noqa: F811
    token = await server.store.create_admin_token("hostile")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        yield session


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [
        r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR
    ] == []


async def answer(resp: aiohttp.ClientResponse) -> tuple[int, Any]:
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/enroll"),  # no login needed
        ("POST", "/sites"),
        ("PUT", "/sites/s1/policy"),
        ("POST", "/sites/s1/people"),
        ("PUT", "/sites/s1/people/p1"),
    ],
)
async def test_deeply_nested_json_is_a_clear_400(
    server: Server,  # noqa: F811
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with http.post(server.url + "/api/v1/sites", json={"id": "s1"}) as made:
        assert made.status == 201
    url = server.url + "/api/v1" + path
    headers = {"Content-Type": "application/json"}
    async with http.request(method, url, data=NESTED, headers=headers) as resp:
        status, body = await answer(resp)
    assert status == 400, body
    assert body["error"]["code"] == "bad_json"
    assert "nested deeper" in body["error"]["message"]
    no_traceback(caplog)


@pytest.mark.parametrize(("at", "seq"), [(1, 10**30), (1, 2**63), (1, -(10**30)), (10**400, 1)])
async def test_an_event_cursor_with_a_huge_number_is_a_clear_400(
    server: Server,  # noqa: F811
    http: aiohttp.ClientSession,
    at: int,
    seq: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with http.post(server.url + "/api/v1/sites", json={"id": "s1"}) as made:
        assert made.status == 201
    cursor = base64.urlsafe_b64encode(json.dumps([at, "e", seq]).encode()).decode()
    url = server.url + "/api/v1/sites/s1/events"
    async with http.get(url, params={"cursor": cursor}) as resp:
        status, body = await answer(resp)
    assert status == 400, body
    assert body["error"]["field"] == "cursor"
    assert "cursor" in body["error"]["message"]
    no_traceback(caplog)


@pytest.mark.parametrize(
    "path",
    [
        "/sites?colour=red",
        "/sites/s1/events?apartment=A1",  # a filter the cloud does not have is not ignored
        "/sites/s1/alarms?open=1",
        "/sites/s1/people?colour=red",
        "/sites/s1/events?limit=5&limit=6",  # given twice
    ],
)
async def test_an_unknown_or_repeated_query_parameter_is_a_400(
    server: Server,  # noqa: F811
    http: aiohttp.ClientSession,
    path: str,
) -> None:
    async with http.post(server.url + "/api/v1/sites", json={"id": "s1"}) as made:
        assert made.status == 201
    async with http.get(server.url + "/api/v1" + path) as resp:
        status, body = await answer(resp)
    assert status == 400, body
    assert body["error"]["code"] == "bad_query"
    assert body["error"]["field"] in path
