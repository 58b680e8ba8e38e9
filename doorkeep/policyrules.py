"""Property-manager rules of the policy document: apartments, buildings, lock families.

Pure helpers beside ``doorkeep.policydoc``'s checker, shared by the edge and the cloud:

- ``issues``: the semantic checks the checker runs last (the family-member limit of an
  apartment, the doors of ``settings.lock_families``);
- ``default_group``: the default group a new building gets (POLICY.md: every building has
  one, and it cannot be deleted), so ``POST /buildings`` works on its own;
- ``ended_leases``: what a lease that ended with auto-delete removes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from doorkeep.errors import PolicyIssue

__all__ = ["CONTACT_FIELDS", "default_group", "ended_leases", "issues", "strip_contacts"]

#: A person's contact fields, which an apartment reset clears from the master it keeps
#: (those the document holds; the import templates' email and phone columns).
CONTACT_FIELDS = ("email", "mobile", "phone", "phones", "calling_code", "phone_code")

_MAX_ID = 64
ALL_DAY = {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"}

DoorRef = Callable[[str, str, str], None]


def _list(doc: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    items = doc.get(kind)
    return [e for e in items if isinstance(e, dict)] if isinstance(items, list) else []


def issues(
    doc: Mapping[str, Any], known: Mapping[str, Any], door_ref: DoorRef
) -> list[PolicyIssue]:
    """The family-member limits and the lock families' doors of ``doc``.

    ``known`` is the whole document (``doc`` may be the part of it the schema passed);
    ``door_ref(entity, field, door)`` reports a door that is not in site.toml.
    """
    found: list[PolicyIssue] = []
    limits = {
        a["id"]: a["max_members"]
        for a in _list(known, "apartments")
        if isinstance(a.get("max_members"), int)
    }
    members: dict[str, int] = {}
    for person in _list(doc, "people"):
        apt = str(person.get("apartment"))
        if apt not in limits or person.get("role") == "master" or person.get("kind") != "resident":
            continue
        members[apt] = members.get(apt, 0) + 1
        if members[apt] > limits[apt]:
            found.append(
                PolicyIssue(
                    f"people/{person.get('id')}",
                    "apartment",
                    f"apartment {apt} allows at most {limits[apt]} family member(s) besides "
                    "its master: raise its max_members or remove a member first",
                )
            )
    families = (doc.get("settings") or {}).get("lock_families") or {}
    for door in families:
        door_ref("settings", f"lock_families.{door}", door)
    return found


def strip_contacts(person: dict[str, Any]) -> bool:
    """Remove ``person``'s contact fields in place; True when there were any."""
    found = [f for f in CONTACT_FIELDS if f in person]
    for name in found:
        del person[name]
    return bool(found)


def default_group(
    doc: Mapping[str, Any], building: Mapping[str, Any], doors: Collection[str] = ()
) -> dict[str, Any]:
    """The default group for a new ``building``: all day at its public ``doors``.

    Its id is ``g-<building id>`` when that is free (else with a number), its name the
    reference's ``Resident-Building <name>``.
    """
    taken = {g.get("id") for g in _list(doc, "groups")}
    base = f"g-{building['id']}"[:_MAX_ID]
    gid, n = base, 1
    while gid in taken:
        n += 1
        suffix = f"-{n}"
        gid = base[: _MAX_ID - len(suffix)] + suffix
    return {
        "id": gid,
        "name": f"Resident-Building {building.get('name') or building['id']}",
        "building_default": building["id"],
        "schedule": dict(ALL_DAY),
        "doors": sorted(doors),
    }


def needs_default_group(doc: Mapping[str, Any], building_id: str) -> bool:
    """True when no group of ``doc`` is the default group of ``building_id``."""
    return not any(g.get("building_default") == building_id for g in _list(doc, "groups"))


def _local(text: Any, tz: ZoneInfo) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def ended_leases(
    doc: Mapping[str, Any], now: datetime, tz: ZoneInfo
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(new document, removed ids per list) for apartments whose lease ended with
    auto-delete: their residents go, with their credentials and reservations.

    Pure; ``now`` is aware, times without an offset are wall-clock in ``tz``. The same
    rule as the cloud's reconcile job (``cloud_sync.reconcile.expired_changes``).
    """
    ended = set()
    for apt in _list(doc, "apartments"):
        until = _local(apt.get("valid_until"), tz)
        if apt.get("auto_delete") and until is not None and until <= now:
            ended.add(apt["id"])
    leaving = {
        p["id"]
        for p in _list(doc, "people")
        if p.get("apartment") in ended and p.get("kind", "resident") == "resident"
    }
    out = copy.deepcopy(dict(doc))
    removed: dict[str, list[str]] = {}
    if not leaving:
        return out, removed
    for kind, field in (("people", "id"), ("credentials", "person"), ("reservations", "person")):
        items = _list(out, kind)
        removed[kind] = sorted(e["id"] for e in items if e.get(field) in leaving)
        out[kind] = [e for e in items if e.get(field) not in leaving]
    return out, removed
