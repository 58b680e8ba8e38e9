"""The site: the composition root that owns the store, the hardware and the parts.

Every boundary (REST API, web UI, MQTT, CLI) calls ``Site`` and nothing below it, so
authorisation, validation, audit and the event log sit in one place. ``Site``'s methods
are that boundary contract (``edge/web/facade.py``); each hands over to one part:

    policy  (edge/site/policy.py)   the policy document, entities, settings, commits
    doors   (edge/site/doors.py)    doors, emergency, hold-open, hardware events/tools
    log     (edge/site/log.py)      events, audit, alarms, the live feed
    captures (edge/site/capture.py) "present a card now"
    metrics (edge/site/metrics.py)  Prometheus counters/gauges; /health's components
                                    are the COMPONENTS functions at the end of this file

The daemon's jobs and the sync client use the parts directly. A presentation goes

    Presentation -> decide() (pure) -> memory effects -> door controller -> relay
                 -> one event row (with the memory rows, same transaction) -> subscribers
                 -> the door events the grant caused
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from doorkeep import __version__
from doorkeep.errors import NotFound
from edge.config import SiteConfig, load_site_config
from edge.core.decide import Decision, Presentation, Reason, SiteState, decide
from edge.core.model import DoorSpec, Memory, PolicySnapshot, ReaderSpec
from edge.hardware import Hardware
from edge.hwnull import NullHardware
from edge.notify import Notifier, TempKeyDelivery
from edge.readers import Readers
from edge.site import health
from edge.site.capture import Captures
from edge.site.clock import Clock, ClockGuard, SystemClock
from edge.site.doors import Doors
from edge.site.imports import SiteImports
from edge.site.log import EventLog
from edge.site.logbook import LogBook
from edge.site.metrics import SiteMetrics
from edge.site.parking import Parking
from edge.site.pm import PropertyManager
from edge.site.policy import SitePolicy
from edge.store import EdgeStore, StorageUnavailable

SECRET_FILE = Path("keys") / "site.secret"

log = logging.getLogger(__name__)


def load_or_create_secret(data_dir: Path) -> bytes:
    """The per-site HMAC secret (32 random bytes, mode 0600), made on first use."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex())
    return secret


def hardware_specs(config: SiteConfig) -> tuple[list[DoorSpec], list[ReaderSpec]]:
    """The decision engine's view of the doors and readers of site.toml."""
    doors = [
        DoorSpec(
            d.id,
            frozenset(d.methods),
            kind=d.kind,
            building=d.building,
            anti_passback=d.anti_passback,
            floors=config.floors_of(d.id) if d.kind == "lift" else (),
        )
        for d in config.doors
    ]
    readers = [ReaderSpec(r.id, r.door, r.direction) for r in config.readers]
    return doors, readers


