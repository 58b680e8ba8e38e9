"""Property-manager workflows on the edge REST API (issue 12): buildings, apartments,
the library's search, privacy of PIN clashes, third-party lock formats."""

from __future__ import annotations

import json
from typing import Any

from tests.edge.web.conftest import Api

V1 = "/api/v1"


async def j(resp: Any) -> Any:
    return json.loads(await resp.text())


async def test_a_pin_clash_says_the_pin_is_taken_never_whose(api: Api) -> None:
    admin = api.token("admin")
    cred = {"id": "c-new", "person": "p-cathy", "kind": "pin", "value": "4711"}
    resp = await api.client.post(f"{V1}/credentials", json=cred, headers=admin)
    assert resp.status == 422
    body = await j(resp)
    text = json.dumps(body)
    assert "taken" in body["error"]["issues"][0]["message"]
    assert "c1" not in text  # the other credential's id
    assert "p-judy" not in text  # nor its holder
    assert "4711" not in text


async def test_a_card_clash_names_nobody_either(api: Api) -> None:
    admin = api.token("admin")
    cred = {"id": "c-new", "person": "p-judy", "kind": "rf_card", "value": "00209cbf"}
    resp = await api.client.post(f"{V1}/credentials", json=cred, headers=admin)
    assert resp.status == 422
    text = await resp.text()
    assert "c2" not in text
    assert "p-cathy" not in text


async def test_adding_a_building_creates_its_default_group(api: Api) -> None:
    admin = api.token("admin")
    resp = await api.client.post(
        f"{V1}/buildings", json={"id": "B2", "name": "Building 2"}, headers=admin
    )
    assert resp.status == 201, await resp.text()
    groups = (await j(await api.client.get(f"{V1}/groups", headers=admin)))["items"]
    defaults = [g for g in groups if g.get("building_default") == "B2"]
    assert len(defaults) == 1
    assert defaults[0]["name"] == "Resident-Building Building 2"
    # the building is usable at once: an apartment in it, and its group cannot be deleted
    apt = {"id": "B2-1", "building": "B2", "number": "1", "name": "Apt 1"}
    assert (await api.client.post(f"{V1}/apartments", json=apt, headers=admin)).status == 201
    gone = await api.client.delete(f"{V1}/groups/{defaults[0]['id']}", headers=admin)
    assert gone.status == 409
    audit = (await j(await api.client.get(f"{V1}/audit", headers=admin)))["items"]
    assert any(a["action"] == "buildings.create" for a in audit)
