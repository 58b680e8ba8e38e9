"""Enroller: a site is added with a one-time code, which the gateway trades once for
its credential, the cloud's public key and the site's HMAC secret."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cloud_sync.store._schema import sites
from cloud_sync.store._sites import token_hash
from doorkeep.errors import AuthError, Conflict, NotFound, PolicyError

if TYPE_CHECKING:
    from cloud_sync.keys import CloudKeys
    from cloud_sync.store._db import Database
    from cloud_sync.store._policy import PolicyStore

SITE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: An enrollment code is valid this long after `site add`.
ENROLL_CODE_TTL_S = 7 * 24 * 3600


class Enroller:
    """Adds sites and hands each its credential once."""

    def __init__(self, db: Database, keys: CloudKeys, policies: PolicyStore) -> None:
        self._db = db
        self._keys = keys
        self._policies = policies

    async def add_site(self, site_id: str, name: str = "") -> str:
        """Create a site with an empty policy at version 0; its one-time enrollment code."""
        if not SITE_ID.fullmatch(site_id):
            raise PolicyError(f"site id {site_id!r} must be lower-case letters, digits and '-'")
        code = _enroll_code()
        now = self._db.clock()
        secret = secrets.token_bytes(32)
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    sa.insert(sites).values(
                        id=site_id,
                        name=name,
                        created_at=now,
                        enroll_code_hash=token_hash(code),
                        enroll_expires=now + ENROLL_CODE_TTL_S,
                        secret_sealed=self._keys.seal(secret, "secret:" + site_id),
                        force_snapshot=False,
                    )
                )
                await self._policies.create(conn, site_id, now)
        except sa.exc.IntegrityError as err:
            raise Conflict(f"site {site_id!r} exists already") from err
        return code

    async def new_enrollment_code(self, site_id: str) -> str:
        """A fresh one-time code for re-enrolling ``site_id`` (the old credential stays
        valid until the code is used)."""
        code = _enroll_code()
        async with self._db.write() as conn:
            res = await conn.execute(
                sa.update(sites)
                .where(sites.c.id == site_id)
                .values(
                    enroll_code_hash=token_hash(code),
                    enroll_expires=self._db.clock() + ENROLL_CODE_TTL_S,
                )
            )
            if res.rowcount == 0:
                raise NotFound(f"no site {site_id!r}")
        return code

    async def enroll(self, code: str) -> dict[str, Any]:
        """Trade a one-time code for the site credential; the code is spent."""
        token = "dks_" + secrets.token_urlsafe(32)
        now = self._db.clock()
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(sites.c.id, sites.c.enroll_expires, sites.c.secret_sealed).where(
                        sites.c.enroll_code_hash == token_hash(code.strip())
                    )
                )
            ).first()
            if row is None or (row.enroll_expires or 0) < now:
                raise AuthError(
                    "this enrollment code is unknown, used or expired; ask for a new one"
                )
            await conn.execute(
                sa.update(sites)
                .where(sites.c.id == row.id)
                .values(
                    token_hash=token_hash(token),
                    enroll_code_hash=None,
                    enroll_expires=None,
                    enrolled_at=now,
                    force_snapshot=True,
                )
            )
        # Whatever the site held before, its next poll gets a full snapshot at a version
        # newer than anything it may have seen.
        await self._policies.force_snapshot(row.id, actor="enroll")
        secret = self._keys.open(row.secret_sealed, "secret:" + row.id)
        return {
            "site_id": row.id,
            "token": token,
            "key_id": self._keys.signer.key_id,
            "public_key": self._keys.signer.public_b64,
            "secret": secret.hex(),
        }


def _enroll_code() -> str:
    # Short enough to type on a gateway's web form, long enough (40 bits) for one week.
    raw = secrets.token_hex(5).upper()
    return f"{raw[:5]}-{raw[5:]}"
