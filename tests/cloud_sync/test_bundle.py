"""Signed bundles: the attack table (every attack refused, nothing changed), the
envelope codec, and delta properties."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync import bundle as b
from cloud_sync import client as client_mod
from cloud_sync.client import Enrollment, SyncClient
from doorkeep import policydoc
from doorkeep.errors import BundleRejected

from .conftest import FakeEdge, FakeOutbox, free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.reliability import Reliability

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SITE = "site-a"
CLOUD = b.generate_signer()
MALLORY = b.generate_signer()
SECRET = b"\x01" * 32


def doc_with(n_people: int) -> dict[str, Any]:
    doc = policydoc.empty_document()
    doc["people"] = [
        {"id": f"p{i}", "kind": "staff", "name": f"Person {i}"} for i in range(n_people)
    ]
    return policydoc.canonical_document(doc)


BASE = doc_with(2)  # what the edge holds at version 3
NEXT = doc_with(3)  # what version 4 should be


def snapshot(
    signer: b.Signer = CLOUD,
    *,
    site: str = SITE,
    version: int = 4,
    doc: dict | None = None,
    now: datetime = NOW,
) -> bytes:
    return b.build_snapshot(signer, site_id=site, version=version, document=doc or NEXT, now=now)


def delta(
    *, prev: int = 3, version: int = 4, prev_digest: str | None = None, digest: str | None = None
) -> bytes:
    return b.build_delta(
        CLOUD,
        site_id=SITE,
        version=version,
        prev_version=prev,
        prev_digest=prev_digest or policydoc.policy_digest(BASE),
        delta=b.make_delta(BASE, NEXT),
        digest=digest or policydoc.policy_digest(NEXT),
        now=NOW,
    )


def flip_inside_signed(data: bytes) -> bytes:
    i = data.index(b'"name":"Person 0"') + len(b'"name":"Person ')
    return data[:i] + b"9" + data[i + 1 :]


def forged_key_id(data: bytes) -> bytes:
    # Mallory signs, but names the cloud's key id in the signature list.
    return data.replace(MALLORY.key_id.encode(), CLOUD.key_id.encode())


@dataclass(frozen=True)
class Attack:
    name: str
    make: Callable[[], bytes]
    reason: b.Rejection
    now: datetime = NOW
    max_bytes: int = b.MAX_BUNDLE_BYTES


ATTACKS = [
    Attack("bad signature", lambda: flip_inside_signed(snapshot()), b.Rejection.BAD_SIGNATURE),
    Attack("forged key id", lambda: forged_key_id(snapshot(MALLORY)), b.Rejection.BAD_SIGNATURE),
    Attack("other site's bundle", lambda: snapshot(site="site-b"), b.Rejection.WRONG_SITE),
    Attack("rollback", lambda: snapshot(version=2, doc=doc_with(1)), b.Rejection.ROLLBACK),
    Attack(
        "replay of the applied version", lambda: snapshot(version=3, doc=BASE), b.Rejection.REPLAY
    ),
    Attack(
        "gap: delta from a version the site lacks",
        lambda: delta(prev=4, version=5),
        b.Rejection.GAP,
    ),
    Attack("expired", lambda: snapshot(now=NOW - timedelta(days=2)), b.Rejection.EXPIRED),
    Attack(
        "oversized", lambda: snapshot(doc=doc_with(400)), b.Rejection.OVERSIZED, max_bytes=20_000
    ),
    Attack("truncated", lambda: snapshot()[:-40], b.Rejection.TRUNCATED),
    Attack("truncated signature list", lambda: snapshot()[:30], b.Rejection.TRUNCATED),
    Attack("unknown key", lambda: snapshot(MALLORY), b.Rejection.UNKNOWN_KEY),
    Attack(
        "delta from another base",
        lambda: delta(prev_digest="sha256:" + "0" * 64),
        b.Rejection.DIGEST_MISMATCH,
    ),
    Attack(
        "delta ending elsewhere",
        lambda: delta(digest="sha256:" + "1" * 64),
        b.Rejection.DIGEST_MISMATCH,
    ),
    Attack(
        "snapshot with a wrong digest",
        lambda: b.build_snapshot(
            CLOUD, site_id=SITE, version=4, document=NEXT, digest="sha256:" + "2" * 64, now=NOW
        ),
        b.Rejection.DIGEST_MISMATCH,
    ),
]


def edge_at_version_3() -> FakeEdge:
    edge = FakeEdge()
    edge.doc, edge._version, edge._digest = copy.deepcopy(BASE), 3, policydoc.policy_digest(BASE)
    return edge


def receive(edge: FakeEdge, data: bytes, attack: Attack) -> None:
    verified = b.verify_bundle(
        data,
        trusted_keys={CLOUD.key_id: CLOUD.private_key.public_key()},
        site_id=SITE,
        current_version=edge.version(),
        current_digest=edge.digest(),
        now=attack.now,
        max_bytes=attack.max_bytes,
    )
    asyncio.run(edge.apply_bundle(verified))


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_attack_is_refused_and_changes_nothing(attack: Attack) -> None:
    edge = edge_at_version_3()
    before = (copy.deepcopy(edge.doc), edge.version(), edge.digest())
    with pytest.raises(BundleRejected) as err:
        receive(edge, attack.make(), attack)
    assert err.value.reason == attack.reason
    assert (edge.doc, edge.version(), edge.digest()) == before
    assert edge.applied == []


def test_every_rejection_reason_is_exercised() -> None:
    assert {a.reason for a in ATTACKS} == set(b.Rejection)


def test_forged_and_rolled_back_bundles_change_nothing(reliability: Reliability) -> None:
    """The whole attack table in one run, as a row of docs/reliability.md."""
    for attack in ATTACKS:
        edge = edge_at_version_3()
        with pytest.raises(BundleRejected) as err:
            receive(edge, attack.make(), attack)
        assert err.value.reason == attack.reason
        assert edge.applied == []
        assert edge.version() == 3
    reliability.row(
        test="cloud: forged, rolled-back, replayed, expired, truncated bundles",
        load="1 site at version 3",
        bad_inputs=f"{len(ATTACKS)} attacks ({len(set(b.Rejection))} rejection reasons)",
        losses="0",
        applied=0,
    )


@pytest.mark.parametrize("make", [snapshot, delta], ids=["snapshot", "delta"])
def test_honest_bundle_is_applied(make: Callable[[], bytes]) -> None:
    edge = edge_at_version_3()
    receive(edge, make(), Attack("honest", make, b.Rejection.REPLAY))
    assert edge.version() == 4
    assert edge.digest() == policydoc.policy_digest(NEXT)
    assert policydoc.policy_digest(edge.doc) == policydoc.policy_digest(NEXT)


def test_envelope_is_canonical_json_and_signature_covers_signed_bytes() -> None:
    data = snapshot()
    parsed = json.loads(data)
    assert policydoc.canonical_json(parsed) == data
    assert list(parsed) == ["signatures", "signed"]
    body = policydoc.canonical_json(parsed["signed"])
    CLOUD.private_key.public_key().verify(base64.b64decode(parsed["signatures"][0]["sig"]), body)


# ------------------------------------------------------------ the same table, through SyncClient


class FakeCloud:
    """A hostile cloud: answers every poll with the given bundle bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.port = free_port()

    async def __aenter__(self) -> Self:
        app = web.Application()

        async def bundle(_r: web.Request) -> web.Response:
            return web.Response(body=self.data, content_type="application/json")

        async def ok(_r: web.Request) -> web.Response:
            return web.json_response({"ok": True, "watermark": 0, "resend_from": None})

        app.router.add_get("/api/v1/sync/bundle", bundle)
        app.router.add_post("/api/v1/sync/report", ok)
        app.router.add_post("/api/v1/sync/events", ok)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
