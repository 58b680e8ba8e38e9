"""Fixtures: a cloud store on SQLite and on the real PostgreSQL (a fresh schema per test),
a running cloud service on a free loopback port, and fakes of the edge's interfaces."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aiohttp import web

from cloud_sync.keys import CloudKeys
from cloud_sync.service import make_app
from cloud_sync.store import CloudStore
from doorkeep import policydoc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from cloud_sync.bundle import VerifiedBundle

PG_DSN = os.environ.get(
    "DOORKEEP_TEST_PG", "postgresql://doorkeep:doorkeep@127.0.0.1:5432/doorkeep_test"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def keys(tmp_path: Path) -> CloudKeys:
    return CloudKeys.load(tmp_path / "keys")


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards."""
    name = "dk_test_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await conn.close()


@contextlib.asynccontextmanager
async def open_store(
    backend: str, tmp_path: Path, keys: CloudKeys, **kw: Any
) -> AsyncIterator[CloudStore]:
    if backend == "sqlite":
        async with CloudStore(f"sqlite:///{tmp_path}/cloud.db", keys, **kw) as store:
            yield store
    else:
        async with pg_schema() as schema, CloudStore(PG_DSN, keys, pg_schema=schema, **kw) as store:
            yield store


def backend_name(store: CloudStore) -> str:
    """The store's database as a reliability row names it (the same test runs on both)."""
    return "PostgreSQL" if store.is_pg else "SQLite"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, keys: CloudKeys
) -> AsyncIterator[CloudStore]:
    async with open_store(request.param, tmp_path, keys) as s:
        yield s


class Server:
    """A cloud service on a loopback port that can be stopped and started again."""

    def __init__(self, store: CloudStore, middlewares: list[Any] | None = None) -> None:
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.middlewares = middlewares or []
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.runner = web.AppRunner(
            make_app(self.store, middlewares=self.middlewares), shutdown_timeout=0.5
        )
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def server(store: CloudStore) -> AsyncIterator[Server]:
    srv = Server(store)
    await srv.start()
    yield srv
    await srv.stop()


# ---------------------------------------------------------------- fakes of edge interfaces


class FakeEdge:
    """The edge side of the callbacks: holds a hashed document, applies bundles atomically."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = policydoc.empty_document()
        self._version = 0
        self._digest: str | None = None
        self.applied: list[VerifiedBundle] = []
        self.alarms: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    def version(self) -> int:
        return self._version

    def digest(self) -> str | None:
        return self._digest

    async def apply_bundle(self, bundle: VerifiedBundle) -> None:
        new = bundle.apply_to(self.doc)  # raises before anything changes
        self.doc, self._version, self._digest = new, bundle.version, bundle.digest
        self.applied.append(bundle)
        self.changed.set()

    async def on_alarm(self, kind: str, message: str) -> None:
        self.alarms.append((kind, message))

    def inventory(self) -> dict[str, Any]:
        return {"doors": ["gate", "lobby", "parcel", "gym", "plant"], "timezone": "Europe/Berlin"}

    async def wait_version(self, version: int, timeout: float = 10) -> None:
        async def until() -> None:
            while self._version < version:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)


class FakeOutbox:
    """An in-memory outbox with the edge's contract: rows are only pruned once acknowledged."""

    def __init__(self, epoch: str = "epoch-1") -> None:
        self.epoch = epoch
        self.rows: dict[int, dict[str, Any]] = {}
        self.next_seq = 1
        self.acked = 0

    def add(self, n: int = 1) -> None:
        for _ in range(n):
            seq = self.next_seq
            self.next_seq += 1
            self.rows[seq] = {
                "seq": seq,
                "at": f"2026-11-25T10:{seq // 60 % 60:02d}:{seq % 60:02d}+01:00",
                "type": "access",
                "action": "present",
                "result": "success",
                "reason": None,
                "door": "gate",
                "reader": "gate-in",
                "person": "p-judy",
                "apartment": None,
                "credential_kind": "rf_card",
                "detail": {},
                "hash": f"h{seq:08d}",
            }

    async def batch_above(self, seq: int, limit: int) -> list[dict[str, Any]]:
        return [self.rows[s] for s in sorted(self.rows) if s > seq][:limit]

    async def acknowledged(self, seq: int) -> None:
        assert seq >= self.acked, "watermarks only move forward"
        self.acked = seq
