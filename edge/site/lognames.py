"""Names next to ids in the logs people read: who, where, which apartment.

The stored event keeps only ids (INTERFACES.md); what the REST API, the CLI and the
exports show beside them comes from the current policy (people, apartments, buildings,
temp keys, groups) and site.toml (doors, readers, boards, inputs). A name is ``None``
when the entity is gone or never had one; the id stays, so nothing is lost.

Times are shown in the site's time zone with their offset (``local_iso``): a stored
event already carries the site's offset, audit and alarm rows are written in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import tzinfo

# Audit targets are "<kind>/<id>" or "<kind>:<id>"; the kind names the table of names.
_TARGET_KINDS: Mapping[str, str] = {
    "people": "people",
    "person": "people",
    "apartments": "apartments",
    "apartment": "apartments",
    "buildings": "buildings",
    "building": "buildings",
    "temp_keys": "temp_keys",
    "groups": "groups",
    "door": "doors",
    "doors": "doors",
    "board": "boards",
    "reader": "readers",
    "readers": "readers",
}
# Which *_name field a target kind also fills (the three every log row may carry).
_NAME_FIELD: Mapping[str, str] = {
    "people": "person_name",
    "apartments": "apartment_name",
    "doors": "door_name",
}


def local_iso(value: Any, tz: tzinfo) -> Any:
    """An ISO time with offset shown in ``tz``; a time already in it is kept as written."""
    if not isinstance(value, str) or not value:
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    local = moment.astimezone(tz)
    return value if local.utcoffset() == moment.utcoffset() else local.isoformat()


def _names(items: Iterable[Mapping[str, Any]], *keys: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        for key in keys:
            if item.get(key):
                out[str(item["id"])] = str(item[key])
                break
    return out


@dataclass(frozen=True, slots=True)
class Names:
    """Display names by kind and id, built once per policy version."""

    tables: Mapping[str, Mapping[str, str]]
    building_of: Mapping[str, str]  # apartment id -> building id
    door_building: Mapping[str, str]  # door id -> building id (site.toml)
    buildings: frozenset[str]  # every building id of the policy, named or not

    @classmethod
    def build(cls, entities: Mapping[str, list[dict[str, Any]]], config: Any) -> Names:
        """From the policy's entity lists (``SitePolicy.list_entities``) and site.toml."""
        hardware = {
            "doors": _names(({"id": d.id, "name": d.name} for d in config.doors), "name"),
            "readers": _names(({"id": r.id, "name": r.name} for r in config.readers), "name"),
            "boards": _names(({"id": b.id, "name": b.name} for b in config.boards), "name"),
            "inputs": _names(({"id": i.id, "name": i.name} for i in config.inputs), "name"),
        }
        tables = {
            "people": _names(entities.get("people") or [], "name"),
            # An apartment without a name is shown by its number ("2#203").
            "apartments": _names(entities.get("apartments") or [], "name", "number"),
            "buildings": _names(entities.get("buildings") or [], "name"),
            "temp_keys": _names(entities.get("temp_keys") or [], "name"),
            "groups": _names(entities.get("groups") or [], "name"),
            # A resident's apartment, for the alarms that name only the person (duress).
            "person_apartment": _names(entities.get("people") or [], "apartment"),
            **hardware,
        }
        building_of = {
            str(a["id"]): str(a["building"])
            for a in entities.get("apartments") or []
            if a.get("building")
        }
        door_building = {d.id: d.building for d in config.doors if d.building}
        buildings = frozenset(str(b["id"]) for b in entities.get("buildings") or [])
        return cls(tables, building_of, door_building, buildings)

    def name(self, kind: str, key: Any) -> str | None:
        if not isinstance(key, str):
            return None
        return self.tables.get(kind, {}).get(key)

    def building_scope(self, building: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(apartments, doors) of ``building``; None when no such building is known."""
        apartments = tuple(a for a, b in self.building_of.items() if b == building)
        doors = tuple(d for d, b in self.door_building.items() if b == building)
        if not (apartments or doors or building in self.buildings):
            return None
        return apartments, doors

    # --- the three logs ------------------------------------------------------------------

    def event(self, event: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
        """An event with its names, its operator and temp key lifted out of the detail."""
        detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
        assert isinstance(detail, Mapping)
        actor = detail.get("actor") if isinstance(detail.get("actor"), str) else None
        temp_key = detail.get("temp_key") if isinstance(detail.get("temp_key"), str) else None
        person_name = self.name("people", event.get("person"))
        temp_key_name = self.name("temp_keys", temp_key)
        out = dict(event)
        out["at"] = local_iso(event.get("at"), tz)
        out.update(
            person_name=person_name,
            door_name=self.name("doors", event.get("door")),
            apartment_name=self.name("apartments", event.get("apartment")),
            reader_name=self.name("readers", event.get("reader")),
            actor=actor,
            temp_key=temp_key,
            temp_key_name=temp_key_name,
            initiated_by=event.get("person") or actor,
            initiated_by_name=person_name or event.get("person") or temp_key_name or actor,
        )
        return out

    def audit(self, entry: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
        """An audit line with the name of its target (and person/door/apartment name)."""
        out = dict(entry)
        out["at"] = local_iso(entry.get("at"), tz)
        out.update(person_name=None, door_name=None, apartment_name=None, target_name=None)
        target = entry.get("target")
        if isinstance(target, str):
            sep = min((i for i in (target.find("/"), target.find(":")) if i > 0), default=-1)
            if sep > 0:
                kind = _TARGET_KINDS.get(target[:sep])
                if kind is not None:
                    name = self.name(kind, target[sep + 1 :])
                    out["target_name"] = name
                    if kind in _NAME_FIELD:
                        out[_NAME_FIELD[kind]] = name
        return out

    def alarm(self, alarm: Mapping[str, Any], tz: tzinfo) -> dict[str, Any]:
        """An alarm with the names of its source, door, person and apartment."""
        out = dict(alarm)
        out["at"] = local_iso(alarm.get("at"), tz)
        out["resolved_at"] = local_iso(alarm.get("resolved_at"), tz)
        detail = alarm.get("detail") if isinstance(alarm.get("detail"), Mapping) else {}
        assert isinstance(detail, Mapping)
        source = alarm.get("source")
        door = detail.get("door") or (source if self.name("doors", source) else None)
        person = detail.get("person")
        apartment = detail.get("apartment")
        if apartment is None and isinstance(person, str):
            apartment = self.tables["person_apartment"].get(person)
        source_name = next(
            (
                n
                for kind in ("doors", "readers", "boards", "inputs")
                if (n := self.name(kind, source)) is not None
            ),
            None,
        )
        out.update(
            source_name=source_name,
            door_name=self.name("doors", door),
            person_name=self.name("people", person),
            apartment_name=self.name("apartments", apartment),
        )
        return out
