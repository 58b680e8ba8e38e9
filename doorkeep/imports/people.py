"""The RF card / PIN template (Building, Apt, User, RF Card, PIN) and the staff card
template (Staff Name, RF Card, Access Group ID).

A cards row names an existing resident by building, apartment and name and sets their
RF cards and PIN; a staff row names a staff member (added when no one has that name)
and sets their RF cards and access groups. A blank cell keeps what the person has.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from doorkeep.imports.columns import CREDENTIAL_COLUMNS, SEPARATOR
from doorkeep.imports.plan import (
    MAX_NAME,
    Builder,
    ImportResult,
    Problems,
    Progress,
    Site,
    credential_cell,
    every,
    finish,
    make_id,
    split_cell,
)
from doorkeep.imports.residents import masks
from doorkeep.imports.sheets import Row

_COLUMNS = {"rf_card": "RF Card", "pin": "PIN"}


def display_name(person: Mapping[str, Any]) -> str:
    return str(person.get("name") or person["id"])


def card_cells(site: Site, person: Mapping[str, Any]) -> dict[str, str]:
    """The cards row an export prints for a resident (credentials masked)."""
    apt = site.apartments.get(person.get("apartment") or "") or {}
    creds = site.creds_of.get(person["id"], [])
    return {
        "Building": site.building_label(apt.get("building", "")) if apt else "",
        "Apt": str(apt.get("number") or apt.get("id") or ""),
        "User": display_name(person),
        "RF Card": masks(creds, "rf_card"),
        "PIN": masks(creds, "pin"),
    }


def staff_cells(site: Site, person: Mapping[str, Any]) -> dict[str, str]:
    creds = site.creds_of.get(person["id"], [])
    return {
        "Staff Name": display_name(person),
        "RF Card": masks(creds, "rf_card"),
        "Access Group ID": SEPARATOR.join(person.get("groups") or []),
    }


def plan_cards(
    rows: list[Row],
    doc: Mapping[str, Any],
    *,
    secret: bytes,
    doors: Collection[str] | None,
    progress: Progress | None = None,
) -> ImportResult:
    site = Site(doc, secret, doors)
    builder, problems = Builder(site, "cards"), Problems()
    residents: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for person in site.people.values():
        if person.get("apartment"):
            key = (person["apartment"], display_name(person).casefold())
            residents.setdefault(key, []).append(person)
    seen: dict[str, int] = {}
    for row in every(rows, progress, "checking", len(rows)):
        n, cells = row.number, row.cells
        before = len(problems.issues)
        for column in ("Building", "Apt", "User"):
            if not cells.get(column):
                problems.add(n, column, "required")
        cred_cells = {
            column: credential_cell(site, n, column, cells.get(column, ""), problems)
            for column in ("RF Card", "PIN")
        }
        if len(problems.issues) > before:
            continue
        building = site.find_building(cells["Building"])
        apartment = site.apartment_at.get((building or "", cells["Apt"]))
        if building is None:
            problems.add(n, "Building", "no such building on this site")
            continue
        if apartment is None:
            problems.add(
                n, "Apt", "no such apartment in this building: add it with the residents template"
            )
            continue
        matches = residents.get((apartment, cells["User"].casefold()), [])
        if len(matches) != 1:
            problems.add(
                n,
                "User",
                "no one of this name lives in this apartment"
                if not matches
                else "two people of this name live here: use the residents template with UID",
            )
            continue
        person = matches[0]
        if person["id"] in seen:
            problems.add(n, "User", f"the same person is in row {seen[person['id']]}")
            continue
        seen[person["id"]] = n
        for column, cell in cred_cells.items():
            builder.set_credentials(person["id"], CREDENTIAL_COLUMNS[column][0], cell, n)
    builder.summary.rows = len(rows)
    _count_people(builder, site)
    return finish(builder, problems, "the RF card/PIN file", _COLUMNS)


def plan_staff(
    rows: list[Row],
    doc: Mapping[str, Any],
    *,
    secret: bytes,
    doors: Collection[str] | None,
    progress: Progress | None = None,
) -> ImportResult:
    site = Site(doc, secret, doors)
    builder, problems = Builder(site, "staff"), Problems()
    staff: dict[str, list[dict[str, Any]]] = {}
    for person in site.people.values():
        if person.get("kind") == "staff":
            staff.setdefault(display_name(person).casefold(), []).append(person)
    seen: dict[str, int] = {}
    for row in every(rows, progress, "checking", len(rows)):
        n, cells = row.number, row.cells
        before = len(problems.issues)
        name = cells.get("Staff Name", "")
        if not name:
            problems.add(n, "Staff Name", "required")
        elif len(name) > MAX_NAME:
            problems.add(n, "Staff Name", f"at most {MAX_NAME} characters")
        cell = credential_cell(site, n, "RF Card", cells.get("RF Card", ""), problems)
        groups = list(dict.fromkeys(split_cell(cells.get("Access Group ID", ""))))
        for group in groups:
            if group not in site.groups:
                problems.add(n, "Access Group ID", f"there is no access group {group[:64]!r}")
        if len(problems.issues) > before:
            continue
        if name.casefold() in seen:
            problems.add(n, "Staff Name", f"the same name is in row {seen[name.casefold()]}")
            continue
        seen[name.casefold()] = n
        matches = staff.get(name.casefold(), [])
        if len(matches) > 1:
            problems.add(n, "Staff Name", "two staff members have this name: rename one first")
            continue
        if matches:
            person = dict(matches[0])
        else:
            pid = make_id("s-", name, builder.taken_ids["people"])
            person = {"id": pid, "kind": "staff", "name": name, "groups": []}
        if groups:
            person["groups"] = groups
        builder.put("people", person, n)
        builder.set_credentials(person["id"], "rf_card", cell, n)
    builder.summary.rows = len(rows)
    _count_people(builder, site)
    return finish(builder, problems, "the staff file", _COLUMNS)


def _count_people(builder: Builder, site: Site) -> None:
    """People whose credentials changed count as changed people."""
    changed = {
        person
        for person, creds in builder.creds.items()
        if creds != site.creds_of.get(person, [])
        and person in site.people
        and builder.lists["people"][person] == site.people[person]
    }
    builder.summary.people_updated += len(changed)
