"""The site's policy: the document, its entities and settings, and how a change commits.

The policy is held twice: as the hashed document (what the REST API lists and edits) and
as an immutable indexed ``PolicySnapshot`` that decisions read, swapped whole on every
change so that each decision sees exactly one policy version.

A change is all or nothing and edits are serialised: under one lock, the new document is
worked out, validated, hashed and indexed in a worker thread (seconds for a large policy,
so never on the event loop), written in one store transaction with its audit rows, and
only then swapped in. Two concurrent edits therefore apply one after the other, each on
top of the other's result.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from doorkeep import credfacts, policydoc, policyrules
from doorkeep.errors import Conflict, NotFound, PolicyError, PolicyIssue
from edge.core.model import DoorSpec, PolicySnapshot, ReaderSpec, build_snapshot
from edge.store import AuditEntry, EdgeStore

log = logging.getLogger(__name__)

#: Picks some of an entity list (a search's page) before it is copied.

# REST/UI entity kinds -> document lists. Holidays and hold-open are policy entities too.
ENTITY_KINDS: Mapping[str, str] = {
    "people": "people",
    "credentials": "credentials",
    "groups": "groups",
    "temp_keys": "temp_keys",
    "apartments": "apartments",
    "buildings": "buildings",
    "reservations": "reservations",
    "holidays": "holidays",
    "hold_open": "hold_open",
}

#: Entity fields that are personal data: the audit log records that they were set only.
PERSONAL_FIELDS = frozenset({"visitor_id_number"})

Publish = Callable[[str, Mapping[str, Any]], None]


@dataclass(slots=True)
class Edit:
    """One worked-out change: the new hashed document and what the store must write."""

    doc: dict[str, Any]
    audit: list[AuditEntry]
    upserts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deletes: dict[str, list[str]] = field(default_factory=dict)
    replace: bool = False
    result: Any = None


# Works out a new hashed document (None: no change) and a summary from the current one.
Derive = Callable[[Mapping[str, Any]], tuple[dict[str, Any] | None, dict[str, Any]]]


class _Unchanged(Exception):
    """Raised by a derive that changes nothing, to leave _commit without a write."""


# Works out an edit from the current document; runs in a worker thread, so it must only
# read the document it is given (never mutate it) and raise to refuse the change.
Prepare = Callable[[Mapping[str, Any]], Edit]


class SitePolicy:
    """The policy of one site, its editing and its installation from the cloud."""

    def __init__(
        self,
        store: EdgeStore,
        *,
        secret: bytes,
        tz: ZoneInfo,
        doors: list[DoorSpec],
        readers: list[ReaderSpec],
        publish: Publish,
    ) -> None:
        self.store = store
        self._secret = secret
        self._tz = tz
        self._door_specs, self._reader_specs = doors, readers
        self.door_specs: tuple[DoorSpec, ...] = tuple(doors)
        self._publish = publish
        state = store.load_policy()
        self._doc: dict[str, Any] = dict(state.doc)
        self.owner: str = state.owner
        self.snapshot = self._build(state.doc, state.version, state.digest)
        self._lock = asyncio.Lock()

    def _build(self, doc: Mapping[str, Any], version: int, digest: str) -> PolicySnapshot:
        return build_snapshot(
            doc,
            tz=self._tz,
            secret=self._secret,
            doors=self._door_specs,
            readers=self._reader_specs,
            version=version,
            digest=digest,
        )

    def _door_ids(self) -> frozenset[str]:
        return frozenset(self.snapshot.doors)

    def _check_local(self) -> None:
        if self.owner == "cloud":
            raise Conflict(
                "this site's policy is managed by the cloud it is enrolled with: "
                "make the change there (hardware stays editable here)"
            )

    # --- reading -----------------------------------------------------------------------

    def header(self) -> tuple[int, str]:
        """The (version, digest) committed in the store, which another process may have
        changed (``doorkeep policy apply`` while the daemon runs)."""
        return self.store.policy_header()

    def document(self) -> dict[str, Any]:
        """The whole policy, hashed: no plaintext credential value is ever returned."""
        return policydoc.canonical_document(self._doc)

    def settings(self) -> dict[str, Any]:
        return policydoc.settings_of(self._doc)

    def list_entities(self, kind: str) -> list[dict[str, Any]]:
        """A copy of the items of ``kind`` (searches and pages: edge/site/pm.py)."""
        return copy.deepcopy(list(self._doc.get(_doc_kind(kind)) or []))

    def get_entity(self, kind: str, key: str) -> dict[str, Any]:
        return copy.deepcopy(_find(self._doc, kind, key))

    def current(self) -> Mapping[str, Any]:
        """The hashed document in force, not a copy: read it, never change it (every
        change replaces it whole, so a reader in a worker thread sees one version)."""
        return self._doc

    # --- committing --------------------------------------------------------------------

    async def _commit(self, prepare: Prepare, *, local: bool = True) -> tuple[int, Any]:
        """Work out, check and index an edit off the event loop; store it; swap it in."""
        async with self._lock:
            if local:  # again under the lock: a cloud install may have just taken over
                self._check_local()
            version = self.snapshot.version + 1
            edit, digest, snapshot = await asyncio.to_thread(
                self._prepare, prepare, self._doc, version
            )
            await self.store.apply_policy_change(
                upserts=edit.upserts,
                deletes=edit.deletes,
                settings=edit.doc.get("settings") or {},
                replace=edit.replace,
                version=version,
                digest=digest,
                owner=None,
                audit=edit.audit,
            )
            self._doc, self.snapshot = edit.doc, snapshot
            self._publish("policy", {"version": version, "digest": digest})
        return version, edit.result

    async def change(self, prepare: Prepare) -> tuple[int, Any]:
        """Commit an edit that ``prepare`` works out (in a worker thread) from the
        current document: validated, stored with its audit rows, swapped in whole."""
        self._check_local()
        return await self._commit(prepare)

    def check(self, doc: Any) -> None:
        """PolicyError listing every problem of ``doc`` against this site's doors."""
        self._check(doc)

    def _prepare(
        self, prepare: Prepare, doc: Mapping[str, Any], version: int
    ) -> tuple[Edit, str, PolicySnapshot]:
        edit = prepare(doc)
        digest = policydoc.policy_digest(edit.doc)
        try:
            snapshot = self._build(edit.doc, version, digest)
        except ValueError as err:  # a schedule the schema let through but cannot be used
            raise PolicyError(str(err), [PolicyIssue("policy", "-", str(err))]) from err
        return edit, digest, snapshot

    def _check(self, doc: Any) -> None:
        policydoc.check_document(doc, doors=self._door_ids(), secret=self._secret)

    async def apply(self, doc: Any, *, actor: str, source: str = "local") -> int:
        """Replace the whole policy. PolicyError listing every problem; nothing changes."""
        local = source == "local"
        if local:
            self._check_local()

        def prepare(_current: Mapping[str, Any]) -> Edit:
            self._check(doc)
            hashed = policydoc.hash_document(doc, self._secret)
            counts = {k: len(hashed.get(k) or []) for k in policydoc.ENTITY_KINDS}
            return Edit(
                hashed,
                [AuditEntry(actor, "policy.apply", "policy", counts)],
                upserts={k: hashed.get(k) or [] for k in policydoc.ENTITY_KINDS},
                replace=True,
            )

        version, _ = await self._commit(prepare, local=local)
        return version

    async def install(
        self, hashed: Mapping[str, Any], *, version: int, digest: str, actor: str
    ) -> None:
        """Install a hashed document from the cloud as-is (bundle already verified)."""
        async with self._lock:
            snapshot = await asyncio.to_thread(self._build, hashed, version, digest)
            await self.store.apply_policy_change(
                upserts={k: list(hashed.get(k) or []) for k in policydoc.ENTITY_KINDS},
                deletes={},
                settings=hashed.get("settings") or {},
                replace=True,
                version=version,
                digest=digest,
                owner="cloud",
                audit=[
                    AuditEntry(
                        actor, "policy.sync", "policy", {"version": version, "digest": digest}
                    )
                ],
            )
            self._doc, self.snapshot, self.owner = dict(hashed), snapshot, "cloud"
        self._publish("policy", {"version": version, "digest": digest})

    async def reload(self) -> None:
        """Rebuild the snapshot from the store (after another process changed it)."""
        async with self._lock:
            state = await asyncio.to_thread(self.store.load_policy)
            self.snapshot = await asyncio.to_thread(
                self._build, state.doc, state.version, state.digest
            )
            self._doc, self.owner = dict(state.doc), state.owner
        log.info("policy version %d loaded from the store", state.version)
        self._publish("policy", {"version": state.version, "digest": state.digest})

    async def apply_derived(
        self, derive: Derive, *, actor: str, action: str, target: str
    ) -> tuple[int | None, Any]:
        """Commit a document worked out from the current one by ``derive`` (the import
        path: edge/site/imports.py), in one transaction with one audit row.

        ``derive(current)`` runs in a worker thread under the edit lock and returns the
        new hashed document (already checked) and a summary for the audit row and the
        caller; a None document means nothing changes: no version, no policy write.
        Only the entities that differ are written.
        """
        self._check_local()
        unchanged: list[Any] = []

        def prepare(current: Mapping[str, Any]) -> Edit:
            new_doc, summary = derive(current)
            if new_doc is None:
                unchanged.append(summary)
                raise _Unchanged
            upserts, deletes = _diff(current, new_doc)
            audit = AuditEntry(actor, action, target, summary)
            return Edit(new_doc, [audit], upserts=upserts, deletes=deletes, result=summary)

        try:
            version, result = await self._commit(prepare)
        except _Unchanged:
            return None, unchanged[0]
        return version, result

    # --- editing -----------------------------------------------------------------------

    async def put_settings(self, settings: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
        self._check_local()

        def prepare(current: Mapping[str, Any]) -> Edit:
            new_doc = copy.deepcopy(dict(current))
            new_doc["settings"] = {**policydoc.settings_of(current), **dict(settings)}
            self._check(new_doc)
            return Edit(new_doc, [AuditEntry(actor, "settings.update", "settings", dict(settings))])

        await self._commit(prepare)
        return self.settings()

    async def put_entity(
        self, kind: str, key: str, body: Mapping[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Create or replace one entity; PolicyError (nothing changed) when invalid."""
        self._check_local()
        doc_kind = _doc_kind(kind)
        if not isinstance(body, Mapping):
            raise ValueError("the body must be a JSON object")
        key_field = policydoc.key_field(doc_kind)
        entity = dict(body)
        if entity.setdefault(key_field, key) != key:
            raise ValueError(
                f"{key_field} in the body ({entity[key_field]!r}) differs from the URL ({key!r})"
            )

        def prepare(current: Mapping[str, Any]) -> Edit:
            new_doc = copy.deepcopy(dict(current))
            items = new_doc.setdefault(doc_kind, [])
            existing = [i for i, e in enumerate(items) if policydoc.entity_key(doc_kind, e) == key]
            entity_now = entity
            if existing:
                if doc_kind == "credentials":
                    entity_now = credfacts.carry_facts(items[existing[0]], entity)
                items[existing[0]] = entity_now
            else:
                items.append(entity)
            extra = self._companions(new_doc, doc_kind, key, entity, actor)
            # One validation over the document as it would be, plaintext entity included
            # (the secret lets uniqueness compare it with the hashed ones), then hash it.
            self._check(new_doc)
            hashed = policydoc.hash_document({doc_kind: [entity_now]}, self._secret)[doc_kind][0]
            index = existing[0] if existing else items.index(entity)
            items[index] = hashed
            action = f"{doc_kind}.{'update' if existing else 'create'}"
            audit = AuditEntry(actor, action, f"{doc_kind}/{key}", _redacted(hashed))
            edit = Edit(new_doc, [audit], upserts={doc_kind: [hashed]}, result=hashed)
            for kind_, item, entry in extra:
                edit.upserts.setdefault(kind_, []).append(item)
                edit.audit.append(entry)
            return edit

        _, hashed_entity = await self._commit(prepare)
        return copy.deepcopy(dict(hashed_entity))

    def _companions(
        self,
        new_doc: dict[str, Any],
        doc_kind: str,
        key: str,
        entity: Mapping[str, Any],
        actor: str,
    ) -> list[tuple[str, dict[str, Any], AuditEntry]]:
        """What a new entity brings along, added to ``new_doc``: a new building its
        default group of the building's public doors (site.toml ``building``)."""
        if doc_kind != "buildings" or not policyrules.needs_default_group(new_doc, key):
            return []
        doors = [d.id for d in self._door_specs if d.building == key]
        group = policyrules.default_group(new_doc, entity, doors)
        new_doc.setdefault("groups", []).append(group)
        target = f"groups/{group['id']}"
        return [("groups", group, AuditEntry(actor, "groups.create", target, dict(group)))]

    async def delete_entity(self, kind: str, key: str, *, actor: str) -> None:
        """Delete one entity. Deleting a person deletes their credentials and bookings;
        deleting a group removes it from its members; a default group cannot go."""
        self._check_local()
        doc_kind = _doc_kind(kind)

        def prepare(current: Mapping[str, Any]) -> Edit:
            entity = _find(current, kind, key)
            if doc_kind == "groups" and entity.get("building_default"):
                raise Conflict(
                    f"group {key!r} is the default group of building "
                    f"{entity['building_default']}: it cannot be deleted (edit its doors instead)"
                )
            new_doc = copy.deepcopy(dict(current))
            edit = Edit(
                new_doc,
                [AuditEntry(actor, f"{doc_kind}.delete", f"{doc_kind}/{key}", None)],
                deletes={doc_kind: [key]},
            )
            new_doc[doc_kind] = [
                e for e in new_doc[doc_kind] if policydoc.entity_key(doc_kind, e) != key
            ]
            if doc_kind == "people":
                for dependent in ("credentials", "reservations"):
                    entities = new_doc.get(dependent) or []
                    edit.deletes[dependent] = [e["id"] for e in entities if e.get("person") == key]
                    new_doc[dependent] = [e for e in entities if e.get("person") != key]
            elif doc_kind == "groups":
                for person in new_doc.get("people") or []:
                    if key in (person.get("groups") or []):
                        person["groups"] = [g for g in person["groups"] if g != key]
                        edit.upserts.setdefault("people", []).append(person)
            issues = policydoc.validate_document(
                new_doc, doors=self._door_ids(), secret=self._secret
            )
            if issues:
                raise Conflict(
                    f"{kind} {key!r} is still used: " + "; ".join(str(i) for i in issues[:5])
                )
            return edit

        await self._commit(prepare)

    async def reset_apartment(self, apartment_id: str, *, actor: str) -> dict[str, Any]:
        """Remove an apartment's members (not its master), every credential of its
        people, its temp keys and its door logs; the audit log keeps all of it."""
        self._check_local()

        def prepare(current: Mapping[str, Any]) -> Edit:
            _find(current, "apartments", apartment_id)
            people = [p for p in current.get("people") or [] if p.get("apartment") == apartment_id]
            members = {p["id"] for p in people if p.get("role") != "master"}
            residents = {p["id"] for p in people}
            # what goes, per entity kind; the master person stays
            goes: dict[str, Callable[[Mapping[str, Any]], bool]] = {
                "people": lambda e: e["id"] in members,
                "credentials": lambda e: e["person"] in residents,
                "temp_keys": lambda e: e.get("apartment") == apartment_id,
                "reservations": lambda e: e["person"] in members,
            }
            new_doc = copy.deepcopy(dict(current))
            summary: dict[str, Any] = {}
            for kind, gone in goes.items():
                entities = new_doc.get(kind) or []
                summary[kind] = [e["id"] for e in entities if gone(e)]
                new_doc[kind] = [e for e in entities if not gone(e)]
            upserts: dict[str, list[dict[str, Any]]] = {}
            for person in new_doc.get("people") or []:  # the master keeps no contacts
                if person["id"] in residents and policyrules.strip_contacts(person):
                    upserts.setdefault("people", []).append(person)
            summary["contacts_cleared"] = [p["id"] for p in upserts.get("people", [])]
            self._check(new_doc)
            audit = AuditEntry(
                actor, "apartments.reset", f"apartments/{apartment_id}", dict(summary)
            )
            deletes = {kind: list(summary[kind]) for kind in goes}
            edit = Edit(new_doc, [audit], deletes=deletes, upserts=upserts, result=summary)
            edit.result = (summary, sorted(residents))
            return edit

        _, (summary, residents) = await self._commit(prepare)
        summary["events_redacted"] = await self.store.redact_apartment_events(
            apartment_id, actor=actor, people=residents
        )
        return dict(summary)


def _diff(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    """The entities of ``new`` that are new or differ from ``old``, and the keys it drops."""
    upserts: dict[str, list[dict[str, Any]]] = {}
    deletes: dict[str, list[str]] = {}
    for kind in policydoc.ENTITY_KINDS:
        before = {policydoc.entity_key(kind, e): e for e in old.get(kind) or []}
        after = {policydoc.entity_key(kind, e): e for e in new.get(kind) or []}
        changed = [e for k, e in after.items() if before.get(k) != e]
        gone = [k for k in before if k not in after]
        if changed:
            upserts[kind] = changed
        if gone:
            deletes[kind] = gone
    return upserts, deletes


def _doc_kind(kind: str) -> str:
    if kind not in ENTITY_KINDS:
        raise NotFound(f"unknown entity kind {kind!r}")
    return ENTITY_KINDS[kind]


def _find(doc: Mapping[str, Any], kind: str, key: str) -> dict[str, Any]:
    doc_kind = _doc_kind(kind)
    for entity in doc.get(doc_kind) or []:
        if policydoc.entity_key(doc_kind, entity) == key:
            return dict(entity)
    raise NotFound(f"{kind} {key!r} does not exist")


def _redacted(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An entity for the audit log: hashes shortened, nothing secret."""
    out = {}
    for key, value in entity.items():
        if key.endswith("_hmac"):
            out[key] = f"{str(value)[:8]}…"
        elif key in PERSONAL_FIELDS:  # personal data: that it was set, never its value
            out[key] = "(set)"
        else:
            out[key] = value
    return out