async def test_sync_client_refuses_the_attack(
    attack: Attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_mod, "BACKOFF_S", (0.01, 0.02))
    edge = edge_at_version_3()
    before = (copy.deepcopy(edge.doc), edge.version(), edge.digest())
    async with FakeCloud(attack.make()) as cloud:
        enrollment = Enrollment(
            url=f"http://127.0.0.1:{cloud.port}",
            site_id=SITE,
            token="t",
            key_id=CLOUD.key_id,
            public_key=CLOUD.public_b64,
            secret=SECRET.hex(),
        )
        client = SyncClient(
            enrollment.url,
            enrollment,
            state=edge,
            apply_bundle=edge.apply_bundle,
            outbox=FakeOutbox(),
            inventory=edge.inventory,
            on_alarm=edge.on_alarm,
            clock=attack.now.timestamp,
            max_bundle_bytes=attack.max_bytes,
        )
        async with client:
            async with asyncio.timeout(10):
                while len(client.rejected) < 3:  # refused, and refused again on each retry
                    await asyncio.sleep(0.01)
    assert set(client.rejected) == {attack.reason}
    assert [kind for kind, _ in edge.alarms] == ["bundle_rejected"]  # one alarm, not one per retry
    assert (edge.doc, edge.version(), edge.digest()) == before


