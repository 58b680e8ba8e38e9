"""Enrollment of a site that already has a policy: the cloud adopts its secret and its
hashed policy when it holds none for the site, and keeps its own otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloud_sync import bundle as b
from doorkeep import policydoc

if TYPE_CHECKING:
    from cloud_sync.store import CloudStore

SECRET = bytes(range(32))


def site_policy() -> dict[str, Any]:
    doc = policydoc.empty_document()
    doc["people"] = [{"id": "p-sam", "kind": "staff", "name": "Sam"}]
    doc["credentials"] = [{"id": "c1", "person": "p-sam", "kind": "pin", "value": "1234"}]
    return policydoc.canonical_document(policydoc.hash_document(doc, SECRET))


def adopt(version: int = 7) -> dict[str, Any]:
    return {"secret": SECRET.hex(), "document": site_policy(), "version": version}


async def test_the_cloud_adopts_a_working_sites_secret_and_policy(store: CloudStore) -> None:
    code = await store.add_site("s1")
    info = await store.enroll(code, adopt())
    assert info["adopted"] is True
    assert info["secret"] == SECRET.hex()
    assert await store.registry.site_secret("s1") == SECRET  # sealed, and the same
    version, digest, doc = await store.policy("s1")
    assert version == 8  # above the site's, so its first poll takes it
    assert digest == policydoc.policy_digest(site_policy())
    assert doc["credentials"][0]["value_hmac"] == site_policy()["credentials"][0]["value_hmac"]
    data = await store.bundle_for("s1", 7, digest)
    assert data is not None  # answered at once, not after a long-poll
    got = b.verify_bundle(
        data,
        trusted_keys={store.keys.signer.key_id: store.keys.signer.private_key.public_key()},
        site_id="s1",
        current_version=7,
        current_digest=digest,
        now=b.now_utc(),
    )
    assert got.digest == digest  # the very document the site holds


async def test_a_cloud_that_has_a_policy_keeps_it_and_its_secret(store: CloudStore) -> None:
    code = await store.add_site("s2")
    await store.change_policy(
        "s2", lambda d: {**d, "holidays": [{"date": "2026-12-25", "name": "X"}]}, actor="t"
    )
    info = await store.enroll(code, adopt(version=40))
    assert info["adopted"] is False
    assert info["secret"] != SECRET.hex()
    version, _digest, doc = await store.policy("s2")
    assert version > 40  # still above what the site holds
    assert doc["holidays"] and not doc.get("people")
    assert await store.bundle_for("s2", 40, None) is not None
