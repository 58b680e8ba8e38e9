"""An in-memory site facade (docs/architecture.md, "The site facade") for the web tests.

It keeps the contract's promises that the web layer relies on: the real policy-document
validation and credential hashing (doorkeep.policydoc), so no plaintext value is ever
stored or returned; events never carry a value; every change is audited with its actor;
door state changes are published on `subscribe()`; NotFound/Conflict/PolicyError/ValueError
where the real facade raises them.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from doorkeep import policydoc
from doorkeep.errors import Conflict, NotFound, PolicyError

SECRET = b"k" * 32
KINDS = ("people", "credentials", "groups", "temp_keys", "apartments", "buildings", "reservations")


def sample_policy() -> dict[str, Any]:
    """A small standalone site: one building, two apartments, a resident and staff."""
    return {
        "format": "doorkeep.policy/1",
        "settings": {
            "pin_mode": "pin",
            "temp_key_max_days": 30,
            "lockout": {"failures": 5, "window_s": 60, "lock_s": 300},
            "emergency": {"doors": ["gate", "lobby"], "auto_unlock_on_alarm": True},
        },
        "buildings": [{"id": "B1", "name": "Building 1"}],
        "apartments": [
            {"id": "B1-203", "building": "B1", "number": "2#203", "floor": "7", "name": "Apt 203"},
            {"id": "B1-101", "building": "B1", "number": "1#101", "floor": "1", "name": "Apt 101"},
        ],
        "people": [
            {
                "id": "p-judy",
                "kind": "resident",
                "apartment": "B1-203",
                "role": "master",
                "name": "Judy Z",
                "groups": ["g-b1"],
            },
            {"id": "p-cathy", "kind": "staff", "name": "Cathy", "groups": ["g-staff"]},
        ],
        "credentials": [
            {"id": "c1", "person": "p-judy", "kind": "pin", "value": "4711"},
            {"id": "c2", "person": "p-cathy", "kind": "rf_card", "value": "00209CBF"},
        ],
        "groups": [
            {
                "id": "g-b1",
                "name": "Residents B1",
                "building_default": "B1",
                "schedule": {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"},
                "doors": ["gate", "lobby"],
            },
            {
                "id": "g-staff",
                "name": "Staff",
                "schedule": {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"},
                "doors": ["gate", "lobby", "plant"],
            },
        ],
        "temp_keys": [],
        "reservations": [],
        "holidays": [],
        "hold_open": [],
    }


class FakeStore:
    """The audit part of the edge store."""

    def __init__(self) -> None:
        self.audit_rows: list[dict[str, Any]] = []

    async def audit(
        self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        self.audit_rows.append(
            {
                "id": len(self.audit_rows) + 1,
                "at": datetime.now(UTC).isoformat(),
                "actor": actor,
                "action": action,
                "target": target,
                "detail": detail or {},
            }
        )


def site_toml() -> dict[str, Any]:
    """site.toml as parsed (``SiteConfig.raw``) for the fake's hardware."""
    return {
        "site": {"id": "demo", "name": "Demo", "timezone": "Europe/Berlin", "simulation": True},
        "web": {"listen": "127.0.0.1:8080", "tls": False},
        "bus": [{"id": "rs485-1", "port": "sim", "baudrate": 9600}],
        "board": [
            {"id": "relays-a", "type": "waveshare-rtu-relay-8", "bus": "rs485-1", "address": 1}
        ],
        "door": [
            {
                "id": d,
                "name": name,
                "relay": f"{board}:{ch}",
                "pulse_ms": 3000,
                "methods": ["pin", "rf_card", "remote"],
                "fail_mode": "secure",
            }
            for d, name, board, ch in DOORS
        ],
        "reader": [
            {"id": r, "door": d, "type": "sim", "direction": "in"} for r, d in READERS.items()
        ],
        "output": [{"id": "light-1", "relay": "relays-a:8", "function": "light"}],
    }


