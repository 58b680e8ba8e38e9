"""The edge-side sync client: a library the edge daemon embeds, wired by callbacks only.

It never imports ``edge``. The daemon gives it:

- ``state``: what policy the site holds (``version()``, ``digest()``);
- ``apply_bundle(bundle)``: apply a *verified* bundle atomically (raise to refuse);
- ``outbox``: the event outbox (``epoch``, ``batch_above(seq, limit)``,
  ``acknowledged(seq)``);
- ``inventory()``: a dict describing the site (doors, time zone, software version);
- ``on_alarm(kind, message)``: raise an alarm on the site (a rejected bundle, staleness).

Two named tasks run in a TaskGroup: ``sync-policy`` long-polls for bundles, verifies them
against the pinned key, site, version continuity and expiry, applies them and reports;
``sync-events`` uploads outbox rows above the watermark the cloud last acknowledged and
passes the new watermark back. Each link failure logs once, retries with jittered capped
backoff, and logs once on recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self

import aiohttp

from cloud_sync import bundle as bundles
from doorkeep.errors import AuthError, BundleRejected, SyncError
from doorkeep.link import LinkHealth

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from cloud_sync.bundle import VerifiedBundle

log = logging.getLogger(__name__)

#: Seconds the cloud may hold a long-poll open.
POLL_WAIT_S = 25.0
#: First and largest reconnect delay; each failure doubles it (jittered, see doorkeep.link).
BACKOFF_S = (0.5, 60.0)
#: Outbox rows per upload.
UPLOAD_BATCH = 500
#: Upload even without a poke this often (a missed poke costs at most this much).
UPLOAD_INTERVAL_S = 5.0
#: How often staleness is re-evaluated.
STALE_CHECK_S = 10.0
#: Fewest seconds between two polls that each got a signed "nothing new": a cloud (or a
#: path) that answers at once cannot make the site poll in a tight loop.
MIN_POLL_S = 1.0
#: A signed "nothing new" vouches for the site's wall clock this long after it came in...
SIGNED_TIME_FRESH_S = 600.0
#: ...when the wall clock is within this of the cloud's signed time (carried forward on the
#: monotonic clock). The statement's time is to the second and was signed at most a
#: network round trip before it arrived.
SIGNED_TIME_TOLERANCE_S = 3.0
#: Content type of the cloud's signed "nothing new" answer.
CURRENT_TYPE = "application/vnd.doorkeep.current+json"


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What a site keeps after enrolling: its credential, the pinned key, its secret."""

    url: str
    site_id: str
    token: str
    key_id: str
    public_key: str  # base64 of the raw Ed25519 key
    secret: str  # hex of the HMAC secret for credential values

    def __post_init__(self) -> None:
        for name in ("url", "site_id", "token", "key_id", "public_key", "secret"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"enrollment field {name!r} is missing")
        bundles.load_public_key(self.public_key)
        bytes.fromhex(self.secret)

    @property
    def secret_bytes(self) -> bytes:
        """The HMAC secret as bytes (for ``policydoc.hash_document``)."""
        return bytes.fromhex(self.secret)

    def as_dict(self) -> dict[str, str]:
        """For storing in the site's data directory (0600: it holds a secret)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Enrollment:
        """The inverse of :meth:`as_dict`."""
        return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})

    def __repr__(self) -> str:
        return (
            f"Enrollment(url={self.url!r}, site_id={self.site_id!r}, key_id={self.key_id!r}, "
            "token=****, secret=****)"
        )


async def enroll(
    url: str, code: str, *, adopt: dict[str, Any] | None = None, timeout_s: float = 30.0
) -> Enrollment:
    """Pair with the cloud at ``url`` using a one-time ``code`` (``doorkeep enroll``).

    ``adopt`` (``{"secret": hex, "document": hashed policy, "version": int}``) offers a
    working site's policy and HMAC secret for the cloud to adopt; the returned
    ``Enrollment.secret`` says which secret the site must use from now on.
    """
    base = url.rstrip("/")
    body: dict[str, Any] = {"code": code}
    if adopt is not None:
        body["adopt"] = adopt
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.post(f"{base}/api/v1/enroll", json=body) as resp,
        ):
            body = await resp.json(content_type=None)
            if resp.status == 401:
                raise AuthError(body["error"]["message"])
            if resp.status != 200:
                raise SyncError(f"enrollment failed: HTTP {resp.status}: {body}")
    except aiohttp.ClientError as err:
        raise SyncError(f"cannot reach the cloud at {base}: {err}; check the URL") from err
    return Enrollment(
        url=base,
        site_id=body["site_id"],
        token=body["token"],
        key_id=body["key_id"],
        public_key=body["public_key"],
        secret=body["secret"],
    )


class ClientState(Protocol):
    """The policy the site holds (read by the client before each poll and check)."""

    def version(self) -> int:
        """The applied bundle version (0: none)."""
        ...

    def digest(self) -> str | None:
        """The policy digest of what is applied (None: nothing)."""
        ...


class Outbox(Protocol):
    """The edge's event outbox, as the uploader sees it."""

    epoch: str

    async def batch_above(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows with sequence numbers above ``seq``, ascending."""
        ...

    async def acknowledged(self, seq: int) -> None:
        """The cloud holds every row up to ``seq`` (the edge may prune them later)."""
        ...


def _link(name: str) -> LinkHealth:
    # BACKOFF_S is read here, at task start, so tests can shrink it.
    return LinkHealth(name, base_s=BACKOFF_S[0], cap_s=BACKOFF_S[1], logger=log)


class SyncClient:
    """Keeps one site in sync with the cloud; ``async with SyncClient(...) as client``."""

    def __init__(
        self,
        url: str,
        enrollment: Enrollment,
        *,
        state: ClientState,
        apply_bundle: Callable[[VerifiedBundle], Awaitable[None]],
        outbox: Outbox,
        inventory: Callable[[], dict[str, Any]],
        on_alarm: Callable[[str, str], Awaitable[None]],
        stale_after_s: float = 3600,
        clock: Callable[[], float] = time.time,
        poll_wait_s: float | None = None,
        max_bundle_bytes: int = bundles.MAX_BUNDLE_BYTES,
    ) -> None:
        self.url = url.rstrip("/")
        self.enrollment = enrollment
        self.state = state
        self.apply_bundle = apply_bundle
        self.outbox = outbox
        self.inventory = inventory
        self.on_alarm = on_alarm
        self.stale_after_s = stale_after_s
        self.clock = clock
        # read at construction (not as a default argument), so tests can shrink it
        self.poll_wait_s = POLL_WAIT_S if poll_wait_s is None else poll_wait_s
        self.max_bundle_bytes = max_bundle_bytes
        self.last_contact: float | None = None
        self.acked: int = 0
        self.rejected: list[str] = []  # reasons of refused bundles, newest last
        self._keys = {enrollment.key_id: bundles.load_public_key(enrollment.public_key)}
        self._started = clock()
        self._want_snapshot = False
        self._last_rejection: str | None = None
        self._upload_cursor: int | None = None
        self._poke = asyncio.Event()
        self._stale_reported = False
        self._http: aiohttp.ClientSession | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # (the cloud's signed time, time.monotonic() when it arrived) of the last verified
        # "nothing new" for one of our polls: a time source for the site's clock guard
        self.signed_time: tuple[float, float] | None = None

    @property
    def stale(self) -> bool:
        """True when the cloud has not been heard for ``stale_after_s``."""
        since = self.last_contact if self.last_contact is not None else self._started
        return self.clock() - since > self.stale_after_s

    def vouches_for(self, wall: float, *, mono: float | None = None) -> bool | None:
        """Whether the cloud's last signed time confirms ``wall`` (POSIX seconds) now.

        None when there is no recent signed time to compare with; False when there is one
        and ``wall`` is off by more than ``SIGNED_TIME_TOLERANCE_S``. Only a "nothing new"
        answering our own fresh nonce counts: it cannot be a replay of an older answer.
        """
        if self.signed_time is None:
            return None
        issued, received = self.signed_time
        age = (time.monotonic() if mono is None else mono) - received
        if not 0 <= age <= SIGNED_TIME_FRESH_S:
            return None
        return abs(wall - (issued + age)) <= SIGNED_TIME_TOLERANCE_S

    def poke(self) -> None:
        """New outbox rows exist: upload now rather than at the next interval."""
        self._poke.set()

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.enrollment.token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._tasks = [
            self._group.create_task(self._policy_loop(), name="sync-policy"),
            self._group.create_task(self._events_loop(), name="sync-events"),
            self._group.create_task(self._stale_loop(), name="sync-stale"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._group is not None
        assert self._http is not None
        for task in self._tasks:
            task.cancel()
        try:
            await self._group.__aexit__(exc_type, exc, tb)
        finally:
            await self._http.close()

    def _contact(self) -> None:
        """Signed word from the cloud (a verified bundle applied, or a verified "nothing
        new" for our poll): the only thing that refreshes ``last_contact``. An unsigned
        200/204, a report or an upload answer does not: a path in between can fake those."""
        self.last_contact = self.clock()
        if self._stale_reported:
            self._stale_reported = False
            log.warning("cloud policy is fresh again")

    # ------------------------------------------------------------ policy

    async def _policy_loop(self) -> None:
        link = _link(f"cloud policy link to {self.url}")
        reported = False
        while True:
            try:
                if not reported:
                    await self._report()
                    reported = True
                await self._poll_once()
                link.ok()
            except asyncio.CancelledError:
                raise
            except AuthError as err:
                await asyncio.sleep(link.failed(err))
            except Exception as err:
                # Network trouble, a refused bundle, or the edge failing to apply one: this
                # task must outlive all of them (the link logs once, then backs off).
                reported = False
                await asyncio.sleep(link.failed(err))

    async def _poll_once(self) -> None:
        """One long-poll. Only a verified bundle or a verified "nothing new" statement for
        this very poll (its nonce) counts as word from the cloud; anything else (a bare
        204, an error status, a refused bundle) raises, so the loop backs off."""
        assert self._http is not None
        have = self.state.version()
        nonce = secrets.token_urlsafe(16)
        params = {"version": str(have), "wait": str(self.poll_wait_s), "nonce": nonce}
        digest = self.state.digest()
        if digest:
            params["digest"] = digest
        if self._want_snapshot:
            params["snapshot"] = "1"
        timeout = aiohttp.ClientTimeout(total=self.poll_wait_s + 30)
        started = time.monotonic()
        async with self._http.get(
            f"{self.url}/api/v1/sync/bundle", params=params, timeout=timeout
        ) as resp:
            if resp.status == 401:
                raise AuthError("the cloud refuses this site's credential; enroll again")
            if resp.status != 200:
                raise SyncError(f"bundle poll answered HTTP {resp.status} without a signed answer")
            data = await resp.read()
            current = resp.headers.get("Content-Type", "").startswith(CURRENT_TYPE)
            resend = resp.headers.get("Doorkeep-Resend-From")
        if current:
            await self._accept_current(data, have, nonce)
        else:
            await self._accept(data)
        if resend is not None and resend.isdigit():
            self._resend_from(int(resend))
        if current:
            # A "nothing new" that came back at once (a cloud told wait=0 by a path in
            # between, say) must not turn the long-poll into a busy loop.
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, min(MIN_POLL_S, self.poll_wait_s) - elapsed))

    async def _accept_current(self, data: bytes, have: int, nonce: str) -> None:
        try:
            statement = bundles.verify_current(
                data,
                trusted_keys=self._keys,
                site_id=self.enrollment.site_id,
                edge_version=have,
                nonce=nonce,
                now=datetime.fromtimestamp(self.clock(), UTC),
            )
        except BundleRejected as err:
            await self._refused(err, "a 'nothing new' answer")
            if err.reason == "gap":  # the cloud is ahead yet sent nothing: ask for it all
                self._want_snapshot = True
            raise SyncError(f"'nothing new' answer refused: {err.reason}") from err
        self.signed_time = (statement.issued_at.timestamp(), time.monotonic())
        self._last_rejection = None
        self._contact()

    async def _refused(self, err: BundleRejected, what: str) -> None:
        self.rejected.append(err.reason)
        if err.reason != self._last_rejection:
            # Once per reason: the same bad answer comes back on every retry.
            self._last_rejection = err.reason
            log.warning("refused %s: %s (%s)", what, err.reason, err)
            await self.on_alarm("bundle_rejected", f"{err.reason}: {err}")

    async def _accept(self, data: bytes) -> None:
        try:
            verified = bundles.verify_bundle(
                data,
                trusted_keys=self._keys,
                site_id=self.enrollment.site_id,
                current_version=self.state.version(),
                current_digest=self.state.digest(),
                now=datetime.fromtimestamp(self.clock(), UTC),
                max_bytes=self.max_bundle_bytes,
            )
            await self.apply_bundle(verified)
        except BundleRejected as err:
            await self._refused(err, "a policy bundle")
            # A gap or a drifted base only heals with a full snapshot; anything else
            # (expired, bad signature...) is retried as is after the backoff.
            self._want_snapshot = err.reason in ("gap", "digest_mismatch")
            raise SyncError(f"bundle refused: {err.reason}") from err
        self._want_snapshot = False
        self._last_rejection = None
        self._contact()  # a verified bundle, applied: the policy is fresh
        await self._report()

    async def _report(self) -> None:
        assert self._http is not None
        body = {
            "version": self.state.version(),
            "digest": self.state.digest(),
            "inventory": self.inventory(),
        }
        async with self._http.post(
            f"{self.url}/api/v1/sync/report", json=body, timeout=aiohttp.ClientTimeout(total=30)
        ) as resp:
            if resp.status == 401:
                raise AuthError("the cloud refuses this site's credential; enroll again")
            if resp.status != 200:
                raise SyncError(f"report answered HTTP {resp.status}")

    # ------------------------------------------------------------ events

    def _resend_from(self, seq: int) -> None:
        cursor = max(seq - 1, 0)
        if self._upload_cursor is None or cursor < self._upload_cursor:
            log.info("cloud asks to re-send events from seq %d", seq)
            self._upload_cursor = cursor
            self.poke()

    async def _events_loop(self) -> None:
        link = _link(f"cloud event upload to {self.url}")
        while True:
            try:
                more = await self._upload_once()
                link.ok()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                await asyncio.sleep(link.failed(err))
                continue
            if not more:
                self._poke.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # task's cancellation when a poke lands at the same moment, and the loop
                # then never ends (SyncClient.__aexit__ hung).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(UPLOAD_INTERVAL_S):
                        await self._poke.wait()

    async def _upload_once(self) -> bool:
        """One upload; True when more rows are probably waiting."""
        assert self._http is not None
        rows: list[dict[str, Any]] = []
        if self._upload_cursor is not None:
            rows = await self.outbox.batch_above(self._upload_cursor, UPLOAD_BATCH)
        body = {"epoch": self.outbox.epoch, "events": rows}
        async with self._http.post(
            f"{self.url}/api/v1/sync/events", json=body, timeout=aiohttp.ClientTimeout(total=60)
        ) as resp:
            if resp.status == 401:
                raise SyncError("the cloud refuses this site's credential; enroll again")
            if resp.status != 200:
                raise SyncError(f"event upload answered HTTP {resp.status}")
            answer = await resp.json()
        watermark = int(answer["watermark"])
        if watermark > self.acked:
            self.acked = watermark
            await self.outbox.acknowledged(watermark)
        # The cloud's contiguous watermark is the one cursor that never skips a row: rows
        # it lacks above a gap are re-sent until the gap is filled.
        before = self._upload_cursor
        self._upload_cursor = watermark
        if answer.get("resend_from") is not None:
            self._resend_from(int(answer["resend_from"]))
        if before is None:
            return True
        return len(rows) == UPLOAD_BATCH or (bool(rows) and watermark > before)

    # ------------------------------------------------------------ staleness

    async def _stale_loop(self) -> None:
        while True:
            if self.stale and not self._stale_reported:
                self._stale_reported = True
                message = f"no word from the cloud for over {self.stale_after_s:.0f} s"
                log.warning("cloud policy is stale: %s", message)
                await self.on_alarm("policy_stale", message)
            await asyncio.sleep(min(STALE_CHECK_S, max(self.stale_after_s / 4, 0.05)))
