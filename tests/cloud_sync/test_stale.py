"""Staleness cannot be faked: only a verified bundle or a signed "nothing new" counts as
word from the cloud, and answers that are neither make the client back off, not spin."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

import pytest
from aiohttp import web

from cloud_sync import bundle as b
from cloud_sync.client import Enrollment, SyncClient
from doorkeep import policydoc
from doorkeep.errors import BundleRejected

from .conftest import FakeEdge, FakeOutbox, free_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.reliability import Reliability

CLOUD = b.generate_signer()


class Immediate204:
    """A "cloud" (or a proxy in front of one) that answers every bundle poll with 204 at
    once, or with what ``answer`` makes of the poll."""

    def __init__(self, answer: Callable[[web.Request], web.Response] | None = None) -> None:
        self.port = free_port()
        self.polls = 0
        self.answer = answer or (lambda _r: web.Response(status=204))

    async def __aenter__(self) -> Self:
        app = web.Application()

        async def bundle(request: web.Request) -> web.Response:
            self.polls += 1
            return self.answer(request)

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


async def test_an_immediate_204_neither_refreshes_contact_nor_makes_the_edge_spin(
    reliability: Reliability,
) -> None:
    edge = FakeEdge()
    now = [1000.0]
    window_s = 3.0
    async with Immediate204() as cloud:
        enrollment = Enrollment(
            url=f"http://127.0.0.1:{cloud.port}",
            site_id="s1",
            token="t",
            key_id=CLOUD.key_id,
            public_key=CLOUD.public_b64,
            secret=(b"\x01" * 32).hex(),
        )
        client = SyncClient(
            enrollment.url,
            enrollment,
            state=edge,
            apply_bundle=edge.apply_bundle,
            outbox=FakeOutbox(),
            inventory=edge.inventory,
            on_alarm=edge.on_alarm,
            stale_after_s=60,
            clock=lambda: now[0],
        )
        async with client:
            await asyncio.sleep(window_s)  # default backoff timings: what a real site does
            polls = cloud.polls
            now[0] += 61
            assert client.stale  # a 204 is no word from the cloud
    # Unbounded, this was ~3,400 polls a second; with the jittered doubling backoff from
    # 0.5 s it is at most 5 in 3 s.
    assert 1 <= polls <= 6, polls
    assert client.last_contact is None
    reliability.row(
        test="cloud: immediate unsigned 204 to every bundle poll",
        load=f"{window_s:.0f} s of polling",
        faults="every poll answered 204 at once",
        bad_inputs=f"{polls} unsigned answers",
        losses="0",
        polls_per_s=round(polls / window_s, 2),
    )


# ------------------------------------------------------------ the signed "nothing new"

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MALLORY = b.generate_signer()
NONCE = "n0nce-of-this-poll"


def current(signer: b.Signer = CLOUD, **kw: Any) -> bytes:
    fields: dict[str, Any] = {
        "site_id": "s1", "version": 3, "edge_version": 3, "nonce": NONCE, "now": NOW, **kw,
    }  # fmt: skip
    return b.build_current(signer, **fields)


def check(data: bytes, now: datetime = NOW) -> b.CurrentStatement:
    return b.verify_current(
        data,
        trusted_keys={CLOUD.key_id: CLOUD.private_key.public_key()},
        site_id="s1",
        edge_version=3,
        nonce=NONCE,
        now=now,
    )


def test_a_signed_nothing_new_for_this_poll_is_accepted() -> None:
    got = check(current())
    assert (got.site_id, got.version, got.edge_version, got.nonce) == ("s1", 3, 3, NONCE)


CURRENT_ATTACKS = [
    ("unsigned (another key)", lambda: current(MALLORY), b.Rejection.UNKNOWN_KEY),
    ("tampered", lambda: current().replace(b'"version":3', b'"version":2'),
     b.Rejection.BAD_SIGNATURE),
    ("another site's", lambda: current(site_id="s2"), b.Rejection.WRONG_SITE),
    ("replayed from another poll", lambda: current(nonce="old-nonce-1"), b.Rejection.REPLAY),
    ("answers another version", lambda: current(edge_version=2), b.Rejection.REPLAY),
    ("expired", lambda: current(now=NOW - timedelta(hours=1)), b.Rejection.EXPIRED),
    ("cloud ahead yet nothing new", lambda: current(version=4), b.Rejection.GAP),
    ("a bundle is not a statement", lambda: b.build_snapshot(
        CLOUD, site_id="s1", version=4, document=policydoc.empty_document(), now=NOW
    ), b.Rejection.TRUNCATED),
    ("cut off", lambda: current()[:-10], b.Rejection.TRUNCATED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "make", "reason"), CURRENT_ATTACKS, ids=[a[0] for a in CURRENT_ATTACKS]
)
def test_a_forged_or_replayed_nothing_new_is_refused(
    name: str, make: Callable[[], bytes], reason: b.Rejection
) -> None:
    with pytest.raises(BundleRejected) as err:
        check(make())
    assert err.value.reason == reason, name


# ------------------------------------------------------------ the signed time


def signed_time_cloud(cloud_now: datetime) -> Immediate204:
    """A cloud that answers each poll with a signed "nothing new" for its nonce, dated
    ``cloud_now`` (the site's clock guard may use it to confirm the wall clock)."""

    def answer(request: web.Request) -> web.Response:
        have = int(request.query["version"])
        body = b.build_current(
            CLOUD, site_id="s1", version=have, edge_version=have,
            nonce=request.query["nonce"], now=cloud_now,
        )  # fmt: skip
        return web.Response(body=body, content_type="application/vnd.doorkeep.current+json")

    return Immediate204(answer)


async def test_a_signed_nothing_new_vouches_for_a_wall_clock_that_agrees_with_it() -> None:
    edge = FakeEdge()
    wall = [NOW.timestamp()]
    async with signed_time_cloud(NOW) as cloud:
        enrollment = Enrollment(
            url=f"http://127.0.0.1:{cloud.port}", site_id="s1", token="t",
            key_id=CLOUD.key_id, public_key=CLOUD.public_b64, secret=(b"\x01" * 32).hex(),
        )  # fmt: skip
        client = SyncClient(
            enrollment.url, enrollment, state=edge, apply_bundle=edge.apply_bundle,
            outbox=FakeOutbox(), inventory=edge.inventory, on_alarm=edge.on_alarm,
            clock=lambda: wall[0], poll_wait_s=0.1,
        )  # fmt: skip
        assert client.vouches_for(wall[0]) is None  # nothing signed yet: no opinion
        async with client:
            while client.signed_time is None:
                await asyncio.sleep(0.02)
            assert client.vouches_for(NOW.timestamp()) is True
            assert client.vouches_for(NOW.timestamp() + 2) is True  # to the second, plus a trip
            assert client.vouches_for(NOW.timestamp() + 3600) is False  # an hour off
            assert client.vouches_for(NOW.timestamp() - 30) is False
            issued, received = client.signed_time
            assert issued == NOW.timestamp()
            # carried forward on the monotonic clock, forgotten after ten minutes
            assert client.vouches_for(NOW.timestamp() + 60, mono=received + 60) is True
            assert client.vouches_for(NOW.timestamp() + 700, mono=received + 700) is None
