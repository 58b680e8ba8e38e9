"""Import/export for an enrolled site through the cloud admin API: the same core as the
edge, one new policy version for a good file, a 422 naming every row for a bad one,
export -> import a no-op (the version stays)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.cloud_sync.conftest import Server
from tests.cloud_sync.test_service import starter_policy
from tests.sheets import RESIDENTS, csv_file, read_xlsx, resident, xlsx


@pytest.fixture
async def http(server: Server) -> AsyncIterator[aiohttp.ClientSession]:
    token = await server.store.create_admin_token("test")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        yield session


async def test_cloud_import_export_round_trip(server: Server, http: aiohttp.ClientSession) -> None:
    api = server.url + "/api/v1"
    async with http.post(api + "/sites", json={"id": "s1", "name": "Site"}) as resp:
        assert resp.status == 201
    async with http.put(api + "/sites/s1/policy", json=starter_policy()) as resp:
        assert resp.status == 200, await resp.text()
        version = (await resp.json())["version"]
    rows = [resident(n, Building="Building 1") for n in range(6)]
    url = api + "/sites/s1/import/residents"
    async with http.post(url + "?dry_run=true", data=xlsx(RESIDENTS, rows)) as resp:
        dry = await resp.json()
        assert resp.status == 200 and dry["people_added"] == 6 and dry["version"] is None
    async with http.post(url, data=xlsx(RESIDENTS, rows)) as resp:
        done = await resp.json()
        assert resp.status == 200 and done["version"] == version + 1
    async with http.get(api + "/sites/s1/policy") as resp:
        doc = await resp.json()
    assert len(doc["people"]) == 7
    assert "1000000" not in str(doc)  # PINs arrive hashed
    async with http.get(api + "/sites/s1/export/residents?format=xlsx") as resp:
        exported = await resp.read()
    assert read_xlsx(exported)[0] == list(RESIDENTS)
    async with http.post(url, data=exported) as resp:
        again = await resp.json()
        assert again["changes"] == 0 and again["version"] == version + 1
    bad = [resident(0, Building="Building 1", PIN="9"), resident(1, Apt="#1")]
    async with http.post(url, data=csv_file(RESIDENTS, bad)) as resp:
        assert resp.status == 422
        issues = (await resp.json())["error"]["issues"]
    assert [(i["entity"], i["field"]) for i in issues] == [("row 2", "PIN"), ("row 3", "Apt")]
    async with http.get(api + "/sites/s1/export/people") as resp:
        assert resp.status == 404
