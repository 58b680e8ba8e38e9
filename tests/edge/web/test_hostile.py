"""Hostile input to the edge REST API: every one is a 400 that says what to change, with
no traceback in the answer or the service log (issue 9, finding 10)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from edge.web.routes import ROUTES, DeviceAuth, Route
from tests.edge.readers.garage import garage
from tests.edge.web.conftest import Api
from tests.edge.web.test_security import rid, url_of

# 100 KB of nesting: far past Python's recursion limit.
NESTED = b"[" * 50_000 + b"]" * 50_000
BODY_ROUTES = [r for r in ROUTES if r.body and not isinstance(r.role, DeviceAuth)]
DEVICE_BODY_ROUTES = [r for r in ROUTES if r.body and isinstance(r.role, DeviceAuth)]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [
        r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR
    ] == []


def assert_clear_400(status: int, body: Any, *, code: str, words: str) -> None:
    assert status == 400, body
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]
    assert "Traceback" not in json.dumps(body)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=rid)
async def test_deeply_nested_json_is_a_clear_400_at_every_body_endpoint(
    api: Api, route: Route, caplog: pytest.LogCaptureFixture
) -> None:
    resp = await api.client.request(
        route.method,
        url_of(route),
        data=NESTED,
        headers={**api.token("admin"), "Content-Type": "application/json"},
    )
    assert_clear_400(resp.status, await resp.json(), code="bad_json", words="nested deeper")
    no_traceback(caplog)


@pytest.mark.parametrize("route", DEVICE_BODY_ROUTES, ids=rid)
async def test_deeply_nested_json_is_a_clear_400_at_every_device_endpoint(
    tmp_path: Any, route: Route, caplog: pytest.LogCaptureFixture
) -> None:
    async with garage(tmp_path) as g:
        resp = await g.client.request(
            route.method,
            "/api/v1" + route.path.replace("{id}", "garage-lpr"),
            data=NESTED,
            headers={
                "Authorization": f"Bearer {g.tokens['garage-lpr']}",
                "Content-Type": "application/json",
            },
        )
        assert_clear_400(resp.status, await resp.json(), code="bad_json", words="nested deeper")
    no_traceback(caplog)


async def test_nested_json_without_login_is_a_clear_400(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        resp = await api.client.post(
            "/api/v1/auth/login", data=NESTED, headers={"Content-Type": "application/json"}
        )
        assert_clear_400(resp.status, await resp.json(), code="bad_json", words="nested deeper")
    no_traceback(caplog)


def cursor(kind: str, position: Any) -> str:
    return f"{kind[0]}{position}"


@pytest.mark.parametrize(
    ("path", "kind"), [("/api/v1/events", "events"), ("/api/v1/audit", "audit")]
)
@pytest.mark.parametrize("position", [10**30, -(10**30), 2**63])
async def test_a_cursor_with_a_huge_number_is_a_clear_400(
    api: Api, path: str, kind: str, position: int, caplog: pytest.LogCaptureFixture
) -> None:
    resp = await api.client.get(
        path, params={"cursor": cursor(kind, position)}, headers=api.token("admin")
    )
    body = await resp.json()
    # The cursor's pattern is in the OpenAPI document: refused as a bad query parameter.
    assert_clear_400(resp.status, body, code="bad_query", words="cursor must match")
    no_traceback(caplog)


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/audit"])
async def test_an_empty_cursor_is_the_first_page(api: Api, path: str) -> None:
    headers = api.token("admin")
    first = await (await api.client.get(path, headers=headers)).json()
    resp = await api.client.get(path + "?cursor=", headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["items"] == first["items"]


async def test_a_presentation_of_an_unknown_kind_is_refused_by_the_schema(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/presentations",
        json={"reader": "gate-in", "kind": "_", "value": "1"},
        headers=api.token("installer"),
    )
    body = await resp.json()
    assert resp.status == 400
    assert body["error"]["code"] == "invalid_body"
    assert body["error"]["field"] == "kind"
