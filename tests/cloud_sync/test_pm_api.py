"""Property-manager rules through the cloud admin API (the shared policy code, issue 12)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from .test_service import Admin, starter_policy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .conftest import Server


@pytest.fixture
async def admin(server: Server) -> AsyncIterator[Admin]:
    token = await server.store.create_admin_token("test")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        yield Admin(http, server.url)


async def site_with_policy(admin: Admin) -> None:
    await admin.call("POST", "/sites", {"id": "s1"}, status=201)
    await admin.call("PUT", "/sites/s1/policy", starter_policy())


async def test_a_pin_clash_says_taken_never_whose(admin: Admin) -> None:
    await site_with_policy(admin)
    cred = {"id": "c9", "person": "p-judy", "kind": "pin", "value": "4711"}
    answer: Any = await admin.call("POST", "/sites/s1/credentials", cred, status=422)
    text = str(answer)
    assert "taken" in text
    assert "c1" not in text
    assert "4711" not in text


async def test_a_new_building_gets_its_default_group(admin: Admin) -> None:
    await site_with_policy(admin)
    await admin.call("POST", "/sites/s1/buildings", {"id": "B2", "name": "Two"}, status=201)
    groups = await admin.call("GET", "/sites/s1/groups")
    assert [g["id"] for g in groups if g.get("building_default") == "B2"] == ["g-B2"]


async def test_family_member_limit_is_a_422(admin: Admin) -> None:
    await site_with_policy(admin)
    apt = {"id": "B1-203", "building": "B1", "number": "2#203", "name": "Apt", "max_members": 0}
    await admin.call("PUT", "/sites/s1/apartments/B1-203", apt)
    member = {"id": "p-kid", "kind": "resident", "apartment": "B1-203", "role": "member"}
    answer = await admin.call("POST", "/sites/s1/people", member, status=422)
    assert "max_members" in str(answer)


async def test_entity_lists_search_and_page_as_on_the_edge(server: Server, admin: Admin) -> None:
    await site_with_policy(admin)
    url = server.url + "/api/v1/sites/s1/credentials"
    http = admin.http
    async with http.get(url, params={"kind": "pin", "holder": "JUD", "limit": "1"}) as resp:
        assert resp.status == 200
        assert [c["id"] for c in await resp.json()] == ["c1"]
        assert resp.headers["Doorkeep-Total"] == "1"
    async with http.get(url, params={"offset": "1"}) as resp:
        assert [c["id"] for c in await resp.json()] == ["c2"]
        assert resp.headers["Doorkeep-Total"] == "2"
    for bad in ({"colour": "red"}, {"limit": "0"}, {"limit": "x"}, {"kind": "password"}):
        async with http.get(url, params=bad) as resp:
            assert resp.status == 400, bad
            assert (await resp.json())["error"]["code"] == "bad_query"