class Site:
    """The running site. Open it with ``async with Site.open(config)``."""

    def __init__(
        self,
        config: SiteConfig,
        store: EdgeStore,
        hardware: Hardware,
        secret: bytes,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.hw = hardware
        self.secret = secret
        self.clock_source: Clock = clock or SystemClock()
        self.clock: Callable[[], datetime] = self.clock_source.now
        self.site_id = config.site.id
        self.version = __version__
        self.tz = config.tz
        self.sync: Any = None  # the cloud sync client, when enrolled (edge/sync.py)
        self.mqtt: Any = None  # the MQTT bridge, when [mqtt] is configured (edge/mqtt)
        self.metrics = SiteMetrics(self.site_id, self.version)
        self.log = EventLog(
            store,
            tz=config.tz,
            clock=self.clock,
            on_recorded=lambda: self.sync and self.sync.poke(),
        )
        door_specs, reader_specs = hardware_specs(config)
        self.policy = SitePolicy(
            store,
            secret=secret,
            tz=config.tz,
            doors=door_specs,
            readers=reader_specs,
            publish=self.log.publish,
        )
        self.door_control = Doors(
            config, hardware, store=store, policy=self.policy, log=self.log, clock=self.clock
        )
        self.captures = Captures(secret, lambda: self.policy.snapshot)
        # alarms to email/webhook, temp keys to visitors (edge/notify); taps self.log
        self.notify = Notifier(
            config, self.log, temp_keys=TempKeyDelivery(config, self.policy, store, secret)
        )
        self.logbook = LogBook(store, self.policy, config, tz=config.tz, clock=self.clock)
        memory_rows = store.load_memory_rows()
        self.memory = Memory.from_rows(memory_rows)
        # car parks counted by their readers' grants (edge/site/parking.py)
        self.parking = Parking(config.parking, memory_rows, tz=config.tz)
        self.pm = PropertyManager(self.policy, clock=self.clock, tz=config.tz)
        self.imports = SiteImports(self.policy, store, secret)  # import/export (templates)
        # the clock guard (edge/core/clock.py): a presentation's simulated ``at`` never
        # reaches it, only readings of the real clocks do
        self.clock_guard = ClockGuard(self.clock_source, store, self.log)
        self.door_control.clock_trusted = self.clock_guard.trusted
        # (policy version, when this process first saw it in force): doorkeep_policy_age
        self.policy_seen: tuple[int, datetime] = (self.snapshot.version, self.clock())
        # /health, doorkeep status and /metrics (edge/site/health.py)
        self.status = health.SiteStatus(self)
        store.outages.on_alarm = lambda recorded: health.storage_alarm(self, recorded)
        # physical readers (edge/readers): their reads go through present(), like REST's
        self.readers = Readers(
            config.readers, present=self.present, raise_alarm=self.log.raise_alarm, now=self.clock
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        config: SiteConfig | Path,
        *,
        clock: Clock | None = None,
        start_hardware: bool = True,
        with_hardware: bool = True,
    ) -> AsyncIterator[Site]:
        """Open the store and the hardware; yields a running site."""
        if not isinstance(config, SiteConfig):
            config = load_site_config(Path(config), board_types=Hardware.board_types())
        data_dir = config.site.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = load_or_create_secret(data_dir)
        async with (
            EdgeStore.open(data_dir / "doorkeep.db", site_id=config.site.id, tz=config.tz) as store,
            (Hardware if with_hardware else NullHardware).open(
                config, start=start_hardware
            ) as hardware,
        ):
            site = cls(config, store, hardware, secret, clock=clock)
            hardware.attach(
                site.door_control.on_door, site.door_control.on_board, site.door_control.on_input
            )
            await site.door_control.restore()
            await site.clock_guard.check()
            watcher = asyncio.create_task(site.clock_guard.watch(), name="clock-guard")
            readers = None
            if start_hardware and with_hardware:
                site.readers.attach_configured(config)
                readers = asyncio.create_task(site.readers.run(), name="readers")
            try:
                async with site.notify.running():
                    yield site
            finally:
                for task in (watcher, readers):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                await site.clock_guard.flush()

    @property
    def snapshot(self) -> PolicySnapshot:
        """The policy every decision reads now (swapped whole on each change)."""
        return self.policy.snapshot

    # --- presentations ---------------------------------------------------------------

    def dry_run(
        self, reader: str, kind: str, value: str, *, at: datetime | None = None
    ) -> Decision:
        """The decision a presentation would get now; changes nothing."""
        presentation = Presentation(reader, kind, value)
        now = at or self.clock()
        state = SiteState(
            self.door_control.lockdown(), self.clock_guard.trusted(), self.parking.refusing()
        )
        return decide(self.snapshot, presentation, now, self.memory, state)

    async def present(
        self,
        reader: str,
        kind: str,
        value: str,
        *,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Decide a presentation, drive the door, log the event; the REST/reader path.

        Raises ValueError for a malformed presentation and NotFound for an unknown
        reader; ``at`` is accepted only on simulation sites (for tests and demos).
        """
        started = self.metrics.start()
        presentation = Presentation(reader, kind, value)
        if reader not in self.snapshot.readers:
            raise NotFound(f"reader {reader!r} is not in site.toml")
        if at is not None:
            if not self.config.site.simulation:
                raise ValueError(
                    "'at' is accepted only on simulation sites ([site] simulation = true)"
                )
            if at.tzinfo is None:
                raise ValueError("'at' needs a UTC offset, e.g. 2026-11-17T14:00:00+01:00")
        self.captures.offer(reader, kind, value)
        if health.cannot_record(self):
            # Nothing can be recorded: no door opens and no memory changes.
            self.store.outages.note_refused()
            return self.metrics.presented(started, {
                "granted": False,
                "reason": str(Reason.STORAGE_UNAVAILABLE),
                "result": "failed",
                "door": self.snapshot.readers[reader].door,
                "person": None,
                "event_id": None,
                "floors": [],
            })  # fmt: skip
        # the guard judges the real clocks (and may record its alarm) before the decision
        clock_ok = await self.clock_guard.check()
        now = at or self.clock()
        decision = decide(
            self.snapshot,
            presentation,
            now,
            self.memory,
            SiteState(self.door_control.lockdown(), clock_ok, self.parking.refusing()),
        )
        # Memory changes before the first await: two presentations of one temp key
        # can never both see the last use.
        rows = self.memory.apply(decision.effects)
        result, outcome = "failed", None
        if decision.granted and decision.door is not None:
            outcome = await self.hw.grant(
                decision.door, staff=decision.staff, floors=decision.floors
            )
            result = "success" if outcome.confirmed else "offline"
        detail: dict[str, Any] = {}
        for key in ("credential", "temp_key"):
            if getattr(decision, key):
                detail[key] = getattr(decision, key)
        if decision.floors:
            detail["floors"] = list(decision.floors)
        if actor:
            detail["actor"] = actor
        parked = None
        if result == "success":  # a grant the gate carried out: count the vehicle
            parked = self.parking.count(
                reader,
                person=decision.person,
                credential=decision.credential,
                temp_key=decision.temp_key,
                at=now,
            )
            if parked is not None:
                detail["parking"] = parked.detail
                rows = {**rows, **parked.rows}
        event = self.log.event(
            now,
            "access",
            "presentation",
            result,
            reason=None if decision.reason is None else str(decision.reason),
            door=decision.door,
            reader=reader,
            person=decision.person,
            apartment=decision.apartment,
            credential_kind=kind,
            detail=detail,
        )
        stored: dict[str, Any] = {"seq": None}
        try:
            # Durable, or held in order while storage fails (docs/storage.md); this
            # raises only past the spill bound, which health.cannot_record keeps us from.
            stored = await self.log.record(event, rows)
            if outcome is not None:  # the door events the grant caused, after the grant
                await self.door_control.record(outcome)
            if parked is not None and parked.alarm is not None:  # allow_and_alarm
                await self.log.raise_alarm(
                    "parking_full",
                    source=f"parking:{parked.alarm['lot']}",
                    door=decision.door,
                    detail={**parked.alarm, "event_seq": stored["seq"]},
                )
            if decision.duress:
                await self.log.raise_alarm(
                    "duress",
                    source=decision.door or reader,
                    door=decision.door,
                    detail={"person": decision.person, "event_seq": stored["seq"]},
                )
            if decision.pin_guessing is not None:  # once per episode (edge/core/model.py)
                guessing = decision.pin_guessing
                await self.log.raise_alarm(
                    "pin_guessing",
                    source=reader,
                    door=decision.door,
                    detail={
                        "reader": reader,
                        "wrong_pins_last_hour": guessing.wrong_pins_last_hour,
                        "lockouts": guessing.lockouts,
                        "locked_until": datetime.fromtimestamp(guessing.locked_until, UTC)
                        .astimezone(self.tz)
                        .isoformat(),
                        "event_seq": stored["seq"],
                    },
                )
        except StorageUnavailable as err:  # counted as dropped in the outage's alarm
            log.error("presentation at %s not recorded: %s", reader, err)  # noqa: TRY400
        return self.metrics.presented(started, {
            "granted": decision.granted and result == "success",
            "reason": str(decision.reason)
            if decision.reason
            else ("granted" if result == "success" else result),
            "result": result,
            "door": decision.door,
            "person": decision.person,
            "event_id": stored["seq"],
            "floors": list(decision.floors),
        })  # fmt: skip

    async def capture_next_card(self, reader: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """ "Present a card now": the next card at ``reader``, as an enrolment token."""
        return await self.captures.next_card(reader, timeout_s)

    # --- doors and hardware (edge/site/doors.py) -----------------------------------------

    def doors(self) -> list[dict[str, Any]]:
        return self.door_control.states()

    def door(self, door_id: str) -> dict[str, Any]:
        return self.door_control.state(door_id)

    async def unlock(self, door_id: str, seconds: float = 5, *, actor: str) -> dict[str, Any]:
        """Remote unlock by an operator (logged with who did it)."""
        return await self.door_control.unlock(door_id, seconds, actor=actor)

    async def lock(self, door_id: str, *, actor: str) -> dict[str, Any]:
        return await self.door_control.lock(door_id, actor=actor)

    async def emergency(
        self, action: str, doors: list[str] | None = None, *, actor: str
    ) -> dict[str, Any]:
        """unlock | lock (end an emergency unlock) | lockdown | clear (end both)."""
        return await self.door_control.emergency(action, doors, actor=actor)

    def emergency_state(self) -> dict[str, Any]:
        """``{"lockdown", "unlocked", "inputs"}``: what is in force and which inputs did it."""
        return self.door_control.emergency_state()

    def hardware(self) -> dict[str, Any]:
        return self.door_control.hardware()

    async def bus_scan(self, bus_id: str) -> list[int]:
        return await self.door_control.bus_scan(bus_id)

    async def relay_test(
        self, board_id: str, channel: int, *, ms: int = 500, actor: str
    ) -> dict[str, Any]:
        return await self.door_control.relay_test(board_id, channel, ms=ms, actor=actor)

    async def update_hardware(self, cfg_dict: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
        """Validate and write site.toml (backup kept); takes effect on restart."""
        return await self.door_control.update_hardware(cfg_dict, actor=actor)

    # --- policy (edge/site/policy.py) ----------------------------------------------------

    def policy_document(self) -> dict[str, Any]:
        """The whole policy, hashed: no plaintext credential value is ever returned."""
        return self.policy.document()

    async def apply_policy(self, doc: Any, *, actor: str, source: str = "local") -> int:
        """Replace the whole policy. PolicyError listing every problem; nothing changes."""
        return await self.policy.apply(doc, actor=actor, source=source)

    def list_entities(self, kind: str) -> list[dict[str, Any]]:
        return self.policy.list_entities(kind)

    def get_entity(self, kind: str, key: str) -> dict[str, Any]:
        return self.policy.get_entity(kind, key)

    async def put_entity(
        self, kind: str, key: str, body: Mapping[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Create or replace one entity; PolicyError (nothing changed) when invalid."""
        return await self.policy.put_entity(kind, key, body, actor=actor)

    async def delete_entity(self, kind: str, key: str, *, actor: str) -> None:
        """Delete one entity (and what depends on it); a default group cannot go."""
        await self.policy.delete_entity(kind, key, actor=actor)

    async def reset_apartment(self, apartment_id: str, *, actor: str) -> dict[str, Any]:
        """Remove an apartment's members, credentials, temp keys and door logs."""
        return await self.policy.reset_apartment(apartment_id, actor=actor)

    # --- logs (edge/site/log.py) ---------------------------------------------------------

    async def events(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self.log.events(**query)

    async def audit_log(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self.log.audit_log(**query)

    async def alarms(self, *, open_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        return await self.log.alarms(open_only=open_only, limit=limit)

    async def resolve_alarm(self, alarm_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
        return await self.log.resolve_alarm(alarm_id, actor=actor, note=note)

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Live events, door states and alarms: ``{"topic": ..., "data": {...}}``."""
        return self.log.subscribe()

    # --- sync ----------------------------------------------------------------------------

    def sync_status(self) -> dict[str, Any]:
        cloud = self.config.cloud
        status: dict[str, Any] = {
            "enrolled": self.policy.owner == "cloud" or cloud is not None,
            "cloud_url": cloud.url if cloud else None,
            "policy_owner": self.policy.owner,
            "version": self.snapshot.version,
            "digest": self.snapshot.digest,
            "stale": False,
            "last_contact": None,
        }
        if self.sync is not None:
            status.update(self.sync.status())
        return status


# --- health: one function per kind of component ------------------------------------------
