"""Exports and empty templates in the reference's column sets (csv or xlsx).

Credential values are never printed: the site holds only their HMACs. Each credential a
person holds is shown as ``****`` (``****;****``: two RF cards); re-imported, such a cell
keeps them. Text that a spreadsheet would run as a formula is neutralised (sheets.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from doorkeep.imports.columns import APARTMENTS, CARDS, KIND_NAMES, RESIDENTS, STAFF
from doorkeep.imports.people import card_cells, staff_cells
from doorkeep.imports.plan import Site
from doorkeep.imports.residents import resident_cells
from doorkeep.imports.sheets import write_table


def natural(text: str) -> tuple[Any, ...]:
    """Sort key: "2#9" before "2#10", "100" before "1000"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _people(site: Site, kind: str) -> list[dict[str, Any]]:
    def order(person: Mapping[str, Any]) -> tuple[Any, ...]:
        apt = site.apartments.get(person.get("apartment") or "") or {}
        return (
            natural(site.building_label(apt.get("building", ""))),
            natural(str(apt.get("number") or "")),
            "0" if person.get("role") == "master" else "1",
            str(person.get("name") or ""),
            person["id"],
        )

    return sorted((p for p in site.people.values() if p.get("kind") == kind), key=order)


def apartment_rows(site: Site) -> list[list[str]]:
    """Building, Apartment ("203 (Floor 7)"), APT Name, Residents, Devices, methods.

    Devices: the doors the apartment's residents may open (doorkeep has no indoor units).
    """
    people_of: dict[str, list[dict[str, Any]]] = {}
    for person in site.people.values():
        if person.get("apartment"):
            people_of.setdefault(person["apartment"], []).append(person)
    rows = []
    for apt in sorted(
        site.apartments.values(),
        key=lambda a: (
            natural(site.building_label(a["building"])),
            natural(str(a.get("number") or a["id"])),
        ),
    ):
        people = people_of.get(apt["id"], [])
        doors: set[str] = set()
        kinds: set[str] = set()
        for person in people:
            for group in person.get("groups") or []:
                doors.update((site.groups.get(group) or {}).get("doors") or [])
            kinds.update(c["kind"] for c in site.creds_of.get(person["id"], []))
        number = str(apt.get("number") or apt["id"])
        floor = apt.get("floor")
        methods = ",".join(KIND_NAMES[k] for k in KIND_NAMES if k in kinds)
        rows.append(
            [
                site.building_label(apt["building"]),
                f"{number} (Floor {floor})" if floor else number,
                str(apt.get("name") or ""),
                str(len(people)),
                str(len(doors)),
                methods,
            ]
        )
    return rows


def export_table(
    kind: str, doc: Mapping[str, Any], fmt: str, *, doors: Collection[str] | None = None
) -> bytes:
    """The site's ``kind`` (residents, apartments, cards, staff) as a csv or xlsx file."""
    site = Site(doc, b"", doors)
    if kind == "residents":
        columns, rows = RESIDENTS, [resident_cells(site, p) for p in _people(site, "resident")]
    elif kind == "cards":
        columns = CARDS
        rows = [card_cells(site, p) for p in _people(site, "resident")]
    elif kind == "staff":
        columns, rows = STAFF, [staff_cells(site, p) for p in _people(site, "staff")]
    elif kind == "apartments":
        return write_table(APARTMENTS, apartment_rows(site), fmt)
    else:
        raise ValueError(f"cannot export {kind!r}: residents, apartments, cards or staff")
    return write_table(columns, [[r[c] for c in columns] for r in rows], fmt)


def template(kind: str, fmt: str) -> bytes:
    """The empty template of ``kind`` (residents, cards, staff): its header row."""
    columns = {"residents": RESIDENTS, "cards": CARDS, "staff": STAFF}.get(kind)
    if columns is None:
        raise ValueError(f"no template {kind!r}: residents, cards or staff")
    return write_table(columns, [], fmt)
