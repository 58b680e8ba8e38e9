"""Entity lists answer ?q=&limit=&offset= with the page and the total (the UI's search)."""

from __future__ import annotations

from typing import Any

from tests.edge.web.conftest import Api


async def _get(api: Api, path: str) -> tuple[int, Any]:
    resp = await api.client.get(f"/api/v1{path}", headers=api.token("viewer"))
    return resp.status, await resp.json()


async def test_people_search_pages_and_counts(api: Api) -> None:
    status, body = await _get(api, "/people")
    assert status == 200
    assert body["total"] == len(body["items"]) == 2  # no parameters: everything

    _, body = await _get(api, "/people?q=JUDY")  # case does not matter
    assert [p["id"] for p in body["items"]] == ["p-judy"]
    assert body["total"] == 1

    _, body = await _get(api, "/people?q=judy%20b1-203")  # every word must match
    assert [p["id"] for p in body["items"]] == ["p-judy"]
    _, body = await _get(api, "/people?q=judy%20cathy")
    assert body == {"items": [], "total": 0}

    _, body = await _get(api, "/people?limit=1&offset=1")
    assert [p["id"] for p in body["items"]] == ["p-cathy"]
    assert body["total"] == 2


async def test_credential_search_never_matches_a_stored_hash(api: Api) -> None:
    _, body = await _get(api, "/credentials")
    digest = body["items"][0]["value_hmac"]
    _, body = await _get(api, f"/credentials?q={digest[:12]}")
    assert body == {"items": [], "total": 0}


async def test_bad_paging_is_a_clear_400(api: Api) -> None:
    for query, field in (("offset=-1", "offset"), ("limit=0", "limit"), ("limit=x", "limit")):
        status, body = await _get(api, f"/apartments?{query}")
        assert status == 400, query
        assert body["error"]["field"] == field
