"""The MQTT bridge against a real Mosquitto broker and a whole site on the simulated bus.

Every message here crosses a real broker on a loopback port; the site is the one of
tests/edge/conftest.py plus one reader of type ``mqtt``, "gate-mqtt", on the gate (PIN 2580
opens "gate"; the gate's contact is input 1 of the board at address 3). Only ``mqtt``
readers take MQTT input: "gate-in" is a ``sim`` reader. Nothing in the path is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edge.config import MqttSection
from edge.mqtt import MqttBridge, _bridge
from edge.mqtt.discovery import EVENT_TYPES
from edge.service import Site

from .conftest import POLICY, SITE_TOML, until
from .mosquitto import Mosquitto
from .sites import open_site

BASE = "doorkeep/test"
STATUS = f"{BASE}/status"
GATE_STATE = f"{BASE}/door/gate/state"
GATE_EVENT = f"{BASE}/door/gate/event"
GATE_SET = f"{BASE}/door/gate/set"
GATE_IN = f"{BASE}/reader/gate-mqtt/presentation"
SIM_GATE_IN = f"{BASE}/reader/gate-in/presentation"  # a ``sim`` reader: not for MQTT
DOORS_ADDRESS, GATE_RELAY = 3, 2
WAIT_S = 5.0


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bridge, "BACKOFF_BASE_S", 0.05)
    monkeypatch.setattr(_bridge, "BACKOFF_CAP_S", 0.3)


MQTT_READER = """
[[reader]]
id = "gate-mqtt"
door = "gate"
type = "mqtt"
"""


@pytest.fixture
async def site(site_dir: Path) -> AsyncIterator[Site]:
    async with open_site(site_dir, SITE_TOML + MQTT_READER, POLICY) as running:
        await until(lambda: "doors" in running.hw._last_inputs)
        yield running


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    async with Mosquitto(directory, persistence=True) as running:
        yield running


@dataclass
class Received:
    topic: str
    payload: str
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """A test MQTT client: everything it receives, and a way to wait for one message."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.seen: list[Received] = []

    async def pump(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the broker was stopped
            async for message in self.client.messages:
                payload = message.payload
                text = payload.decode() if isinstance(payload, bytes | bytearray) else ""
                received = Received(str(message.topic), text, message.retain)
                self.seen.append(received)
                self.queue.put_nowait(received)

    async def next(
        self, topic: str, check: Callable[[Received], bool] = lambda _m: True
    ) -> Received:
        """The first message from now on, on ``topic``, that passes ``check``."""

        async def first() -> Received:
            while True:
                message = await self.queue.get()
                if message.topic == topic and check(message):
                    return message

        return await asyncio.wait_for(first(), WAIT_S)

    def find(
        self, topic: str, check: Callable[[Received], bool] = lambda _m: True
    ) -> Received | None:
        """The first message received so far on ``topic`` that passes ``check``."""
        return next((m for m in self.seen if m.topic == topic and check(m)), None)

    async def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        await self.client.publish(topic, payload, qos=1, retain=retain)


@contextlib.asynccontextmanager
async def watch(broker: Mosquitto, *filters: str, **client: Any) -> AsyncIterator[Watcher]:
    async with aiomqtt.Client(broker.host, broker.port, **client) as mqtt:
        watcher = Watcher(mqtt)
        task = asyncio.create_task(watcher.pump(), name="watcher")
        for topic_filter in filters:
            await mqtt.subscribe(topic_filter, qos=1)
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def bridge(site: Site, broker: Mosquitto, **settings: Any) -> MqttBridge:
    return MqttBridge(site, MqttSection(url=broker.url, **settings))


def is_online(message: Received) -> bool:
    return message.payload == "online"


def coil(site: Site) -> bool:
    return site.hw.sims["rs485-1"].board(DOORS_ADDRESS).coils[GATE_RELAY - 1]


def field(name: str, value: Any) -> Callable[[Received], bool]:
    return lambda m: bool(m.payload) and m.json().get(name) == value


# --- presentations and door events -----------------------------------------------------------


def mentions(payload: str, secret: str) -> bool:
    """Whether a payload holds ``secret`` anywhere but in its time and chain hash.

    Those are digits too: an event hash or a time like ``.258000`` may hold "2580" by chance.
    """
    try:
        obj = json.loads(payload)
    except ValueError:
        return secret in payload
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k not in {"hash", "at"}}
    return secret in json.dumps(obj)


