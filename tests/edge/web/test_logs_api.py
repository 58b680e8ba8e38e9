"""Logs people can read, over REST: every door-log filter, names next to ids, the site's
time zone, audit and alarm exports, and the hash-chain check (issue 12).

The site: lobby is a public door of building B1 and plant one of B2 (site.toml); Judy
lives in B1-203, Bob in B2-301; a visitor's temp key belongs to B1-101. The events: Judy
at the gate, an unknown PIN at the lobby, Bob at the plant room, the visitor at the gate,
and an operator's remote unlock of the plant room.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
import os
import sqlite3
import sys
import urllib.parse
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from edge.service import Site
from edge.web.routes import ROUTES, DeviceAuth, Route
from tests.edge.sites import open_site
from tests.edge.web import sample
from tests.edge.web.conftest import Api
from tests.edge.web.test_security import BODIES, rid, url_of

ROOT = Path(__file__).resolve().parents[3]
BERLIN = ZoneInfo("Europe/Berlin")
SITE_TOML = sample.SITE_TOML.replace(
    'relay = "relays-a:2"', 'relay = "relays-a:2"\nbuilding = "B1"'
).replace('relay = "relays-a:3"', 'relay = "relays-a:3"\nbuilding = "B2"')
ALWAYS = {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"}


def policy() -> dict[str, Any]:
    doc = copy.deepcopy(sample.POLICY)
    doc["buildings"].append({"id": "B2", "name": "Building 2"})
    doc["apartments"].append(
        {"id": "B2-301", "building": "B2", "number": "3#301", "floor": "3", "name": "Apt 301"}
    )
    doc["people"].append(
        {"id": "p-bob", "kind": "resident", "apartment": "B2-301", "role": "master",
         "name": "Bob Q", "groups": ["g-b2"]}
    )  # fmt: skip
    doc["credentials"].append({"id": "c3", "person": "p-bob", "kind": "pin", "value": "5822"})
    doc["groups"].append(
        {"id": "g-b2", "name": "Residents B2", "building_default": "B2", "schedule": ALWAYS,
         "doors": ["plant"]}
    )  # fmt: skip
    doc["temp_keys"] = [
        {"id": "t1", "name": "Visitor Vera", "apartment": "B1-101", "kind": "pin",
         "code": "91234567", "schedule": ALWAYS, "uses_per_door": None, "doors": ["gate"]}
    ]  # fmt: skip
    return doc


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with open_site(tmp_path / "site", SITE_TOML, policy()) as running:
        await running.log.raise_alarm("held_open", source="lobby", door="lobby")
        yield running


async def present(api: Api, reader: str, value: str) -> int:
    resp = await api.client.post(
        "/api/v1/presentations",
        json={"reader": reader, "kind": "pin", "value": value},
        headers=api.token("installer"),
    )
    assert resp.status == 200, await resp.text()
    return int((await resp.json())["event_id"])


@pytest.fixture
async def seqs(api: Api) -> dict[str, int]:
    out = {
        "judy": await present(api, "gate-in", "4711"),
        "unknown": await present(api, "lobby-in", "0000"),
        "bob": await present(api, "plant-in", "5822"),
        "visitor": await present(api, "gate-in", "91234567"),
    }
    resp = await api.client.post(
        "/api/v1/doors/plant/unlock", json={"seconds": 1}, headers=api.token("admin")
    )
    assert resp.status == 200
    return out


async def events(api: Api, query: str) -> list[dict[str, Any]]:
    resp = await api.client.get(f"/api/v1/events?{query}", headers=api.token("viewer"))
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


# --- the findings: filters that were silently ignored -----------------------------------


async def test_the_apartment_filter_is_applied(api: Api, seqs: dict[str, int]) -> None:
    # Found: ?apartment= was not a declared parameter, so every event came back.
    found = await events(api, "apartment=B1-203")
    assert [e["seq"] for e in found] == [seqs["judy"]]


async def test_the_reason_filter_is_applied(api: Api, seqs: dict[str, int]) -> None:
    # Found: ?reason= was silently ignored as well.
    found = await events(api, "reason=unknown_credential")
    assert [e["seq"] for e in found] == [seqs["unknown"]]


GET_LISTS = [r for r in ROUTES if r.method == "GET" and r.query]


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if not isinstance(r.role, DeviceAuth)], ids=rid
)
async def test_an_unknown_query_parameter_is_a_400_on_every_route(api: Api, route: Route) -> None:
    # (the reader-token route: tests/edge/readers/test_http.py, with a reader's token)
    # Found: parse_query read only the declared names and dropped the rest, on every route.
    headers = api.token(route.role.value) if route.role is not None else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body:
        kwargs["json"] = BODIES[route.body]
    resp = await api.client.request(route.method, url_of(route) + "?colour=red", **kwargs)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "bad_query"
    assert error["field"] == "colour"
    assert "colour" in error["message"]


@pytest.mark.parametrize("route", GET_LISTS, ids=rid)
async def test_a_repeated_query_parameter_is_a_400(api: Api, route: Route) -> None:
    name = route.query[0].name
    value = route.query[0].enum[0] if route.query[0].enum else "x"
    resp = await api.client.get(
        f"{url_of(route)}?{name}={value}&{name}={value}", headers=api.token(route.role.value)
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == name


# --- every filter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # B1: its apartments' events (Judy, the visitor's B1-101) and its door (lobby)
        ("building=B1&type=access", ["visitor", "unknown", "judy"]),
        ("building=B1&type=alarm", ["held_open"]),  # at the lobby, before the fixture's events
        ("building=B2&type=access", ["bob"]),
        ("building=B2&credential_kind=remote", ["unlock"]),
        ("apartment=B1-101", ["visitor"]),
        ("door=gate&type=access", ["visitor", "judy"]),
        ("person=p-bob", ["bob"]),
        ("initiated_by=p-judy", ["judy"]),
        ("initiated_by=token:t-admin", ["unlock"]),
        ("credential_kind=remote", ["unlock"]),
        ("temp_key=t1", ["visitor"]),
        ("credential=c3", ["bob"]),
        ("action=remote_unlock", ["unlock"]),
        ("type=access&result=failed", ["unknown"]),
        ("reason=unknown_credential&door=lobby", ["unknown"]),
        ("building=B1&result=success&type=access", ["visitor", "judy"]),
        ("building=B9", []),  # no such building: nothing, like an unknown door
    ],
)
async def test_each_door_log_filter(
    api: Api, seqs: dict[str, int], query: str, expected: list[str]
) -> None:
    found = await events(api, query)
    unlock = [e["seq"] for e in await events(api, "action=remote_unlock")]
    by_seq = {v: k for k, v in seqs.items()} | dict.fromkeys(unlock, "unlock")
    assert [by_seq.get(e["seq"], e["action"]) for e in found] == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("reason=bad_luck", "reason"),
        ("credential_kind=password", "credential_kind"),
        ("result=maybe", "result"),
        ("since=2026-01-01", "since"),
        ("limit=1001", "limit"),
        ("cursor=bm9wZQ", "cursor"),  # not an events cursor (e1234): its schema pattern
    ],
)
async def test_a_bad_filter_value_is_a_4xx_naming_the_field(
    api: Api, query: str, field: str | None
) -> None:
    resp = await api.client.get(f"/api/v1/events?{query}", headers=api.token("viewer"))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["field"] == field
    assert "Traceback" not in body["error"]["message"]


async def test_the_temp_key_log_pages_with_a_cursor(api: Api) -> None:
    for _ in range(3):
        await present(api, "gate-in", "91234567")
    first = await api.client.get("/api/v1/events?temp_key=t1&limit=2", headers=api.token("viewer"))
    page = await first.json()
    assert len(page["items"]) == 2 and page["cursor"]
    rest = await events(api, f"temp_key=t1&limit=2&cursor={page['cursor']}")
    assert len(rest) == 1 and rest[0]["seq"] < page["items"][-1]["seq"]


# --- names and the site's time zone ---------------------------------------------------


async def test_events_carry_names_next_to_ids_in_site_time(api: Api, seqs: dict[str, int]) -> None:
    (judy,) = await events(api, "person=p-judy")
    assert judy["person"] == "p-judy" and judy["person_name"] == "Judy Z"
    assert judy["door"] == "gate" and judy["door_name"] == "Main gate"
    assert judy["apartment"] == "B1-203" and judy["apartment_name"] == "Apt 203"
    assert judy["initiated_by"] == "p-judy" and judy["initiated_by_name"] == "Judy Z"
    (visitor,) = await events(api, "temp_key=t1")
    assert visitor["person"] is None and visitor["temp_key_name"] == "Visitor Vera"
    assert visitor["initiated_by_name"] == "Visitor Vera"
    assert visitor["apartment_name"] == "Apt 101"
    (unlock,) = await events(api, "action=remote_unlock")
    assert unlock["actor"] == "token:t-admin" and unlock["initiated_by_name"] == "token:t-admin"
    assert unlock["door_name"] == "Plant room"
    for event in (judy, visitor, unlock):
        at = datetime.fromisoformat(event["at"])
        assert at.utcoffset() == at.astimezone(BERLIN).utcoffset()


async def test_audit_and_alarms_carry_names_in_site_time(api: Api, seqs: dict[str, int]) -> None:
    del seqs
    viewer = api.token("viewer")
    audit = await (await api.client.get("/api/v1/audit?action=door.unlock", headers=viewer)).json()
    (line,) = audit["items"]
    assert line["target"] == "door/plant" and line["door_name"] == "Plant room"
    assert line["target_name"] == "Plant room"
    # Found: the REST audit answered UTC while the CSV showed the site's zone.
    at = datetime.fromisoformat(line["at"])
    offset = at.utcoffset()
    assert offset == at.astimezone(BERLIN).utcoffset()
    assert offset is not None and offset.total_seconds() != 0  # Berlin is never UTC
    alarms = await (await api.client.get("/api/v1/alarms?kind=held_open", headers=viewer)).json()
    (alarm,) = alarms["items"]
    assert alarm["source_name"] == "Lobby" and alarm["door_name"] == "Lobby"
    assert datetime.fromisoformat(alarm["at"]).utcoffset() == datetime.now(BERLIN).utcoffset()
    assert alarms["cursor"] is None


async def test_alarm_filters_and_paging(api: Api) -> None:
    for door in ("gate", "plant"):
        await api.site.log.raise_alarm("forced_open", source=door, door=door)
    viewer = api.token("viewer")
    page = await (await api.client.get("/api/v1/alarms?limit=2", headers=viewer)).json()
    assert [a["kind"] for a in page["items"]] == ["forced_open", "forced_open"]
    rest = await (
        await api.client.get(f"/api/v1/alarms?limit=2&cursor={page['cursor']}", headers=viewer)
    ).json()
    assert [a["kind"] for a in rest["items"]] == ["held_open"] and rest["cursor"] is None
    resolve = await api.client.post(
        "/api/v1/alarms/1/resolve", json={"note": "closed"}, headers=api.token("installer")
    )
    assert (await resolve.json())["source_name"] == "Lobby"
    open_ = await (await api.client.get("/api/v1/alarms?open=true", headers=viewer)).json()
    assert {a["source"] for a in open_["items"]} == {"gate", "plant"}


# --- exports --------------------------------------------------------------------------


def read_csv(raw: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize("log", ["events", "audit", "alarms"])
async def test_every_log_exports_with_names_and_the_zone_in_the_header(
    api: Api, seqs: dict[str, int], log: str
) -> None:
    del seqs
    viewer = api.token("viewer")
    resp = await api.client.get(f"/api/v1/{log}/export?format=csv", headers=viewer)
    assert resp.status == 200
    assert f"doorkeep-demo-{log}-" in resp.headers["Content-Disposition"]
    rows = read_csv(await resp.read())
    assert rows and "Time (Europe/Berlin)" in rows[0]
    assert resp.headers["X-Doorkeep-Rows"] == str(len(rows))
    listed = await (await api.client.get(f"/api/v1/{log}?limit=1000", headers=viewer)).json()
    assert len(rows) == len(listed["items"])
    assert rows[0]["Time (Europe/Berlin)"] == listed["items"][0]["at"]
    xlsx = await api.client.get(f"/api/v1/{log}/export?format=xlsx", headers=viewer)
    sheet = openpyxl.load_workbook(io.BytesIO(await xlsx.read())).worksheets[0]
    assert sheet.cell(row=1, column=2).value == "Time (Europe/Berlin)"
    assert sheet.max_row == len(rows) + 1


async def test_the_event_export_shows_names_and_follows_the_filters(
    api: Api, seqs: dict[str, int]
) -> None:
    del seqs
    resp = await api.client.get(
        "/api/v1/events/export?format=csv&building=B1&type=access", headers=api.token("viewer")
    )
    rows = read_csv(await resp.read())
    # The unknown PIN was presented through REST: its operator is who initiated it.
    assert [r["Initiated by"] for r in rows] == ["Visitor Vera", "token:t-installer", "Judy Z"]
    assert [r["Door name"] for r in rows] == ["Main gate", "Lobby", "Main gate"]
    assert rows[2]["Apartment name"] == "Apt 203"


async def test_the_same_query_gives_the_same_xlsx_bytes(api: Api, seqs: dict[str, int]) -> None:
    del seqs
    url = "/api/v1/events/export?format=xlsx&door=gate"
    first = await (await api.client.get(url, headers=api.token("viewer"))).read()
    second = await (await api.client.get(url, headers=api.token("admin"))).read()
    assert first == second


async def test_an_unknown_export_format_is_a_400(api: Api) -> None:
    for log in ("events", "audit", "alarms"):
        resp = await api.client.get(f"/api/v1/{log}/export?format=pdf", headers=api.token("viewer"))
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "format"


# --- the hash chain -------------------------------------------------------------------


async def test_verify_reports_a_sound_chain_then_finds_a_tampered_row(
    api: Api, seqs: dict[str, int]
) -> None:
    viewer = api.token("viewer")
    report = await (await api.client.get("/api/v1/events/verify", headers=viewer)).json()
    assert report["ok"] is True and report["first_bad_seq"] is None
    assert report["checked"] >= len(seqs)
    # Someone with the SQLite file edits Bob's event to hide where he went.
    conn = sqlite3.connect(api.site.config.site.data_dir / "doorkeep.db")
    with conn:
        conn.execute("UPDATE events SET door = 'gate' WHERE seq = ?", (seqs["bob"],))
    conn.close()
    report = await (await api.client.get("/api/v1/events/verify", headers=viewer)).json()
    assert report == {
        "ok": False,
        "checked": seqs["bob"] - 1,
        "first_bad_seq": seqs["bob"],
        "anchor_seq": 0,
        "redacted": 0,
    }


# --- the CLI: the same exporter, the same rows, verify ------------------------------------


async def doorkeep(api: Api, *args: str) -> tuple[int, str, str]:
    """``doorkeep ARGS -c site.toml`` in a child process, beside the running site."""
    config = api.site.config.path
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli", *args, "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(
    ("log", "rest_query", "cli_args"),
    [
        ("events", "building=B1&type=access", ["--building", "B1", "--type", "access"]),
        ("events", "", []),
        ("audit", "action=door.unlock", ["--action", "door.unlock"]),
        ("alarms", "open=true", ["--open"]),
    ],
)
async def test_the_cli_and_rest_export_the_same_bytes(
    api: Api,
    seqs: dict[str, int],
    tmp_path: Path,
    fmt: str,
    log: str,
    rest_query: str,
    cli_args: list[str],
) -> None:
    del seqs
    # Up to now: the unlocked door relocks meanwhile, and that event is not the point.
    until = datetime.now(BERLIN).isoformat()
    resp = await api.client.get(
        f"/api/v1/{log}/export?format={fmt}&until={urllib.parse.quote(until)}&{rest_query}",
        headers=api.token("viewer"),
    )
    assert resp.status == 200
    rest = await resp.read()
    out = tmp_path / f"cli.{fmt}"
    args = (*cli_args, "--until", until, "--format", fmt, "-o", str(out))
    code, _, err = await doorkeep(api, log, *args)
    assert code == 0, err
    assert out.read_bytes() == rest


async def test_the_cli_table_shows_names_in_site_time(api: Api, seqs: dict[str, int]) -> None:
    del seqs
    code, out, err = await doorkeep(api, "events", "--building", "B1", "--format", "table")
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["Seq", "Time", "(Europe/Berlin)"]
    assert "Initiated by" in header and "Door name" in header
    assert any("Judy Z" in line and "Main gate" in line and "Apt 203" in line for line in lines)
    assert any("Visitor Vera" in line for line in lines)
    code, out, _ = await doorkeep(api, "events", "--temp-key", "t1")
    (visit,) = json.loads(out)
    assert code == 0 and visit["temp_key_name"] == "Visitor Vera"
    code, out, _ = await doorkeep(api, "audit", "--format", "table", "--action", "door.unlock")
    assert code == 0 and "Plant room" in out
    code, out, _ = await doorkeep(api, "alarms", "--format", "table", "--open")
    assert code == 0 and "Lobby" in out


async def test_the_cli_refuses_bad_filters(api: Api) -> None:
    code, _, err = await doorkeep(api, "events", "--reason", "bad_luck")
    assert code == 2 and "invalid choice" in err
    code, _, err = await doorkeep(api, "events", "--format", "xlsx")
    assert code == 1 and "-o FILE" in err


async def test_cli_verify_finds_the_row_an_editor_changed(api: Api, seqs: dict[str, int]) -> None:
    code, out, _ = await doorkeep(api, "events", "verify")
    assert code == 0 and "event log ok" in out
    conn = sqlite3.connect(api.site.config.site.data_dir / "doorkeep.db")
    with conn:  # hide that Judy came in: her event now says she was refused
        conn.execute("UPDATE events SET result = 'failed' WHERE seq = ?", (seqs["judy"],))
    conn.close()
    code, _, err = await doorkeep(api, "events", "verify")
    assert code == 1 and f"BROKEN at seq {seqs['judy']}" in err
    code, out, _ = await doorkeep(api, "events", "verify", "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == seqs["judy"]


async def test_the_live_stream_carries_names_and_site_time(api: Api) -> None:
    resp = await api.client.get("/api/v1/stream", headers=api.token("viewer"))
    assert await resp.content.readline() == b": connected\n"
    await resp.content.readline()
    await present(api, "gate-in", "4711")
    while True:
        topic = (await resp.content.readline()).decode().strip()
        data = json.loads((await resp.content.readline()).decode().strip().removeprefix("data: "))
        await resp.content.readline()
        if topic == "event: event" and data["type"] == "access":
            break
    resp.close()
    assert data["person_name"] == "Judy Z" and data["door_name"] == "Main gate"
    assert data["initiated_by_name"] == "Judy Z"
    assert datetime.fromisoformat(data["at"]).utcoffset() == datetime.now(BERLIN).utcoffset()


@pytest.mark.parametrize(
    "value",
    ["' OR 1=1 --", "x" * 5000, "%00nul", "nul\x00byte", "🚪", "B1-203'); DROP TABLE events; --"],
)
async def test_hostile_filter_values_find_nothing_and_break_nothing(
    api: Api, seqs: dict[str, int], value: str
) -> None:
    viewer = api.token("viewer")
    names = ("apartment", "initiated_by", "temp_key", "credential", "action", "door", "building")
    for name in names:
        resp = await api.client.get("/api/v1/events", params={name: value}, headers=viewer)
        assert resp.status == 200
        assert (await resp.json())["items"] == []
    assert len(await events(api, "type=access")) == len(seqs)
