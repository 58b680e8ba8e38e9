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


async def _seed_library(api: Api) -> dict[str, str]:
    """More people, credentials and temp keys for the search tests."""
    admin = api.token("admin")
    doc = await j(await api.client.get(f"{V1}/policy", headers=admin))
    doc["buildings"].append({"id": "B2", "name": "Building 2"})
    doc["groups"].append(
        {
            "id": "g-b2",
            "name": "Residents B2",
            "building_default": "B2",
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59"},
            "doors": ["gate"],
        }
    )
    doc["apartments"].append({"id": "B2-1", "building": "B2", "number": "1", "name": "One"})
    doc["people"] += [
        {"id": "p-zoe", "kind": "resident", "apartment": "B2-1", "role": "master",
         "name": "Zoë Wong", "groups": ["g-b2"]},
        {"id": "p-max", "kind": "resident", "apartment": "B1-101", "role": "master",
         "name": "Max Mustermann", "groups": ["g-b1"]},
    ]  # fmt: skip
    doc["credentials"] += [
        {"id": "c-zoe", "person": "p-zoe", "kind": "rf_card", "value": "1a2b3c4d5e"},
        {"id": "c-max", "person": "p-max", "kind": "pin", "value": "246810"},
    ]
    doc["temp_keys"] += [
        {"id": "t-past", "name": "Plumber Paul", "kind": "pin", "code": "91111111",
         "created_by": "admin:alice", "apartment": "B1-203",
         "schedule": {"repeat": "never", "start": "2020-01-01T08:00", "end": "2020-01-02T08:00"},
         "doors": ["gate"]},
        {"id": "t-next", "name": "Aunt Ann", "kind": "pin", "code": "92222222",
         "created_by": "admin:bob", "apartment": "B2-1",
         "schedule": {"repeat": "never", "start": "2099-01-01T08:00", "end": "2099-01-02T08:00"},
         "doors": ["gate"]},
        {"id": "t-daily", "name": "Cleaner", "kind": "pin", "code": "93333333",
         "schedule": {"repeat": "daily", "start": "08:00", "end": "10:00"}, "doors": ["gate"]},
    ]  # fmt: skip
    resp = await api.client.put(f"{V1}/policy", json=doc, headers=admin)
    assert resp.status == 200, await resp.text()
    return admin


async def _ids(api: Api, path: str, headers: dict[str, str]) -> tuple[list[str], int]:
    resp = await api.client.get(f"{V1}{path}", headers=headers)
    assert resp.status == 200, await resp.text()
    body = await j(resp)
    return [e["id"] for e in body["items"]], body["total"]


async def test_lists_search_filter_and_page_with_a_total(api: Api) -> None:
    await _seed_library(api)
    viewer = api.token("viewer")
    # without parameters: every item, as before, now with the total
    ids, total = await _ids(api, "/people", viewer)
    assert total == len(ids) == 4
    # q: case-insensitive substring of id and name
    assert await _ids(api, "/people?q=zo%C3%AB", viewer) == (["p-zoe"], 1)
    assert await _ids(api, "/people?q=MUSTER", viewer) == (["p-max"], 1)
    assert (await _ids(api, "/people?building=B1", viewer))[0] == ["p-judy", "p-max"]
    assert (await _ids(api, "/people?group=g-staff", viewer))[0] == ["p-cathy"]
    assert (await _ids(api, "/people?apartment=B2-1", viewer))[0] == ["p-zoe"]
    # paging: total counts every match before limit/offset
    assert await _ids(api, "/people?limit=2", viewer) == (ids[:2], 4)
    assert await _ids(api, "/people?limit=2&offset=2", viewer) == (ids[2:], 4)
    assert await _ids(api, "/people?offset=10", viewer) == ([], 4)
    assert (await _ids(api, "/apartments?building=B2", viewer))[0] == ["B2-1"]
    assert (await _ids(api, "/apartments?q=101", viewer))[0] == ["B1-101"]
    assert (await _ids(api, "/buildings?q=building%202", viewer))[0] == ["B2"]


async def test_the_library_finds_credentials_by_building_kind_and_holder_masked(
    api: Api,
) -> None:
    await _seed_library(api)
    viewer = api.token("viewer")
    assert (await _ids(api, "/credentials?building=B1&kind=pin", viewer))[0] == ["c1", "c-max"]
    assert (await _ids(api, "/credentials?holder=wong", viewer))[0] == ["c-zoe"]
    assert (await _ids(api, "/credentials?q=judy", viewer))[0] == ["c1"]  # holder name
    assert (await _ids(api, "/credentials?apartment=B2-1", viewer))[0] == ["c-zoe"]
    assert (await _ids(api, "/credentials?person=p-cathy", viewer))[0] == ["c2"]
    resp = await api.client.get(f"{V1}/credentials?holder=wong", headers=viewer)
    text = await resp.text()
    (card,) = (await j(resp))["items"]
    assert card["value_facts"]["masked"] == "…4D5E"  # the last four, never all
    assert "1A2B3C4D5E" not in text.upper()
    pin = await j(await api.client.get(f"{V1}/credentials/c-max", headers=viewer))
    assert pin["value_facts"] == {"length": 6, "charset": "digits", "masked": "••••••"}
    # searching for a value finds nothing: values are not searchable
    assert await _ids(api, "/credentials?q=246810", viewer) == ([], 0)


async def test_temp_keys_by_validity_repeat_creator_and_visitor(api: Api) -> None:
    await _seed_library(api)
    viewer = api.token("viewer")
    assert (await _ids(api, "/temp-keys?valid=expired", viewer))[0] == ["t-past"]
    assert (await _ids(api, "/temp-keys?valid=future", viewer))[0] == ["t-next"]
    assert (await _ids(api, "/temp-keys?valid=now", viewer))[0] == ["t-daily"]
    assert (await _ids(api, "/temp-keys?repeat=daily", viewer))[0] == ["t-daily"]
    assert (await _ids(api, "/temp-keys?creator=BOB", viewer))[0] == ["t-next"]
    assert (await _ids(api, "/temp-keys?visitor=paul", viewer))[0] == ["t-past"]
    assert (await _ids(api, "/temp-keys?apartment=B2-1", viewer))[0] == ["t-next"]
    assert (await _ids(api, "/temp-keys?q=t-da", viewer))[0] == ["t-daily"]


async def test_hostile_list_queries_are_400s(api: Api) -> None:
    viewer = api.token("viewer")
    for query in (
        "limit=0",
        "limit=1001",
        "limit=x",
        "offset=-1",
        "offset=99999999999",
        "colour=red",  # unknown
        "building=B1&holder=x",  # holder is a credential filter, not a person one
    ):
        resp = await api.client.get(f"{V1}/people?{query}", headers=viewer)
        assert resp.status == 400, query
        assert (await j(resp))["error"]["code"] == "bad_query"
    for query in ("kind=password", "valid=sometimes", "repeat=hourly"):
        path = "/credentials" if query.startswith("kind") else "/temp-keys"
        resp = await api.client.get(f"{V1}{path}?{query}", headers=viewer)
        assert resp.status == 400, query
    long = await api.client.get(f"{V1}/people?q={'%00' * 2000}", headers=viewer)
    assert long.status == 200
