"""A whole site over the pty-simulated RS485 bus: what an installer would see at a door.

Every relay command and input read here crosses a real pseudo-terminal as Modbus RTU
frames to a pymodbus server; nothing in the path is mocked.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.auth import AuthStore
from edge.service import Site
from edge.web.app import make_app

from .conftest import Feed, is_event, until

GATE_RELAY = 2  # doors:2 -> coil index 1 of the board at address 3
DOORS_ADDRESS = 3


def coil(site: Site, address: int, channel: int) -> bool:
    return site.hw.sims["rs485-1"].board(address).coils[channel - 1]


@pytest.fixture
async def api(site: Site, site_dir):
    auth = AuthStore.open(site_dir / "data" / "auth.db")
    token = auth.create_token("installer", "test")
    client = TestClient(TestServer(make_app(site, auth, tls=False)))
    await client.start_server()
    client.session.headers["Authorization"] = f"Bearer {token}"
    yield client
    await client.close()
    auth.close()


async def test_pin_through_rest_pulses_the_right_relay_on_the_right_board_and_relocks(site, api):
    response = await api.post(
        "/api/v1/presentations", json={"reader": "gate-in", "kind": "pin", "value": "2580"}
    )
    body = await response.json()
    assert response.status == 200, body
    assert body["granted"] is True and body["door"] == "gate" and body["person"] == "p-ann"
    assert coil(site, DOORS_ADDRESS, GATE_RELAY)
    assert not coil(site, DOORS_ADDRESS, 1) and not coil(site, 1, GATE_RELAY)  # nothing else moved
    # the board's own flash-on timer ends the 700 ms pulse: no command from us needed
    await until(lambda: not coil(site, DOORS_ADDRESS, GATE_RELAY), timeout=3)
    await until(lambda: site.door("gate")["state"] == "locked", timeout=3)
    events, _ = await site.events(type="access")
    assert events[0]["result"] == "success" and events[0]["door"] == "gate"
    assert "2580" not in str(events)


async def test_denied_pin_moves_no_relay_and_is_logged_with_its_reason(site, api):
    response = await api.post(
        "/api/v1/presentations", json={"reader": "gate-in", "kind": "pin", "value": "1111"}
    )
    body = await response.json()
    assert body["granted"] is False and body["reason"] == "unknown_credential"
    assert not any(site.hw.sims["rs485-1"].board(DOORS_ADDRESS).coils)
    events, _ = await site.events(type="access", result="failed")
    assert events[0]["reason"] == "unknown_credential"


async def test_malformed_presentation_is_a_clear_400(api):
    response = await api.post(
        "/api/v1/presentations", json={"reader": "gate-in", "kind": "password", "value": "x"}
    )
    assert response.status == 400
    assert "kind" in (await response.json())["error"]["message"]


async def test_contact_input_gives_door_opened_and_closed_events(site: Site, feed: Feed):
    await site.present("gate-in", "pin", "2580")
    board = site.hw.sims["rs485-1"].board(DOORS_ADDRESS)
    board.set_input(1, True)
    await feed.next(is_event("opened", door="gate"))
    board.set_input(1, False)
    await feed.next(is_event("closed", door="gate"))
    alarms = await site.alarms()
    assert not [a for a in alarms if a["kind"] == "forced_open"]


async def test_contact_opening_without_grant_raises_forced_open(site: Site, feed: Feed):
    site.hw.sims["rs485-1"].board(DOORS_ADDRESS).set_input(1, True)
    message = await feed.next(
        lambda m: m["topic"] == "alarm" and m["data"]["kind"] == "forced_open"
    )
    assert message["data"]["source"] == "gate"
    assert site.door("gate")["alarm"] == "forced"


async def test_exit_button_then_opening_is_not_forced(site: Site, feed: Feed):
    board = site.hw.sims["rs485-1"].board(DOORS_ADDRESS)
    board.set_input(2, True)  # request to exit
    await until(lambda: coil(site, DOORS_ADDRESS, GATE_RELAY))  # REX releases the lock
    board.set_input(2, False)
    board.set_input(1, True)
    await feed.next(is_event("opened", door="gate"))
    assert not [a for a in await site.alarms() if a["kind"] == "forced_open"]


async def test_door_held_open_warns_then_alarms(site: Site, feed: Feed):
    await site.present("gate-in", "pin", "2580")
    site.hw.sims["rs485-1"].board(DOORS_ADDRESS).set_input(1, True)
    warning = await feed.next(
        lambda m: m["topic"] == "alarm" and m["data"]["kind"] == "held_open_warning"
    )
    alarm = await feed.next(lambda m: m["topic"] == "alarm" and m["data"]["kind"] == "held_open")
    assert warning["data"]["source"] == alarm["data"]["source"] == "gate"


async def test_emergency_group_unlock_holds_relays_until_cleared(site: Site):
    state = await site.emergency("unlock", actor="admin:test")
    assert state["unlocked"] == ["gate", "lobby"]
    assert coil(site, DOORS_ADDRESS, 2) and coil(site, DOORS_ADDRESS, 3)
    assert site.door("gate")["state"] == "emergency"
    assert [a["kind"] for a in await site.alarms()] == ["emergency"]
    await site.emergency("lock", actor="admin:test")
    assert not coil(site, DOORS_ADDRESS, 2) and not coil(site, DOORS_ADDRESS, 3)
    audit, _ = await site.audit_log()
    assert {"emergency.unlock", "emergency.lock"} <= {a["action"] for a in audit}


async def test_lockdown_refuses_residents_and_lets_staff_and_operators_through(site: Site):
    await site.emergency("lockdown", actor="admin:test")
    resident = await site.present("gate-in", "pin", "2580")
    assert resident["granted"] is False and resident["reason"] == "lockdown"
    assert not coil(site, DOORS_ADDRESS, GATE_RELAY)
    staff = await site.present("gate-in", "rf_card", "00C0FFEE")
    assert staff["granted"] is True
    await until(lambda: not coil(site, DOORS_ADDRESS, GATE_RELAY), timeout=3)
    await site.unlock("lobby", 2, actor="admin:test")
    assert coil(site, DOORS_ADDRESS, 3)
    await site.emergency("clear", actor="admin:test")
    assert (await site.present("lobby-in", "pin", "2580"))["granted"]


async def test_emergency_records_list_every_door_they_touched(site: Site):
    """A lockdown locks every door, so its record names every door (not the unlock group)."""
    doors = sorted(d["id"] for d in site.doors())
    doc = site.policy_document()
    doc["settings"]["emergency"]["doors"] = ["gate"]  # a group smaller than the site
    await site.apply_policy(doc, actor="admin:test")
    assert doors == ["gate", "lobby"]
    await site.emergency("unlock", actor="admin:test")
    await site.emergency("lockdown", actor="admin:test")
    await site.emergency("clear", actor="admin:test")
    events, _ = await site.events(type="emergency")
    touched = {e["action"]: e["detail"]["doors"] for e in events}
    assert touched == {"unlock": ["gate"], "lockdown": doors, "clear": doors}
    audit, _ = await site.audit_log()
    assert [a["detail"]["doors"] for a in audit if a["action"] == "emergency.lockdown"] == [doors]


async def test_board_that_stops_answering_gives_offline_then_recovers_by_itself(
    site: Site, feed: Feed
):
    sim_board = site.hw.sims["rs485-1"].board(DOORS_ADDRESS)
    sim_board.offline = True
    result = await site.present("gate-in", "pin", "2580")
    assert result["granted"] is False and result["result"] == "offline"
    events, _ = await site.events(type="access")
    assert events[0]["result"] == "offline"
    await feed.next(lambda m: m["topic"] == "alarm" and m["data"]["kind"] == "board_offline")
    alarms = [a for a in await site.alarms() if a["kind"] == "board_offline"]
    assert len(alarms) == 1 and alarms[0]["source"] == "doors"
    assert site.door("gate")["board_online"] is False
    sim_board.offline = False
    await feed.next(is_event("board_online"), timeout=5)  # the input poll finds it again
    assert site.door("gate")["board_online"] is True
    assert (await site.present("lobby-in", "pin", "2580"))["result"] == "success"
    assert len([a for a in await site.alarms() if a["kind"] == "board_offline"]) == 1  # once


async def test_garbled_frame_is_retried_and_never_misapplied(site: Site):
    sim_board = site.hw.sims["rs485-1"].board(DOORS_ADDRESS)
    sim_board.garble_next(1)
    result = await site.present("gate-in", "pin", "2580")
    assert result["result"] == "success"
    assert sim_board.coils[GATE_RELAY - 1] and sum(sim_board.coils) == 1
    stats = site.hardware()["buses"][0]["boards"][str(DOORS_ADDRESS)]
    assert stats["crc_errors"] >= 1


async def test_remote_unlock_is_logged_with_the_operator(site: Site):
    await site.unlock("gate", 2, actor="admin:alice")
    assert coil(site, DOORS_ADDRESS, GATE_RELAY)
    events, _ = await site.events(type="door", door="gate")
    remote = [e for e in events if e["action"] == "remote_unlock"]
    assert remote and remote[0]["detail"]["actor"] == "admin:alice"


async def test_relay_test_pulses_the_named_channel(site: Site):
    result = await site.relay_test("spare", 5, ms=300, actor="installer:bob")
    assert result["ok"] and coil(site, 1, 5)
    await until(lambda: not coil(site, 1, 5), timeout=2)


async def test_hold_open_schedule_unlocks_and_relocks_the_door(site: Site):
    policy = site.policy_document()
    policy["hold_open"] = [
        {
            "door": "gate",
            "schedule": {"repeat": "weekly", "days": ["mon"], "start": "08:00", "end": "09:00"},
        }
    ]
    await site.apply_policy(policy, actor="admin:test")
    monday_morning = datetime.fromisoformat("2026-11-23T08:30:00+01:00")
    assert await site.door_control.hold_open_tick(monday_morning) == {"gate"}
    assert site.door("gate")["state"] == "held_open" and coil(site, DOORS_ADDRESS, GATE_RELAY)
    assert await site.door_control.hold_open_tick(monday_morning + timedelta(hours=1)) == set()
    assert site.door("gate")["state"] == "locked" and not coil(site, DOORS_ADDRESS, GATE_RELAY)


async def test_relock_after_a_board_timed_pulse_puts_no_extra_command_on_the_bus(site: Site):
    board = site.hw.sims["rs485-1"].board(DOORS_ADDRESS)
    await site.present("gate-in", "pin", "2580")
    await until(lambda: site.door("gate")["state"] == "locked", timeout=3)
    writes = [pdu for pdu in board.requests if pdu[0] in (0x05, 0x0F)]  # write coil(s)
    assert len(writes) == 1 and writes[0][1:3] == bytes([0x02, GATE_RELAY - 1])  # one flash-on
    assert not coil(site, DOORS_ADDRESS, GATE_RELAY)


async def test_the_access_event_is_logged_before_the_door_events_it_caused(site: Site):
    assert (await site.present("gate-in", "pin", "2580"))["granted"]
    events, _ = await site.events(door="gate")
    in_order = [e["action"] for e in sorted(events, key=lambda e: e["seq"])]
    assert in_order[:2] == ["presentation", "unlocked"]


async def test_hardware_commands_return_what_they_did(site: Site):
    outcome = await site.hw.operator_unlock("gate", 2)
    assert outcome.confirmed and outcome.commanded
    assert [n.action for n in outcome.notes] == ["unlocked"]
    assert {t.get_name() for t in asyncio.all_tasks()} >= {
        "door-ticker",
        "poll-doors",
    }
