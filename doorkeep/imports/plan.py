"""What every import shares: the site as indexes, row problems, credential cells, the
finished document and its summary.

An import works on the *hashed* policy document of the site and produces a new hashed
document (or every problem found). New credential values are hashed here at once, with
the site's secret, so no plaintext value outlives the parse; messages never repeat one.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from doorkeep import cards, policydoc
from doorkeep.credhash import credential_hmac, duress_pin
from doorkeep.errors import PolicyIssue
from doorkeep.imports.columns import CREDENTIAL_COLUMNS, MASK, SEPARATOR
from doorkeep.imports.sheets import ImportRejected

#: ``progress(stage, done, total)``: called every few hundred rows (from a worker thread).
Progress = Callable[[str, int, int], None]

MAX_NAME = 64
MAX_BUILDING = 128
_PIN = re.compile(r"[0-8][0-9]{1,7}")
_ID_BAD = re.compile(r"[^A-Za-z0-9._:@#-]+")
PROGRESS_EVERY = 500


@dataclass(slots=True)
class Summary:
    """What an import changes (all zero: nothing)."""

    kind: str
    rows: int = 0
    people_added: int = 0
    people_updated: int = 0
    credentials_added: int = 0
    credentials_removed: int = 0
    apartments_added: int = 0
    apartments_updated: int = 0
    buildings_added: int = 0

    @property
    def changes(self) -> int:
        return (
            self.people_added
            + self.people_updated
            + self.credentials_added
            + self.credentials_removed
            + self.apartments_added
            + self.apartments_updated
            + self.buildings_added
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]
        out["changes"] = self.changes
        return out

    def text(self) -> str:
        """One line for the audit log and the CLI: ``import residents: 3 people, ...``."""
        if not self.changes:
            return f"import {self.kind}: {self.rows} rows, 0 changes"
        return (
            f"import {self.kind}: {self.rows} rows, "
            f"{self.people_added + self.people_updated} people "
            f"({self.people_added} new, {self.people_updated} changed), "
            f"{self.credentials_added + self.credentials_removed} credentials "
            f"({self.credentials_added} new, {self.credentials_removed} removed), "
            f"{self.apartments_added + self.apartments_updated} apartments "
            f"({self.apartments_added} new), {self.buildings_added} new buildings"
        )


@dataclass(frozen=True, slots=True)
class ImportResult:
    """A checked import: the new hashed document (None: nothing changes) and its summary."""

    doc: dict[str, Any] | None
    summary: Summary


def split_cell(text: str) -> list[str]:
    """The values of a ``;``-separated cell (``,`` is part of a Wiegand FC,CN card)."""
    return [part.strip() for part in text.split(SEPARATOR) if part.strip()]


def make_id(prefix: str, text: str, taken: Collection[str]) -> str:
    """A policy id from ``text`` (``B1-2#203``), unique against ``taken``."""
    base = _ID_BAD.sub("-", text).strip("-._:@#")[:48]
    if not base:
        base = hashlib.sha256(text.encode()).hexdigest()[:10]
    candidate = f"{prefix}{base}"
    n = 2
    while candidate in taken:
        candidate = f"{prefix}{base}-{n}"
        n += 1
    return candidate


class Site:
    """The site's hashed document as indexes an import needs (read only)."""

    def __init__(
        self, doc: Mapping[str, Any], secret: bytes, doors: Collection[str] | None
    ) -> None:
        self.doc = doc
        self.secret = secret
        self.doors = doors
        self.settings = policydoc.settings_of(doc)
        self.apt_mode = self.settings.get("pin_mode") == "apt_pin"
        self.buildings = {b["id"]: b for b in doc.get("buildings") or []}
        self.building_by_name: dict[str, str | None] = {}
        for b in self.buildings.values():
            name = b.get("name")
            if name:
                # two buildings of one name: the name is ambiguous (None)
                self.building_by_name[name] = None if name in self.building_by_name else b["id"]
        self.apartments = {a["id"]: a for a in doc.get("apartments") or []}
        self.apartment_at = {
            (a["building"], a.get("number") or a["id"]): a["id"] for a in self.apartments.values()
        }
        self.people = {p["id"]: p for p in doc.get("people") or []}
        self.groups = {g["id"]: g for g in doc.get("groups") or []}
        self.default_group = {
            g["building_default"]: g["id"]
            for g in self.groups.values()
            if g.get("building_default")
        }
        self.creds_of: dict[str, list[dict[str, Any]]] = {}
        for cred in doc.get("credentials") or []:
            self.creds_of.setdefault(cred["person"], []).append(cred)
        self.ids: dict[str, set[str]] = {
            kind: {policydoc.entity_key(kind, e) for e in doc.get(kind) or []}
            for kind in ("buildings", "apartments", "people", "credentials", "groups")
        }

    def building_label(self, building_id: str) -> str:
        building = self.buildings.get(building_id) or {}
        return str(building.get("name") or building_id)

    def find_building(self, text: str) -> str | None:
        """The id of the building a cell names (its name first, then its id)."""
        by_name = self.building_by_name.get(text)
        if by_name is not None:
            return by_name
        return text if text in self.buildings else None


class Problems:
    """Row problems in sheet order; raises them all at once."""

    def __init__(self) -> None:
        self.issues: list[PolicyIssue] = []

    def add(self, row: int, column: str, message: str) -> None:
        self.issues.append(PolicyIssue(f"row {row}", column, message))

    def check(self, what: str) -> None:
        if self.issues:
            self.issues.sort(key=lambda i: (_row_of(i.entity), i.field))
            raise ImportRejected(
                f"{what}: {len(self.issues)} problem(s); nothing was changed", self.issues
            )


def _row_of(entity: str) -> int:
    return int(entity[4:]) if entity.startswith("row ") and entity[4:].isdigit() else 0


@dataclass(slots=True)
class CredentialCell:
    """What one credential cell asks for: keep (blank or all masks), or these HMACs."""

    keep: bool
    add: list[tuple[str, str | None]] = field(default_factory=list)  # (value_hmac, duress)
    replace: bool = False


def credential_cell(
    site: Site, row: int, column: str, text: str, problems: Problems
) -> CredentialCell:
    """Parse and hash one credential cell; problems name the row and column, never a value."""
    kind, limit = CREDENTIAL_COLUMNS[column]
    values = split_cell(text)
    if not values:
        return CredentialCell(keep=True)
    masks = [v for v in values if v == MASK]
    fresh = [v for v in values if v != MASK]
    cell = CredentialCell(keep=bool(masks), replace=not masks)
    if len(fresh) > limit:
        problems.add(row, column, f"at most {limit} value(s) per person, separated by ';'")
        return CredentialCell(keep=True)
    for value in fresh:
        if kind == "pin" and not _PIN.fullmatch(value):
            problems.add(row, column, "a PIN is 2-8 digits and does not start with 9")
            continue
        try:
            hashed = credential_hmac(site.secret, kind, value)
        except ValueError as err:
            problems.add(row, column, str(err))
            continue
        duress = credential_hmac(site.secret, "pin", duress_pin(value)) if kind == "pin" else None
        cell.add.append((hashed, duress))
    return cell


def credential_key(
    site: Site, kind: str, value_hmac: str, apartment: str | None
) -> tuple[Any, ...]:
    """What must be unique: the HMAC (PINs in ``apt_pin`` mode: inside one apartment)."""
    if kind == "pin" and site.apt_mode:
        return ("pin", apartment, value_hmac)
    return ("pin" if kind == "pin" else kind, value_hmac)


def card_form_ok(kind: str, value: str) -> bool:
    try:
        cards.normalise(kind, value)
    except ValueError:
        return False
    return True


class Builder:
    """The new document under construction, and where each entity came from (its row)."""

    def __init__(self, site: Site, kind: str) -> None:
        self.site = site
        self.summary = Summary(kind)
        self.lists: dict[str, dict[str, dict[str, Any]]] = {
            k: {policydoc.entity_key(k, e): e for e in site.doc.get(k) or []}
            for k in policydoc.ENTITY_KINDS
        }
        self.origin: dict[str, int] = {}  # "people/p-1" -> sheet row
        self.creds: dict[str, list[dict[str, Any]]] = {
            p: list(cs) for p, cs in site.creds_of.items()
        }
        self.taken_ids: dict[str, set[str]] = {k: set(v) for k, v in site.ids.items()}
        self.counted: set[str] = set()  # entities already counted in the summary

    def put(self, kind: str, entity: dict[str, Any], row: int) -> None:
        key = policydoc.entity_key(kind, entity)
        old = self.lists[kind].get(key)
        if old == entity:
            return
        self.lists[kind][key] = entity
        self.taken_ids.setdefault(kind, set()).add(key)
        self.origin.setdefault(f"{kind}/{key}", row)
        counted = f"{kind}/{key}"
        if counted in self.counted:
            return
        self.counted.add(counted)
        if kind == "people":
            if old is None:
                self.summary.people_added += 1
            else:
                self.summary.people_updated += 1
        elif kind == "apartments":
            if old is None:
                self.summary.apartments_added += 1
            else:
                self.summary.apartments_updated += 1
        elif kind == "buildings" and old is None:
            self.summary.buildings_added += 1

    def set_credentials(self, person: str, kind: str, cell: CredentialCell, row: int) -> None:
        """Apply one credential cell to ``person``'s credentials of ``kind``."""
        if cell.keep and not cell.add:
            return
        held = self.creds.get(person, [])
        same_kind = [c for c in held if c["kind"] == kind]
        wanted = {h for h, _ in cell.add}
        kept = [c for c in held if c["kind"] != kind]
        for cred in same_kind:
            if cell.keep or cred.get("value_hmac") in wanted:
                kept.append(cred)
            else:
                self.summary.credentials_removed += 1
        have = {c.get("value_hmac") for c in kept if c["kind"] == kind}
        for hashed, duress in cell.add:
            if hashed in have:
                continue
            have.add(hashed)
            cred_id = make_id(
                "", f"{person}-{kind.replace('_', '')}", self.taken_ids["credentials"]
            )
            self.taken_ids["credentials"].add(cred_id)
            made: dict[str, Any] = {
                "id": cred_id,
                "person": person,
                "kind": kind,
                "value_hmac": hashed,
            }
            if duress is not None:
                made["duress_hmac"] = duress
            kept.append(made)
            self.origin[f"credentials/{cred_id}"] = row
            self.summary.credentials_added += 1
        self.creds[person] = kept

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"format": policydoc.FORMAT}
        if "settings" in self.site.doc:
            doc["settings"] = copy.deepcopy(self.site.doc["settings"])
        for kind in policydoc.ENTITY_KINDS:
            if kind == "credentials":
                doc[kind] = [c for cs in self.creds.values() for c in cs]
            else:
                doc[kind] = list(self.lists[kind].values())
        return doc


