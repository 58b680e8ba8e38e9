"""CloudStore: the one object the cloud service, the reconcile job and the CLI hold.

It owns the database and the five parts built on it, and delegates the calls its users
make to the part that answers them. Calls only tests and tools make are on the parts:
``store.db.migrate()``, ``store.registry.site_ids()``, ``.site_secret()``,
``.inventory()``, ``store.policies.plaintext_policy()``, ``store.event_log.watermark()``,
``.event_count()``, ``.event_seqs()``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Self

from cloud_sync.store._alarms import AlarmLog
from cloud_sync.store._db import Database
from cloud_sync.store._enroll import Enroller
from cloud_sync.store._events import EventLog, IngestResult
from cloud_sync.store._policy import PolicyStore
from cloud_sync.store._sites import SiteRegistry

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncEngine

    from cloud_sync.keys import CloudKeys


class CloudStore:
    """The cloud's database; ``async with CloudStore(url, keys) as store``."""

    def __init__(
        self,
        url: str,
        keys: CloudKeys,
        *,
        pg_schema: str | None = None,
        clock: Callable[[], float] = time.time,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.keys = keys
        #: POSIX seconds for every row written; tests and tools may replace it on an open
        #: store, so the parts read it through here.
        self.clock = clock
        now = lambda: self.clock()  # noqa: E731, PLW0108 - late-bound: see above
        self.db = Database(url, pg_schema=pg_schema, clock=now, pool_size=pool_size)
        self.is_pg = self.db.is_pg
        self.pg_schema = pg_schema
        self.channel = self.db.channel
        self.notifier = self.db.notifier
        self.registry = SiteRegistry(self.db, keys)
        self.policies = PolicyStore(self.db, keys, self.registry)
        self.enroller = Enroller(self.db, keys, self.policies)
        self.event_log = EventLog(self.db)
        self.alarm_log = AlarmLog(self.db)

    async def __aenter__(self) -> Self:
        await self.db.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.__aexit__(*exc)

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (open only inside ``async with``)."""
        return self.db.engine

    # ---------------------------------------------------------------- tokens and sites

    async def create_admin_token(self, name: str = "") -> str:
        """A new admin bearer token (shown once; only its hash is stored)."""
        return await self.registry.create_admin_token(name)

    async def check_admin_token(self, token: str) -> bool:
        """Whether ``token`` is a known admin token."""
        return await self.registry.check_admin_token(token)

    async def site_for_token(self, token: str) -> str:
        """The site a sync credential belongs to; AuthError if none."""
        return await self.registry.site_for_token(token)

    async def touch(self, site_id: str) -> None:
        """Record contact from a site (a poll) without a report."""
        await self.registry.touch(site_id)

    async def report(
        self,
        site_id: str,
        *,
        version: int | None,
        digest: str | None,
        inventory: dict[str, Any] | None,
    ) -> None:
        """Record what a site says it holds; clears a forced snapshot once it matches."""
        await self.registry.report(site_id, version=version, digest=digest, inventory=inventory)

    async def site_status(self, site_id: str | None = None) -> list[dict[str, Any]]:
        """Status rows: last contact, reported vs cloud version/digest, watermark, alarms."""
        return await self.registry.site_status(site_id)

    # ---------------------------------------------------------------- enrollment

    async def add_site(self, site_id: str, name: str = "") -> str:
        """Create a site with an empty policy at version 0; its one-time enrollment code."""
        return await self.enroller.add_site(site_id, name)

    async def new_enrollment_code(self, site_id: str) -> str:
        """A fresh one-time code for re-enrolling ``site_id``."""
        return await self.enroller.new_enrollment_code(site_id)

    async def enroll(self, code: str, adopt: dict[str, Any] | None = None) -> dict[str, Any]:
        """Trade a one-time code for the site credential; the code is spent (``adopt``:
        a standalone site's secret and policy, see :meth:`Enroller.enroll`)."""
        return await self.enroller.enroll(code, adopt)

    # ---------------------------------------------------------------- policy

    async def policy(self, site_id: str) -> tuple[int, str, dict[str, Any]]:
        """(version, digest, hashed document) of a site's policy as the cloud holds it."""
        return await self.policies.policy(site_id)

    async def change_policy(
        self,
        site_id: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        actor: str,
    ) -> tuple[int, str]:
        """Apply ``mutate`` as one new version (see :meth:`PolicyStore.change_policy`)."""
        return await self.policies.change_policy(site_id, mutate, actor=actor)

    async def force_snapshot(self, site_id: str, *, actor: str, min_version: int = 0) -> int:
        """Make the site's next poll a full snapshot at a new version."""
        return await self.policies.force_snapshot(site_id, actor=actor, min_version=min_version)

    async def bundle_for(
        self,
        site_id: str,
        have_version: int,
        have_digest: str | None,
        *,
        want_snapshot: bool = False,
    ) -> bytes | None:
        """The signed bundle that brings a site to the cloud's version, or None."""
        return await self.policies.bundle_for(
            site_id, have_version, have_digest, want_snapshot=want_snapshot
        )

    async def current_version(self, site_id: str) -> int:
        """The cloud's policy version of a site (cheap: the long-poll check)."""
        return await self.policies.current_version(site_id)

    # ---------------------------------------------------------------- events

    async def ingest(self, site_id: str, epoch: str, rows: list[dict[str, Any]]) -> IngestResult:
        """Store a batch of outbox rows exactly once; the contiguous watermark after it."""
        return await self.event_log.ingest(site_id, epoch, rows)

    async def resend_from(self, site_id: str) -> int | None:
        """The sequence number the site was asked to re-send from, if any."""
        return await self.event_log.resend_from(site_id)

    async def ask_resend(self, site_id: str, seq: int) -> None:
        """Make the site's next answers say "resend from ``seq``"."""
        await self.event_log.ask_resend(site_id, seq)

    async def events(
        self,
        site_id: str,
        *,
        since: str | None = None,
        until: str | None = None,
        type_: str | None = None,
        limit: int = 100,
        before: tuple[float, str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events of a site, newest first (see :meth:`EventLog.events`)."""
        return await self.event_log.events(
            site_id, since=since, until=until, type_=type_, limit=limit, before=before
        )

    async def epochs_of(self, site_id: str) -> list[dict[str, Any]]:
        """Every outbox epoch of a site with its watermark and highest sequence seen."""
        return await self.event_log.epochs_of(site_id)

    async def temp_key_uses(self) -> dict[str, int]:
        """Granted temp-key uses per temp key id, summed over every site's events."""
        return await self.event_log.temp_key_uses()

    # ---------------------------------------------------------------- alarms

    async def raise_alarm(self, site_id: str, kind: str, message: str) -> None:
        """Record an alarm unless the same kind is already open for the site."""
        await self.alarm_log.raise_alarm(site_id, kind, message)

    async def resolve_alarms(self, site_id: str, kind: str) -> int:
        """Close the open alarms of one kind for a site; how many were closed."""
        return await self.alarm_log.resolve_alarms(site_id, kind)

    async def resolve_alarm(self, site_id: str, alarm_id: int) -> dict[str, Any]:
        """Close one alarm (idempotent); the alarm record. NotFound for another site's."""
        return await self.alarm_log.resolve_alarm(site_id, alarm_id)

    async def alarms(self, site_id: str, *, open_only: bool = True) -> list[dict[str, Any]]:
        """Alarm records of a site, oldest first."""
        return await self.alarm_log.alarms(site_id, open_only=open_only)
