"""The REST API as a client sees it: answers, error shapes, entities, logs, the live stream."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import json
import struct
import tomllib
import urllib.parse
from typing import Any

import openpyxl

from drivers.waveshare import FLASH_ON_BASE, FLASH_UNIT_MS
from edge.service import Site
from tests.edge.web import sample
from tests.edge.web.conftest import Api
from tests.edge.web.sample import sample_policy


async def j(resp: Any) -> Any:
    return await resp.json()


async def test_health_needs_no_login_and_names_the_site(api: Api) -> None:
    body = await j(await api.client.get("/api/v1/health"))
    assert body["status"] == "ok"
    assert body["site"] == "demo"
    assert body["timezone"] == "Europe/Berlin"


async def test_errors_have_one_shape_and_the_right_status(api: Api) -> None:
    admin = api.token("admin")
    cases = [
        ("GET", "/api/v1/doors/nope", None, 404, "not_found"),
        ("DELETE", "/api/v1/groups/g-b1", None, 409, "conflict"),  # a building's default group
        ("POST", "/api/v1/people", {"id": "p-x", "kind": "alien"}, 422, "policy_invalid"),
        (
            "POST",
            "/api/v1/presentations",
            {"reader": "gate-in", "kind": "pin"},
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/api/v1/presentations",
            {"reader": "gate-in", "kind": "password", "value": "x"},
            400,
            "invalid_body",  # the schema's enum of kinds, as strict as the server
        ),
        ("POST", "/api/v1/doors/gate/unlock", {"seconds": 0}, 400, "invalid_body"),
        ("GET", "/api/v1/events?limit=0", None, 400, "bad_query"),
        ("GET", "/api/v1/events?since=yesterday", None, 400, "bad_query"),
        ("GET", "/api/v1/events?since=2026-01-01T00:00:00", None, 400, "bad_query"),  # no offset
        ("POST", "/api/v1/relays/relays-a/9/test", {}, 400, "bad_request"),
        ("POST", "/api/v1/alarms/1/resolve", {}, 200, None),
        ("POST", "/api/v1/alarms/1/resolve", {}, 409, "conflict"),
    ]
    for method, url, body, status, code in cases:
        resp = await api.client.request(method, url, json=body, headers=admin)
        assert resp.status == status, (method, url, await resp.text())
        if code:
            err = (await j(resp))["error"]
            assert err["code"] == code
            assert set(err) >= {"code", "message", "field"}
    missing = await j(
        await api.client.post(
            "/api/v1/presentations", json={"reader": "gate-in", "kind": "pin"}, headers=admin
        )
    )
    assert missing["error"]["field"] == "value"


async def test_bad_json_is_a_400(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/emergency",
        data=b"{not json",
        headers={**api.token("admin"), "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert (await j(resp))["error"]["code"] == "bad_json"


async def test_policy_errors_list_every_issue(api: Api) -> None:
    doc = sample_policy()
    doc["people"].append({"id": "p-bad", "kind": "alien"})
    doc["groups"][0]["doors"].append("no-such-door")
    resp = await api.client.put("/api/v1/policy", json=doc, headers=api.token("admin"))
    assert resp.status == 422
    issues = (await j(resp))["error"]["issues"]
    assert {i["entity"] for i in issues} >= {"people/3"} or len(issues) >= 1
    # Schema problems in several places come back together, not one at a time.
    doc = sample_policy()
    doc["people"][0]["kind"] = "alien"
    doc["credentials"][0]["kind"] = "telepathy"
    resp = await api.client.put("/api/v1/policy", json=doc, headers=api.token("admin"))
    issues = (await j(resp))["error"]["issues"]
    assert {i["entity"] for i in issues} == {"people/0", "credentials/0"}
    assert "4711" not in json.dumps(issues)


async def test_entity_crud_with_the_temp_keys_url(api: Api) -> None:
    admin = api.token("admin")
    key = {
        "id": "t1",
        "name": "Visitor",
        "kind": "pin",
        "code": "91487640",
        "schedule": {"repeat": "daily", "start": "08:00", "end": "20:00"},
        "uses_per_door": 1,
        "doors": ["gate"],
    }
    created = await api.client.post("/api/v1/temp-keys", json=key, headers=admin)
    assert created.status == 201, await created.text()
    body = await j(created)
    assert "code" not in body
    assert "code_hmac" in body
    again = await api.client.post("/api/v1/temp-keys", json=key, headers=admin)
    assert again.status == 409
    listed = await j(await api.client.get("/api/v1/temp-keys", headers=admin))
    assert [k["id"] for k in listed["items"]] == ["t1"]
    replaced = await api.client.put(
        "/api/v1/temp-keys/t1", json={**body, "name": "Courier"}, headers=admin
    )
    assert (await j(replaced))["name"] == "Courier"
    assert (await j(replaced))["code_hmac"] == body["code_hmac"]  # hash kept, code not needed
    mismatch = await api.client.put(
        "/api/v1/temp-keys/t1", json={**body, "id": "t2"}, headers=admin
    )
    assert mismatch.status == 400
    assert (await api.client.delete("/api/v1/temp-keys/t1", headers=admin)).status == 204
    assert (await api.client.get("/api/v1/temp-keys/t1", headers=admin)).status == 404


async def test_installer_enrols_credentials_but_may_not_edit_people(api: Api) -> None:
    inst = api.token("installer")
    cred = {"id": "c9", "person": "p-cathy", "kind": "rf_card", "value": "12345"}
    assert (await api.client.post("/api/v1/credentials", json=cred, headers=inst)).status == 201
    person = {"id": "p-new", "kind": "staff", "name": "New"}
    assert (await api.client.post("/api/v1/people", json=person, headers=inst)).status == 403


async def test_cloud_owned_policy_refuses_local_writes(api: Api) -> None:
    api.site.policy.owner = "cloud"
    resp = await api.client.put(
        "/api/v1/buildings/B2", json={"id": "B2", "name": "Two"}, headers=api.token("admin")
    )
    assert resp.status == 409
    sync = await j(await api.client.get("/api/v1/sync", headers=api.token("viewer")))
    assert sync["enrolled"] is True


async def test_present_a_card_now_enrols_it_without_its_number(api: Api) -> None:
    inst = api.token("installer")
    capture = asyncio.ensure_future(
        api.client.post("/api/v1/readers/gate-in/capture", json={"timeout_s": 5}, headers=inst)
    )
    await asyncio.sleep(0.05)
    # The card is held to the reader (a simulated reader presents it over REST).
    held = {"reader": "gate-in", "kind": "rf_card", "value": "00C0FFEE"}
    first = await j(await api.client.post("/api/v1/presentations", json=held, headers=inst))
    assert first["granted"] is False
    resp = await capture
    captured = await j(resp)
    assert captured["known"] is False
    assert "C0FFEE" not in (await resp.text()).upper()
    cred = {
        "id": "c-new",
        "person": "p-cathy",
        "kind": "rf_card",
        "value_hmac": captured["value_hmac"],
    }
    assert (await api.client.post("/api/v1/credentials", json=cred, headers=inst)).status == 201
    out = await j(await api.client.post("/api/v1/presentations", json=held, headers=inst))
    assert out["granted"] is True
    assert out["person"] == "p-cathy"


async def test_capture_times_out_with_503(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/readers/gate-in/capture", json={"timeout_s": 0.1}, headers=api.token("installer")
    )
    assert resp.status == 503
    assert (await j(resp))["error"]["code"] == "timeout"


async def test_events_page_with_a_cursor_and_export_csv(api: Api) -> None:
    inst = api.token("installer")
    seqs = []
    for value in ("4711", "0000", "4711"):
        resp = await api.client.post(
            "/api/v1/presentations",
            json={"reader": "gate-in", "kind": "pin", "value": value},
            headers=inst,
        )
        seqs.append((await j(resp))["event_id"])
    # The site logs its door and alarm events too; these are the three presentations.
    first = await j(await api.client.get("/api/v1/events?type=access&limit=2", headers=inst))
    assert [e["seq"] for e in first["items"]] == [seqs[2], seqs[1]]
    second = await j(
        await api.client.get(
            f"/api/v1/events?type=access&limit=2&cursor={first['cursor']}", headers=inst
        )
    )
    assert [e["seq"] for e in second["items"]] == [seqs[0]]
    assert second["cursor"] is None
    failed = await j(await api.client.get("/api/v1/events?type=access&result=failed", headers=inst))
    assert [e["reason"] for e in failed["items"]] == ["unknown_credential"]
    resp = await api.client.get("/api/v1/events/export?format=csv&type=access", headers=inst)
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = await resp.read()
    assert raw.startswith(codecs.BOM_UTF8)  # the careful exporter (edge/exports.py)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["Seq"] for r in rows] == [str(s) for s in reversed(seqs)]


async def test_stream_delivers_door_changes_live(api: Api) -> None:
    viewer = api.token("viewer")
    resp = await api.client.get("/api/v1/stream", headers=viewer)
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert await resp.content.readline() == b": connected\n"
    await resp.content.readline()
    await api.client.post(
        "/api/v1/doors/lobby/unlock", json={"seconds": 1}, headers=api.token("installer")
    )
    seen: list[tuple[str, Any]] = []
    while not any(t == "door" for t, _ in seen):
        event = (await resp.content.readline()).decode().strip()
        data = (await resp.content.readline()).decode().strip()
        await resp.content.readline()
        seen.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    door = next(d for t, d in seen if t == "door")
    assert door["id"] == "lobby"
    assert door["state"] == "unlocked"
    resp.close()


async def test_hardware_scan_relay_test_and_update(api: Api) -> None:
    inst = api.token("installer")
    hw = await j(await api.client.get("/api/v1/hardware", headers=inst))
    assert hw["boards"][0]["id"] == "relays-a"
    scan = await j(await api.client.post("/api/v1/buses/rs485-1/scan", headers=inst))
    assert scan == {"bus": "rs485-1", "addresses": [1]}
    out = await j(
        await api.client.post("/api/v1/relays/relays-a/2/test", json={"ms": 200}, headers=inst)
    )
    assert out["ok"] is True
    assert relay_pulses(api.site) == [("relays-a", 2, 200)]
    assert hw["config"]["door"][0]["methods"] == ["pin", "rf_card", "remote"]
    doors = [{**hw["config"]["door"][0], "pulse_ms": 5000}, *hw["config"]["door"][1:]]
    resp = await api.client.put("/api/v1/hardware", json={"door": doors}, headers=inst)
    assert resp.status == 200, await resp.text()
    written = tomllib.loads(api.site.config.path.read_text())
    assert written["door"] == doors
    assert written["web"] == hw_site_web(api)  # [web] and [site] are kept as they were
    assert written["reader"] == hw["config"]["reader"]
    sneaky = await api.client.put(
        "/api/v1/hardware", json={"web": {"listen": "0.0.0.0:80"}}, headers=inst
    )
    assert sneaky.status == 400


def hw_site_web(api: Api) -> Any:
    return api.site.config.raw["web"]


def relay_pulses(site: Site) -> list[tuple[str, int, int]]:
    """(board, channel, ms) of every pulse the simulated board was sent (Waveshare flash-on)."""
    board = site.hw.sims[sample.BUS].board(sample.BOARD_ADDRESS)
    pulses = []
    for pdu in board.requests:
        address, units = struct.unpack(">HH", pdu[1:5]) if pdu[0] == 0x05 else (0, 0)
        if FLASH_ON_BASE <= address < FLASH_ON_BASE + board.model.relays:
            pulses.append((sample.BOARD, address - FLASH_ON_BASE + 1, units * FLASH_UNIT_MS))
    return pulses


async def test_emergency_and_users(api: Api) -> None:
    admin = api.token("admin")
    out = await j(
        await api.client.post("/api/v1/emergency", json={"action": "unlock"}, headers=admin)
    )
    assert out["unlocked"] == ["gate", "lobby"]
    doors = await j(await api.client.get("/api/v1/doors", headers=admin))
    assert {d["id"]: d["state"] for d in doors["items"]}["gate"] == "emergency"
    user = {"username": "bob", "password": "x" * 12, "role": "installer"}
    assert (await api.client.post("/api/v1/users", json=user, headers=admin)).status == 201
    assert (await api.client.post("/api/v1/users", json=user, headers=admin)).status == 409
    short = {**user, "username": "carl", "password": "short"}
    assert (await api.client.post("/api/v1/users", json=short, headers=admin)).status == 400
    assert (await api.login("bob", "x" * 12)).status == 200
    assert (await j(await api.client.get("/api/v1/auth/me")))["role"] == "installer"
    # The last admin cannot go (bob is an installer); with a second admin, alice can.
    assert (await api.client.delete("/api/v1/users/alice", headers=admin)).status == 409
    api.auth.create_user("zed", "z" * 12, "admin")
    assert (await api.client.delete("/api/v1/users/alice", headers=admin)).status == 204
    assert (await api.client.delete("/api/v1/users/zed", headers=admin)).status == 409


async def test_a_bug_answers_a_json_500_and_is_logged_once(api: Api, caplog: Any) -> None:
    def broken() -> Any:
        raise KeyError("oops")

    api.site.sync_status = broken  # type: ignore[method-assign]
    resp = await api.client.get("/api/v1/sync", headers=api.token("viewer"))
    assert resp.status == 500
    assert (await j(resp))["error"]["code"] == "internal_error"
    assert "oops" not in await resp.text()
    assert [r.levelname for r in caplog.records if "unexpected error" in r.message] == ["ERROR"]


async def test_rest_export_uses_site_time_and_neutralises_formulas(api: Api) -> None:
    # The REST export is the CLI's exporter: UTF-8 BOM, times in the site's zone with
    # their offset, and text a spreadsheet would run as a formula made inert.
    evil = '=HYPERLINK("http://evil")'
    await api.site.log.record(
        {"at": "2026-07-01T10:00:00+00:00", "type": "access", "action": "presentation",
         "result": "failed", "person": evil, "detail": {"note": "x"}}
    )  # fmt: skip
    viewer = api.token("viewer")
    query = "person=" + urllib.parse.quote(evil)
    resp = await api.client.get(f"/api/v1/events/export?format=csv&{query}", headers=viewer)
    assert resp.status == 200
    raw = await resp.read()
    assert raw.startswith(codecs.BOM_UTF8)
    (out,) = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert out["Time (Europe/Berlin)"] == "2026-07-01T12:00:00+02:00"
    assert out["Person"] == '\'=HYPERLINK("http://evil")'
    xlsx = await api.client.get(f"/api/v1/events/export?format=xlsx&{query}", headers=viewer)
    assert xlsx.status == 200
    book = openpyxl.load_workbook(io.BytesIO(await xlsx.read()))
    cells = {c.value: c for c in next(book.worksheets[0].iter_rows(min_row=1, max_row=1))}
    person = book.worksheets[0].cell(row=2, column=cells["Person"].column)
    assert person.data_type == "s"
    assert person.value == evil
