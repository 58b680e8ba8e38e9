"""The property manager's desk: the library's search, apartment batch edits, lease
auto-delete and the third-party lock reports (issue 12).

A part of the Site (``site.pm``) beside ``site.policy``: every change it makes is one
``SitePolicy.change`` (validated, one policy version, audited), and everything that walks
a whole list runs in a worker thread, so a 20,000-person policy never holds the event
loop (docs/performance.md, *Library search*).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from doorkeep import listing, lockformats, policyrules
from doorkeep.errors import NotFound, PolicyError, PolicyIssue
from edge.site.policy import Edit, SitePolicy
from edge.store import AuditEntry

log = logging.getLogger(__name__)

#: The apartment fields a batch edit may set (one value for every apartment named).
BATCH_FIELDS = frozenset({"valid_from", "valid_until", "auto_delete", "methods", "max_members"})
# (edge/web/schemas.py lists the same fields for the body of POST /batch/apartments)
#: Who the lease sweep is in the audit log.
LEASE_ACTOR = "system:lease"


class PropertyManager:
    """Search, batch edits, lease sweeps and lock reports over one site's policy."""

    def __init__(self, policy: SitePolicy, *, clock: Callable[[], datetime], tz: ZoneInfo) -> None:
        self.policy = policy
        self.clock = clock
        self.tz = tz
        self._index: listing.EntityIndex | None = None

    # --- the library ---------------------------------------------------------------------

    def _index_of(self, doc: Mapping[str, Any]) -> listing.EntityIndex:
        index = self._index
        if index is None or index.doc is not doc:
            index = listing.EntityIndex(doc)
            self._index = index  # one per policy version; a race builds it twice, no harm
        return index

    async def search(self, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """``{"items", "total"}`` of one entity list (the list contract, doorkeep/listing)."""
        if kind not in listing.FILTERS:
            raise NotFound(f"unknown entity kind {kind!r}")
        query = listing.Query.of(kind, params)
        doc, now = self.policy.current(), self.clock()
        return await asyncio.to_thread(
            lambda: listing.search(self._index_of(doc), kind, query, now=now, tz=self.tz)
        )

    async def lock_report(self, family: str) -> dict[str, Any]:
        """What cannot be synced to the doors of one lock family, and why."""
        if family not in lockformats.FAMILIES:
            raise NotFound(f"unknown lock family {family!r}: one of {sorted(lockformats.FAMILIES)}")
        doc = self.policy.current()
        return await asyncio.to_thread(lockformats.report, doc, family)

    # --- apartments ----------------------------------------------------------------------

    async def batch_apartments(
        self, ids: list[str], changes: Mapping[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Set the same ``changes`` on every apartment of ``ids``: one policy version,
        one audit entry; PolicyError (nothing changed) when one of them cannot take it."""
        unknown = sorted(set(changes) - BATCH_FIELDS)
        if unknown:
            raise ValueError(f"a batch edit may set {sorted(BATCH_FIELDS)}, not {unknown}")
        wanted = list(dict.fromkeys(ids))

        def prepare(current: Mapping[str, Any]) -> Edit:
            new_doc = copy.deepcopy(dict(current))
            by_id = {a["id"]: a for a in new_doc.get("apartments") or []}
            missing = [i for i in wanted if i not in by_id]
            if missing:
                issues = [PolicyIssue(f"apartments/{i}", "id", "does not exist") for i in missing]
                raise PolicyError(f"{len(missing)} apartment(s) do not exist", issues)
            changed = []
            for apt_id in wanted:
                apt = by_id[apt_id]
                apt.update(copy.deepcopy(dict(changes)))
                changed.append(apt)
            self.policy.check(new_doc)
            detail = {"apartments": wanted, "set": dict(changes)}
            audit = AuditEntry(actor, "apartments.batch_update", "apartments", detail)
            return Edit(new_doc, [audit], upserts={"apartments": changed}, result=wanted)

        version, updated = await self.policy.change(prepare)
        return {"version": version, "updated": updated}

    async def sweep_leases(self, *, actor: str = LEASE_ACTOR) -> dict[str, list[str]]:
        """Remove the residents of apartments whose lease ended with auto-delete set
        (with their credentials and bookings), audited; ``{}`` when nothing ended.

        A cloud-managed site leaves this to the cloud's reconcile job."""
        if self.policy.owner == "cloud":
            return {}
        now = self.clock()
        _new, removed = policyrules.ended_leases(self.policy.current(), now, self.tz)
        if not removed:
            return {}

        def prepare(current: Mapping[str, Any]) -> Edit:
            new_doc, gone = policyrules.ended_leases(current, now, self.tz)
            self.policy.check(new_doc)
            audit = AuditEntry(actor, "apartments.lease_delete", "apartments", dict(gone))
            return Edit(new_doc, [audit], deletes=dict(gone), result=gone)

        _version, gone = await self.policy.change(prepare)
        if gone:
            log.info("lease ended: removed %d resident(s)", len(gone.get("people", [])))
        return dict(gone)
