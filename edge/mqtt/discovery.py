"""Home Assistant MQTT discovery for one site, with no I/O.

One HA device per site; per door the entities in :data:`ENTITIES`, each a row saying on
which HA platform it lives, when it applies and what its config is. A row that does not
apply is *retracted* (an empty retained config), so turning ``allow_commands`` off takes
the controllable lock out of Home Assistant instead of leaving a stale one behind.

Why a read-only door is a ``binary_sensor`` (device_class ``lock``) and not a ``lock``
without a command topic: HA's MQTT lock schema requires ``command_topic``; a lock config
without one is rejected and the door would not appear at all.

Every entity is available only while the bridge is online (the status topic, which is
also the MQTT will) *and* the door's board answers (``board_online`` in the door state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from edge.core.doorstate import DoorAction

from .topics import OFFLINE, ONLINE, Publication, Topics, dumps

__all__ = ["DISCOVERY_PREFIX", "ENTITIES", "EVENT_TYPES", "DoorInfo", "Entity", "discovery"]

DISCOVERY_PREFIX: Final = "homeassistant"

# The state templates. A door in lockdown is locked; held open and emergency are unlocked.
LOCKED_STATES: Final = ("locked", "lockdown")
_LOCKED_TEST: Final = f"value_json.state in {list(LOCKED_STATES)!r}"
LOCK_TEMPLATE: Final = "{{ 'LOCKED' if " + _LOCKED_TEST + " else 'UNLOCKED' }}"
# binary_sensor device_class lock: ON means unlocked.
UNLOCKED_TEMPLATE: Final = "{{ 'OFF' if " + _LOCKED_TEST + " else 'ON' }}"
CONTACT_TEMPLATE: Final = "{{ 'ON' if value_json.contact == 'open' else 'OFF' }}"
BOARD_TEMPLATE: Final = "{{ '" + ONLINE + "' if value_json.board_online else '" + OFFLINE + "' }}"

# The event entity: an access event becomes access_granted/denied/offline, a door event
# its action (opened, forced, remote_unlock, ...). HA wants JSON with "event_type"; the
# other keys become attributes.
EVENT_TEMPLATE: Final = (
    "{% set r = {'success': 'granted', 'failed': 'denied'} %}"
    "{{ {'event_type': ('access_' ~ r.get(value_json.result, value_json.result))"
    " if value_json.type == 'access' else value_json.action,"
    " 'reason': value_json.reason, 'reader': value_json.reader,"
    " 'person': value_json.person, 'seq': value_json.seq} | to_json }}"
)
EVENT_TYPES: Final = (
    "access_granted",
    "access_denied",
    "access_offline",
    *(str(action) for action in DoorAction),
    "remote_unlock",
    "remote_lock",
)


@dataclass(frozen=True, slots=True)
class DoorInfo:
    """What discovery needs of a door (from site.toml)."""

    id: str
    name: str
    has_contact: bool


@dataclass(frozen=True, slots=True)
class Entity:
    """One HA entity per door: platform, id suffix, when it applies, its own config keys."""

    component: str
    suffix: str
    applies: Callable[[DoorInfo, bool], bool]  # (door, allow_commands)
    fields: Callable[[Topics, DoorInfo], dict[str, Any]]


def _lock(topics: Topics, door: DoorInfo) -> dict[str, Any]:
    return {
        "name": None,  # the door's own name is the entity name
        "state_topic": topics.door_state(door.id),
        "value_template": LOCK_TEMPLATE,
        "command_topic": topics.door_set(door.id),
        "payload_lock": "LOCK",
        "payload_unlock": "UNLOCK",
        "state_locked": "LOCKED",
        "state_unlocked": "UNLOCKED",
        "json_attributes_topic": topics.door_state(door.id),
    }


def _lock_state(topics: Topics, door: DoorInfo) -> dict[str, Any]:
    return {
        "name": None,
        "device_class": "lock",
        "state_topic": topics.door_state(door.id),
        "value_template": UNLOCKED_TEMPLATE,
        "json_attributes_topic": topics.door_state(door.id),
    }


def _contact(topics: Topics, door: DoorInfo) -> dict[str, Any]:
    return {
        "name": "Contact",
        "device_class": "door",
        "state_topic": topics.door_state(door.id),
        "value_template": CONTACT_TEMPLATE,
    }


def _events(topics: Topics, door: DoorInfo) -> dict[str, Any]:
    return {
        "name": "Events",
        "state_topic": topics.door_event(door.id),
        "value_template": EVENT_TEMPLATE,
        "event_types": list(EVENT_TYPES),
    }


ENTITIES: Final[tuple[Entity, ...]] = (
    Entity("lock", "lock", lambda _door, commands: commands, _lock),
    Entity("binary_sensor", "lock_state", lambda _door, commands: not commands, _lock_state),
    Entity("binary_sensor", "contact", lambda door, _commands: door.has_contact, _contact),
    Entity("event", "events", lambda _door, _commands: True, _events),
)


def _node(site_id: str) -> str:
    return f"doorkeep_{site_id}"


def discovery(
    topics: Topics,
    doors: Sequence[DoorInfo],
    *,
    site_name: str,
    version: str,
    allow_commands: bool,
    enabled: bool = True,
) -> tuple[Publication, ...]:
    """Retained config messages for every entity of every door (empty ones retract).

    With ``enabled`` False every entity is retracted: HA forgets the site's doors.
    """
    node = _node(topics.site_id)
    device = {
        "identifiers": [node],
        "name": site_name,
        "manufacturer": "doorkeep",
        "model": "Site controller",
        "sw_version": version,
    }
    out = []
    for door in doors:
        # The device is the site, so HA shows "<site> <entity>": every entity name
        # starts with its door's name.
        for entity in ENTITIES:
            topic = f"{DISCOVERY_PREFIX}/{entity.component}/{node}/{door.id}_{entity.suffix}/config"
            if not (enabled and entity.applies(door, allow_commands)):
                out.append(Publication(topic, "", retain=True))
                continue
            object_id = f"{node}_{door.id}_{entity.suffix}".replace("-", "_")  # HA: no "-"
            config = entity.fields(topics, door)
            name = config["name"]
            config["name"] = door.name if name is None else f"{door.name} {name}"
            config.update(
                {
                    "unique_id": f"{node}_{door.id}_{entity.suffix}",
                    # HA >= 2025.10 (object_id is deprecated there)
                    "default_entity_id": f"{entity.component}.{object_id}",
                    "device": device,
                    "origin": {"name": "doorkeep", "sw_version": version},
                    "availability": [
                        {"topic": topics.status},
                        {"topic": topics.door_state(door.id), "value_template": BOARD_TEMPLATE},
                    ],
                    "availability_mode": "all",
                    "payload_available": ONLINE,
                    "payload_not_available": OFFLINE,
                    "qos": 1,
                }
            )
            out.append(Publication(topic, dumps(config), retain=True))
    return tuple(out)
