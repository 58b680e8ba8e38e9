"""The cloud store: sites, policies, deltas, events and alarms, in SQLite or PostgreSQL.

SQLAlchemy Core over aiosqlite (``sqlite:///file.db``) or asyncpg (``postgresql://...``).
Workers are stateless: everything lives here, and a policy change wakes long-polling
workers through PostgreSQL ``LISTEN/NOTIFY`` (every worker process) or an in-process
asyncio wake-up (SQLite: one process).

What is never stored in clear: site HMAC secrets and plaintext credential values are
AES-GCM sealed under the key file (see ``cloud_sync.keys``); tokens and enrollment codes
are stored as SHA-256 hashes.

Exactly-once ingestion: events are keyed ``(site, epoch, seq)``. A batch takes the
per-(site, epoch) row lock first, so concurrent uploads of one site serialise; rows that
exist are compared by hash (same: a duplicate, different: an alarm, the stored row
stays); the watermark only moves over contiguous sequence numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cloud_sync import bundle as bundles
from doorkeep import policydoc
from doorkeep.errors import AuthError, Conflict, NotFound, PolicyError, SyncError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from cloud_sync.keys import CloudKeys

log = logging.getLogger(__name__)

SITE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: Deltas kept per site; a site further behind gets a snapshot.
DELTA_RETENTION = 500
#: An enrollment code is valid this long after `site add`.
ENROLL_CODE_TTL_S = 7 * 24 * 3600
#: Largest number of sequence numbers the watermark walk reads at once.
_WALK = 50_000
#: Reconnect delays of the LISTEN connection (capped, jittered).
LISTEN_BACKOFF = (0.2, 10.0)

#: One encoder for event bodies: json.dumps with options builds a new encoder per call,
#: which is a measurable share of ingest time at tens of thousands of events a second.
_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("token_hash", sa.String(64), unique=True),
    sa.Column("enroll_code_hash", sa.String(64), unique=True),
    sa.Column("enroll_expires", sa.Float),
    sa.Column("enrolled_at", sa.Float),
    sa.Column("secret_sealed", sa.LargeBinary, nullable=False),
    sa.Column("last_contact", sa.Float),
    sa.Column("reported_version", sa.Integer),
    sa.Column("reported_digest", sa.String(80)),
    sa.Column("inventory", sa.Text),
    sa.Column("force_snapshot", sa.Boolean, nullable=False, default=False),
    sa.Column("resend_from", sa.BigInteger),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("site_id", sa.String(63), sa.ForeignKey("sites.id"), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # canonical JSON of the hashed document
    sa.Column("secrets_sealed", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.Text, nullable=False, default=""),
)

policy_deltas = sa.Table(
    "policy_deltas",
    metadata,
    sa.Column("site_id", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("prev_digest", sa.String(80), nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("delta", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.Text, nullable=False, default=""),
)

epochs = sa.Table(
    "epochs",
    metadata,
    sa.Column("site_id", sa.String(63), primary_key=True),
    sa.Column("epoch", sa.String(64), primary_key=True),
    sa.Column("watermark", sa.BigInteger, nullable=False, default=0),
    sa.Column("max_seq", sa.BigInteger, nullable=False, default=0),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("site_id", sa.String(63), primary_key=True),
    sa.Column("epoch", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("at", sa.Text),
    sa.Column("type", sa.String(16)),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    # `at` as POSIX seconds: event times carry their site's offset, which changes at DST,
    # so only this column sorts and filters correctly (added by migration 3).
    sa.Column("at_ts", sa.Float),
)

alarms = sa.Table(
    "alarms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(63), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("resolved_at", sa.Float),
)

admin_tokens = sa.Table(
    "admin_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)


# ------------------------------------------------------------------------ migrations


async def _m1_initial(conn: AsyncConnection) -> None:
    tables = [sites, policies, policy_deltas, epochs, events, alarms, admin_tokens]
    await conn.run_sync(lambda c: metadata.create_all(c, tables=tables))


async def _m2_indexes(conn: AsyncConnection) -> None:
    # Event search by time and open-alarm listing per site: the admin API's two scans.
    await conn.execute(sa.text("CREATE INDEX IF NOT EXISTS events_site_at ON events (site_id, at)"))
    await conn.execute(
        sa.text("CREATE INDEX IF NOT EXISTS alarms_site_open ON alarms (site_id, resolved_at)")
    )


def event_ts(at: Any) -> float | None:
    """POSIX seconds of an event's ISO time (no offset: read as UTC); None if unreadable."""
    if not isinstance(at, str):
        return None
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def _m3_event_time(conn: AsyncConnection) -> None:
    # Databases made by migration 1 before this column existed lack it; newer ones have it.
    columns = await conn.run_sync(
        lambda c: {col["name"] for col in sa.inspect(c).get_columns("events")}
    )
    if "at_ts" not in columns:
        await conn.execute(sa.text("ALTER TABLE events ADD COLUMN at_ts DOUBLE PRECISION"))
    rows = (
        await conn.execute(
            sa.select(events.c.site_id, events.c.epoch, events.c.seq, events.c.at).where(
                events.c.at_ts.is_(None)
            )
        )
    ).all()
    for row in rows:
        await conn.execute(
            sa.update(events)
            .where(
                events.c.site_id == row.site_id,
                events.c.epoch == row.epoch,
                events.c.seq == row.seq,
            )
            .values(at_ts=event_ts(row.at))
        )
    await conn.execute(sa.text("DROP INDEX IF EXISTS events_site_at"))
    await conn.execute(
        sa.text("CREATE INDEX IF NOT EXISTS events_site_ts ON events (site_id, at_ts)")
    )


