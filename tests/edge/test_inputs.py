"""Site inputs (``[[input]]``: fire panel, lockdown switch, tamper loop, alarm contact),
end to end over the pty-simulated RS485 bus.

The simulated board's discrete inputs are set the way a wire would set them; the relay
states read back from the simulator are what a door would do. Nothing in the path is
mocked: real Site, real store, real Modbus RTU frames, a real Mosquitto for MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from drivers.catalogue import BOARD_TYPES
from edge.auth import AuthStore
from edge.config import (
    InputRef,
    InputSection,
    SiteConfigError,
    load_site_config,
    parse_site_config,
    write_site_toml,
)
from edge.hwparts import InputDebounce
from edge.service import Site
from edge.web.app import make_app
from rs485.sim import SimBoard
from tests.edge.conftest import POLICY, SITE_TOML
from tests.edge.sites import open_site, until

from .mosquitto import Mosquitto
from .test_mqtt import BASE, bridge, field, watch, watch_one

DOORS_ADDRESS = 3
GATE_RELAY, LOBBY_RELAY = 2, 3
FIRE, LOCKDOWN, TAMPER, ALARM = 4, 5, 6, 7  # inputs of the board "doors"

INPUTS_TOML = (
    SITE_TOML
    + """
[[input]]
id = "fire-panel"
input = "doors:in4"
function = "emergency"

[[input]]
id = "lockdown-key"
input = "doors:in5"
function = "lockdown"
active = "closed"

[[input]]
id = "cabinet"
input = "doors:in6"
function = "tamper"

[[input]]
id = "intruder"
input = "doors:in7"
function = "alarm"
"""
)


def board(site: Site) -> SimBoard:
    return site.hw.sims["rs485-1"].board(DOORS_ADDRESS)


def relay(site: Site, channel: int) -> bool:
    return board(site).coils[channel - 1]


def input_state(site: Site, input_id: str) -> dict[str, Any]:
    return next(i for i in site.hardware()["inputs"] if i["id"] == input_id)


async def read(site: Site, input_id: str, active: bool) -> None:
    """Wait until the site has read (and debounced) ``input_id`` as ``active``."""
    await until(lambda: input_state(site, input_id)["active"] is active)


async def alarms_of(site: Site, kind: str, n: int = 1) -> list[dict[str, Any]]:
    """The alarms of ``kind``, once there are ``n`` of them (they are written after the
    relays move, so a test that saw the relay may have to wait for the record)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        found = [a for a in await site.alarms() if a["kind"] == kind]
        if len(found) >= n or loop.time() > deadline:
            return found
        await asyncio.sleep(0.02)


