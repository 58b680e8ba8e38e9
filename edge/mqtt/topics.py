"""MQTT topics and payloads of one site, with no I/O (the bridge in ``_bridge.py`` sends them).

Everything the bridge says is a :class:`Publication`; what the site's live feed turns into
is the table :data:`OUTBOUND` (feed topic -> function). Inbound topics are patterns with
one ``+`` level, the id of the reader or door, matched by :func:`match`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["OUTBOUND", "Publication", "Topics", "door_states", "dumps", "match", "outbound"]

# Event types that belong on a door's event topic; "alarm" records have their own topic,
# "system" and "emergency" events are site-wide.
DOOR_EVENT_TYPES: Final = frozenset({"access", "door"})

ONLINE: Final = "online"
OFFLINE: Final = "offline"


def dumps(data: Any) -> str:
    """Compact JSON, the same for every payload (stable for subscribers that diff)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class Publication:
    """One message to publish. An empty ``payload`` with ``retain`` deletes a retained one."""

    topic: str
    payload: str
    retain: bool = False
    qos: int = 1

    def __post_init__(self) -> None:
        if not self.topic or any(c in self.topic for c in "+#\0"):
            raise ValueError(f"topic {self.topic!r} is not a valid MQTT publish topic")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos {self.qos!r} is not 0, 1 or 2")


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names under ``<prefix>/<site_id>/``."""

    prefix: str
    site_id: str

    def __post_init__(self) -> None:
        for name, value in (("prefix", self.prefix), ("site_id", self.site_id)):
            if not value or any(c in value for c in "+#\0") or value.startswith("/"):
                raise ValueError(f"topic {name} {value!r} must be non-empty, without + # or /")

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def alarm(self) -> str:
        return f"{self.base}/alarm"

    def door_state(self, door_id: str) -> str:
        return f"{self.base}/door/{door_id}/state"

    def door_event(self, door_id: str) -> str:
        return f"{self.base}/door/{door_id}/event"

    def door_set(self, door_id: str) -> str:
        return f"{self.base}/door/{door_id}/set"

    def presentation(self, reader_id: str) -> str:
        return f"{self.base}/reader/{reader_id}/presentation"

    def filter(self, pattern: str) -> str:
        """A subscription filter for ``pattern`` (relative to the site base)."""
        return f"{self.base}/{pattern}"


def match(pattern: str, topic: str) -> str | None:
    """The level matched by the single ``+`` of ``pattern`` in ``topic``, or None.

    >>> match("a/+/b", "a/gate/b")
    'gate'
    """
    want, got = pattern.split("/"), topic.split("/")
    if len(want) != len(got):
        return None
    found: str | None = None
    for w, g in zip(want, got, strict=True):
        if w == "+":
            found = g
        elif w != g:
            return None
    return found or None


# --- the live feed -> publications --------------------------------------------------------


def _door(topics: Topics, data: Mapping[str, Any]) -> tuple[Publication, ...]:
    return (Publication(topics.door_state(data["id"]), dumps(data), retain=True),)


def _event(topics: Topics, data: Mapping[str, Any]) -> tuple[Publication, ...]:
    door = data.get("door")
    if data.get("type") not in DOOR_EVENT_TYPES or not door:
        return ()
    return (Publication(topics.door_event(door), dumps(data)),)


def _alarm(topics: Topics, data: Mapping[str, Any]) -> tuple[Publication, ...]:
    return (Publication(topics.alarm, dumps(data)),)


# Site.subscribe() topic -> what it becomes on MQTT. A feed topic not listed (e.g.
# "policy") is not published: the table is the whole outbound surface.
OUTBOUND: Final[Mapping[str, Callable[[Topics, Mapping[str, Any]], tuple[Publication, ...]]]] = {
    "door": _door,
    "event": _event,
    "alarm": _alarm,
}


def outbound(topics: Topics, message: Mapping[str, Any]) -> tuple[Publication, ...]:
    """The publications for one live-feed message ``{"topic": ..., "data": {...}}``."""
    handler = OUTBOUND.get(message.get("topic", ""))
    return handler(topics, message["data"]) if handler is not None else ()


def door_states(topics: Topics, doors: list[dict[str, Any]]) -> tuple[Publication, ...]:
    """The retained state of every door (sent on every (re)connect)."""
    return tuple(p for door in doors for p in _door(topics, door))
