"""Sites as the cloud knows them: admin tokens, site credentials, status and reports.

Tokens are stored as SHA-256 hashes; a site's HMAC secret is AES-GCM sealed under the
key file (see ``cloud_sync.keys``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cloud_sync.store._alarms import alarm_dict
from cloud_sync.store._schema import admin_tokens, alarms, epochs, policies, sites
from doorkeep.errors import AuthError, NotFound

if TYPE_CHECKING:
    from cloud_sync.keys import CloudKeys
    from cloud_sync.store._db import Database


def token_hash(token: str) -> str:
    """What the store keeps of a token or code: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class SiteRegistry:
    """Admin tokens, site credentials, and what each site last said about itself."""

    def __init__(self, db: Database, keys: CloudKeys) -> None:
        self._db = db
        self._keys = keys

    async def create_admin_token(self, name: str = "") -> str:
        """A new admin bearer token (shown once; only its hash is stored)."""
        token = "dka_" + secrets.token_urlsafe(32)
        async with self._db.write() as conn:
            await conn.execute(
                sa.insert(admin_tokens).values(
                    token_hash=token_hash(token), name=name, created_at=self._db.clock()
                )
            )
        return token

    async def check_admin_token(self, token: str) -> bool:
        """Whether ``token`` is a known admin token."""
        async with self._db.read() as conn:
            row = await conn.execute(
                sa.select(admin_tokens.c.name).where(admin_tokens.c.token_hash == token_hash(token))
            )
            return row.first() is not None

    async def site_for_token(self, token: str) -> str:
        """The site a sync credential belongs to; AuthError if none."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(sites.c.id).where(sites.c.token_hash == token_hash(token))
                )
            ).first()
        if row is None:
            raise AuthError("unknown site credential; enroll the site again")
        return str(row.id)

    async def site_ids(self) -> list[str]:
        """Every site id, sorted."""
        async with self._db.read() as conn:
            return [r.id for r in await conn.execute(sa.select(sites.c.id).order_by(sites.c.id))]

    async def site_status(self, site_id: str | None = None) -> list[dict[str, Any]]:
        """Status rows: last contact, reported vs cloud version/digest, watermark, alarms."""
        query = sa.select(
            sites,
            policies.c.version.label("cloud_version"),
            policies.c.digest.label("cloud_digest"),
        ).join(policies, policies.c.site_id == sites.c.id)
        if site_id is not None:
            query = query.where(sites.c.id == site_id)
        out: list[dict[str, Any]] = []
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(sites.c.id))).all()
            if site_id is not None and not rows:
                raise NotFound(f"no site {site_id!r}")
            for row in rows:
                marks = (
                    await conn.execute(
                        sa.select(epochs)
                        .where(epochs.c.site_id == row.id)
                        .order_by(epochs.c.last_seen)
                    )
                ).all()
                open_alarms = (
                    await conn.execute(
                        sa.select(alarms)
                        .where(alarms.c.site_id == row.id, alarms.c.resolved_at.is_(None))
                        .order_by(alarms.c.id)
                    )
                ).all()
                inventory = json.loads(row.inventory) if row.inventory else None
                out.append(
                    {
                        "id": row.id,
                        "name": row.name,
                        "enrolled": row.token_hash is not None,
                        "last_contact": row.last_contact,
                        "cloud_version": row.cloud_version,
                        "cloud_digest": row.cloud_digest,
                        "reported_version": row.reported_version,
                        "reported_digest": row.reported_digest,
                        "in_sync": row.reported_digest == row.cloud_digest
                        and row.reported_version == row.cloud_version,
                        "force_snapshot": bool(row.force_snapshot),
                        "resend_from": row.resend_from,
                        "outbox": [
                            {"epoch": m.epoch, "watermark": m.watermark, "max_seq": m.max_seq}
                            for m in marks
                        ],
                        "watermark": marks[-1].watermark if marks else 0,
                        "alarms": [alarm_dict(a) for a in open_alarms],
                        "inventory": inventory,
                    }
                )
        return out

    async def site_secret(self, site_id: str) -> bytes:
        """The site's HMAC secret (decrypted from the database)."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(sites.c.secret_sealed).where(sites.c.id == site_id))
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        return self._keys.open(row.secret_sealed, "secret:" + site_id)

    async def report(
        self,
        site_id: str,
        *,
        version: int | None,
        digest: str | None,
        inventory: dict[str, Any] | None,
    ) -> None:
        """Record what a site says it holds; clears a forced snapshot once it matches."""
        values: dict[str, Any] = {"last_contact": self._db.clock()}
        if version is not None:
            values["reported_version"] = version
            values["reported_digest"] = digest
        if inventory is not None:
            values["inventory"] = json.dumps(inventory, sort_keys=True)
        async with self._db.write() as conn:
            await self._db.relaxed(conn)
            await conn.execute(sa.update(sites).where(sites.c.id == site_id).values(**values))
            if version is not None:
                await conn.execute(
                    sa.update(sites)
                    .where(
                        sites.c.id == site_id,
                        sites.c.force_snapshot.is_(True),
                        sa.exists().where(
                            policies.c.site_id == site_id,
                            policies.c.version == version,
                            policies.c.digest == digest,
                        ),
                    )
                    .values(force_snapshot=False)
                )

    async def touch(self, site_id: str) -> None:
        """Record contact from a site (a poll) without a report."""
        async with self._db.write() as conn:
            await self._db.relaxed(conn)
            await conn.execute(
                sa.update(sites).where(sites.c.id == site_id).values(last_contact=self._db.clock())
            )

    async def inventory(self, site_id: str) -> dict[str, Any]:
        """What the site last reported about itself (doors, time zone, ...)."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(sites.c.inventory).where(sites.c.id == site_id))
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        return json.loads(row.inventory) if row.inventory else {}
