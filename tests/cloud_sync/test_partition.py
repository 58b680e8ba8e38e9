"""Partitions: every event produced at the edge arrives in the cloud exactly once, whether
the cloud is down for a while, the uploader is cancelled mid-upload, or the cloud's answer
is lost after it committed. A fake outbox (our own interface) and a real cloud server."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from cloud_sync import client as client_mod
from cloud_sync.client import Enrollment, SyncClient

from .conftest import FakeEdge, FakeOutbox, Server, backend_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from cloud_sync.store import CloudStore
    from tests.reliability import Reliability


@pytest.fixture(autouse=True)
def fast_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "BACKOFF_S", (0.01, 0.08))
    monkeypatch.setattr(client_mod, "UPLOAD_INTERVAL_S", 0.03)
    monkeypatch.setattr(client_mod, "UPLOAD_BATCH", 7)  # many small batches: many cut points


async def enrolled(store: CloudStore, server: Server) -> Enrollment:
    code = await store.add_site("s1")
    info = await store.enroll(code)
    return Enrollment(
        url=server.url,
        **{k: info[k] for k in ("site_id", "token", "key_id", "public_key", "secret")},
    )


def make_client(server: Server, enrollment: Enrollment, outbox: FakeOutbox) -> SyncClient:
    edge = FakeEdge()
    return SyncClient(
        server.url,
        enrollment,
        state=edge,
        apply_bundle=edge.apply_bundle,
        outbox=outbox,
        inventory=edge.inventory,
        on_alarm=edge.on_alarm,
        poll_wait_s=1,
    )


async def produce(outbox: FakeOutbox, n: int, client: Callable[[], SyncClient | None]) -> None:
    for _ in range(n):
        outbox.add()
        c = client()
        if c is not None:
            c.poke()
        await asyncio.sleep(0.002)


async def all_arrived(
    store: CloudStore, outbox: FakeOutbox, client: SyncClient, timeout: float = 15
) -> None:
    total = outbox.next_seq - 1
    async with asyncio.timeout(timeout):
        while outbox.acked < total:
            client.poke()
            await asyncio.sleep(0.02)
    assert await store.event_log.event_seqs("s1", outbox.epoch) == list(range(1, total + 1))
    assert await store.event_log.event_count("s1") == total
    assert await store.event_log.watermark("s1", outbox.epoch) == total
    assert await store.alarms("s1") == []  # no hash conflicts: retries were identical


async def test_cloud_down_for_a_while(
    store: CloudStore, server: Server, reliability: Reliability
) -> None:
    enrollment = await enrolled(store, server)
    outbox = FakeOutbox()
    client = make_client(server, enrollment, outbox)
    async with client:
        await produce(outbox, 40, lambda: client)
        await server.stop()
        await produce(outbox, 60, lambda: client)  # events keep coming while the cloud is away
        acked_while_down = outbox.acked
        await asyncio.sleep(0.2)
        assert outbox.acked == acked_while_down  # nothing acknowledged by a dead cloud
        await server.start()
        await produce(outbox, 20, lambda: client)
        await all_arrived(store, outbox, client)
    reliability.row(
        test=f"cloud ({backend_name(store)}): partition (cloud down while events are made)",
        load="120 events",
        faults="cloud stopped for 60 events",
        losses="0",
        events=outbox.next_seq - 1,
    )


def slow_uploads(
    rng: random.Random, cut: list[int]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Hold each upload a few ms before and after it commits, so a cancellation at a
    random moment often lands while a request is in flight; count those."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/api/v1/sync/events":
            return await handler(request)
        await asyncio.sleep(rng.uniform(0, 0.01))
        response = await handler(request)
        await asyncio.sleep(rng.uniform(0, 0.01))
        if request.transport is None or request.transport.is_closing():
            cut.append(1)  # the uploader was cancelled while waiting for this answer
        return response

    return middleware


async def test_uploader_cancelled_at_random_points(
    store: CloudStore, reliability: Reliability
) -> None:
    rng = random.Random(4)
    cut: list[int] = []
    server = Server(store, middlewares=[slow_uploads(rng, cut)])
    await server.start()
    try:
        enrollment = await enrolled(store, server)
        outbox = FakeOutbox()
        current: list[SyncClient | None] = [None]
        producer = asyncio.create_task(produce(outbox, 150, lambda: current[0]))
        for _ in range(30):
            client = make_client(server, enrollment, outbox)
            current[0] = client
            async with client:
                await asyncio.sleep(rng.uniform(0, 0.03))
            # leaving the block cancels the tasks wherever they are, mid-request included
        await producer
        client = make_client(server, enrollment, outbox)
        async with client:
            await all_arrived(store, outbox, client)
        assert len(cut) >= 3  # the interesting case really happened
    finally:
        await server.stop()
    reliability.row(
        test=f"cloud ({backend_name(store)}): slow answers, uploader cancelled at random points",
        load="150 events",
        faults=f"30 cancellations, {len(cut)} mid-request; answers delayed 0-20 ms",
        losses="0",
        events=outbox.next_seq - 1,
    )


def losing_answers(
    rng: random.Random, lost: list[int]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)  # the store has committed by now
        if request.path == "/api/v1/sync/events" and rng.random() < 0.4:
            lost.append(1)
            assert request.transport is not None
            request.transport.abort()  # the answer never reaches the edge
            raise web.HTTPServiceUnavailable
        return response

    return middleware


async def test_answer_lost_after_commit(store: CloudStore, reliability: Reliability) -> None:
    lost: list[int] = []
    server = Server(store, middlewares=[losing_answers(random.Random(7), lost)])
    await server.start()
    try:
        enrollment = await enrolled(store, server)
        outbox = FakeOutbox()
        client = make_client(server, enrollment, outbox)
        async with client:
            await produce(outbox, 120, lambda: client)
            await all_arrived(store, outbox, client)
        assert len(lost) >= 5  # the scenario really happened
    finally:
        await server.stop()
    reliability.row(
        test=f"cloud ({backend_name(store)}): lost acks (answer dropped after commit, then 5xx)",
        load="120 events",
        faults=f"{len(lost)} upload answers lost",
        losses="0",
        events=outbox.next_seq - 1,
    )