# ------------------------------------------------------------ delta properties

entity_ids = st.sets(st.sampled_from([f"p{i}" for i in range(8)]))
names = st.sampled_from(["A", "B", "C"])


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = policydoc.empty_document()
    doc["people"] = [
        {"id": i, "kind": "staff", "name": draw(names)} for i in sorted(draw(entity_ids))
    ]
    doc["holidays"] = [
        {"date": d, "name": "h"}
        for d in sorted(draw(st.sets(st.sampled_from(["2026-12-25", "2026-12-26"]))))
    ]
    if draw(st.booleans()):
        doc["settings"]["temp_key_max_days"] = draw(st.integers(1, 90))
    return doc


@settings(max_examples=60, deadline=None)
@given(documents(), documents())
def test_delta_round_trip(old: dict[str, Any], new: dict[str, Any]) -> None:
    result = b.apply_delta(old, b.make_delta(old, new))
    assert policydoc.policy_digest(result) == policydoc.policy_digest(new)


@settings(max_examples=60, deadline=None)
@given(documents(), documents(), documents())
def test_composed_delta_equals_two_steps(
    d1: dict[str, Any], d2: dict[str, Any], d3: dict[str, Any]
) -> None:
    composed = b.compose_deltas(b.make_delta(d1, d2), b.make_delta(d2, d3))
    assert policydoc.policy_digest(b.apply_delta(d1, composed)) == policydoc.policy_digest(d3)


@settings(max_examples=40, deadline=None)
@given(documents())
def test_snapshot_round_trips_through_the_wire(doc: dict[str, Any]) -> None:
    data = b.build_snapshot(CLOUD, site_id=SITE, version=7, document=doc, now=NOW)
    got = b.verify_bundle(
        data,
        trusted_keys={CLOUD.key_id: CLOUD.private_key.public_key()},
        site_id=SITE,
        current_version=0,
        current_digest=None,
        now=NOW,
    )
    assert got.document == doc
    assert got.version == 7


@pytest.mark.parametrize(
    "document",
    [
        {"format": policydoc.FORMAT, "settings": True},  # settings not a table
        {"format": policydoc.FORMAT, "people": [None]},  # an entity not an object
    ],
)
def test_a_signed_snapshot_of_a_malformed_document_is_refused_not_a_crash(
    document: dict[str, Any],
) -> None:
    # Found by the bundle fuzzer: the digest of such a document raised AttributeError.
    data = b.build_snapshot(
        CLOUD, site_id=SITE, version=4, document=document, now=NOW, digest="sha256:" + "0" * 64
    )
    with pytest.raises(BundleRejected) as refused:
        b.verify_bundle(
            data,
            trusted_keys={CLOUD.key_id: CLOUD.private_key.public_key()},
            site_id=SITE,
            current_version=3,
            current_digest=None,
            now=NOW,
        )
    assert refused.value.reason == "truncated"
