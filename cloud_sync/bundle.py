"""Signed policy bundles: the sync protocol's codec (pure: no I/O, no asyncio, no logging).

Theory. The cloud is the only writer of a site's policy; the edge must be able to tell a
bundle the cloud really issued *for this site, now, as the next step after what it holds*
from anything else an attacker on the path (or a confused cloud) could hand it.

The wire form is canonical JSON with two keys, sorted, so ``signatures`` comes first::

    {"signatures":[{"key_id":"...","sig":"<base64>"}],"signed":{...}}

The signature covers the *exact bytes* of the ``signed`` value as they stand on the wire.
Because ``signed`` is the last key, the verifier slices those bytes out of the envelope
(the signature list is decoded on its own first) and checks Ed25519 over them *before* it
parses a single byte of the content: no JSON parser ever sees unauthenticated policy.

Checks run in a fixed order, cheapest and least trusting first; the first failure names a
:class:`Rejection` from a closed list, and nothing is handed to the caller. ``verify_bundle``
never mutates anything, so a refused bundle changes nothing by construction.

A delta carries ``prev_version`` and ``prev_digest`` (where it starts) and ``digest``
(where it ends); a snapshot carries the whole hashed document and its ``digest``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from doorkeep.errors import BundleRejected
from doorkeep.policydoc import ENTITY_KINDS, canonical_json, entity_key, policy_digest

#: A bundle larger than this is refused before any parsing (a 100k-credential snapshot
#: is about 30 MB; the margin is for growth, not for attackers).
MAX_BUNDLE_BYTES = 128 * 1024 * 1024
#: How long a bundle stays acceptable after it was signed; the cloud signs on demand,
#: so this only has to cover transit and a slow apply.
DEFAULT_LIFETIME = timedelta(hours=24)

_PREFIX = b'{"signatures":'
_SIGNED_KEY = b',"signed":'
_DECODER = json.JSONDecoder()

BundleKind = Literal["snapshot", "delta"]


class Rejection(StrEnum):
    """Why a bundle was refused: the closed list every layer reports."""

    BAD_SIGNATURE = "bad_signature"
    WRONG_SITE = "wrong_site"
    ROLLBACK = "rollback"
    REPLAY = "replay"
    GAP = "gap"
    EXPIRED = "expired"
    OVERSIZED = "oversized"
    TRUNCATED = "truncated"
    UNKNOWN_KEY = "unknown_key"
    DIGEST_MISMATCH = "digest_mismatch"


def _reject(reason: Rejection, message: str) -> BundleRejected:
    return BundleRejected(str(reason), message)


def _digest(document: Any) -> str:
    """The digest of a document from a bundle; one whose shape has no digest (settings not
    a table, an entity not an object) is refused as truncated, never a crash."""
    try:
        return policy_digest(document)
    except (AttributeError, TypeError, ValueError) as err:
        raise _reject(Rejection.TRUNCATED, f"the document is malformed: {err}") from None


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """The short, stable name of a public key: 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(public_raw(public_key)).hexdigest()[:16]