async def logged(site: Site, action: str) -> list[dict[str, Any]]:
    """The events of ``action``, once there is one (the level is read before it is logged)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        found = [e for e in (await site.events())[0] if e["action"] == action]
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.02)


def ready(site: Site) -> bool:
    return all(i["active"] is not None for i in site.hardware()["inputs"])


@contextlib.asynccontextmanager
async def running(
    directory: Path, toml: str = INPUTS_TOML, policy: dict[str, Any] | None = None
) -> AsyncIterator[Site]:
    async with open_site(directory, toml, POLICY if policy is None else policy) as site:
        await until(lambda: ready(site))  # the first polls set the inputs' baseline
        yield site


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with running(tmp_path / "site") as s:
        yield s


@pytest.fixture
async def api(site: Site, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    auth = AuthStore.open(tmp_path / "auth.db")
    token = auth.create_token("admin", "test")
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(site, auth, tls=False)))
    await client.start_server()
    client.session.headers["Authorization"] = f"Bearer {token}"
    yield client
    await client.close()
    auth.close()


# --- site.toml ------------------------------------------------------------------------------


def test_input_tables_are_parsed_and_written_back(tmp_path: Path) -> None:
    config = parse_site_config(INPUTS_TOML, tmp_path / "site.toml")
    fire = next(i for i in config.inputs if i.id == "fire-panel")
    assert isinstance(fire, InputSection)
    assert str(fire.input) == "doors:in4" and fire.function == "emergency"
    assert fire.active == "closed"  # the default
    written = write_site_toml(tmp_path / "site.toml", dict(config.raw))
    assert written.inputs == config.inputs
    assert "[[input]]" in (tmp_path / "site.toml").read_text()


def test_the_example_site_wires_a_fire_panel_and_a_tamper_loop() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "site.example.toml"
    config = load_site_config(example, board_types=BOARD_TYPES)
    assert [(i.id, i.function, i.active) for i in config.inputs] == [
        ("fire-panel", "emergency", "closed"),
        ("gatehouse-tamper", "tamper", "open"),
    ]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('function = "sprinkler"', "key 'function': must be one of emergency, lockdown"),
        ('active = "high"', "key 'active': must be one of closed, open"),
        ('input = "doors:4"', "key 'input': must be \"board:inN\""),
        ('input = "nowhere:in1"', "key 'input': board 'nowhere' is not any [[board]]"),
        ('input = "doors:in9"', "input 9 is out of range"),
        ('input = "doors:in1"', 'doors:in1 is already used by [[door]] "gate" contact'),
        ('colour = "red"', "key 'colour': is not a known key"),
    ],
)
def test_a_bad_input_table_is_refused_naming_file_table_and_key(
    tmp_path: Path, table: str, problem: str
) -> None:
    fields = {"id": '"fire-panel"', "input": '"doors:in4"', "function": '"emergency"'}
    key, value = table.split(" = ", 1)
    fields[key] = value
    text = SITE_TOML + "\n[[input]]\n" + "\n".join(f"{k} = {v}" for k, v in fields.items())
    with pytest.raises(SiteConfigError) as caught:
        parse_site_config(text, tmp_path / "site.toml", board_types=BOARD_TYPES)
    message = str(caught.value)
    assert f'{tmp_path / "site.toml"}: [[input]] "fire-panel"' in message
    assert problem in message


def test_an_input_table_without_function_says_it_is_missing(tmp_path: Path) -> None:
    text = SITE_TOML + '\n[[input]]\nid = "x"\ninput = "doors:in4"\n'
    with pytest.raises(SiteConfigError, match=r"\[\[input\]\] \"x\" key 'function': is missing"):
        parse_site_config(text, tmp_path / "site.toml")


# --- the debounce ---------------------------------------------------------------------------


def test_a_level_counts_only_once_it_was_read_on_consecutive_polls() -> None:
    debounce = InputDebounce(polls=2)
    assert debounce.read(False) is None  # the first read is the baseline, once confirmed
    assert debounce.read(False) is False
    assert debounce.read(True) is None  # one read of a glitch
    assert debounce.read(False) is None  # ... gone again: nothing happened
    assert debounce.read(False) is None
    assert debounce.read(True) is None
    assert debounce.read(True) is True  # confirmed: the edge
    assert debounce.read(True) is None  # no new edge while it stays
    assert debounce.level is True


# --- emergency ------------------------------------------------------------------------------


async def test_fire_input_unlocks_the_emergency_group_until_an_operator_clears(
    site: Site, api: TestClient[Any, Any], tmp_path: Path
) -> None:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    async with (
        Mosquitto(directory) as broker,
        watch(broker, f"{BASE}/#") as mqtt,
        bridge(site, broker),
    ):
        await mqtt.next(f"{BASE}/status", lambda m: m.payload == "online")
        board(site).set_input(FIRE, True)
        await until(lambda: relay(site, GATE_RELAY) and relay(site, LOBBY_RELAY))
        # the door states the input caused, then its alarm
        state = await mqtt.next(f"{BASE}/door/gate/state", field("state", "emergency"))
        assert state.json()["relay_on"] is True
        alarm = (await mqtt.next(f"{BASE}/alarm", field("kind", "emergency"))).json()
        assert alarm["source"] == "fire-panel"
        assert alarm["detail"]["function"] == "emergency" and alarm["detail"]["unlocked"]
        retained = await watch_one(broker, f"{BASE}/door/lobby/state")  # a new subscriber
        assert retained.retain and retained.json()["state"] == "emergency"

    doors = await (await api.get("/api/v1/doors")).json()
    assert {d["id"]: d["state"] for d in doors["items"]} == {
        "gate": "emergency",
        "lobby": "emergency",
    }
    emergency = doors["emergency"]
    assert emergency["unlocked"] == ["gate", "lobby"] and emergency["lockdown"] is False
    fire = next(i for i in emergency["inputs"] if i["id"] == "fire-panel")
    assert fire["active"] is True and fire["latched"] is True

    # the event log: the cause (the input's emergency event), then the doors it opened
    events, _ = await site.events()
    in_order = sorted(events, key=lambda e: e["seq"])
    cause = next(e for e in in_order if e["type"] == "emergency")
    assert cause["action"] == "unlock" and cause["detail"]["input"] == "fire-panel"
    assert cause["detail"]["actor"] == "input:fire-panel"
    opened = [e for e in in_order if e["type"] == "door" and e["action"] == "emergency"]
    assert {e["door"] for e in opened} == {"gate", "lobby"}
    assert all(e["seq"] > cause["seq"] and e["at"] >= cause["at"] for e in opened)
    assert [a["kind"] for a in await site.alarms(open_only=True)] == ["emergency"]

    # the fire panel resets: the doors stay open, only an operator ends the emergency
    board(site).set_input(FIRE, False)
    await read(site, "fire-panel", False)
    assert relay(site, GATE_RELAY) and relay(site, LOBBY_RELAY)
    assert site.door("gate")["state"] == "emergency"
    doors = await (await api.get("/api/v1/doors")).json()
    fire = next(i for i in doors["emergency"]["inputs"] if i["id"] == "fire-panel")
    assert fire["active"] is False and fire["latched"] is True
    assert await logged(site, "input_inactive")

    response = await api.post("/api/v1/emergency", json={"action": "clear"})
    assert response.status == 200, await response.text()
    await until(lambda: not relay(site, GATE_RELAY) and not relay(site, LOBBY_RELAY))
    assert site.door("gate")["state"] == "locked"
    doors = await (await api.get("/api/v1/doors")).json()
    assert doors["emergency"]["unlocked"] == []
    assert not any(i["latched"] for i in doors["emergency"]["inputs"])
    audit, _ = await site.audit_log()
    assert "emergency.clear" in {a["action"] for a in audit}


async def test_fire_input_again_after_a_clear_unlocks_again(site: Site) -> None:
    board(site).set_input(FIRE, True)
    await until(lambda: relay(site, GATE_RELAY))
    await site.emergency("clear", actor="admin:test")
    assert not relay(site, GATE_RELAY)
    board(site).set_input(FIRE, False)
    await read(site, "fire-panel", False)
    assert not relay(site, GATE_RELAY)  # becoming inactive does nothing
    board(site).set_input(FIRE, True)
    await until(lambda: relay(site, GATE_RELAY) and relay(site, LOBBY_RELAY))
    assert len(await alarms_of(site, "emergency", 2)) == 2


async def test_a_flapping_fire_input_keeps_the_doors_open_and_raises_one_alarm(
    site: Site,
) -> None:
    for _ in range(3):
        board(site).set_input(FIRE, True)
        await read(site, "fire-panel", True)
        board(site).set_input(FIRE, False)
        await read(site, "fire-panel", False)
    await until(lambda: relay(site, GATE_RELAY) and relay(site, LOBBY_RELAY))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:  # the level is read before its event is written: wait for the last one
        events, _ = await site.events(type="system")
        actions = [e["action"] for e in events]
        if actions.count("input_inactive") >= 3 or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert actions.count("input_active") == 2 and actions.count("input_inactive") == 3
    assert len(await alarms_of(site, "emergency")) == 1
    causes, _ = await site.events(type="emergency")
    assert len(causes) == 1  # the doors were already open: nothing new to cause


async def test_without_auto_unlock_the_fire_input_only_raises_the_alarm(tmp_path: Path) -> None:
    policy = copy.deepcopy(POLICY)
    policy["settings"]["emergency"]["auto_unlock_on_alarm"] = False
    async with running(tmp_path / "site", policy=policy) as site:
        board(site).set_input(FIRE, True)
        await until(lambda: input_state(site, "fire-panel")["latched"])
        alarms = await alarms_of(site, "emergency")
        assert len(alarms) == 1 and alarms[0]["source"] == "fire-panel"
        assert alarms[0]["detail"]["unlocked"] is False
        assert "auto_unlock_on_alarm" in alarms[0]["detail"]["why"]
        assert not relay(site, GATE_RELAY) and not relay(site, LOBBY_RELAY)
        assert site.door("gate")["state"] == "locked"
        assert site.door_control.emergency_state()["unlocked"] == []


async def test_lockdown_input_locks_down_until_an_operator_clears(site: Site) -> None:
    board(site).set_input(LOCKDOWN, True)
    await until(lambda: {d["state"] for d in site.doors()} == {"lockdown"})
    resident = await site.present("gate-in", "pin", "2580")
    assert resident["granted"] is False and resident["reason"] == "lockdown"
    assert not relay(site, GATE_RELAY)
    assert [a["kind"] for a in await alarms_of(site, "lockdown")] == ["lockdown"]
    assert {a["kind"] for a in await site.alarms()} == {"lockdown"}
    events, _ = await site.events(type="emergency")
    assert events[0]["action"] == "lockdown" and events[0]["detail"]["input"] == "lockdown-key"
    board(site).set_input(LOCKDOWN, False)
    await read(site, "lockdown-key", False)
    assert site.emergency_state()["lockdown"] is True  # still: the key turning back is not enough
    await site.emergency("clear", actor="admin:test")
    assert site.door("gate")["state"] == "locked"
    assert (await site.present("gate-in", "pin", "2580"))["granted"] is True


async def test_tamper_and_alarm_inputs_raise_alarms_and_move_no_relay(site: Site) -> None:
    board(site).set_input(TAMPER, True)
    board(site).set_input(ALARM, True)
    await alarms_of(site, "tamper")
    await alarms_of(site, "alarm")
    alarms = {a["kind"]: a for a in await site.alarms(open_only=True)}
    assert set(alarms) == {"tamper", "alarm"}
    assert alarms["tamper"]["source"] == "cabinet" and alarms["alarm"]["source"] == "intruder"
    assert alarms["tamper"]["detail"]["terminal"] == "doors:in6"
    assert not any(board(site).coils)
    assert {d["state"] for d in site.doors()} == {"locked"}
    events, _ = await site.events(type="alarm")
    assert {e["action"] for e in events} == {"tamper", "alarm"}


async def test_an_open_active_input_fires_when_its_loop_opens(tmp_path: Path) -> None:
    # a normally-closed tamper loop: closed (on) is quiet; open, or a cut wire, is active
    toml = SITE_TOML + (
        '\n[[input]]\nid = "loop"\ninput = "doors:in6"\nfunction = "tamper"\nactive = "open"\n'
    )
    async with running(tmp_path / "site", toml) as site:
        # the loop reads open at start (nothing closes it yet): that is a tamper
        await until(lambda: input_state(site, "loop")["active"] is True)
        board(site).set_input(TAMPER, True)  # the loop closes: quiet
        await read(site, "loop", False)
        assert len(await alarms_of(site, "tamper")) == 1
        await site.emergency("clear", actor="admin:test")  # the installer fixed the loop
        board(site).set_input(TAMPER, False)  # cut
        await read(site, "loop", True)
        alarms = await alarms_of(site, "tamper", 2)
        assert len(alarms) == 2 and {a["source"] for a in alarms} == {"loop"}


def test_a_latching_input_toggles_on_each_press_and_ignores_the_release() -> None:
    latch = InputDebounce.of(InputSection("b", InputRef("doors", 1), "alarm", mode="latching"))
    reads = [False, False, True, True, False, False, True, True, False, False]
    #         baseline      press: on   release     press: off  release
    assert [latch.read(r) for r in reads] == [
        None, False, None, True, None, None, None, False, None, None,
    ]  # fmt: skip
    assert latch.level is False
    glitch = InputDebounce.of(InputSection("g", InputRef("doors", 1), "alarm", mode="latching"))
    assert [glitch.read(r) for r in (False, False, True, False, False)] == [None, False] + [
        None
    ] * 3  # one noisy read is no press


async def test_a_latching_push_button_holds_its_state_until_pressed_again(
    tmp_path: Path,
) -> None:
    # the reference's "input (Latching)": a momentary button used as an on/off switch
    toml = SITE_TOML + (
        '\n[[input]]\nid = "panic"\ninput = "doors:in7"\nfunction = "alarm"\nmode = "latching"\n'
    )
    async with running(tmp_path / "site", toml) as site:
        assert input_state(site, "panic")["active"] is False
        board(site).set_input(ALARM, True)  # pressed ...
        await read(site, "panic", True)
        board(site).set_input(ALARM, False)  # ... and let go: it stays active
        await asyncio.sleep(0.5)
        assert input_state(site, "panic")["active"] is True
        assert len(await alarms_of(site, "alarm")) == 1
        assert await logged(site, "input_inactive") == []
        board(site).set_input(ALARM, True)  # pressed again: off
        await read(site, "panic", False)
        assert len(await logged(site, "input_inactive")) == 1
        assert len(await alarms_of(site, "alarm")) == 1


async def test_a_momentary_input_follows_its_contact(tmp_path: Path) -> None:
    toml = SITE_TOML + '\n[[input]]\nid = "panic"\ninput = "doors:in7"\nfunction = "alarm"\n'
    async with running(tmp_path / "site", toml) as site:
        board(site).set_input(ALARM, True)
        await read(site, "panic", True)
        board(site).set_input(ALARM, False)
        await read(site, "panic", False)  # let go: inactive again
        assert len(await logged(site, "input_inactive")) == 1


def test_an_input_mode_other_than_momentary_or_latching_is_refused(tmp_path: Path) -> None:
    toml = SITE_TOML + (
        '\n[[input]]\nid = "p"\ninput = "doors:in7"\nfunction = "alarm"\nmode = "toggle"\n'
    )
    with pytest.raises(SiteConfigError, match="'mode': must be one of momentary, latching"):
        parse_site_config(toml, tmp_path / "site.toml")


async def test_hardware_view_lists_the_inputs(site: Site) -> None:
    inputs = {i["id"]: i for i in site.hardware()["inputs"]}
    assert inputs["fire-panel"] == {
        "id": "fire-panel",
        "input": "doors:in4",
        "function": "emergency",
        "active_when": "closed",
        "active": False,
        "latched": False,
    }


async def test_the_emergency_survives_a_restart(tmp_path: Path) -> None:
    async with running(tmp_path / "site") as site:
        board(site).set_input(FIRE, True)
        await until(lambda: relay(site, GATE_RELAY))
        await until(lambda: bool(site.store.get_state("emergency", {}).get("inputs")))
    async with running(tmp_path / "site", policy=POLICY) as site:
        # a fresh simulator: the fire input reads inactive, yet the doors stay open
        await until(lambda: relay(site, GATE_RELAY) and relay(site, LOBBY_RELAY))
        assert input_state(site, "fire-panel")["latched"] is True


# --- with the store failing -----------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (the test command runs as root)."""
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path: Path) -> None:
    """Write until the file system says it is full."""
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