async def test_pin_on_the_reader_topic_pulses_the_gate_and_publishes_the_access_event(
    site: Site, broker: Mosquitto
) -> None:
    async with watch(broker, f"{BASE}/#") as w, bridge(site, broker):
        await w.next(STATUS, is_online)
        pulsed = asyncio.create_task(until(lambda: coil(site), timeout=WAIT_S))
        await w.publish(GATE_IN, json.dumps({"kind": "pin", "value": "2580"}))
        event = (await w.next(GATE_EVENT, field("type", "access"))).json()
        await pulsed  # the relay of the gate closed
        assert event["result"] == "success" and event["person"] == "p-ann"
        assert event["reader"] == "gate-mqtt" and event["detail"]["actor"] == "mqtt"
        assert event["credential_kind"] == "pin"
        # the door's own "unlocked" event is on the same topic (after the access event
        # that caused it), and no value anywhere
        unlocked = field("action", "unlocked")
        await w.next(GATE_EVENT, unlocked)
        assert [m for m in w.seen if m.topic == GATE_EVENT and unlocked(m)]
        assert not [m for m in w.seen if mentions(m.payload, "2580") and m.topic != GATE_IN]


async def test_door_state_is_retained_for_new_subscribers_and_follows_the_door(
    site: Site, broker: Mosquitto
) -> None:
    async with watch(broker, STATUS) as w, bridge(site, broker):
        await w.next(STATUS, is_online)
        async with watch(broker, GATE_STATE) as late:
            first = await late.next(GATE_STATE)
            assert first.retain and first.json()["id"] == "gate"
            assert first.json()["state"] == "locked" and first.json()["contact"] == "closed"
            await site.unlock("gate", 30, actor="test")
            live = await late.next(GATE_STATE, field("state", "unlocked"))
            assert live.json()["relay_on"] is True
        async with watch(broker, GATE_STATE) as later:
            retained = await later.next(GATE_STATE)
            assert retained.retain and retained.json()["state"] == "unlocked"
        lobby = await watch_one(broker, f"{BASE}/door/lobby/state")
        assert lobby.retain and lobby.json()["state"] == "locked"
        assert lobby.json()["contact"] is None  # the lobby has no contact wired


async def watch_one(broker: Mosquitto, topic: str) -> Received:
    async with watch(broker, topic) as w:
        return await w.next(topic)


# --- commands -----------------------------------------------------------------------------


async def test_unlock_command_is_refused_when_commands_are_off(
    site: Site, broker: Mosquitto
) -> None:
    async with watch(broker, f"{BASE}/#") as w, bridge(site, broker, allow_commands=False):
        await w.next(STATUS, is_online)
        await w.publish(GATE_SET, "UNLOCK")
        # a later presentation on the same link is a barrier: once its event is out, an
        # UNLOCK the bridge acted on would have been acted on already
        await w.publish(GATE_IN, json.dumps({"kind": "pin", "value": "1111"}))
        denied = (await w.next(GATE_EVENT, field("type", "access"))).json()
        assert denied["result"] == "failed"
        assert site.door("gate")["state"] == "locked" and not coil(site)
        audit, _ = await site.audit_log(actor="mqtt")
        assert audit == []
        assert not [m for m in w.seen if m.topic == GATE_EVENT and "remote_" in m.payload]


async def test_unlock_and_lock_commands_work_when_allowed_and_are_audited_as_mqtt(
    site: Site, broker: Mosquitto
) -> None:
    async with watch(broker, f"{BASE}/#") as w, bridge(site, broker, allow_commands=True):
        await w.next(STATUS, is_online)
        await w.publish(GATE_SET, "UNLOCK")
        # the operator's event first, then the door state it caused
        event = (await w.next(GATE_EVENT, field("action", "remote_unlock"))).json()
        await w.next(GATE_STATE, field("state", "unlocked"))
        assert coil(site)
        assert event["detail"] == {"actor": "mqtt", "seconds": 5}
        await w.publish(GATE_SET, "LOCK")
        await w.next(GATE_STATE, field("state", "locked"))
        await w.publish(GATE_SET, "OPEN SESAME")  # not a command: dropped, bridge lives on
        await w.publish(GATE_SET, "UNLOCK")
        await w.next(GATE_STATE, field("state", "unlocked"))
    audit, _ = await site.audit_log(actor="mqtt")
    assert [a["action"] for a in reversed(audit)] == ["door.unlock", "door.lock", "door.unlock"]


# --- alarms -------------------------------------------------------------------------------


async def test_contact_opening_without_a_grant_publishes_a_forced_open_alarm(
    site: Site, broker: Mosquitto
) -> None:
    async with watch(broker, f"{BASE}/#") as w, bridge(site, broker):
        await w.next(STATUS, is_online)
        site.hw.sims["rs485-1"].board(DOORS_ADDRESS).set_input(1, True)
        message = await w.next(f"{BASE}/alarm", field("kind", "forced_open"))
        alarm = message.json()
        assert alarm["source"] == "gate" and alarm["resolved_at"] is None
        assert not message.retain  # an alarm is news, not a state
        state = await w.next(GATE_STATE, field("alarm", "forced"))
        assert state.json()["contact"] == "open"