def check_unique(builder: Builder, problems: Problems, column_of: Mapping[str, str]) -> None:
    """No two people share a credential, in the file or against the site."""
    site = builder.site
    apartment_of = {k: p.get("apartment") for k, p in builder.lists["people"].items()}
    seen: dict[tuple[Any, ...], tuple[str, int | None]] = {}
    new: list[tuple[dict[str, Any], int]] = []
    for creds in builder.creds.values():
        for cred in creds:
            if "value_hmac" not in cred:
                continue
            row = builder.origin.get(f"credentials/{cred['id']}")
            if row is not None:
                new.append((cred, row))
                continue
            key = credential_key(
                site, cred["kind"], cred["value_hmac"], apartment_of.get(cred["person"])
            )
            seen.setdefault(key, (cred["person"], None))
    for cred, row in sorted(new, key=lambda item: item[1]):
        key = credential_key(
            site, cred["kind"], cred["value_hmac"], apartment_of.get(cred["person"])
        )
        other = seen.get(key)
        column = column_of.get(cred["kind"], cred["kind"])
        if other is not None and other[0] != cred["person"]:
            what = "this PIN" if cred["kind"] == "pin" else "this value"
            if other[1] is None:
                problems.add(row, column, f"{what} is already taken on this site: choose another")
            else:
                problems.add(row, column, f"{what} is also in row {other[1]}: each must be unique")
            continue
        seen[key] = (cred["person"], row)


