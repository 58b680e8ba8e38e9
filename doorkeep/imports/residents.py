"""The residents template (Building ... UID): rows to people, apartments and credentials.

Batch edit: a row with a UID edits that person; a blank cell, or one holding what an
export printed, leaves the value as it is; so export -> import changes nothing. A row
without a UID adds a person (and, when they do not exist yet, the building with its
default group and the apartment).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from doorkeep.imports.columns import CREDENTIAL_COLUMNS, MASK, RESIDENTS, SEPARATOR
from doorkeep.imports.plan import (
    MAX_BUILDING,
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
from doorkeep.imports.sheets import Row

APT = re.compile(r"[0-9A-Za-z][0-9A-Za-z#]*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"\+?[0-9][0-9 ()-]{1,30}")
CALLING_CODE = re.compile(r"\+?[0-9]{1,4}")
FLOOR = re.compile(r"G[0-2]|-?[0-9]{1,3}")
MAX_APT = 32
MAX_REMARK = 256
PHONE_COLUMNS = ("1stPhone", "2ndPhone", "3rdPhone")
_COLUMN_OF_KIND = {kind: column for column, (kind, _) in CREDENTIAL_COLUMNS.items()}
DEFAULT_SCHEDULE = {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"}


def split_name(person: Mapping[str, Any]) -> tuple[str, str]:
    """(first, last) of a person: their own fields, else the name split at its first space."""
    if "first_name" in person or "last_name" in person:
        return str(person.get("first_name") or ""), str(person.get("last_name") or "")
    first, _, last = str(person.get("name") or "").partition(" ")
    return first, last


def masks(creds: Collection[Mapping[str, Any]], kind: str) -> str:
    return SEPARATOR.join(MASK for c in creds if c["kind"] == kind)


def resident_cells(site: Site, person: Mapping[str, Any]) -> dict[str, str]:
    """The row an export prints for ``person`` (credentials masked)."""
    apt = site.apartments.get(person.get("apartment") or "") or {}
    building = apt.get("building", "")
    first, last = split_name(person)
    phones = [*(person.get("phones") or []), "", "", ""]
    creds = site.creds_of.get(person["id"], [])
    role = person.get("role")
    cells = {
        "Building": site.building_label(building) if building else "",
        "Accessible Floors": SEPARATOR.join((person.get("floors") or {}).get(building, [])),
        "Apt": str(apt.get("number") or apt.get("id") or ""),
        "Apt Name": str(apt.get("name") or ""),
        "Account Type": {"master": "0", "member": "1"}.get(role or "", ""),
        "First Name": first,
        "Last Name": last,
        "Email": str(person.get("email") or ""),
        "MobileNumber": str(person.get("mobile") or ""),
        "TelephoneCallingCode": str(person.get("calling_code") or ""),
        "Access Group ID": SEPARATOR.join(person.get("groups") or []),
        "Remark": str(person.get("remark") or ""),
        "UID": person["id"],
    }
    for column, phone in zip(PHONE_COLUMNS, phones, strict=False):
        cells[column] = str(phone)
    for column, (kind, _) in CREDENTIAL_COLUMNS.items():
        cells[column] = masks(creds, kind)
    return cells


class _Residents:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.builder = Builder(site, "residents")
        self.problems = Problems()
        self.uid_row: dict[str, int] = {}
        self.identity_row: dict[tuple[str, ...], int] = {}
        self.apt_name_row: dict[str, tuple[str, int]] = {}
        self.new_buildings: dict[str, str] = {}  # cell text -> new building id
        self.new_apartments: dict[tuple[str, str], str] = {}
        self.existing: dict[tuple[str, str, str], str] = {}  # (apartment, first, last) -> id
        for person in site.people.values():
            if person.get("kind") == "resident" and person.get("apartment"):
                first, last = split_name(person)
                key = (person["apartment"], first.casefold(), last.casefold())
                self.existing[key] = person["id"]

    # -- one row ------------------------------------------------------------------------

    def row(self, row: Row) -> None:
        add = self.problems.add
        n, cells = row.number, row.cells
        uid = cells.get("UID", "")
        person: dict[str, Any] | None = None
        current: dict[str, str] = {}
        if uid:
            if uid in self.uid_row:
                add(n, "UID", f"the same UID is in row {self.uid_row[uid]}: one row per person")
                return
            self.uid_row[uid] = n
            found = self.site.people.get(uid)
            if found is None or found.get("kind") != "resident":
                add(n, "UID", "no resident has this UID: leave it blank to add a new resident")
                return
            person = dict(found)
            current = resident_cells(self.site, found)

        def given(column: str) -> str | None:
            """The cell's value when it asks for a change, else None (blank or as exported)."""
            value = cells.get(column, "")
            return value if value and value != current.get(column) else None

        errors_before = len(self.problems.issues)
        building_text = cells.get("Building") or current.get("Building", "")
        apt_text = cells.get("Apt") or current.get("Apt", "")
        if not building_text:
            add(n, "Building", "required: the building's number or name")
        elif len(building_text) > MAX_BUILDING:
            add(n, "Building", f"at most {MAX_BUILDING} characters")
        if not apt_text:
            add(n, "Apt", "required: the apartment number, e.g. 2#123A")
        elif len(apt_text) > MAX_APT or not APT.fullmatch(apt_text):
            add(
                n,
                "Apt",
                f"digits, letters and '#' only, at most {MAX_APT}, never starting with '#' "
                "(e.g. 2#123A)",
            )
        role = self.role(n, given("Account Type"), person)
        first = cells.get("First Name") or current.get("First Name", "")
        last = cells.get("Last Name") or current.get("Last Name", "")
        if person is None and not first:
            add(n, "First Name", "required for a new resident")
        for column, value in (("First Name", first), ("Last Name", last)):
            if len(value) > MAX_NAME:
                add(n, column, f"at most {MAX_NAME} characters")
        contact = self.contact(n, cells, current)
        floors = self.floors(n, given("Accessible Floors"))
        groups = self.groups(n, given("Access Group ID"))
        remark = given("Remark")
        if remark is not None and len(remark) > MAX_REMARK:
            add(n, "Remark", f"at most {MAX_REMARK} characters")
        cred_cells = {
            column: credential_cell(self.site, n, column, cells.get(column, ""), self.problems)
            for column in CREDENTIAL_COLUMNS
        }
        if len(self.problems.issues) > errors_before:
            return
        building = self.building(building_text, n)
        apartment = self.apartment(building, apt_text, n)
        self.apt_name(apartment, given("Apt Name"), n)
        if person is None:
            identity = (building, apt_text, first.casefold(), last.casefold())
            if identity in self.identity_row:
                add(n, "First Name", f"the same resident is in row {self.identity_row[identity]}")
                return
            self.identity_row[identity] = n
            if (apartment, first.casefold(), last.casefold()) in self.existing:
                add(
                    n,
                    "UID",
                    "this resident already exists: give their UID (from an export) to edit "
                    "them, or remove the row",
                )
                return
            taken = self.builder.taken_ids["people"]
            person = {
                "id": make_id("p-", f"{building}-{apt_text}-{first}-{last}", taken),
                "kind": "resident",
                "groups": [],
            }
            default = self.default_group(building)
            if default:
                person["groups"] = [default]
        new = dict(person)
        new["apartment"] = apartment
        if role is not None:
            new["role"] = role
        if given("First Name") is not None or given("Last Name") is not None:
            new["first_name"], new["last_name"] = first, last
            new["name"] = f"{first} {last}".strip()
        new.update(contact)
        if floors is not None:
            new["floors"] = {**(new.get("floors") or {}), building: floors}
        if groups is not None:
            new["groups"] = groups
        if remark is not None:
            new["remark"] = remark
        self.builder.put("people", new, n)
        for column, cell in cred_cells.items():
            self.builder.set_credentials(new["id"], CREDENTIAL_COLUMNS[column][0], cell, n)

    def role(self, n: int, text: str | None, person: Mapping[str, Any] | None) -> str | None:
        if text is None:
            if person is None:
                self.problems.add(n, "Account Type", "required: 0 (master) or 1 (family member)")
            return None
        if text not in ("0", "1"):
            self.problems.add(n, "Account Type", "0 for the family master, 1 for a member")
            return None
        return "master" if text == "0" else "member"

    def contact(
        self, n: int, cells: Mapping[str, str], current: Mapping[str, str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        rules = (
            ("Email", "email", EMAIL, 254, "an email address like judy@example.org"),
            ("MobileNumber", "mobile", PHONE, 32, "digits, spaces, +, - and ()"),
            ("TelephoneCallingCode", "calling_code", CALLING_CODE, 5, "1-4 digits, e.g. 86"),
        )
        for column, key, rule, limit, hint in rules:
            value = cells.get(column, "")
            if value and value != current.get(column):
                if len(value) > limit or not rule.fullmatch(value):
                    self.problems.add(n, column, hint)
                else:
                    out[key] = value
        phones = [cells.get(c, "") or current.get(c, "") for c in PHONE_COLUMNS]
        if any(cells.get(c, "") and cells.get(c) != current.get(c) for c in PHONE_COLUMNS):
            for column, value in zip(PHONE_COLUMNS, phones, strict=True):
                if value and not PHONE.fullmatch(value):
                    self.problems.add(n, column, "digits, spaces, +, - and ()")
            while phones and not phones[-1]:
                phones.pop()
            out["phones"] = phones
        return out

    def floors(self, n: int, text: str | None) -> list[str] | None:
        if text is None:
            return None
        values = []
        for value in split_cell(text):
            if value.casefold() in ("all", "all floors"):
                values.append("all")
            elif FLOOR.fullmatch(value) and (value.startswith("G") or -10 <= int(value) <= 128):
                values.append(value)
            else:
                self.problems.add(
                    n, "Accessible Floors", "floors are -10 to 128, G0, G1, G2 or All Floors"
                )
                return None
        if len(values) > 10 and "all" not in values:
            self.problems.add(n, "Accessible Floors", "at most 10 floors (or All Floors)")
            return None
        return list(dict.fromkeys(values))

    def groups(self, n: int, text: str | None) -> list[str] | None:
        if text is None:
            return None
        groups = list(dict.fromkeys(split_cell(text)))
        for group in groups:
            if group not in self.site.groups:
                self.problems.add(n, "Access Group ID", f"there is no access group {group[:64]!r}")
        return groups

    # -- buildings and apartments ---------------------------------------------------------

    def building(self, text: str, n: int) -> str:
        found = self.site.find_building(text)
        if found is not None:
            return found
        if text in self.new_buildings:
            return self.new_buildings[text]
        builder = self.builder
        building = make_id("", text, builder.taken_ids["buildings"] | builder.taken_ids["groups"])
        self.new_buildings[text] = building
        builder.put("buildings", {"id": building, "name": text}, n)
        group = make_id("g-", building, builder.taken_ids["groups"])
        builder.put(
            "groups",
            {
                "id": group,
                "name": f"Resident-Building {text}"[:64],
                "building_default": building,
                "schedule": dict(DEFAULT_SCHEDULE),
                "doors": [],
            },
            n,
        )
        return building

    def default_group(self, building: str) -> str | None:
        found = self.site.default_group.get(building)
        if found:
            return str(found)
        for group in self.builder.lists["groups"].values():
            if group.get("building_default") == building:
                return str(group["id"])
        return None

    def apartment(self, building: str, number: str, n: int) -> str:
        found = self.site.apartment_at.get((building, number))
        if found is not None:
            return str(found)
        key = (building, number)
        if key in self.new_apartments:
            return self.new_apartments[key]
        apartment = make_id("", f"{building}-{number}", self.builder.taken_ids["apartments"])
        self.new_apartments[key] = apartment
        self.builder.put("apartments", {"id": apartment, "building": building, "number": number}, n)
        return apartment

    def apt_name(self, apartment: str, name: str | None, n: int) -> None:
        if name is None:
            return
        if len(name) > MAX_NAME:
            self.problems.add(n, "Apt Name", f"at most {MAX_NAME} characters")
            return
        earlier = self.apt_name_row.get(apartment)
        if earlier is not None and earlier[0] != name:
            self.problems.add(n, "Apt Name", f"row {earlier[1]} names this apartment differently")
            return
        self.apt_name_row[apartment] = (name, n)
        current = self.builder.lists["apartments"][apartment]
        if current.get("name") != name:
            self.builder.put("apartments", {**current, "name": name}, n)

    # -- whole file -----------------------------------------------------------------------

    def masters(self) -> None:
        """At most one family master per apartment."""
        master_of: dict[str, list[str]] = {}
        for person in self.builder.lists["people"].values():
            if person.get("role") == "master" and person.get("apartment"):
                master_of.setdefault(person["apartment"], []).append(person["id"])
        for ids in master_of.values():
            if len(ids) < 2:
                continue
            for pid in ids:
                row = self.builder.origin.get(f"people/{pid}")
                if row is not None:
                    self.problems.add(
                        row,
                        "Account Type",
                        "the apartment has another master account (0): use 1 for members",
                    )


def plan(
    rows: list[Row],
    doc: Mapping[str, Any],
    *,
    secret: bytes,
    doors: Collection[str] | None,
    progress: Progress | None = None,
) -> ImportResult:
    """Check every row; the new document, or ImportRejected listing every problem."""
    work = _Residents(Site(doc, secret, doors))
    for row in every(rows, progress, "checking", len(rows)):
        work.row(row)
    work.masters()
    work.builder.summary.rows = len(rows)
    if progress is not None:
        progress("validating", len(rows), len(rows))
    return finish(work.builder, work.problems, "the residents file", _COLUMN_OF_KIND)


__all__ = ["RESIDENTS", "plan", "resident_cells", "split_name"]
