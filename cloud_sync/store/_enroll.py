"""Enroller: a site is added with a one-time code, which the gateway trades once for
its credential, the cloud's public key and the site's HMAC secret."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from cloud_sync.store._schema import policies, sites
from cloud_sync.store._sites import token_hash
from doorkeep import policydoc
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

    async def enroll(self, code: str, adopt: dict[str, Any] | None = None) -> dict[str, Any]:
        """Trade a one-time code for the site credential; the code is spent.

        ``adopt`` is what a working standalone site brings: ``{"secret": hex, "document":
        hashed policy, "version": int}``. When the cloud holds no policy for the site yet
        (nothing but the empty document), the cloud ADOPTS it: the site's HMAC secret
        becomes the site's secret here (sealed as every secret is), and the site's hashed
        document becomes the cloud's policy at a version above the site's, so the first
        poll answers at once with a snapshot of what the site already holds, hashed under
        the same secret: no credential stops working. Otherwise the cloud's policy and
        secret win, and the site gets a snapshot above its version on its first poll.
        """
        token = "dks_" + secrets.token_urlsafe(32)
        now = self._db.clock()
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        sites.c.id,
                        sites.c.enroll_expires,
                        sites.c.secret_sealed,
                        policies.c.version,
                        policies.c.digest,
                    )
                    .join(policies, policies.c.site_id == sites.c.id)
                    .where(sites.c.enroll_code_hash == token_hash(code.strip()))
                )
            ).first()
            if row is None or (row.enroll_expires or 0) < now:
                raise AuthError(
                    "this enrollment code is unknown, used or expired; ask for a new one"
                )
            adopted = adopt is not None and row.digest == policydoc.policy_digest(
                policydoc.empty_document()
            )
            site_version = int(adopt.get("version") or 0) if adopt else 0
            values: dict[str, Any] = {
                "token_hash": token_hash(token),
                "enroll_code_hash": None,
                "enroll_expires": None,
                "enrolled_at": now,
                "force_snapshot": True,
            }
            if adopted:
                assert adopt is not None
                secret, document = _adoptable(adopt)
                values["secret_sealed"] = self._keys.seal(secret, "secret:" + row.id)
                digest = policydoc.policy_digest(document)
                await conn.execute(
                    sa.update(policies)
                    .where(policies.c.site_id == row.id)
                    .values(
                        version=max(int(row.version), site_version) + 1,
                        digest=digest,
                        document=policydoc.canonical_json(document).decode(),
                        updated_at=now,
                        updated_by="enroll:adopted",
                    )
                )
            await conn.execute(sa.update(sites).where(sites.c.id == row.id).values(**values))
        if adopted:
            await self._wake(row.id)
        else:
            # Whatever the site held before, its next poll gets a full snapshot at a
            # version newer than anything it may have seen.
            await self._policies.force_snapshot(
                row.id, actor="enroll", min_version=site_version + 1
            )
        secret_out = (
            bytes.fromhex(str(adopt["secret"]))
            if adopted and adopt is not None
            else self._keys.open(row.secret_sealed, "secret:" + row.id)
        )
        return {
            "site_id": row.id,
            "token": token,
            "key_id": self._keys.signer.key_id,
            "public_key": self._keys.signer.public_b64,
            "secret": secret_out.hex(),
            "adopted": adopted,
        }

    async def _wake(self, site_id: str) -> None:
        async with self._db.write() as conn:
            await self._db.notify(conn, site_id)
        self._db.wake_local(site_id)


def _adoptable(adopt: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The secret and hashed document a site brings, checked; PolicyError if unusable."""
    try:
        secret = bytes.fromhex(str(adopt.get("secret")))
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise PolicyError("the site's HMAC secret must be at least 16 bytes, hex-encoded")
    document = adopt.get("document")
    if not isinstance(document, dict):
        raise PolicyError("the site's policy must be a JSON object")
    issues = policydoc.validate_document(document, doors=None, secret=secret)
    if issues:
        raise PolicyError(f"the site's policy has {len(issues)} problem(s)", issues)
    return secret, policydoc.canonical_document(document)


def _enroll_code() -> str:
    # Short enough to type on a gateway's web form, long enough (40 bits) for one week.
    raw = secrets.token_hex(5).upper()
    return f"{raw[:5]}-{raw[5:]}"
