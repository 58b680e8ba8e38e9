"""Third-party lock formats: which PINs and RF cards a lock family can take.

Doors fitted with a third-party lock are listed in the policy's
``settings.lock_families`` (door id -> family). A lock of a family takes the PINs and RF
cards of the people who may open its door, if they fit its format (the reference
guide's "Synchronize user access methods to open third-party locks"):

=========  ===================  ==========================================
family     PIN                  RF card (as entered)
=========  ===================  ==========================================
dormakaba  exactly 6 digits     exactly 20 characters
itec       4 to 8 digits        1 to 16 characters, only 0-9 and A-F
=========  ===================  ==========================================

Values are hashed at rest, so the check reads the ``value_facts`` recorded when the
value was hashed (its length and alphabet, doorkeep/credfacts.py), never the value. A
credential hashed before facts were recorded cannot be checked and is listed as such.
Pure: ``report(doc, family)`` over a hashed document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "Family", "report"]

Facts = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Family:
    """One lock family's format: a rule and its wording per credential kind."""

    name: str
    rules: Mapping[str, tuple[str, Callable[[Facts], bool]]]


def _digits(low: int, high: int) -> Callable[[Facts], bool]:
    return lambda f: f.get("charset") == "digits" and low <= int(f.get("length", 0)) <= high


def _hex(low: int, high: int) -> Callable[[Facts], bool]:
    return lambda f: (
        f.get("charset") in ("digits", "hex") and low <= int(f.get("length", 0)) <= high
    )


def _chars(n: int) -> Callable[[Facts], bool]:
    return lambda f: int(f.get("length", 0)) == n


FAMILIES: Mapping[str, Family] = {
    "dormakaba": Family(
        "Dormakaba",
        {
            "pin": ("a Dormakaba PIN must be exactly 6 digits", _digits(6, 6)),
            "rf_card": ("a Dormakaba RF card must be exactly 20 characters", _chars(20)),
        },
    ),
    "itec": Family(
        "iTec",
        {
            "pin": ("an iTec PIN must be 4 to 8 digits", _digits(4, 8)),
            "rf_card": (
                "an iTec RF card must be 1 to 16 characters of 0-9 and A-F",
                _hex(1, 16),
            ),
        },
    ),
}

UNCHECKED = "hashed before formats were recorded: enter the value again to check it"


def _items(doc: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in doc.get(kind) or [] if isinstance(e, dict)]


def report(doc: Mapping[str, Any], family: str) -> dict[str, Any]:
    """Every PIN and RF card that the doors of ``family`` would take, and which of
    them cannot be synced, with why (``unsyncable``); never a value."""
    rules = FAMILIES[family].rules
    families = (doc.get("settings") or {}).get("lock_families") or {}
    doors = sorted(d for d, f in families.items() if f == family)
    door_set = set(doors)
    group_doors = {g["id"]: set(g.get("doors") or []) for g in _items(doc, "groups")}
    booked = {r["person"] for r in _items(doc, "reservations") if r.get("door") in door_set}
    people = {p["id"]: p for p in _items(doc, "people")}
    reaching = {
        pid
        for pid, p in people.items()
        if pid in booked or any(group_doors.get(g, set()) & door_set for g in p.get("groups") or [])
    }
    checked, unsyncable = 0, []
    for cred in _items(doc, "credentials"):
        kind = cred.get("kind")
        if kind not in rules or cred.get("person") not in reaching:
            continue
        checked += 1
        facts = cred.get("value_facts")
        wording, fits = rules[str(kind)]
        if facts is None:
            reason = UNCHECKED
        elif fits(facts):
            continue
        else:
            reason = wording
        holder = people.get(cred["person"], {})
        unsyncable.append(
            {
                "credential": cred["id"],
                "person": cred["person"],
                "holder": holder.get("name"),
                "apartment": holder.get("apartment"),
                "kind": kind,
                "masked": (facts or {}).get("masked"),
                "reason": reason,
            }
        )
    return {
        "family": family,
        "doors": doors,
        "rules": {kind: wording for kind, (wording, _) in rules.items()},
        "checked": checked,
        "unsyncable": unsyncable,
    }