def public_raw(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(b64: str) -> Ed25519PublicKey:
    """Parse a base64 raw Ed25519 public key (as pinned at enrollment)."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True))


def format_time(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second: the bundle's time format."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise _reject(Rejection.TRUNCATED, f"bundle field {name!r} is missing or not a string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise _reject(Rejection.TRUNCATED, f"bundle field {name!r} is not ISO 8601") from err
    if parsed.tzinfo is None:
        raise _reject(Rejection.TRUNCATED, f"bundle field {name!r} has no offset")
    return parsed


# ---------------------------------------------------------------------------- deltas


def _index(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {entity_key(kind, e): e for e in doc.get(kind) or []}


def make_delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The changes that turn hashed document ``old`` into ``new``.

    ``{"upserts": {kind: [entity]}, "deletes": {kind: [key]}}`` plus ``"settings"`` when
    the settings changed. Kinds with no change are left out, so an empty delta is ``{}``
    lists only.
    """
    upserts: dict[str, list[dict[str, Any]]] = {}
    deletes: dict[str, list[str]] = {}
    for kind in ENTITY_KINDS:
        before = _index(old, kind)
        after = _index(new, kind)
        changed = [
            e
            for k, e in after.items()
            if k not in before or canonical_json(before[k]) != canonical_json(e)
        ]
        gone = sorted(k for k in before if k not in after)
        if changed:
            upserts[kind] = changed
        if gone:
            deletes[kind] = gone
    delta: dict[str, Any] = {"upserts": upserts, "deletes": deletes}
    if canonical_json(old.get("settings") or {}) != canonical_json(new.get("settings") or {}):
        delta["settings"] = copy.deepcopy(new.get("settings") or {})
    return delta


def apply_delta(doc: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """A new document: ``doc`` with ``delta`` applied (``doc`` is not changed).

    Upserts replace an entity with the same key in place, or append; deletes of keys that
    are not there are no-ops (a delta is a description of the target, not a diff script).
    """
    out = {k: v for k, v in doc.items() if k not in ENTITY_KINDS}
    upserts: dict[str, list[dict[str, Any]]] = delta.get("upserts") or {}
    deletes: dict[str, list[str]] = delta.get("deletes") or {}
    for kind in ENTITY_KINDS:
        current = list(doc.get(kind) or [])
        ups = upserts.get(kind) or []
        dels = set(deletes.get(kind) or [])
        if not ups and not dels:
            if kind in doc:
                out[kind] = current
            continue
        replace = {entity_key(kind, e): e for e in ups}
        merged: list[dict[str, Any]] = []
        for entity in current:
            key = entity_key(kind, entity)
            if key in dels:
                continue
            merged.append(replace.pop(key, entity))
        merged.extend(replace.values())
        out[kind] = merged
    if "settings" in delta:
        out["settings"] = copy.deepcopy(delta["settings"])
    return out


def compose_deltas(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """One delta with the effect of applying ``first`` then ``second``."""
    upserts: dict[str, dict[str, dict[str, Any]]] = {}
    deletes: dict[str, set[str]] = {}
    for delta in (first, second):
        for kind, keys in (delta.get("deletes") or {}).items():
            for key in keys:
                upserts.get(kind, {}).pop(key, None)
                deletes.setdefault(kind, set()).add(key)
        for kind, entities in (delta.get("upserts") or {}).items():
            for entity in entities:
                key = entity_key(kind, entity)
                deletes.get(kind, set()).discard(key)
                upserts.setdefault(kind, {})[key] = entity
    out: dict[str, Any] = {
        "upserts": {k: list(v.values()) for k, v in upserts.items() if v},
        "deletes": {k: sorted(v) for k, v in deletes.items() if v},
    }
    for delta in (first, second):
        if "settings" in delta:
            out["settings"] = delta["settings"]
    return out


def delta_size(delta: dict[str, Any]) -> int:
    """How many entity changes a delta carries (settings count as one)."""
    n = sum(len(v) for v in (delta.get("upserts") or {}).values())
    n += sum(len(v) for v in (delta.get("deletes") or {}).values())
    return n + (1 if "settings" in delta else 0)


# ---------------------------------------------------------------------------- signing


@dataclass(frozen=True, slots=True)
class Signer:
    """The cloud's signing key and its key id."""

    private_key: Ed25519PrivateKey
    key_id: str = ""

    def __post_init__(self) -> None:
        if not self.key_id:
            object.__setattr__(self, "key_id", key_id_for(self.private_key.public_key()))

    @property
    def public_b64(self) -> str:
        """The public key as pinned by sites (base64 of the 32 raw bytes)."""
        return base64.b64encode(public_raw(self.private_key.public_key())).decode()

    def seal(self, signed: dict[str, Any]) -> bytes:
        """The wire bytes of ``signed`` inside a signed envelope."""
        body = canonical_json(signed)
        sig = base64.b64encode(self.private_key.sign(body)).decode()
        head = canonical_json([{"key_id": self.key_id, "sig": sig}])
        return _PREFIX + head + _SIGNED_KEY + body + b"}"


def build_snapshot(
    signer: Signer,
    *,
    site_id: str,
    version: int,
    document: dict[str, Any],
    digest: str | None = None,
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> bytes:
    """A signed full-policy bundle carrying the hashed ``document`` at ``version``."""
    signed = _header(signer, site_id, version, None, now, lifetime, "snapshot")
    signed["document"] = document
    signed["digest"] = digest or policy_digest(document)
    return signer.seal(signed)


def build_delta(
    signer: Signer,
    *,
    site_id: str,
    version: int,
    prev_version: int,
    prev_digest: str,
    delta: dict[str, Any],
    digest: str,
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> bytes:
    """A signed bundle moving a site from ``prev_version`` (with ``prev_digest``) to ``version``."""
    signed = _header(signer, site_id, version, prev_version, now, lifetime, "delta")
    signed["prev_digest"] = prev_digest
    signed["delta"] = delta
    signed["digest"] = digest
    return signer.seal(signed)


def _header(  # noqa: PLR0917 - private helper, called twice with every field spelled out
    signer: Signer,
    site_id: str,
    version: int,
    prev_version: int | None,
    now: datetime,
    lifetime: timedelta,
    kind: BundleKind,
) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "version": version,
        "prev_version": prev_version,
        "issued_at": format_time(now),
        "expires": format_time(now + lifetime),
        "key_id": signer.key_id,
        "kind": kind,
    }


# ---------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle that passed every check; what the edge applies atomically."""

    site_id: str
    kind: BundleKind
    version: int
    prev_version: int | None
    digest: str
    issued_at: datetime
    expires: datetime
    key_id: str
    document: dict[str, Any] | None = None
    delta: dict[str, Any] | None = None
    prev_digest: str | None = None
    size: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "snapshot" and self.document is None:
            raise ValueError("a snapshot bundle needs a document")
        if self.kind == "delta" and self.delta is None:
            raise ValueError("a delta bundle needs a delta")

    def apply_to(self, current: dict[str, Any]) -> dict[str, Any]:
        """The new hashed document; raises BundleRejected(digest_mismatch) if it does not
        end at ``digest`` (so the caller keeps ``current`` untouched)."""
        if self.kind == "snapshot":
            assert self.document is not None
            return self.document
        assert self.delta is not None
        result = apply_delta(current, self.delta)
        got = _digest(result)
        if got != self.digest:
            raise _reject(
                Rejection.DIGEST_MISMATCH,
                f"delta to version {self.version} ends at {got}, bundle says {self.digest}",
            )
        return result


def _split(data: bytes) -> tuple[list[Any], bytes]:
    """(signatures, exact signed bytes) of an envelope, without parsing ``signed``."""
    if not data.startswith(_PREFIX) or not data.endswith(b"}"):
        raise _reject(Rejection.TRUNCATED, "bundle envelope is incomplete")
    try:
        text = data[len(_PREFIX) : len(_PREFIX) + 64 * 1024].decode("ascii", errors="replace")
        sigs, end = _DECODER.raw_decode(text)
    except ValueError as err:
        raise _reject(Rejection.TRUNCATED, "bundle signature list is incomplete") from err
    start = len(_PREFIX) + end
    if data[start : start + len(_SIGNED_KEY)] != _SIGNED_KEY or not isinstance(sigs, list):
        raise _reject(Rejection.TRUNCATED, "bundle envelope is malformed")
    return sigs, data[start + len(_SIGNED_KEY) : -1]


def _authenticate(
    data: bytes, trusted_keys: dict[str, Ed25519PublicKey], max_bytes: int
) -> tuple[str, dict[str, Any]]:
    """(key id, signed content) of an envelope whose signature verifies; BundleRejected."""
    if len(data) > max_bytes:
        raise _reject(Rejection.OVERSIZED, f"bundle is {len(data)} bytes, limit {max_bytes}")
    sigs, body = _split(data)
    entry = next(
        (s for s in sigs if isinstance(s, dict) and s.get("key_id") in trusted_keys),
        None,
    )
    if entry is None:
        names = [s.get("key_id") for s in sigs if isinstance(s, dict)]
        raise _reject(Rejection.UNKNOWN_KEY, f"bundle is signed by {names}, none is pinned")
    key_id = str(entry["key_id"])
    try:
        sig = base64.b64decode(str(entry.get("sig", "")), validate=True)
        trusted_keys[key_id].verify(sig, body)
    except (InvalidSignature, binascii.Error, ValueError) as err:
        raise _reject(Rejection.BAD_SIGNATURE, f"signature by {key_id} does not verify") from err
    # Authenticated from here on: a malformed body is a broken cloud, reported as truncated.
    try:
        signed = json.loads(body)
    except ValueError as err:
        raise _reject(Rejection.TRUNCATED, "signed content is not JSON") from err
    if not isinstance(signed, dict):
        raise _reject(Rejection.TRUNCATED, "signed content is not an object")
    if signed.get("key_id") != key_id:
        raise _reject(Rejection.BAD_SIGNATURE, "signed key_id differs from the signature's")
    return key_id, signed


def verify_bundle(
    data: bytes,
    *,
    trusted_keys: dict[str, Ed25519PublicKey],
    site_id: str,
    current_version: int,
    current_digest: str | None,
    now: datetime,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> VerifiedBundle:
    """Check a bundle from the wire against what the edge holds; the bundle or BundleRejected.

    ``current_version`` is the version the edge has applied (0 for none);
    ``current_digest`` its policy digest (``None`` skips the start-point check of deltas).
    """
    key_id, signed = _authenticate(data, trusted_keys, max_bytes)
    if signed.get("site_id") != site_id:
        raise _reject(
            Rejection.WRONG_SITE, f"bundle is for site {signed.get('site_id')!r}, not {site_id!r}"
        )
    issued_at = _parse_time(signed.get("issued_at"), "issued_at")
    expires = _parse_time(signed.get("expires"), "expires")
    if now >= expires:
        raise _reject(Rejection.EXPIRED, f"bundle expired at {format_time(expires)}")
    kind = signed.get("kind")
    version = signed.get("version")
    digest = signed.get("digest")
    if (
        kind not in ("snapshot", "delta")
        or not isinstance(version, int)
        or not isinstance(digest, str)
    ):
        raise _reject(Rejection.TRUNCATED, "bundle lacks kind, version or digest")
    if version == current_version:
        raise _reject(Rejection.REPLAY, f"version {version} is already applied")
    if version < current_version:
        raise _reject(Rejection.ROLLBACK, f"version {version} is older than {current_version}")
    if kind == "snapshot":
        document = signed.get("document")
        if not isinstance(document, dict):
            raise _reject(Rejection.TRUNCATED, "snapshot lacks its document")
        if _digest(document) != digest:
            raise _reject(Rejection.DIGEST_MISMATCH, "snapshot document does not match its digest")
        return VerifiedBundle(
            site_id, "snapshot", version, signed.get("prev_version"), digest, issued_at, expires,
            key_id, document=document, size=len(data),
        )  # fmt: skip
    prev_version = signed.get("prev_version")
    delta = signed.get("delta")
    prev_digest = signed.get("prev_digest")
    if not isinstance(delta, dict) or not isinstance(prev_version, int):
        raise _reject(Rejection.TRUNCATED, "delta lacks its changes or prev_version")
    if prev_version != current_version:
        raise _reject(
            Rejection.GAP, f"delta starts at version {prev_version}, site holds {current_version}"
        )
    if current_digest is not None and prev_digest != current_digest:
        raise _reject(
            Rejection.DIGEST_MISMATCH,
            f"delta starts at digest {prev_digest}, site holds {current_digest}",
        )
    return VerifiedBundle(
        site_id, "delta", version, prev_version, digest, issued_at, expires, key_id,
        delta=delta, prev_digest=prev_digest if isinstance(prev_digest, str) else None,
        size=len(data),
    )  # fmt: skip


# ---------------------------------------------------------------------------- "nothing new"

#: How long a "nothing new" statement is acceptable after it was signed. It answers one
#: poll (its nonce), so this only bounds how wrong the clocks may be.
CURRENT_LIFETIME = timedelta(minutes=5)
#: Longest nonce a site may send (the cloud echoes it into the signed statement).
MAX_NONCE = 64


@dataclass(frozen=True, slots=True)
class CurrentStatement:
    """The cloud's signed answer "you are current": no newer policy for this site.

    ``version`` is the cloud's version of the site's policy, ``edge_version`` and
    ``nonce`` echo the poll it answers, so it cannot be replayed to another poll.
    """

    site_id: str
    version: int
    edge_version: int
    nonce: str
    issued_at: datetime
    expires: datetime
    key_id: str


def build_current(
    signer: Signer,
    *,
    site_id: str,
    version: int,
    edge_version: int,
    nonce: str,
    now: datetime,
    lifetime: timedelta = CURRENT_LIFETIME,
) -> bytes:
    """The signed "nothing new" answer to one poll (same envelope as a bundle)."""
    return signer.seal(
        {
            "kind": "current",
            "site_id": site_id,
            "version": version,
            "edge_version": edge_version,
            "nonce": nonce,
            "issued_at": format_time(now),
            "expires": format_time(now + lifetime),
            "key_id": signer.key_id,
        }
    )


def verify_current(
    data: bytes,
    *,
    trusted_keys: dict[str, Ed25519PublicKey],
    site_id: str,
    edge_version: int,
    nonce: str,
    now: datetime,
) -> CurrentStatement:
    """Check a "nothing new" answer to the poll made with ``nonce`` at ``edge_version``.

    Refused (BundleRejected, the same closed list as bundles): not signed by a pinned key
    (``unknown_key``, ``bad_signature``), not a statement (``truncated``), another site's
    (``wrong_site``), the answer to another poll (``replay``: nonce or version differ),
    ``expired``, or a cloud that holds a newer version yet says nothing new (``gap``).
    """
    key_id, signed = _authenticate(data, trusted_keys, 64 * 1024)
    version = signed.get("version")
    their_edge = signed.get("edge_version")
    if (
        signed.get("kind") != "current"
        or not isinstance(version, int)
        or not isinstance(their_edge, int)
    ):
        raise _reject(Rejection.TRUNCATED, "not a 'nothing new' statement")
    if signed.get("site_id") != site_id:
        raise _reject(
            Rejection.WRONG_SITE,
            f"statement is for site {signed.get('site_id')!r}, not {site_id!r}",
        )
    if signed.get("nonce") != nonce or their_edge != edge_version:
        raise _reject(Rejection.REPLAY, "statement answers another poll (nonce or version)")
    issued_at = _parse_time(signed.get("issued_at"), "issued_at")
    expires = _parse_time(signed.get("expires"), "expires")
    if now >= expires:
        raise _reject(Rejection.EXPIRED, f"statement expired at {format_time(expires)}")
    if version > edge_version:
        raise _reject(
            Rejection.GAP, f"cloud holds version {version} but sent no bundle from {edge_version}"
        )
    return CurrentStatement(site_id, version, their_edge, nonce, issued_at, expires, key_id)


def generate_signer() -> Signer:
    """A fresh Ed25519 signing key (the cloud makes one on first start)."""
    return Signer(Ed25519PrivateKey.generate())


def now_utc() -> datetime:
    """The current time, aware, in UTC (the default clock of bundle checks)."""
    return datetime.now(UTC)
