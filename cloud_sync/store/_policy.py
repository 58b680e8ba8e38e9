"""Policies and the bundles made of them: one hashed document per site, a chain of deltas.

A change is validated, hashed under the site's secret and stored as a new version with
the delta from the previous one; plaintext credential values are kept only AES-GCM
sealed, for re-hashing and an operator's export. A site gets a signed delta when the
chain from its version is retained, a snapshot otherwise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cloud_sync import bundle as bundles
from cloud_sync.store._schema import policies, policy_deltas, sites
from doorkeep import policydoc
from doorkeep.errors import NotFound, PolicyError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.ext.asyncio import AsyncConnection

    from cloud_sync.keys import CloudKeys
    from cloud_sync.store._db import Database
    from cloud_sync.store._sites import SiteRegistry

#: Deltas kept per site; a site further behind gets a snapshot.
DELTA_RETENTION = 500


class PolicyStore:
    """Each site's policy: versions, deltas, sealed plaintext values, signed bundles."""

    def __init__(self, db: Database, keys: CloudKeys, sites: SiteRegistry) -> None:
        self._db = db
        self._keys = keys
        self._sites = sites

    async def create(self, conn: AsyncConnection, site_id: str, now: float) -> None:
        """Insert a new site's empty policy at version 0 (inside the caller's transaction)."""
        doc = policydoc.empty_document()
        await conn.execute(
            sa.insert(policies).values(
                site_id=site_id,
                version=0,
                digest=policydoc.policy_digest(doc),
                document=policydoc.canonical_json(doc).decode(),
                secrets_sealed=self._seal_secrets(site_id, {}),
                updated_at=now,
                updated_by="cloud",
            )
        )

    def _seal_secrets(self, site_id: str, values: dict[str, Any]) -> bytes:
        return self._keys.seal(policydoc.canonical_json(values), "values:" + site_id)

    async def policy(self, site_id: str) -> tuple[int, str, dict[str, Any]]:
        """(version, digest, hashed document) of a site's policy as the cloud holds it."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(policies.c.version, policies.c.digest, policies.c.document).where(
                        policies.c.site_id == site_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        return int(row.version), str(row.digest), json.loads(row.document)

    async def plaintext_policy(self, site_id: str) -> dict[str, Any]:
        """The policy with the credential values recovered from their sealed copy.

        For re-hashing under a new site secret and for an operator's full export; never
        served by the REST API.
        """
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(policies.c.document, policies.c.secrets_sealed).where(
                        policies.c.site_id == site_id
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        doc = json.loads(row.document)
        values = json.loads(self._keys.open(row.secrets_sealed, "values:" + site_id))
        for kind, field, hashed in (
            ("credentials", "value", "value_hmac"),
            ("temp_keys", "code", "code_hmac"),
        ):
            for entity in doc.get(kind) or []:
                plain = values.get(kind, {}).get(entity.get("id"))
                if plain is not None:
                    entity.pop(hashed, None)
                    entity.pop("duress_hmac", None)
                    entity[field] = plain
        return dict(doc)

    async def change_policy(
        self,
        site_id: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        actor: str,
    ) -> tuple[int, str]:
        """Apply ``mutate`` (current hashed document → new document, plaintext values
        allowed) as one new version; validated, hashed, delta recorded, sites woken.

        Raises PolicyError with every issue (nothing changes) or NotFound. An unchanged
        policy keeps its version.
        """
        secret = await self._sites.site_secret(site_id)
        doors = (await self._sites.inventory(site_id)).get("doors")
        async with self._db.write() as conn:
            query = sa.select(policies).where(policies.c.site_id == site_id)
            if self._db.is_pg:
                query = query.with_for_update()
            row = (await conn.execute(query)).first()
            if row is None:
                raise NotFound(f"no site {site_id!r}")
            old = json.loads(row.document)
            new = mutate(json.loads(row.document))
            issues = policydoc.validate_document(
                new, doors=list(doors) if isinstance(doors, list) else None, secret=secret
            )
            if issues:
                raise PolicyError(f"the policy has {len(issues)} problem(s)", issues)
            values = _collect_values(
                new, json.loads(self._keys.open(row.secrets_sealed, "values:" + site_id))
            )
            hashed = policydoc.canonical_document(policydoc.hash_document(new, secret))
            digest = policydoc.policy_digest(hashed)
            if digest == row.digest:
                return int(row.version), digest
            version = int(row.version) + 1
            delta = bundles.make_delta(old, hashed)
            now = self._db.clock()
            await conn.execute(
                sa.update(policies)
                .where(policies.c.site_id == site_id)
                .values(
                    version=version,
                    digest=digest,
                    document=policydoc.canonical_json(hashed).decode(),
                    secrets_sealed=self._seal_secrets(site_id, values),
                    updated_at=now,
                    updated_by=actor,
                )
            )
            await conn.execute(
                sa.insert(policy_deltas).values(
                    site_id=site_id,
                    version=version,
                    prev_digest=row.digest,
                    digest=digest,
                    delta=json.dumps(delta, sort_keys=True),
                    at=now,
                    actor=actor,
                )
            )
            await conn.execute(
                sa.delete(policy_deltas).where(
                    policy_deltas.c.site_id == site_id,
                    policy_deltas.c.version <= version - DELTA_RETENTION,
                )
            )
            await self._db.notify(conn, site_id)
        self._db.wake_local(site_id)
        return version, digest

    async def force_snapshot(self, site_id: str, *, actor: str, min_version: int = 0) -> int:
        """Make the site's next poll a full snapshot at a new version (its version is bumped
        so the edge, whatever it holds, accepts it as newer)."""
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(policies.c.version, policies.c.digest).where(
                        policies.c.site_id == site_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"no site {site_id!r}")
            version = max(int(row.version) + 1, min_version)
            now = self._db.clock()
            await conn.execute(
                sa.update(policies)
                .where(policies.c.site_id == site_id)
                .values(version=version, updated_at=now, updated_by=actor)
            )
            await conn.execute(
                sa.insert(policy_deltas).values(
                    site_id=site_id,
                    version=version,
                    prev_digest=row.digest,
                    digest=row.digest,
                    delta=json.dumps({"upserts": {}, "deletes": {}}),
                    at=now,
                    actor=actor,
                )
            )
            await conn.execute(
                sa.update(sites).where(sites.c.id == site_id).values(force_snapshot=True)
            )
            await self._db.notify(conn, site_id)
        self._db.wake_local(site_id)
        return version

    async def bundle_for(
        self,
        site_id: str,
        have_version: int,
        have_digest: str | None,
        *,
        want_snapshot: bool = False,
    ) -> bytes | None:
        """The signed bundle that brings a site from ``have_version`` to the cloud's, or
        None when it is current. A delta when the chain is retained and the site is not
        marked for a snapshot; a snapshot otherwise."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(policies.c.version, policies.c.digest, sites.c.force_snapshot)
                    .join(sites, sites.c.id == policies.c.site_id)
                    .where(policies.c.site_id == site_id)
                )
            ).first()
            if row is None:
                raise NotFound(f"no site {site_id!r}")
            version = int(row.version)
            if version <= have_version:
                return None
            now = datetime.fromtimestamp(self._db.clock(), UTC)
            snapshot = want_snapshot or bool(row.force_snapshot) or have_version <= 0
            if not snapshot:
                steps = (
                    await conn.execute(
                        sa.select(policy_deltas)
                        .where(
                            policy_deltas.c.site_id == site_id,
                            policy_deltas.c.version > have_version,
                        )
                        .order_by(policy_deltas.c.version)
                    )
                ).all()
                chain_ok = (
                    len(steps) == version - have_version
                    and steps[0].version == have_version + 1
                    and (have_digest is None or steps[0].prev_digest == have_digest)
                )
                if chain_ok:
                    delta: dict[str, Any] = {"upserts": {}, "deletes": {}}
                    for step in steps:
                        delta = bundles.compose_deltas(delta, json.loads(step.delta))
                    return bundles.build_delta(
                        self._keys.signer,
                        site_id=site_id,
                        version=version,
                        prev_version=have_version,
                        prev_digest=steps[0].prev_digest,
                        delta=delta,
                        digest=steps[-1].digest,
                        now=now,
                    )
            doc_row = (
                await conn.execute(
                    sa.select(policies.c.version, policies.c.digest, policies.c.document).where(
                        policies.c.site_id == site_id
                    )
                )
            ).one()
        return bundles.build_snapshot(
            self._keys.signer,
            site_id=site_id,
            version=int(doc_row.version),
            document=json.loads(doc_row.document),
            digest=doc_row.digest,
            now=now,
        )

    async def current_version(self, site_id: str) -> int:
        """The cloud's policy version of a site (cheap: the long-poll check)."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(policies.c.version).where(policies.c.site_id == site_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        return int(row.version)


def _collect_values(doc: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Plaintext values to seal: new ones from ``doc``, kept ones for hashed entries."""
    out: dict[str, dict[str, str]] = {"credentials": {}, "temp_keys": {}}
    for kind, field in (("credentials", "value"), ("temp_keys", "code")):
        before = previous.get(kind, {})
        for entity in doc.get(kind) or []:
            key = entity.get("id")
            if field in entity:
                out[kind][key] = entity[field]
            elif key in before:
                out[kind][key] = before[key]
    return out