DOORS = (
    ("gate", "Main gate", "relays-a", 1),
    ("lobby", "Lobby", "relays-a", 2),
    ("plant", "Plant room", "relays-a", 3),
)
READERS = {"gate-in": "gate", "lobby-in": "lobby", "plant-in": "plant"}


class FakeSite:
    """The facade, in memory. ``pulse_s`` is how long a grant keeps a door unlocked."""

    def __init__(self, *, pulse_s: float = 3.0, policy: dict[str, Any] | None = None) -> None:
        self.config = SimpleNamespace(simulation=True, raw=site_toml())
        self.store = FakeStore()
        self.site_id = "demo"
        self.version = "0.1.0"
        self.tz = ZoneInfo("Europe/Berlin")
        self.policy_owner = "local"
        self.pulse_s = pulse_s
        self._version = 0
        self._doc = policydoc.empty_document()
        self._events: list[dict[str, Any]] = []
        self._alarms: list[dict[str, Any]] = []
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._relock: dict[str, asyncio.TimerHandle] = {}
        self._captures: dict[str, asyncio.Future[str]] = {}
        self.relay_pulses: list[tuple[str, int, int]] = []
        self.hardware_written: dict[str, Any] | None = None
        self._doors = {
            d: {
                "id": d,
                "name": name,
                "state": "locked",
                "contact": "closed",
                "board_online": True,
                "fail_mode": "secure",
                "held_open_s": 60,
                "relay": f"{board}:{ch}",
                "kind": "door",
                "relay_on": False,
                "alarm": None,
            }
            for d, name, board, ch in DOORS
        }
        self._apply(policydoc.hash_document(policy or sample_policy(), SECRET))
        self._alarms.append(
            {
                "id": 1,
                "kind": "held_open",
                "source": "lobby",
                "at": self._now(),
                "detail": {},
                "resolved": False,
                "resolved_by": None,
                "note": "",
            }
        )

    # -- helpers -----------------------------------------------------------------------------

    def _now(self) -> str:
        return datetime.now(self.tz).isoformat(timespec="seconds")

    def _publish(self, topic: str, data: dict[str, Any]) -> None:
        for q in list(self._subscribers):
            q.put_nowait({"topic": topic, "data": copy.deepcopy(data)})

    def _record(self, **fields: Any) -> dict[str, Any]:
        event = {
            "seq": len(self._events) + 1,
            "at": self._now(),
            "type": "access",
            "action": None,
            "result": "success",
            "reason": None,
            "door": None,
            "reader": None,
            "person": None,
            "apartment": None,
            "credential_kind": None,
            "detail": {},
        }
        event.update(fields)
        self._events.append(event)
        self._publish("event", event)
        return event

    def _set_door(self, door_id: str, state: str) -> dict[str, Any]:
        door = self._doors[door_id]
        door["state"] = state
        self._publish("door", self._door_view(door))
        return self._door_view(door)

    @staticmethod
    def _door_view(door: dict[str, Any]) -> dict[str, Any]:
        return dict(door)

    def _open_for(self, door_id: str, seconds: float) -> dict[str, Any]:
        if (handle := self._relock.pop(door_id, None)) is not None:
            handle.cancel()
        view = self._set_door(door_id, "unlocked")
        loop = asyncio.get_running_loop()
        self._relock[door_id] = loop.call_later(seconds, self._set_door, door_id, "locked")
        return view

    def _apply(self, hashed: dict[str, Any]) -> int:
        self._doc = policydoc.canonical_document(hashed)
        self._version += 1
        return self._version

    def _check(self, doc: dict[str, Any]) -> dict[str, Any]:
        issues = policydoc.validate_document(doc, doors=set(self._doors), secret=SECRET)
        if issues:
            raise PolicyError(f"the policy has {len(issues)} problem(s)", issues)
        return policydoc.hash_document(doc, SECRET)

    def _writable(self) -> None:
        if self.policy_owner == "cloud":
            raise Conflict("this site's policy is managed by the cloud; change it there")

    # -- the facade --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "site": self.site_id,
            "version": self.version,
            "policy_version": self._version,
            "clock_ok": True,
        }

    async def present(
        self, reader: str, kind: str, value: str, *, at: datetime | None, actor: str | None
    ) -> dict[str, Any]:
        if reader not in READERS:
            raise NotFound(f"no reader {reader!r}")
        if kind not in policydoc.CREDENTIAL_KINDS:
            raise ValueError(f"unknown credential kind {kind!r}")
        del at, actor
        door = READERS[reader]
        key = policydoc.credential_hmac(SECRET, kind, value)  # ValueError on a malformed value
        capture = self._captures.pop(reader, None) if kind in {"rf_card", "uhf_card"} else None
        if capture is not None and not capture.done():
            capture.set_result(key)
        cred = next((c for c in self._doc["credentials"] if c.get("value_hmac") == key), None)
        person = None
        reason = "unknown_credential"
        if cred is not None:
            person = next(p for p in self._doc["people"] if p["id"] == cred["person"])
            groups = [g for g in self._doc["groups"] if g["id"] in person.get("groups", [])]
            reason = "ok" if any(door in g["doors"] for g in groups) else "no_access"
        granted = reason == "ok"
        event = self._record(
            action="present",
            result="success" if granted else "failed",
            reason=None if granted else reason,
            door=door,
            reader=reader,
            person=person["id"] if person else None,
            apartment=person.get("apartment") if person else None,
            credential_kind=kind,
        )
        if granted:
            self._open_for(door, self.pulse_s)
        return {
            "granted": granted,
            "reason": reason,
            "door": door,
            "person": person["id"] if person else None,
            "event_id": event["seq"],
            "floors": None,
        }

    def doors(self) -> list[dict[str, Any]]:
        return [self._door_view(d) for d in self._doors.values()]

    def door(self, door_id: str) -> dict[str, Any]:
        if door_id not in self._doors:
            raise NotFound(f"no door {door_id!r}")
        return self._door_view(self._doors[door_id])

    async def unlock(self, door_id: str, seconds: int, *, actor: str) -> dict[str, Any]:
        self.door(door_id)
        self._record(type="door", action="remote_unlock", door=door_id, detail={"by": actor})
        await self.store.audit(actor, "door.unlock", f"door:{door_id}", {"seconds": seconds})
        return self._open_for(door_id, seconds)

    async def lock(self, door_id: str, *, actor: str) -> dict[str, Any]:
        self.door(door_id)
        if (handle := self._relock.pop(door_id, None)) is not None:
            handle.cancel()
        await self.store.audit(actor, "door.lock", f"door:{door_id}", {})
        return self._set_door(door_id, "locked")

    async def emergency(
        self, action: str, doors: list[str] | None, *, actor: str
    ) -> dict[str, Any]:
        if action not in {"unlock", "lock", "lockdown", "clear"}:
            raise ValueError(f"unknown emergency action {action!r}")
        targets = doors or list(self._doc["settings"]["emergency"]["doors"]) or list(self._doors)
        for d in targets:
            self.door(d)
        state = {"unlock": "emergency", "lock": "locked", "lockdown": "locked", "clear": "locked"}
        for d in targets:
            self._set_door(d, state[action])
        self._record(type="emergency", action=action, detail={"doors": targets, "by": actor})
        await self.store.audit(actor, f"emergency.{action}", "site", {"doors": targets})
        return {"action": action, "doors": targets}

    def policy_document(self) -> dict[str, Any]:
        return copy.deepcopy(self._doc)

    async def apply_policy(self, doc: dict[str, Any], *, actor: str) -> int:
        self._writable()
        version = self._apply(self._check(doc))
        await self.store.audit(actor, "policy.apply", "policy", {"version": version})
        return version

    def list_entities(self, kind: str) -> list[dict[str, Any]]:
        if kind not in KINDS:
            raise NotFound(f"no entity kind {kind!r}")
        return copy.deepcopy(self._doc[kind])

    def get_entity(self, kind: str, key: str) -> dict[str, Any]:
        for e in self.list_entities(kind):
            if e.get("id") == key:
                return e
        raise NotFound(f"{kind} {key!r} does not exist")

    async def put_entity(
        self, kind: str, key: str, body: dict[str, Any], *, actor: str
    ) -> dict[str, Any]:
        self._writable()
        body = dict(body)
        doc = copy.deepcopy(self._doc)
        doc[kind] = [e for e in doc[kind] if e.get("id") != key] + [{**body, "id": key}]
        self._apply(self._check(doc))
        await self.store.audit(actor, f"{kind}.put", f"{kind}/{key}", {})
        return self.get_entity(kind, key)

    async def delete_entity(self, kind: str, key: str, *, actor: str) -> None:
        self._writable()
        entity = self.get_entity(kind, key)
        if kind == "groups" and entity.get("building_default"):
            raise Conflict(f"group {key!r} is a building's default group and cannot be deleted")
        doc = copy.deepcopy(self._doc)
        doc[kind] = [e for e in doc[kind] if e.get("id") != key]
        if kind == "people":
            doc["credentials"] = [c for c in doc["credentials"] if c["person"] != key]
        self._apply(self._check(doc))
        await self.store.audit(actor, f"{kind}.delete", f"{kind}/{key}", {})

    async def reset_apartment(self, apartment_id: str, *, actor: str) -> dict[str, Any]:
        self._writable()
        self.get_entity("apartments", apartment_id)
        doc = copy.deepcopy(self._doc)
        gone = {
            p["id"]
            for p in doc["people"]
            if p.get("apartment") == apartment_id and p.get("role") != "master"
        }
        doc["people"] = [p for p in doc["people"] if p["id"] not in gone]
        doc["credentials"] = [c for c in doc["credentials"] if c["person"] not in gone]
        self._apply(self._check(doc))
        self._events = [e for e in self._events if e.get("apartment") != apartment_id]
        await self.store.audit(actor, "apartment.reset", f"apartments/{apartment_id}", {})
        return {"apartment": apartment_id, "removed_people": sorted(gone)}

    async def events(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        limit = query.pop("limit", 100)
        cursor = query.pop("cursor", None)
        since, until = query.pop("since", None), query.pop("until", None)
        rows = list(reversed(self._events))
        if cursor is not None:
            if not str(cursor).isdigit():
                raise ValueError("the cursor is not one this server made")
            rows = [e for e in rows if e["seq"] < int(cursor)]
        for key, value in query.items():
            rows = [e for e in rows if e.get(key) == value]
        if since is not None:
            rows = [e for e in rows if datetime.fromisoformat(e["at"]) >= since]
        if until is not None:
            rows = [e for e in rows if datetime.fromisoformat(e["at"]) < until]
        page = rows[:limit]
        more = len(rows) > limit
        return copy.deepcopy(page), (str(page[-1]["seq"]) if more else None)

    async def audit_log(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        limit = query.get("limit", 100)
        rows = list(reversed(self.store.audit_rows))
        if query.get("actor"):
            rows = [r for r in rows if r["actor"] == query["actor"]]
        return copy.deepcopy(rows[:limit]), None

    async def alarms(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        rows = [a for a in reversed(self._alarms) if not (open_only and a["resolved"])]
        return copy.deepcopy(rows)

    async def resolve_alarm(self, alarm_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
        alarm = next((a for a in self._alarms if a["id"] == alarm_id), None)
        if alarm is None:
            raise NotFound(f"alarm {alarm_id} does not exist")
        if alarm["resolved"]:
            raise Conflict(f"alarm {alarm_id} was already resolved")
        alarm.update(resolved=True, resolved_by=actor, note=note)
        await self.store.audit(actor, "alarm.resolve", f"alarm:{alarm_id}", {"note": note})
        self._publish("alarm", alarm)
        return copy.deepcopy(alarm)

    def raise_alarm(self, kind: str, source: str) -> dict[str, Any]:
        """Test helper: a new open alarm, published live."""
        alarm = {
            "id": len(self._alarms) + 1,
            "kind": kind,
            "source": source,
            "at": self._now(),
            "detail": {},
            "resolved": False,
            "resolved_by": None,
            "note": "",
        }
        self._alarms.append(alarm)
        self._publish("alarm", alarm)
        return alarm

    def hardware(self) -> dict[str, Any]:
        """The shape of edge/hardware.py ``Hardware.describe()``."""
        requests = 1200 + len(self.relay_pulses)
        stats = {
            "address": 1,
            "requests": requests,
            "responses": requests - 3,
            "timeouts": 2,
            "crc_errors": 1,
            "bad_frames": 0,
            "exceptions": 0,
            "retries": 3,
            "failures": 0,
            "last_seen": 1_700_000_000.0,
            "online": True,
            "latency_histogram": [[5, 800], [10, 390], ["inf", 10]],
        }
        return {
            "buses": [
                {
                    "id": "rs485-1",
                    "port": "sim",
                    "baudrate": 9600,
                    "simulated": True,
                    "boards": {"1": stats},
                }
            ],
            "boards": [
                {
                    "id": "relays-a",
                    "type": "waveshare-rtu-relay-8",
                    "bus": "rs485-1",
                    "address": 1,
                    "host": None,
                    "online": True,
                    "relays": 8,
                    "inputs": 8,
                }
            ],
            "doors": self.doors(),
            "readers": [
                {"id": r, "door": d, "type": "sim", "direction": "in"} for r, d in READERS.items()
            ],
            "outputs": [
                {
                    "id": "light-1",
                    "relay": "relays-a:8",
                    "function": "light",
                    "floor": None,
                    "building": None,
                }
            ],
        }

    async def bus_scan(self, bus_id: str) -> list[int]:
        if bus_id != "rs485-1":
            raise NotFound(f"no bus {bus_id!r}")
        return [1]

    async def relay_test(
        self, board_id: str, channel: int, *, ms: int = 500, actor: str
    ) -> dict[str, Any]:
        if board_id != "relays-a":
            raise NotFound(f"no board {board_id!r}")
        if not 1 <= channel <= 8:
            raise ValueError(f"board {board_id} has channels 1-8, not {channel}")
        self.relay_pulses.append((board_id, channel, ms))
        await self.store.audit(actor, "relay.test", f"relay:{board_id}:{channel}", {"ms": ms})
        return {"board": board_id, "channel": channel, "ms": ms, "ok": True}

    async def update_hardware(self, cfg_dict: dict[str, Any], *, actor: str) -> dict[str, Any]:
        for door in cfg_dict.get("door", []):
            if "id" not in door or "relay" not in door:
                raise ValueError("every [[door]] needs an id and a relay")
        self.hardware_written = copy.deepcopy(cfg_dict)
        await self.store.audit(actor, "hardware.update", "site.toml", {})
        return {"written": True, "restart_required": True}

    async def capture_next_card(self, reader: str, timeout_s: float) -> dict[str, Any]:
        """The next card presented at ``reader``, as its HMAC (never the number)."""
        if reader not in READERS:
            raise NotFound(f"no reader {reader!r}")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._captures[reader] = future
        try:
            digest = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no card was presented at {reader} in {timeout_s:g} s") from None
        finally:
            self._captures.pop(reader, None)
        known = [c["id"] for c in self._doc["credentials"] if c.get("value_hmac") == digest]
        return {
            "reader": reader,
            "value_hmac": digest,
            "known": bool(known),
            "credential": known[0] if known else None,
        }

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    def sync_status(self) -> dict[str, Any]:
        return {
            "enrolled": self.policy_owner == "cloud",
            "cloud_url": None,
            "stale": False,
            "last_contact": None,
            "version": self._version,
            "digest": policydoc.policy_digest(self._doc),
        }