# --- Home Assistant discovery ---------------------------------------------------------------


def render(template: str, payload: dict[str, Any]) -> str:
    """Render an HA value template as HA would (``value_json`` and a ``to_json`` filter)."""
    env = ImmutableSandboxedEnvironment()
    env.filters["to_json"] = json.dumps
    return env.from_string(template).render(value_json=payload, value=json.dumps(payload))


@pytest.mark.parametrize("commands", [False, True], ids=["read-only", "commands"])
async def test_home_assistant_discovery_is_retained_valid_and_commands_only_when_allowed(
    site: Site, broker: Mosquitto, commands: bool
) -> None:
    node = "doorkeep_test"
    expected = {
        f"homeassistant/binary_sensor/{node}/gate_contact/config",
        f"homeassistant/event/{node}/gate_events/config",
        f"homeassistant/event/{node}/lobby_events/config",
    }
    locks = {
        f"homeassistant/{'lock' if commands else 'binary_sensor'}/{node}/{door}_"
        f"{'lock' if commands else 'lock_state'}/config"
        for door in ("gate", "lobby")
    }
    expected |= locks
    async with watch(broker, STATUS) as w, bridge(site, broker, allow_commands=commands):
        await w.next(STATUS, is_online)
        async with watch(broker, "homeassistant/#") as ha:
            await until(lambda: {m.topic for m in ha.seen} >= expected, timeout=WAIT_S)
            await w.client.publish(STATUS, "online", qos=1, retain=True)  # a barrier
            await w.next(STATUS)
            configs = {m.topic: m for m in ha.seen}
    assert set(configs) == expected  # nothing else: no lobby contact, no stale lock kind
    assert all(m.retain for m in configs.values())
    bodies = {topic: m.json() for topic, m in configs.items()}
    unique_ids = [b["unique_id"] for b in bodies.values()]
    assert len(set(unique_ids)) == len(unique_ids) == 5
    devices = {json.dumps(b["device"], sort_keys=True) for b in bodies.values()}
    assert len(devices) == 1 and json.loads(devices.pop())["identifiers"] == [node]
    for topic, body in bodies.items():
        assert body["availability"][0] == {"topic": STATUS}
        component = topic.split("/")[1]
        assert re.fullmatch(component + r"\.[a-z0-9_]+", body["default_entity_id"]), body
        assert body["availability_mode"] == "all"
    with_command = {t for t, b in bodies.items() if "command_topic" in b}
    if commands:
        gate_lock = bodies[f"homeassistant/lock/{node}/gate_lock/config"]
        assert gate_lock["command_topic"] == GATE_SET
        assert (gate_lock["payload_lock"], gate_lock["payload_unlock"]) == ("LOCK", "UNLOCK")
        assert with_command == locks
    else:
        assert with_command == set()
    # the templates give HA what it expects from the real payloads
    state = site.door("gate")
    lock = bodies[next(iter(sorted(locks)))]
    assert render(lock["value_template"], state) == ("LOCKED" if commands else "OFF")
    assert render(lock["availability"][1]["value_template"], state) == "online"
    contact = bodies[f"homeassistant/binary_sensor/{node}/gate_contact/config"]
    assert contact["device_class"] == "door"
    assert render(contact["value_template"], {**state, "contact": "open"}) == "ON"
    events = bodies[f"homeassistant/event/{node}/gate_events/config"]
    assert events["state_topic"] == GATE_EVENT and events["event_types"] == list(EVENT_TYPES)
    await site.present("gate-in", "pin", "2580", actor="test")
    recorded, _ = await site.events(door="gate", limit=10)
    for event in recorded:
        if event["type"] in ("access", "door"):
            rendered = json.loads(render(events["value_template"], event))
            assert rendered["event_type"] in EVENT_TYPES, rendered
    kinds = {json.loads(render(events["value_template"], e))["event_type"] for e in recorded}
    assert {"access_granted", "unlocked"} <= kinds


async def test_home_assistant_off_retracts_the_discovery_configs(
    site: Site, broker: Mosquitto
) -> None:
    async with watch(broker, STATUS) as w:
        async with bridge(site, broker, homeassistant=True):
            await w.next(STATUS, is_online)
        async with bridge(site, broker, homeassistant=False):
            await w.next(STATUS, is_online)
            async with watch(broker, "homeassistant/#", f"{BASE}/#") as later:
                await later.next(STATUS)  # retained topics arrive together
                assert not [m for m in later.seen if m.topic.startswith("homeassistant/")]


# --- status and the link ----------------------------------------------------------------------


