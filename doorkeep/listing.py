"""Searching and paging the entity lists of a policy document (the library).

The list contract of ``GET /{people|credentials|...}`` (docs/architecture.md), shared by
the edge REST API and the cloud admin API: a free-text ``q`` (case-insensitive substring
of the entity's id and name-like fields, ``SEARCHED``), per-kind filters (``FILTERS``),
then ``offset`` and ``limit``; the answer counts every match (``total``) before paging.

The work is split so that the event loop never walks a 20,000-person policy: an
``EntityIndex`` (one per policy version: the search text of every entity and the joins a
filter needs, person -> apartment -> building) is built once, and ``search`` is one pass
over one kind's rows. Both are pure and run in a worker thread on the edge.

Values are never searched or shown: a hashed credential carries only its HMAC and its
``value_facts`` (``masked`` is what the library shows, doorkeep/credfacts.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from doorkeep.policydoc import CREDENTIAL_KINDS

__all__ = ["FILTERS", "SEARCHED", "EntityIndex", "Filter", "Query", "search"]

VALIDITY = ("now", "expired", "future")
REPEATS = ("never", "daily", "weekly")
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000


@dataclass(frozen=True, slots=True)
class Filter:
    """One per-kind filter: its query name, what it matches, its allowed values."""

    name: str
    description: str
    enum: tuple[str, ...] = ()


_BUILDING = Filter("building", "building id")
_APARTMENT = Filter("apartment", "apartment id")

#: The filters of each document list, in the order the OpenAPI document shows them.
FILTERS: Mapping[str, tuple[Filter, ...]] = {
    "people": (_BUILDING, _APARTMENT, Filter("group", "member of this group id")),
    "credentials": (
        Filter("person", "holder's person id"),
        _BUILDING,
        _APARTMENT,
        Filter("kind", "credential kind", CREDENTIAL_KINDS),
        Filter("holder", "holder's name contains this (case-insensitive)"),
    ),
    "groups": (),
    "temp_keys": (
        Filter("valid", "valid now, expired or not yet valid (by its schedule)", VALIDITY),
        Filter("repeat", "schedule repeat", REPEATS),
        Filter("creator", "created_by contains this (case-insensitive)"),
        Filter("visitor", "visitor name contains this (case-insensitive)"),
        _APARTMENT,
    ),
    "apartments": (_BUILDING,),
    "buildings": (),
    "reservations": (),
}

#: The fields ``q`` looks in, per list ("holder": the credential holder's name).
SEARCHED: Mapping[str, tuple[str, ...]] = {
    "people": ("id", "name", "apartment"),
    "credentials": ("id", "label", "person", "holder"),
    "groups": ("id", "name"),
    "temp_keys": ("id", "name", "created_by"),
    "apartments": ("id", "number", "name"),
    "buildings": ("id", "name"),
    "reservations": ("id", "person", "door"),
}


@dataclass(frozen=True, slots=True)
class Query:
    """One list request: ``filters`` by name (see ``FILTERS``), then the page."""

    q: str | None = None
    limit: int | None = None
    offset: int = 0
    filters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limit is not None and not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise ValueError(f"offset must be between 0 and {MAX_OFFSET}")

    @classmethod
    def of(cls, kind: str, params: Mapping[str, Any]) -> Query:
        """A query from parsed parameters; ValueError names an unknown or bad one."""
        allowed = {f.name: f for f in FILTERS[kind]}
        filters: dict[str, str] = {}
        for name, value in params.items():
            if name in ("q", "limit", "offset"):
                continue
            known = allowed.get(name)
            if known is None:
                raise ValueError(f"unknown parameter {name!r}")
            if known.enum and value not in known.enum:
                raise ValueError(f"{name} must be one of {list(known.enum)}")
            filters[name] = str(value)
        return cls(
            q=params.get("q") or None,
            limit=params.get("limit"),
            offset=params.get("offset") or 0,
            filters=filters,
        )


@dataclass(slots=True)
class _Row:
    entity: dict[str, Any]
    text: str  # the searched fields, case-folded, joined by newlines
    joined: dict[str, str]  # what filters compare with: building, apartment, holder...


class EntityIndex:
    """The rows of every list of one (hashed) document, with their search text."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        building_of = {a["id"]: a.get("building", "") for a in _items(doc, "apartments")}
        people = {p["id"]: p for p in _items(doc, "people")}
        self.rows: dict[str, list[_Row]] = {}
        for kind in FILTERS:
            rows = []
            for entity in _items(doc, kind):
                joined = _joins(kind, entity, people, building_of)
                values = {**entity, **joined}
                text = "\n".join(str(values.get(f) or "") for f in SEARCHED[kind]).casefold()
                rows.append(_Row(entity, text, {k: v.casefold() for k, v in joined.items()}))
            self.rows[kind] = rows


