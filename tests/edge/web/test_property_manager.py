"""Property-manager workflows on the edge REST API (issue 12): buildings, apartments,
the library's search, privacy of PIN clashes, third-party lock formats."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from edge import daemon
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


async def test_reset_removes_the_alarms_and_alarm_events_of_its_people(api: Api) -> None:
    admin = api.token("admin")
    kid = {"id": "p-kid", "kind": "resident", "apartment": "B1-203", "role": "member",
           "name": "Kid", "groups": ["g-b1"]}  # fmt: skip
    assert (await api.client.post(f"{V1}/people", json=kid, headers=admin)).status == 201
    # a duress alarm names its person in the alarm record and the alarm event
    for person in ("p-judy", "p-kid", "p-cathy"):
        await api.site.log.raise_alarm(
            "duress", source="gate", door="gate", detail={"person": person}
        )
    before = (await j(await api.client.get(f"{V1}/alarms", headers=admin)))["items"]
    assert len(before) == 4  # the fixture's held_open alarm and three duress alarms
    resp = await api.client.post(f"{V1}/apartments/B1-203/reset", headers=admin)
    assert resp.status == 200, await resp.text()
    summary = await j(resp)
    assert summary["people"] == ["p-kid"]
    after = (await j(await api.client.get(f"{V1}/alarms", headers=admin)))["items"]
    assert sorted(a.get("detail", {}).get("person") or a["kind"] for a in after) == [
        "held_open",
        "p-cathy",
    ]
    events = (await j(await api.client.get(f"{V1}/events?type=alarm", headers=admin)))["items"]
    text = json.dumps(events)
    assert "p-judy" not in text and "p-kid" not in text and "p-cathy" in text
    assert (await j(await api.client.get(f"{V1}/people/p-judy", headers=admin)))["id"] == "p-judy"
    audit = (await j(await api.client.get(f"{V1}/audit", headers=admin)))["items"]
    redaction = next(a for a in audit if a["action"] == "apartment.redact_events")
    assert redaction["detail"]["alarms"] == 2


async def test_family_member_limit_is_a_422_and_methods_refuse_at_the_door(api: Api) -> None:
    admin = api.token("admin")
    apt = await j(await api.client.get(f"{V1}/apartments/B1-203", headers=admin))
    apt.update(max_members=1, methods=["rf_card"])
    assert (await api.client.put(f"{V1}/apartments/B1-203", json=apt, headers=admin)).status == 200
    one = {"id": "p-one", "kind": "resident", "apartment": "B1-203", "role": "member"}
    assert (await api.client.post(f"{V1}/people", json=one, headers=admin)).status == 201
    two = {**one, "id": "p-two"}
    resp = await api.client.post(f"{V1}/people", json=two, headers=admin)
    assert resp.status == 422
    assert "at most 1 family member" in await resp.text()
    # Judy's PIN: the apartment enables cards only
    present = {"reader": "gate-in", "kind": "pin", "value": "4711"}
    answer = await j(await api.client.post(f"{V1}/presentations", json=present, headers=admin))
    assert answer["granted"] is False
    assert answer["reason"] == "method_disabled_for_apartment"


async def test_batch_edit_sets_one_change_on_many_apartments_in_one_version(api: Api) -> None:
    admin = api.token("admin")
    before = (await j(await api.client.get(f"{V1}/health")))["policy_version"]
    changes = {"valid_until": "2027-01-31T00:00:00", "auto_delete": True, "max_members": 4}
    body = {"ids": ["B1-203", "B1-101"], "set": changes}
    resp = await api.client.post(f"{V1}/batch/apartments", json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await j(resp))["updated"] == ["B1-203", "B1-101"]
    assert (await j(await api.client.get(f"{V1}/health")))["policy_version"] == before + 1
    for apt_id in ("B1-203", "B1-101"):
        apt = await j(await api.client.get(f"{V1}/apartments/{apt_id}", headers=admin))
        assert apt["auto_delete"] is True and apt["max_members"] == 4
    audit = (await j(await api.client.get(f"{V1}/audit", headers=admin)))["items"]
    assert [a["action"] for a in audit].count("apartments.batch_update") == 1
    # nothing half-applied: one unknown apartment refuses the whole batch
    bad = {"ids": ["B1-203", "nope"], "set": {"auto_delete": False}}
    resp = await api.client.post(f"{V1}/batch/apartments", json=bad, headers=admin)
    assert resp.status == 422
    apt = await j(await api.client.get(f"{V1}/apartments/B1-203", headers=admin))
    assert apt["auto_delete"] is True
    for hostile in ({"ids": [], "set": {"auto_delete": False}}, {"ids": ["B1-203"], "set": {}},
                    {"ids": ["B1-203"], "set": {"name": "x"}},
                    {"ids": ["B1-203"], "set": {"max_members": -1}}):  # fmt: skip
        resp = await api.client.post(f"{V1}/batch/apartments", json=hostile, headers=admin)
        assert resp.status == 400, hostile
    viewer = api.token("viewer")
    assert (
        await api.client.post(f"{V1}/batch/apartments", json=body, headers=viewer)
    ).status == 403


async def test_lock_report_lists_what_a_lock_family_cannot_take(api: Api) -> None:
    admin = api.token("admin")
    doc = await j(await api.client.get(f"{V1}/policy", headers=admin))
    doc["settings"]["lock_families"] = {"lobby": "dormakaba", "plant": "itec"}
    doc["credentials"].append(
        {"id": "c-long", "person": "p-cathy", "kind": "rf_card", "value": "12345678901234567890"}
    )
    doc["credentials"].append({"id": "c-six", "person": "p-judy", "kind": "pin", "value": "135790"})
    assert (await api.client.put(f"{V1}/policy", json=doc, headers=admin)).status == 200
    viewer = api.token("viewer")
    dorma = await j(await api.client.get(f"{V1}/locks/dormakaba/report", headers=viewer))
    assert dorma["doors"] == ["lobby"]
    assert dorma["checked"] == 4  # Judy's two PINs, Cathy's two cards
    bad = {u["credential"]: u["reason"] for u in dorma["unsyncable"]}
    assert set(bad) == {"c1", "c2"}  # a 4-digit PIN, an 8-character card
    assert "6 digits" in bad["c1"] and "20 characters" in bad["c2"]
    itec = await j(await api.client.get(f"{V1}/locks/itec/report", headers=viewer))
    assert itec["doors"] == ["plant"]  # only Cathy (staff) reaches the plant room
    assert {u["credential"] for u in itec["unsyncable"]} == {"c-long"}  # 20 > 16 characters
    text = json.dumps([dorma, itec])
    assert "4711" not in text and "00209CBF" not in text and "135790" not in text
    unknown = await api.client.get(f"{V1}/locks/abloy/report", headers=viewer)
    assert unknown.status == 404
    # a door that is not in site.toml is refused
    doc["settings"]["lock_families"] = {"nowhere": "itec"}
    resp = await api.client.put(f"{V1}/policy", json=doc, headers=admin)
    assert resp.status == 422
    assert "lock_families" in await resp.text()


async def test_the_visitor_id_number_never_reaches_the_audit_log(api: Api) -> None:
    admin = api.token("admin")
    key = {"id": "t-v", "name": "Visitor", "kind": "pin", "code": "94444444",
           "visitor_id_number": "X1234567Z", "doors": ["gate"],
           "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59"}}  # fmt: skip
    resp = await api.client.post(f"{V1}/temp-keys", json=key, headers=admin)
    assert resp.status == 201, await resp.text()
    got = await j(await api.client.get(f"{V1}/temp-keys/t-v", headers=admin))
    assert got["visitor_id_number"] == "X1234567Z"
    present = {"reader": "gate-in", "kind": "pin", "value": "94444444"}
    answer = await j(await api.client.post(f"{V1}/presentations", json=present, headers=admin))
    assert answer["granted"]
    events = (await j(await api.client.get(f"{V1}/events?type=access", headers=admin)))["items"]
    assert events[0]["detail"]["temp_key"] == "t-v"  # a temp key's door log: by its id
    audit = await api.client.get(f"{V1}/audit", headers=admin)
    assert "X1234567Z" not in await audit.text()
    assert "X1234567Z" not in json.dumps(events)


async def test_a_standalone_site_deletes_residents_when_an_auto_delete_lease_ends(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = api.token("admin")
    ended = {"valid_from": "2025-01-01T00:00:00", "valid_until": "2026-01-01T00:00:00"}
    body = {"ids": ["B1-101"], "set": {**ended, "auto_delete": False}}
    assert (await api.client.post(f"{V1}/batch/apartments", json=body, headers=admin)).status == 200
    body = {"ids": ["B1-203"], "set": {**ended, "auto_delete": True}}
    assert (await api.client.post(f"{V1}/batch/apartments", json=body, headers=admin)).status == 200
    monkeypatch.setattr(daemon, "LEASE_SWEEP_S", 0.01)
    sweeper = asyncio.create_task(daemon._lease_sweep(api.site), name="test-lease-sweep")
    try:
        for _ in range(200):
            if not any(p["id"] == "p-judy" for p in api.site.list_entities("people")):
                break
            await asyncio.sleep(0.01)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    people = {p["id"] for p in api.site.list_entities("people")}
    assert people == {"p-cathy"}  # Judy's lease ended with auto-delete; B1-101 has nobody
    assert {c["id"] for c in api.site.list_entities("credentials")} == {"c2"}
    audit = await j(await api.client.get(f"{V1}/audit?actor=system:lease", headers=admin))
    (entry,) = audit["items"]
    assert entry["action"] == "apartments.lease_delete"
    assert entry["detail"]["people"] == ["p-judy"]
    assert await api.site.pm.sweep_leases() == {}  # nothing more to do