def finish(
    builder: Builder, problems: Problems, what: str, column_of: Mapping[str, str]
) -> ImportResult:
    """Every remaining rule of the policy over the new document; the result."""
    check_unique(builder, problems, column_of)  # also over a file with other problems
    problems.check(what)
    doc = builder.document()
    if not builder.summary.changes:
        return ImportResult(None, builder.summary)
    issues = policydoc.validate_document(doc, doors=builder.site.doors, secret=builder.site.secret)
    for issue in issues:
        row = builder.origin.get(issue.entity)
        if row is None:
            problems.issues.append(issue)
        else:
            problems.add(row, _column_for(issue, column_of), issue.message)
    problems.check(what)
    return ImportResult(doc, builder.summary)


_FIELD_COLUMNS = {
    "name": "First Name",
    "apartment": "Apt",
    "groups": "Access Group ID",
    "floors": "Accessible Floors",
    "number": "Apt",
    "building": "Building",
    "remark": "Remark",
}


def _column_for(issue: PolicyIssue, column_of: Mapping[str, str]) -> str:
    if issue.entity.startswith("credentials/"):
        return "credential"
    head = issue.field.split(".")[0]
    return _FIELD_COLUMNS.get(head, column_of.get(head, issue.field))


def every(rows: Iterable[Any], progress: Progress | None, stage: str, total: int) -> Iterable[Any]:
    """``rows``, reporting progress every ``PROGRESS_EVERY`` rows."""
    for index, row in enumerate(rows):
        if progress is not None and index % PROGRESS_EVERY == 0:
            progress(stage, index, total)
        yield row
    if progress is not None:
        progress(stage, total, total)