#: Ordered schema migrations; the store applies those above the recorded version, each in
#: its own transaction (PostgreSQL: under an advisory lock, so workers may start together).
#: Migration 1 creates the tables as this module declares them; later ones bring older
#: databases up to the same shape and must be idempotent on a fresh one.
MIGRATIONS: tuple[Callable[[AsyncConnection], Awaitable[None]], ...] = (
    _m1_initial,
    _m2_indexes,
    _m3_event_time,
)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def event_hash(event: dict[str, Any]) -> str:
    """The hash the cloud compares duplicates by: the edge's ``hash``, else SHA-256 of the row."""
    given = event.get("hash")
    if isinstance(given, str) and given:
        return given
    return hashlib.sha256(policydoc.canonical_json(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one upload did: the contiguous watermark and what was refused or ignored."""

    watermark: int
    inserted: int
    duplicates: int
    conflicts: int
    resend_from: int | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer of the events endpoint."""
        return {
            "watermark": self.watermark,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "resend_from": self.resend_from,
        }


def engine_url(url: str) -> str:
    """Map a user URL (``sqlite:///x.db``, ``postgresql://...``) to its async driver URL."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        return url
    raise SyncError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://...")


class Notifier:
    """Wakes long-polls waiting on a site: one asyncio.Event per site per generation."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def watch(self, site_id: str) -> asyncio.Event:
        """The event the next :meth:`wake` of ``site_id`` sets; take it *before* checking."""
        return self._events.setdefault(site_id, asyncio.Event())

    def wake(self, site_id: str) -> None:
        """Wake everyone watching ``site_id`` (``"*"``: every site)."""
        if site_id == "*":
            woken = list(self._events.values())
            self._events.clear()
        else:
            ev = self._events.pop(site_id, None)
            woken = [ev] if ev else []
        for ev in woken:
            ev.set()

    @property
    def waiting(self) -> int:
        """How many sites have a watcher (for the benchmark and the status page)."""
        return len(self._events)


class CloudStore:
    """The cloud's database; ``async with CloudStore(url, keys) as store``."""

    def __init__(
        self,
        url: str,
        keys: CloudKeys,
        *,
        pg_schema: str | None = None,
        clock: Callable[[], float] = time.time,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.keys = keys
        self.clock = clock
        self.notifier = Notifier()
        self.is_pg = engine_url(url).startswith("postgresql")
        self.pg_schema = pg_schema
        self.channel = f"doorkeep_policy_{pg_schema or 'public'}"
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._write_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._listen_ready = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        kwargs: dict[str, Any] = {}
        if self.is_pg:
            settings = {"search_path": self.pg_schema} if self.pg_schema else {}
            kwargs = {
                "connect_args": {"server_settings": settings},
                "pool_size": self._pool_size,
                "max_overflow": self._pool_size,
            }
        else:
            kwargs = {"connect_args": {"timeout": 30}}
        self._engine = create_async_engine(engine_url(self.url), **kwargs)
        if not self.is_pg:
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_on_connect)
            sa.event.listen(self._engine.sync_engine, "begin", _sqlite_on_begin)
        await self.migrate()
        if self.is_pg:
            self._listener = asyncio.create_task(self._listen(), name="cloud-store-listen")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listen_ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._engine is not None:
            await self._engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (open only inside ``async with``)."""
        if self._engine is None:
            raise SyncError("the cloud store is not open")
        return self._engine

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        # SQLite has one writer; queueing in-process beats spinning on SQLITE_BUSY.
        if self.is_pg:
            async with self.engine.begin() as conn:
                yield conn
        else:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            if not self.is_pg:
                conn = await conn.execution_options(doorkeep_read=True)  # noqa: PLW2901
            yield conn

    async def migrate(self) -> int:
        """Apply pending migrations; the schema version now in force."""
        async with self._write() as conn:
            if self.is_pg:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7431001)"))
            await conn.run_sync(lambda c: metadata.create_all(c, tables=[schema_version]))
            current = (
                await conn.execute(sa.select(sa.func.max(schema_version.c.version)))
            ).scalar()
            current = int(current or 0)
            for number, step in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                await step(conn)
                await conn.execute(sa.delete(schema_version))
                await conn.execute(sa.insert(schema_version).values(version=number))
                log.info("cloud store migrated to schema %d", number)
                current = number
            return current

    async def _listen(self) -> None:
        import asyncpg  # noqa: PLC0415 - only PostgreSQL stores need it

        dsn = "postgresql://" + engine_url(self.url).split("://", 1)[1]
        settings = {"search_path": self.pg_schema} if self.pg_schema else {}
        delay, failed = LISTEN_BACKOFF[0], False
        while True:
            try:
                conn = await asyncpg.connect(dsn, server_settings=settings)
                try:
                    await conn.add_listener(
                        self.channel, lambda _c, _p, _ch, payload: self.notifier.wake(payload)
                    )
                    if failed:
                        log.warning("cloud store LISTEN recovered")
                        failed = False
                    delay = LISTEN_BACKOFF[0]
                    # Anything may have changed while we were not listening.
                    self.notifier.wake("*")
                    self._listen_ready.set()
                    # asyncpg has no "closed" future; a cheap periodic check finds a dead
                    # connection (and its lost notifications) within a second.
                    while not conn.is_closed():  # noqa: ASYNC110
                        await asyncio.sleep(1)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not failed:
                    log.warning("cloud store LISTEN failed: %s; retrying", err)
                    failed = True
                self.notifier.wake("*")
            await asyncio.sleep(delay * (0.5 + secrets.randbelow(1000) / 1000))
            delay = min(delay * 2, LISTEN_BACKOFF[1])

    async def _notify(self, conn: AsyncConnection, site_id: str) -> None:
        # PostgreSQL: NOTIFY is delivered at commit, to every worker's listener (ours too).
        if self.is_pg:
            await conn.execute(sa.select(sa.func.pg_notify(self.channel, site_id)))

    def _wake_local(self, site_id: str) -> None:
        if not self.is_pg:
            self.notifier.wake(site_id)

    # ---------------------------------------------------------------- tokens and sites

    async def create_admin_token(self, name: str = "") -> str:
        """A new admin bearer token (shown once; only its hash is stored)."""
        token = "dka_" + secrets.token_urlsafe(32)
        async with self._write() as conn:
            await conn.execute(
                sa.insert(admin_tokens).values(
                    token_hash=_token_hash(token), name=name, created_at=self.clock()
                )
            )
        return token

    async def check_admin_token(self, token: str) -> bool:
        """Whether ``token`` is a known admin token."""
        async with self._read() as conn:
            row = await conn.execute(
                sa.select(admin_tokens.c.name).where(
                    admin_tokens.c.token_hash == _token_hash(token)
                )
            )
            return row.first() is not None

    async def add_site(self, site_id: str, name: str = "") -> str:
        """Create a site with an empty policy at version 0; its one-time enrollment code."""
        if not SITE_ID.fullmatch(site_id):
            raise PolicyError(f"site id {site_id!r} must be lower-case letters, digits and '-'")
        code = _enroll_code()
        now = self.clock()
        secret = secrets.token_bytes(32)
        doc = policydoc.empty_document()
        try:
            async with self._write() as conn:
                await conn.execute(
                    sa.insert(sites).values(
                        id=site_id,
                        name=name,
                        created_at=now,
                        enroll_code_hash=_token_hash(code),
                        enroll_expires=now + ENROLL_CODE_TTL_S,
                        secret_sealed=self.keys.seal(secret, "secret:" + site_id),
                        force_snapshot=False,
                    )
                )
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
        except sa.exc.IntegrityError as err:
            raise Conflict(f"site {site_id!r} exists already") from err
        return code

    async def new_enrollment_code(self, site_id: str) -> str:
        """A fresh one-time code for re-enrolling ``site_id`` (the old credential stays
        valid until the code is used)."""
        code = _enroll_code()
        async with self._write() as conn:
            res = await conn.execute(
                sa.update(sites)
                .where(sites.c.id == site_id)
                .values(
                    enroll_code_hash=_token_hash(code),
                    enroll_expires=self.clock() + ENROLL_CODE_TTL_S,
                )
            )
            if res.rowcount == 0:
                raise NotFound(f"no site {site_id!r}")
        return code

    async def enroll(self, code: str) -> dict[str, Any]:
        """Trade a one-time code for the site credential; the code is spent."""
        token = "dks_" + secrets.token_urlsafe(32)
        now = self.clock()
        async with self._write() as conn:
            row = (
                await conn.execute(
                    sa.select(sites.c.id, sites.c.enroll_expires, sites.c.secret_sealed).where(
                        sites.c.enroll_code_hash == _token_hash(code.strip())
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
                    token_hash=_token_hash(token),
                    enroll_code_hash=None,
                    enroll_expires=None,
                    enrolled_at=now,
                    force_snapshot=True,
                )
            )
        # Whatever the site held before, its next poll gets a full snapshot at a version
        # newer than anything it may have seen.
        await self.force_snapshot(row.id, actor="enroll")
        secret = self.keys.open(row.secret_sealed, "secret:" + row.id)
        return {
            "site_id": row.id,
            "token": token,
            "key_id": self.keys.signer.key_id,
            "public_key": self.keys.signer.public_b64,
            "secret": secret.hex(),
        }

    async def site_for_token(self, token: str) -> str:
        """The site a sync credential belongs to; AuthError if none."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(sites.c.id).where(sites.c.token_hash == _token_hash(token))
                )
            ).first()
        if row is None:
            raise AuthError("unknown site credential; enroll the site again")
        return str(row.id)

    async def site_ids(self) -> list[str]:
        """Every site id, sorted."""
        async with self._read() as conn:
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
        async with self._read() as conn:
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
                        "alarms": [_alarm_dict(a) for a in open_alarms],
                        "inventory": inventory,
                    }
                )
        return out

    async def site_secret(self, site_id: str) -> bytes:
        """The site's HMAC secret (decrypted from the database)."""
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(sites.c.secret_sealed).where(sites.c.id == site_id))
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        return self.keys.open(row.secret_sealed, "secret:" + site_id)

    async def report(
        self,
        site_id: str,
        *,
        version: int | None,
        digest: str | None,
        inventory: dict[str, Any] | None,
    ) -> None:
        """Record what a site says it holds; clears a forced snapshot once it matches."""
        values: dict[str, Any] = {"last_contact": self.clock()}
        if version is not None:
            values["reported_version"] = version
            values["reported_digest"] = digest
        if inventory is not None:
            values["inventory"] = json.dumps(inventory, sort_keys=True)
        async with self._write() as conn:
            await self._relaxed(conn)
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

    async def _relaxed(self, conn: AsyncConnection) -> None:
        # Contact times and reports are refreshed on every poll; losing the last few in a
        # crash is harmless, so they need not wait for a WAL flush (1000 sites poll).
        if self.is_pg:
            await conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))

    async def touch(self, site_id: str) -> None:
        """Record contact from a site (a poll) without a report."""
        async with self._write() as conn:
            await self._relaxed(conn)
            await conn.execute(
                sa.update(sites).where(sites.c.id == site_id).values(last_contact=self.clock())
            )

    async def inventory(self, site_id: str) -> dict[str, Any]:
        """What the site last reported about itself (doors, time zone, ...)."""
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(sites.c.inventory).where(sites.c.id == site_id))
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        return json.loads(row.inventory) if row.inventory else {}

    # ---------------------------------------------------------------- policy

    def _seal_secrets(self, site_id: str, values: dict[str, Any]) -> bytes:
        return self.keys.seal(policydoc.canonical_json(values), "values:" + site_id)

    async def policy(self, site_id: str) -> tuple[int, str, dict[str, Any]]:
        """(version, digest, hashed document) of a site's policy as the cloud holds it."""
        async with self._read() as conn:
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
        async with self._read() as conn:
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
        values = json.loads(self.keys.open(row.secrets_sealed, "values:" + site_id))
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
        secret = await self.site_secret(site_id)
        doors = (await self.inventory(site_id)).get("doors")
        async with self._write() as conn:
            query = sa.select(policies).where(policies.c.site_id == site_id)
            if self.is_pg:
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
                new, json.loads(self.keys.open(row.secrets_sealed, "values:" + site_id))
            )
            hashed = policydoc.canonical_document(policydoc.hash_document(new, secret))
            digest = policydoc.policy_digest(hashed)
            if digest == row.digest:
                return int(row.version), digest
            version = int(row.version) + 1
            delta = bundles.make_delta(old, hashed)
            now = self.clock()
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
            await self._notify(conn, site_id)
        self._wake_local(site_id)
        return version, digest

    async def force_snapshot(self, site_id: str, *, actor: str, min_version: int = 0) -> int:
        """Make the site's next poll a full snapshot at a new version (its version is bumped
        so the edge, whatever it holds, accepts it as newer)."""
        async with self._write() as conn:
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
            now = self.clock()
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
            await self._notify(conn, site_id)
        self._wake_local(site_id)
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
        async with self._read() as conn:
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
            now = datetime.fromtimestamp(self.clock(), UTC)
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
                        self.keys.signer,
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
            self.keys.signer,
            site_id=site_id,
            version=int(doc_row.version),
            document=json.loads(doc_row.document),
            digest=doc_row.digest,
            now=now,
        )

    async def current_version(self, site_id: str) -> int:
        """The cloud's policy version of a site (cheap: the long-poll check)."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(policies.c.version).where(policies.c.site_id == site_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"no site {site_id!r}")
        return int(row.version)

    # ---------------------------------------------------------------- events

    async def ingest(self, site_id: str, epoch: str, rows: list[dict[str, Any]]) -> IngestResult:
        """Store a batch of outbox rows exactly once; the contiguous watermark after it."""
        if not epoch or len(epoch) > 64:
            raise SyncError("an event upload needs an epoch of 1-64 characters")
        batch: dict[int, tuple[str, dict[str, Any]]] = {}
        for raw in rows:
            seq = raw.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise SyncError(f"event seq must be a positive integer, got {seq!r}")
            batch[seq] = (event_hash(raw), raw)
        now = self.clock()
        conflicts = duplicates = 0
        async with self._write() as conn:
            # Upsert-and-lock the (site, epoch) row in one round trip: concurrent uploads of
            # one site queue here, so the checks below see every committed row.
            ins = (pg_dialect.insert if self.is_pg else sqlite_dialect.insert)(epochs)
            mark = (
                await conn.execute(
                    ins.values(
                        site_id=site_id,
                        epoch=epoch,
                        watermark=0,
                        max_seq=0,
                        first_seen=now,
                        last_seen=now,
                    )
                    .on_conflict_do_update(
                        index_elements=["site_id", "epoch"], set_={"last_seen": now}
                    )
                    .returning(epochs.c.watermark, epochs.c.max_seq)
                )
            ).one()
            watermark, max_seq = int(mark.watermark), int(mark.max_seq)
            existing: dict[int, str] = {}
            # Steady state: the batch starts above everything stored, so no row can be a
            # duplicate and the lookup round trip is skipped.
            if batch and min(batch) <= max_seq:
                found = await conn.execute(
                    sa.select(events.c.seq, events.c.hash).where(
                        events.c.site_id == site_id,
                        events.c.epoch == epoch,
                        events.c.seq.between(min(batch), max(batch)),
                    )
                )
                existing = {int(r.seq): r.hash for r in found}
            fresh: list[tuple[Any, ...]] = []
            for seq, (digest, raw) in sorted(batch.items()):
                if seq in existing:
                    if existing[seq] == digest:
                        duplicates += 1
                    else:
                        conflicts += 1
                        await conn.execute(
                            sa.insert(alarms).values(
                                site_id=site_id,
                                at=now,
                                kind="event_conflict",
                                message=f"epoch {epoch} seq {seq} re-sent with a different hash",
                            )
                        )
                    continue
                body = _encode(raw)
                at = raw.get("at")
                fresh.append(
                    (site_id, epoch, seq, digest, at, raw.get("type"), body, now, event_ts(at))
                )
            if fresh:
                await self._insert_events(conn, fresh)
            if batch and max(batch) > watermark:
                if max_seq <= max(batch):
                    # Nothing stored lies above this batch: walk in memory.
                    present = set(batch) | set(existing)
                    while watermark + 1 in present:
                        watermark += 1
                else:
                    watermark = await self._walk(conn, site_id, epoch, watermark)
                max_seq = max(max_seq, *batch)
            mark_update = (
                sa.update(epochs)
                .where(epochs.c.site_id == site_id, epochs.c.epoch == epoch)
                .values(watermark=watermark, max_seq=max_seq, last_seen=now)
            )
            # A resend request is answered once the watermark has passed it.
            site_update = (
                sa.update(sites)
                .where(sites.c.id == site_id)
                .values(
                    last_contact=now,
                    resend_from=sa.case(
                        (sites.c.resend_from <= watermark, sa.null()), else_=sites.c.resend_from
                    ),
                )
                .returning(sites.c.resend_from)
            )
            if self.is_pg:
                # One round trip: the epoch update rides along as a data-modifying CTE.
                site_update = site_update.add_cte(mark_update.cte("mark"))
            else:
                await conn.execute(mark_update)
            resend = (await conn.execute(site_update)).one().resend_from
        return IngestResult(watermark, len(fresh), duplicates, conflicts, resend)

    async def _insert_events(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        if self.is_pg:
            # COPY inside the same transaction: the epoch row lock rules out key clashes,
            # and COPY is several times faster than multi-row INSERT for big batches.
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.copy_records_to_table(
                "events",
                records=rows,
                columns=[c.name for c in events.c],
                schema_name=self.pg_schema,
            )
        else:
            names = [c.name for c in events.c]
            await conn.execute(sa.insert(events), [dict(zip(names, r, strict=True)) for r in rows])

    async def _walk(self, conn: AsyncConnection, site_id: str, epoch: str, watermark: int) -> int:
        while True:
            seqs = (
                await conn.execute(
                    sa.select(events.c.seq)
                    .where(
                        events.c.site_id == site_id,
                        events.c.epoch == epoch,
                        events.c.seq > watermark,
                        events.c.seq <= watermark + _WALK,
                    )
                    .order_by(events.c.seq)
                )
            ).scalars()
            start = watermark
            for seq in seqs:
                if seq != watermark + 1:
                    return watermark
                watermark = seq
            if watermark == start or watermark < start + _WALK:
                return watermark

    async def watermark(self, site_id: str, epoch: str) -> int:
        """The contiguous watermark of ``(site, epoch)`` (0 if nothing arrived)."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(epochs.c.watermark).where(
                        epochs.c.site_id == site_id, epochs.c.epoch == epoch
                    )
                )
            ).first()
        return int(row.watermark) if row else 0

    async def resend_from(self, site_id: str) -> int | None:
        """The sequence number the site was asked to re-send from, if any."""
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(sites.c.resend_from).where(sites.c.id == site_id))
            ).first()
        return None if row is None else row.resend_from

    async def ask_resend(self, site_id: str, seq: int) -> None:
        """Make the site's next answers say "resend from ``seq``"."""
        async with self._write() as conn:
            await conn.execute(
                sa.update(sites).where(sites.c.id == site_id).values(resend_from=seq)
            )
            await self._notify(conn, site_id)
        self._wake_local(site_id)

    async def events(
        self,
        site_id: str,
        *,
        since: str | None = None,
        until: str | None = None,
        type_: str | None = None,
        limit: int = 100,
        before: tuple[float, str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events of a site, newest first (by event time, then epoch and sequence).

        ``since``/``until``: ISO times (with offset; none means UTC). ``before``: the
        ``(at_ts, epoch, seq)`` of the last event of the previous page.
        """
        query = sa.select(events.c.epoch, events.c.seq, events.c.body, events.c.at_ts).where(
            events.c.site_id == site_id
        )
        for bound, op in ((since, "ge"), (until, "le")):
            if bound:
                ts = event_ts(bound)
                if ts is None:
                    raise SyncError(f"{bound!r} is not an ISO 8601 time")
                query = query.where(events.c.at_ts >= ts if op == "ge" else events.c.at_ts <= ts)
        if type_:
            query = query.where(events.c.type == type_)
        if before is not None:
            query = query.where(
                sa.tuple_(events.c.at_ts, events.c.epoch, events.c.seq) < sa.tuple_(*before)
            )
        query = query.order_by(
            events.c.at_ts.desc(), events.c.epoch.desc(), events.c.seq.desc()
        ).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for row in rows:
            body = json.loads(row.body)
            body["epoch"] = row.epoch
            body["_cursor"] = [row.at_ts, row.epoch, row.seq]
            out.append(body)
        return out

    async def event_count(self, site_id: str, epoch: str | None = None) -> int:
        """How many events are stored for a site (and epoch)."""
        query = sa.select(sa.func.count()).select_from(events).where(events.c.site_id == site_id)
        if epoch is not None:
            query = query.where(events.c.epoch == epoch)
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def event_seqs(self, site_id: str, epoch: str) -> list[int]:
        """Every stored sequence number of ``(site, epoch)``, ascending (tests, reconcile)."""
        async with self._read() as conn:
            res = await conn.execute(
                sa.select(events.c.seq)
                .where(events.c.site_id == site_id, events.c.epoch == epoch)
                .order_by(events.c.seq)
            )
            return [int(s) for s in res.scalars()]

    async def epochs_of(self, site_id: str) -> list[dict[str, Any]]:
        """Every outbox epoch of a site with its watermark and highest sequence seen."""
        async with self._read() as conn:
            res = await conn.execute(sa.select(epochs).where(epochs.c.site_id == site_id))
            return [dict(r._mapping) for r in res]

    async def temp_key_uses(self) -> dict[str, int]:
        """Granted temp-key uses per temp key id, summed over every site's events."""
        async with self._read() as conn:
            res = await conn.execute(
                sa.select(events.c.body).where(
                    events.c.type == "access", events.c.body.like("%temp_key%")
                )
            )
            counts: dict[str, int] = {}
            for (body,) in res:
                event = json.loads(body)
                key = _temp_key_of(event)
                if key and event.get("result") == "success":
                    counts[key] = counts.get(key, 0) + 1
        return counts

    # ---------------------------------------------------------------- alarms

    async def raise_alarm(self, site_id: str, kind: str, message: str) -> None:
        """Record an alarm unless the same kind is already open for the site."""
        async with self._write() as conn:
            open_ = (
                await conn.execute(
                    sa.select(alarms.c.id).where(
                        alarms.c.site_id == site_id,
                        alarms.c.kind == kind,
                        alarms.c.resolved_at.is_(None),
                    )
                )
            ).first()
            if open_ is None:
                await conn.execute(
                    sa.insert(alarms).values(
                        site_id=site_id, at=self.clock(), kind=kind, message=message
                    )
                )

    async def resolve_alarms(self, site_id: str, kind: str) -> int:
        """Close the open alarms of one kind for a site; how many were closed."""
        async with self._write() as conn:
            res = await conn.execute(
                sa.update(alarms)
                .where(
                    alarms.c.site_id == site_id,
                    alarms.c.kind == kind,
                    alarms.c.resolved_at.is_(None),
                )
                .values(resolved_at=self.clock())
            )
            return int(res.rowcount or 0)

    async def resolve_alarm(self, site_id: str, alarm_id: int) -> dict[str, Any]:
        """Close one alarm (idempotent); the alarm record. NotFound for another site's."""
        async with self._write() as conn:
            await conn.execute(
                sa.update(alarms)
                .where(
                    alarms.c.site_id == site_id,
                    alarms.c.id == alarm_id,
                    alarms.c.resolved_at.is_(None),
                )
                .values(resolved_at=self.clock())
            )
            row = (
                await conn.execute(
                    sa.select(alarms).where(alarms.c.site_id == site_id, alarms.c.id == alarm_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"site {site_id!r} has no alarm {alarm_id}")
        return _alarm_dict(row)

    async def alarms(self, site_id: str, *, open_only: bool = True) -> list[dict[str, Any]]:
        """Alarm records of a site, oldest first."""
        query = sa.select(alarms).where(alarms.c.site_id == site_id)
        if open_only:
            query = query.where(alarms.c.resolved_at.is_(None))
        async with self._read() as conn:
            return [_alarm_dict(a) for a in await conn.execute(query.order_by(alarms.c.id))]


def _alarm_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "kind": row.kind,
        "message": row.message,
        "resolved_at": row.resolved_at,
    }


def _temp_key_of(event: dict[str, Any]) -> str | None:
    detail = event.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("temp_key"), str):
        return str(detail["temp_key"])
    value = event.get("temp_key")
    return value if isinstance(value, str) else None


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


def _enroll_code() -> str:
    # Short enough to type on a gateway's web form, long enough (40 bits) for one week.
    raw = secrets.token_hex(5).upper()
    return f"{raw[:5]}-{raw[5:]}"


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook issue the BEGIN, and make the file WAL.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Writes BEGIN IMMEDIATE: take the write lock up front, so two processes (serve +
    # reconcile) wait on the busy timeout instead of deadlocking on a lock upgrade.
    # Reads stay deferred: in WAL mode they never wait for a writer.
    if conn.get_execution_options().get("doorkeep_read"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