async def test_fire_input_opens_the_doors_with_the_disk_full(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        toml = INPUTS_TOML.replace('data_dir = "data"', f'data_dir = "{disk / "data"}"')
        async with running(tmp_path / "site", toml) as site:
            await asyncio.to_thread(fill, disk)
            assert os.statvfs(disk).f_bavail == 0
            board(site).set_input(FIRE, True)
            await until(lambda: relay(site, GATE_RELAY) and relay(site, LOBBY_RELAY))
            assert site.door("gate")["state"] == "emergency"
            assert site.emergency_state()["unlocked"] == ["gate", "lobby"]
            assert input_state(site, "fire-panel")["latched"] is True
            (disk / "filler").unlink()  # room again, so the site can close cleanly


# --- finding 2: the cause is logged before its effects --------------------------------------


async def test_the_access_event_comes_before_the_door_events_it_caused(site: Site) -> None:
    assert (await site.present("gate-in", "pin", "2580"))["granted"]
    await until(lambda: site.door("gate")["state"] == "locked", timeout=3)
    events, _ = await site.events(door="gate")
    in_order = sorted(events, key=lambda e: e["seq"])
    assert [e["action"] for e in in_order][:2] == ["presentation", "unlocked"]
    access, unlocked = in_order[0], in_order[1]
    assert unlocked["seq"] == access["seq"] + 1
    assert access["at"] <= unlocked["at"]  # same zone, same format: text order is time order
    assert [e["at"] for e in in_order] == sorted(e["at"] for e in in_order)


async def test_the_hardware_editor_reads_and_writes_input_tables(
    site: Site, api: TestClient[Any, Any]
) -> None:
    hardware = await (await api.get("/api/v1/hardware")).json()
    assert [i["id"] for i in hardware["config"]["input"]] == [
        "fire-panel",
        "lockdown-key",
        "cabinet",
        "intruder",
    ]
    assert {i["id"] for i in hardware["inputs"]} == {i["id"] for i in hardware["config"]["input"]}
    tables = [{"id": "smoke", "input": "doors:in8", "function": "emergency", "active": "open"}]
    response = await api.put("/api/v1/hardware", json={"input": tables})
    assert response.status == 200, await response.text()
    written = parse_site_config(site.config.path.read_text(), site.config.path)
    assert [(i.id, str(i.input), i.active) for i in written.inputs] == [
        ("smoke", "doors:in8", "open")
    ]
    response = await api.put(
        "/api/v1/hardware", json={"input": [{**tables[0], "function": "sprinkler"}]}
    )
    assert response.status == 422  # the config_invalid answer, naming table and key
    assert "[[input]] \"smoke\" key 'function'" in (await response.json())["error"]["message"]