def _items(doc: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    items = doc.get(kind) or []
    return [e for e in items if isinstance(e, dict)]


def _joins(
    kind: str,
    entity: Mapping[str, Any],
    people: Mapping[str, Mapping[str, Any]],
    building_of: Mapping[str, str],
) -> dict[str, str]:
    """The related values a filter of ``kind`` compares with (all strings)."""
    if kind == "people":
        apt = entity.get("apartment") or ""
        return {"building": building_of.get(apt, ""), "apartment": apt}
    if kind == "credentials":
        holder = people.get(entity.get("person") or "", {})
        apt = holder.get("apartment") or ""
        return {
            "holder": str(holder.get("name") or ""),
            "apartment": apt,
            "building": building_of.get(apt, ""),
        }
    if kind == "temp_keys":
        return {"apartment": entity.get("apartment") or ""}
    if kind == "apartments":
        return {"building": entity.get("building") or ""}
    return {}


def _validity(key: Mapping[str, Any], now: datetime, tz: ZoneInfo) -> str:
    """``now``, ``expired`` or ``future`` by a temp key's schedule. A daily or weekly key
    has no end date: it is valid (``now``) whether or not its window is open."""
    sched = key.get("schedule") or {}
    if sched.get("repeat") != "never":
        return "now"
    try:
        start = datetime.fromisoformat(sched["start"])
        end = datetime.fromisoformat(sched["end"])
    except (KeyError, TypeError, ValueError):
        return "expired"
    start = start if start.tzinfo else start.replace(tzinfo=tz)
    end = end if end.tzinfo else end.replace(tzinfo=tz)
    if now < start:
        return "future"
    return "expired" if now > end else "now"


# name filters -> the field holding the name (a credential's holder: joined from people)
_NAME_FIELDS = {"holder": "holder", "creator": "created_by", "visitor": "name"}


def _predicate(name: str, wanted: str, now: datetime, tz: ZoneInfo) -> Callable[[_Row], bool]:
    """The test of one filter, chosen once per request (not once per row)."""
    if name == "holder":
        needle = wanted.casefold()
        return lambda r: needle in r.joined.get("holder", "")
    if name in _NAME_FIELDS:  # substrings of names
        source, needle = _NAME_FIELDS[name], wanted.casefold()
        return lambda r: needle in str(r.entity.get(source) or "").casefold()
    if name == "group":
        return lambda r: wanted in (r.entity.get("groups") or ())
    if name == "valid":
        return lambda r: _validity(r.entity, now, tz) == wanted
    if name == "repeat":
        return lambda r: (r.entity.get("schedule") or {}).get("repeat") == wanted
    if name in ("building", "apartment"):
        folded = wanted.casefold()
        return lambda r: r.joined.get(name) == folded
    return lambda r: str(r.entity.get(name) or "") == wanted  # person, kind: exact


def search(
    index: EntityIndex, kind: str, query: Query, *, now: datetime, tz: ZoneInfo
) -> dict[str, Any]:
    """``{"items": [...], "total": n}``: the page of ``kind`` that ``query`` asks for.

    Items are in document order and are the index's own dicts (serialise them, never
    change them); ``total`` counts every match before paging.
    """
    rows = index.rows[kind]
    if query.q:  # every word of q somewhere in the row (a name and an apartment, say)
        words = query.q.casefold().split()
        rows = [r for r in rows if all(w in r.text for w in words)]
    for name, wanted in query.filters.items():  # each filter narrows the rows left
        rows = list(filter(_predicate(name, wanted, now, tz), rows))
    end = None if query.limit is None else query.offset + query.limit
    return {"items": [r.entity for r in rows[query.offset : end]], "total": len(rows)}