async def test_status_is_online_while_up_and_offline_after_the_bridge_stops(
    site: Site, broker: Mosquitto
) -> None:
    async with bridge(site, broker) as running:
        await until(lambda: running.connected)
        async with watch(broker, STATUS) as w:
            status = await w.next(STATUS)
            assert status.retain and status.payload == "online"
    assert not running.connected
    status = await watch_one(broker, STATUS)
    assert status.retain and status.payload == "offline"


async def test_bridge_reconnects_after_a_broker_restart_and_sends_what_happened_meanwhile(
    site: Site, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.mqtt")
    session = {"identifier": "watcher", "clean_session": False}
    async with bridge(site, broker) as running:
        async with watch(broker, f"{BASE}/#", **session) as w:
            await w.next(STATUS, is_online)
            await broker.stop()
            await until(lambda: not running.connected)
        # the doors keep working without the broker
        answer = await site.present("gate-in", "pin", "2580", actor="test")
        assert answer["granted"] is True
        await asyncio.sleep(0.5)  # several failed reconnect attempts, logged once
        await broker.start()
        async with watch(broker, **session) as w:  # the persistent session queued for us
            # in whatever order: the bridge is back, and sent the event of the outage
            await until(lambda: w.find(STATUS, is_online) is not None)
            await until(lambda: w.find(GATE_EVENT, field("type", "access")) is not None)
            event = w.find(GATE_EVENT, field("type", "access"))
            assert event is not None and event.json()["seq"] == answer["event_id"]
            assert running.connected
            # and the link is whole again in both directions
            await w.publish(GATE_IN, json.dumps({"kind": "pin", "value": "1111"}))
            await w.next(GATE_EVENT, field("result", "failed"))
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.mqtt._bridge"]
    assert len([line for line in lines if "unreachable" in line]) == 1, lines
    assert len([line for line in lines if "is back" in line]) == 1, lines


# --- malformed input and secrets ------------------------------------------------------------


async def test_presentations_for_a_reader_that_is_not_an_mqtt_reader_are_dropped(
    site: Site, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with watch(broker, f"{BASE}/#") as w, bridge(site, broker) as running:
        await w.next(STATUS, is_online)
        for kind, value in [("rf_card", "00209CBF"), ("pin", "2580"), ("pin", "2580")]:
            await w.publish(SIM_GATE_IN, json.dumps({"kind": kind, "value": value}))
        await w.publish(f"{BASE}/reader/lobby-in/presentation", '{"kind":"pin","value":"2580"}')
        # a presentation on the MQTT reader is a barrier: the ones before it are handled
        await w.publish(GATE_IN, json.dumps({"kind": "pin", "value": "1111"}))
        denied = (await w.next(GATE_EVENT, field("type", "access"))).json()
        assert denied["reader"] == "gate-mqtt" and denied["result"] == "failed"
        assert running.refused_readers == {"gate-in": 3, "lobby-in": 1}
    assert not [m for m in w.seen if m.topic == GATE_EVENT and field("action", "unlocked")(m)]
    events, _ = await site.events(type="access")
    assert [e["reader"] for e in events] == ["gate-mqtt"]  # nothing from gate-in or lobby-in
    refusals = [r.getMessage() for r in caplog.records if "not an MQTT reader" in r.getMessage()]
    assert len(refusals) == 2, refusals  # once per reader, not once per message
    assert "gate-in" in refusals[0] and 'type = "sim"' in refusals[0]
    assert not any("2580" in r.getMessage() or "00209CBF" in r.getMessage() for r in caplog.records)


async def test_malformed_presentations_are_dropped_without_their_values_in_any_log_line(
    site: Site, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ("31337", "86420", "2580")
    async with watch(broker, f"{BASE}/#") as w:
        # a retained presentation would replay at every reconnect: it must never count
        await w.publish(GATE_IN, json.dumps({"kind": "pin", "value": "2580"}), retain=True)
        async with bridge(site, broker):
            await w.next(STATUS, is_online)
            for payload in (
                '{"kind": "pin", "value": "31337"',  # cut-off JSON
                '["pin", "31337"]',
                '{"kind": "pin", "value": 31337}',
                '{"kind": "iris", "value": "31337"}',
                '{"kind": "pin", "value": "' + "31337" * 300 + '"}',
                "\xff31337",
            ):
                await w.publish(GATE_IN, payload)
            await w.publish(
                f"{BASE}/reader/nowhere/presentation",
                json.dumps({"kind": "pin", "value": "86420"}),
            )
            await w.publish(GATE_IN, json.dumps({"kind": "pin", "value": "2580"}))
            granted = (await w.next(GATE_EVENT, field("type", "access"))).json()
            assert granted["result"] == "success"  # the bridge lived through all of it
    events, _ = await site.events(type="access")
    assert len(events) == 1  # the retained one was ignored, the malformed ones dropped
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 8, [r.getMessage() for r in dropped]
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + str(record.args or "")
        assert not any(secret in text for secret in secrets), text
