"""The site: one object that owns the store, the policy, decision memory and the doors.

Every boundary (REST API, web UI, MQTT, CLI) calls ``Site`` and nothing below it, so
authorisation, validation, audit and the event log sit in one place. A presentation goes

    Presentation -> decide() (pure) -> memory effects -> door controller -> relay
                 -> one event row (with the memory rows, same transaction) -> subscribers

The policy snapshot is immutable and swapped whole when the policy changes, so every
decision sees exactly one policy version.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from doorkeep import __version__, policydoc
from doorkeep.errors import Conflict, NotFound, PolicyError, PolicyIssue
from edge.config import SiteConfig, load_site_config, write_site_toml
from edge.core.decide import Decision, Presentation, SiteState, decide
from edge.core.model import DoorSpec, Memory, PolicySnapshot, ReaderSpec, build_snapshot
from edge.core.schedule import Instant
from edge.hardware import Hardware, NullHardware
from edge.store import AuditEntry, EdgeStore

log = logging.getLogger(__name__)

# REST/UI entity kinds -> document lists. Holidays and hold-open are policy entities too.
ENTITY_KINDS: Mapping[str, str] = {
    "people": "people",
    "credentials": "credentials",
    "groups": "groups",
    "temp_keys": "temp_keys",
    "apartments": "apartments",
    "buildings": "buildings",
    "reservations": "reservations",
    "holidays": "holidays",
    "hold_open": "hold_open",
}
# A clock that reads earlier than this is known to be wrong (an RTC that lost power).
CLOCK_FLOOR = datetime(2025, 1, 1, tzinfo=UTC)
# ...and so is one that went back more than this behind the newest event we logged.
CLOCK_BACKSTEP = timedelta(minutes=5)
SUBSCRIBER_QUEUE = 256
SECRET_FILE = Path("keys") / "site.secret"


def _utcnow() -> datetime:
    return datetime.now(UTC)


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


@dataclass(slots=True)
class _Emergency:
    lockdown: bool = False
    unlocked: frozenset[str] = frozenset()


class Site:
    """The running site. Open it with ``async with Site.open(config)``."""

    def __init__(
        self,
        config: SiteConfig,
        store: EdgeStore,
        hardware: Hardware,
        secret: bytes,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.store = store
        self.hw = hardware
        self.secret = secret
        self.clock = clock
        self.site_id = config.site.id
        self.version = __version__
        self.tz = config.tz
        self._door_specs, self._reader_specs = hardware_specs(config)
        state = store.load_policy()
        self._doc = state.doc
        self.policy_owner = state.owner
        self.snapshot = self._build(state.doc, state.version, state.digest)
        self.memory = Memory.from_rows(store.load_memory_rows())
        saved = store.get_state("emergency") or {}
        self._emergency = _Emergency(
            bool(saved.get("lockdown")), frozenset(saved.get("unlocked") or ())
        )
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._captures: dict[str, asyncio.Future[str]] = {}
        self._last_event_at: datetime | None = None
        self.sync: Any = None  # the cloud sync client, when enrolled (edge/sync.py)
        self._policy_lock = asyncio.Lock()
        self._held_open: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        config: SiteConfig | Path,
        *,
        clock: Callable[[], datetime] = _utcnow,
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
            EdgeStore.open(data_dir / "doorkeep.db", site_id=config.site.id) as store,
            (Hardware if with_hardware else NullHardware).open(
                config, start=start_hardware
            ) as hardware,
        ):
            site = cls(config, store, hardware, secret, clock=clock)
            hardware.attach(site._door_event, site._board_change)
            await site._restore_door_modes()
            yield site

    async def _restore_door_modes(self) -> None:
        if self._emergency.lockdown:
            await self.hw.lockdown(True)
        if self._emergency.unlocked:
            await self.hw.emergency_unlock(self._emergency.unlocked, True)

    # --- state -------------------------------------------------------------------

    def _build(self, doc: Mapping[str, Any], version: int, digest: str) -> PolicySnapshot:
        return build_snapshot(
            doc,
            tz=self.tz,
            secret=self.secret,
            doors=self._door_specs,
            readers=self._reader_specs,
            version=version,
            digest=digest,
        )

    def clock_ok(self, now: datetime | None = None) -> bool:
        """False while the clock is known to be wrong (time-limited grants then refused)."""
        now = now or self.clock()
        if now < CLOCK_FLOOR:
            return False
        return self._last_event_at is None or now >= self._last_event_at - CLOCK_BACKSTEP

    def state(self, now: datetime | None = None) -> SiteState:
        return SiteState(lockdown=self._emergency.lockdown, clock_ok=self.clock_ok(now))

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "site": self.site_id,
            "version": self.version,
            "policy_version": self.snapshot.version,
            "clock_ok": self.clock_ok(),
        }

    # --- live feed -------------------------------------------------------------------

    def _publish(self, topic: str, data: Mapping[str, Any]) -> None:
        message = {"topic": topic, "data": dict(data)}
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader misses messages
                queue.put_nowait(message)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Live events, door states and alarms: ``{"topic": ..., "data": {...}}``."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    # --- events and alarms ----------------------------------------------------------

    def _iso(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).isoformat(timespec="milliseconds")

    async def record(
        self, event: Mapping[str, Any], memory_rows: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Log one event (the INTERFACES.md shape) and tell the subscribers."""
        stored = await self.store.record_event(event, memory_rows=memory_rows)
        self._publish("event", stored)
        if self.sync is not None:
            self.sync.poke()
        return stored

    async def raise_alarm(
        self,
        kind: str,
        *,
        source: str,
        door: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Open an alarm record with its ``alarm`` event (one transaction)."""
        now = self.clock()
        event = self._event(
            now, "alarm", kind, "failed", door=door, detail={"source": source, **(detail or {})}
        )
        alarm = await self.store.raise_alarm(
            kind, source=source, detail=detail, at=now, event=event
        )
        self._publish("alarm", alarm)
        return alarm

    def _event(
        self, now: datetime, type_: str, action: str, result: str, **fields: Any
    ) -> dict[str, Any]:
        event = {
            "at": self._iso(now),
            "type": type_,
            "action": action,
            "result": result,
            "reason": None,
            "door": None,
            "reader": None,
            "person": None,
            "apartment": None,
            "credential_kind": None,
            "detail": {},
        }
        event.update(fields)
        return event

    async def events(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self.store.query_events(**query)

    async def audit_log(self, **query: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self.store.query_audit(**query)

    async def alarms(self, *, open_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        return await self.store.query_alarms(open_only=open_only, limit=limit)

    async def resolve_alarm(self, alarm_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
        alarm = await self.store.resolve_alarm(alarm_id, actor=actor, note=note)
        self._publish("alarm", alarm)
        return alarm

    # --- presentations ---------------------------------------------------------------

    def dry_run(
        self, reader: str, kind: str, value: str, *, at: datetime | None = None
    ) -> Decision:
        """The decision a presentation would get now; changes nothing."""
        presentation = Presentation(reader, kind, value)
        now = at or self.clock()
        return decide(self.snapshot, presentation, now, self.memory, self.state(now))

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
        if kind in ("rf_card", "uhf_card") and reader in self._captures:
            capture = self._captures.pop(reader)
            if not capture.done():
                capture.set_result(policydoc.credential_hmac(self.secret, kind, value))
        now = at or self.clock()
        decision = decide(self.snapshot, presentation, now, self.memory, self.state(now))
        # Memory changes before the first await: two presentations of one temp key
        # can never both see the last use.
        rows = self.memory.apply(decision.effects)
        result = "failed"
        if decision.granted and decision.door is not None:
            opened = await self.hw.grant(
                decision.door, staff=decision.staff, floors=decision.floors
            )
            result = "success" if opened else "offline"
        detail: dict[str, Any] = {}
        for key in ("credential", "temp_key"):
            if getattr(decision, key):
                detail[key] = getattr(decision, key)
        if decision.floors:
            detail["floors"] = list(decision.floors)
        if actor:
            detail["actor"] = actor
        event = self._event(
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
        stored = await self.record(event, rows)
        self._last_event_at = max(self._last_event_at or now, now)
        if decision.duress:
            await self.raise_alarm(
                "duress",
                source=decision.door or reader,
                door=decision.door,
                detail={"person": decision.person, "event_seq": stored["seq"]},
            )
        return {
            "granted": decision.granted and result == "success",
            "reason": str(decision.reason)
            if decision.reason
            else ("granted" if result == "success" else result),
            "result": result,
            "door": decision.door,
            "person": decision.person,
            "event_id": stored["seq"],
            "floors": list(decision.floors),
        }

    async def capture_next_card(self, reader: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """ "Present a card now": the next card at ``reader``, as an enrolment token.

        The answer carries ``value_hmac`` (never the number), ready to be put as a new
        credential; whether the card is already known is said too.
        """
        if reader not in self.snapshot.readers:
            raise NotFound(f"reader {reader!r} is not in site.toml")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._captures[reader] = future
        try:
            digest = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"no card was presented at {reader} within {timeout_s:.0f} s"
            ) from None
        finally:
            self._captures.pop(reader, None)
        known = self.snapshot.credentials.get(digest, ())
        return {
            "reader": reader,
            "value_hmac": digest,
            "known": bool(known),
            "credential": known[0].id if known else None,
        }

    # --- doors -----------------------------------------------------------------------

    def doors(self) -> list[dict[str, Any]]:
        return [self.hw.door_state(d.id) for d in self.config.doors]

    def door(self, door_id: str) -> dict[str, Any]:
        self._known_door(door_id)
        return self.hw.door_state(door_id)

    def _known_door(self, door_id: str) -> None:
        if door_id not in self.snapshot.doors:
            raise NotFound(f"door {door_id!r} is not in site.toml")

    async def unlock(self, door_id: str, seconds: float = 5, *, actor: str) -> dict[str, Any]:
        """Remote unlock by an operator (logged with who did it)."""
        self._known_door(door_id)
        if not 1 <= seconds <= 3600:
            raise ValueError("seconds must be between 1 and 3600")
        opened = await self.hw.operator_unlock(door_id, seconds)
        await self._operator_event(door_id, "unlock", opened, actor, {"seconds": seconds})
        return self.door(door_id)

    async def lock(self, door_id: str, *, actor: str) -> dict[str, Any]:
        self._known_door(door_id)
        done = await self.hw.operator_lock(door_id)
        await self._operator_event(door_id, "lock", done, actor, {})
        return self.door(door_id)

    async def _operator_event(
        self, door_id: str, action: str, done: bool, actor: str, detail: dict[str, Any]
    ) -> None:
        now = self.clock()
        await self.record(
            self._event(
                now,
                "door",
                f"remote_{action}",
                "success" if done else "offline",
                door=door_id,
                credential_kind="remote",
                detail={"actor": actor, **detail},
            )
        )
        await self.store.audit(actor, f"door.{action}", f"door/{door_id}", detail)

    async def emergency(
        self, action: str, doors: list[str] | None = None, *, actor: str
    ) -> dict[str, Any]:
        """unlock | lock (end an emergency unlock) | lockdown | clear (end both)."""
        if action not in ("unlock", "lock", "lockdown", "clear"):
            raise ValueError("action must be one of unlock, lock, lockdown, clear")
        group = doors or policydoc.settings_of(self._doc)["emergency"]["doors"]
        for door_id in group:
            self._known_door(door_id)
        if action == "unlock" and not group:
            raise ValueError("no doors given and the policy's emergency group is empty")
        state = self._emergency
        if action == "unlock":
            state.unlocked = state.unlocked | frozenset(group)
            await self.hw.emergency_unlock(frozenset(group), True)
        elif action == "lock":
            ending = frozenset(group) if doors else state.unlocked
            state.unlocked = state.unlocked - ending
            await self.hw.emergency_unlock(ending, False)
        elif action == "lockdown":
            state.lockdown = True
            await self.hw.lockdown(True)
        else:
            ending = state.unlocked
            state.unlocked, state.lockdown = frozenset(), False
            await self.hw.emergency_unlock(ending, False)
            await self.hw.lockdown(False)
        await self.store.put_state(
            "emergency", {"lockdown": state.lockdown, "unlocked": sorted(state.unlocked)}
        )
        now = self.clock()
        await self.record(
            self._event(
                now, "emergency", action, "success", detail={"actor": actor, "doors": group}
            )
        )
        await self.store.audit(actor, f"emergency.{action}", "site", {"doors": group})
        if action in ("unlock", "lockdown"):
            await self.raise_alarm(
                "emergency", source="operator", detail={"action": action, "actor": actor}
            )
        return self.emergency_state()

    def emergency_state(self) -> dict[str, Any]:
        return {"lockdown": self._emergency.lockdown, "unlocked": sorted(self._emergency.unlocked)}

    async def emergency_input(self, source: str) -> None:
        """An emergency input fired (fire panel): unlock the emergency group if set so."""
        settings = policydoc.settings_of(self._doc)["emergency"]
        if settings.get("auto_unlock_on_alarm") and settings.get("doors"):
            await self.emergency("unlock", list(settings["doors"]), actor=f"input:{source}")

    async def hold_open_tick(self, now: datetime) -> set[str]:
        """Start and end the policy's hold-open schedules; returns the doors held open."""
        at = Instant.of(now, self.tz)
        snapshot = self.snapshot
        wanted = {
            door
            for door, schedule in snapshot.hold_open
            if door in snapshot.doors and schedule.is_open(at, snapshot.holidays)
        }
        for door in sorted(wanted - self._held_open):
            await self.hw.hold_open(door, True)
        for door in sorted(self._held_open - wanted):
            await self.hw.hold_open(door, False)
        self._held_open = wanted
        return wanted

    # hardware callbacks -----------------------------------------------------------------

    async def _door_event(
        self, door_id: str, action: str, alarm: str | None, detail: Mapping[str, Any]
    ) -> None:
        now = self.clock()
        if alarm is not None:
            await self.raise_alarm(alarm, source=door_id, door=door_id, detail=detail)
        else:
            await self.record(
                self._event(now, "door", action, "success", door=door_id, detail=dict(detail))
            )
        self._publish("door", self.hw.door_state(door_id))

    async def _board_change(self, board_id: str, online: bool) -> None:
        if online:
            await self.record(
                self._event(
                    self.clock(), "system", "board_online", "success", detail={"board": board_id}
                )
            )
        else:
            await self.raise_alarm("board_offline", source=board_id, detail={"board": board_id})
        for door in self.config.doors:
            if door.relay.board == board_id:
                self._publish("door", self.hw.door_state(door.id))

    # --- hardware facade -------------------------------------------------------------

    def hardware(self) -> dict[str, Any]:
        return self.hw.describe()

    async def bus_scan(self, bus_id: str) -> list[int]:
        return await self.hw.scan(bus_id)

    async def relay_test(
        self, board_id: str, channel: int, *, ms: int = 500, actor: str
    ) -> dict[str, Any]:
        ok = await self.hw.relay_test(board_id, channel, ms)
        await self.store.audit(
            actor, "relay.test", f"board/{board_id}:{channel}", {"ms": ms, "ok": ok}
        )
        return {"board": board_id, "channel": channel, "ms": ms, "ok": ok}

    async def update_hardware(self, cfg_dict: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
        """Validate and write site.toml (backup kept); takes effect on restart."""
        await asyncio.to_thread(write_site_toml, self.config.path, dict(cfg_dict))
        await self.store.audit(actor, "hardware.update", "site.toml", {"restart_needed": True})
        return {"written": str(self.config.path), "restart_needed": True}

    # --- policy ----------------------------------------------------------------------

    def _check_local(self) -> None:
        if self.policy_owner == "cloud":
            raise Conflict(
                "this site's policy is managed by the cloud it is enrolled with: "
                "make the change there (hardware stays editable here)"
            )

    def policy_header(self) -> tuple[int, str]:
        """The (version, digest) committed in the store, which another process may have
        changed (``doorkeep policy apply`` while the daemon runs)."""
        return self.store.policy_header()

    async def reload_policy(self) -> None:
        """Rebuild the snapshot from the store (after another process changed it)."""
        async with self._policy_lock:
            state = await asyncio.to_thread(self.store.load_policy)
            self.snapshot = self._build(state.doc, state.version, state.digest)
            self._doc, self.policy_owner = state.doc, state.owner
        log.info("policy version %d loaded from the store", state.version)
        self._publish("policy", {"version": state.version, "digest": state.digest})

    def policy_document(self) -> dict[str, Any]:
        """The whole policy, hashed: no plaintext credential value is ever returned."""
        return policydoc.canonical_document(self._doc)

    def _door_ids(self) -> frozenset[str]:
        return frozenset(self.snapshot.doors)

    async def apply_policy(self, doc: Any, *, actor: str, source: str = "local") -> int:
        """Replace the whole policy. PolicyError listing every problem; nothing changes."""
        if source == "local":
            self._check_local()
        policydoc.check_document(doc, doors=self._door_ids(), secret=self.secret)
        hashed = policydoc.hash_document(doc, self.secret)
        async with self._policy_lock:
            return await self._commit(
                hashed,
                upserts={k: hashed.get(k) or [] for k in policydoc.ENTITY_KINDS},
                deletes={},
                replace=True,
                audit=[AuditEntry(actor, "policy.apply", "policy", self._counts(hashed))],
                owner=None,
            )

    async def install_policy(
        self, hashed: Mapping[str, Any], *, version: int, digest: str, actor: str
    ) -> None:
        """Install a hashed document from the cloud as-is (bundle already verified)."""
        async with self._policy_lock:
            snapshot = self._build(hashed, version, digest)
            await self.store.apply_policy_change(
                upserts={k: list(hashed.get(k) or []) for k in policydoc.ENTITY_KINDS},
                deletes={},
                settings=hashed.get("settings") or {},
                replace=True,
                version=version,
                digest=digest,
                owner="cloud",
                audit=[
                    AuditEntry(
                        actor, "policy.sync", "policy", {"version": version, "digest": digest}
                    )
                ],
            )
            self._doc, self.snapshot, self.policy_owner = dict(hashed), snapshot, "cloud"
        self._publish("policy", {"version": version, "digest": digest})

    @staticmethod
    def _counts(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {k: len(doc.get(k) or []) for k in policydoc.ENTITY_KINDS}

    async def _commit(
        self,
        new_doc: dict[str, Any],
        *,
        upserts: Mapping[str, list[dict[str, Any]]],
        deletes: Mapping[str, list[str]],
        replace: bool,
        audit: list[AuditEntry],
        owner: str | None,
    ) -> int:
        version = self.snapshot.version + 1
        digest = policydoc.policy_digest(new_doc)
        try:
            snapshot = self._build(new_doc, version, digest)
        except ValueError as err:  # a schedule the schema let through but cannot be used
            raise PolicyError(str(err), [PolicyIssue("policy", "-", str(err))]) from err
        await self.store.apply_policy_change(
            upserts=dict(upserts),
            deletes=dict(deletes),
            settings=new_doc.get("settings") or {},
            replace=replace,
            version=version,
            digest=digest,
            owner=owner,
            audit=audit,
        )
        self._doc, self.snapshot = new_doc, snapshot
        self._publish("policy", {"version": version, "digest": digest})
        return version

    def _kind(self, kind: str) -> str:
        if kind not in ENTITY_KINDS:
            raise NotFound(f"unknown entity kind {kind!r}")
        return ENTITY_KINDS[kind]

    def list_entities(self, kind: str) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self._doc.get(self._kind(kind)) or []))

    def get_entity(self, kind: str, key: str) -> dict[str, Any]:
        doc_kind = self._kind(kind)
        for entity in self._doc.get(doc_kind) or []:
            if policydoc.entity_key(doc_kind, entity) == key:
                return copy.deepcopy(entity)
        raise NotFound(f"{kind} {key!r} does not exist")

    def get_settings(self) -> dict[str, Any]:
        return policydoc.settings_of(self._doc)

    async def put_settings(self, settings: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
        self._check_local()
        new_doc = copy.deepcopy(self._doc)
        new_doc["settings"] = {**policydoc.settings_of(self._doc), **dict(settings)}
        await self._validated_commit(
            new_doc, {}, {}, AuditEntry(actor, "settings.update", "settings", dict(settings))
        )
        return self.get_settings()

    async def _validated_commit(
        self,
        new_doc: dict[str, Any],
        upserts: dict[str, list[dict[str, Any]]],
        deletes: dict[str, list[str]],
        audit: AuditEntry,
        *,
        validate: bool = True,
    ) -> int:
        if validate:
            policydoc.check_document(new_doc, doors=self._door_ids(), secret=self.secret)
        async with self._policy_lock:
            return await self._commit(
                new_doc, upserts=upserts, deletes=deletes, replace=False, audit=[audit], owner=None
            )

    async def put_entity(
        self, kind: str, key: str, body: Mapping[str, Any], *, actor: str
    ) -> dict[str, Any]:
        """Create or replace one entity; PolicyError (nothing changed) when invalid."""
        self._check_local()
        doc_kind = self._kind(kind)
        if not isinstance(body, Mapping):
            raise ValueError("the body must be a JSON object")
        key_field = policydoc.key_field(doc_kind)
        entity = dict(body)
        if entity.setdefault(key_field, key) != key:
            raise ValueError(
                f"{key_field} in the body ({entity[key_field]!r}) differs from the URL ({key!r})"
            )
        new_doc = copy.deepcopy(self._doc)
        items = new_doc.setdefault(doc_kind, [])
        existing = [i for i, e in enumerate(items) if policydoc.entity_key(doc_kind, e) == key]
        created = not existing
        if existing:
            items[existing[0]] = entity
        else:
            items.append(entity)
        # One validation over the document as it would be, plaintext entity included
        # (the secret lets uniqueness compare it with the hashed ones), then hash it.
        policydoc.check_document(new_doc, doors=self._door_ids(), secret=self.secret)
        hashed_entity = policydoc.hash_document({doc_kind: [entity]}, self.secret)[doc_kind][0]
        items[existing[0] if existing else -1] = hashed_entity
        action = f"{doc_kind}.{'create' if created else 'update'}"
        audit = AuditEntry(actor, action, f"{doc_kind}/{key}", _redacted(hashed_entity))
        await self._validated_commit(
            new_doc, {doc_kind: [hashed_entity]}, {}, audit, validate=False
        )
        return copy.deepcopy(hashed_entity)

    async def delete_entity(self, kind: str, key: str, *, actor: str) -> None:
        """Delete one entity. Deleting a person deletes their credentials and bookings;
        deleting a group removes it from its members; a default group cannot go."""
        self._check_local()
        doc_kind = self._kind(kind)
        entity = self.get_entity(kind, key)
        if doc_kind == "groups" and entity.get("building_default"):
            raise Conflict(
                f"group {key!r} is the default group of building {entity['building_default']}: "
                "it cannot be deleted (edit its doors instead)"
            )
        new_doc = copy.deepcopy(self._doc)
        deletes: dict[str, list[str]] = {doc_kind: [key]}
        upserts: dict[str, list[dict[str, Any]]] = {}
        new_doc[doc_kind] = [
            e for e in new_doc[doc_kind] if policydoc.entity_key(doc_kind, e) != key
        ]
        if doc_kind == "people":
            for dependent in ("credentials", "reservations"):
                gone = [e["id"] for e in new_doc.get(dependent) or [] if e.get("person") == key]
                new_doc[dependent] = [
                    e for e in new_doc.get(dependent) or [] if e.get("person") != key
                ]
                deletes[dependent] = gone
        elif doc_kind == "groups":
            for person in new_doc.get("people") or []:
                if key in (person.get("groups") or []):
                    person["groups"] = [g for g in person["groups"] if g != key]
                    upserts.setdefault("people", []).append(person)
        issues = policydoc.validate_document(new_doc, doors=self._door_ids(), secret=self.secret)
        if issues:
            raise Conflict(
                f"{kind} {key!r} is still used: " + "; ".join(str(i) for i in issues[:5])
            )
        await self._validated_commit(
            new_doc,
            upserts,
            deletes,
            AuditEntry(actor, f"{doc_kind}.delete", f"{doc_kind}/{key}", None),
        )

    async def reset_apartment(self, apartment_id: str, *, actor: str) -> dict[str, Any]:
        """Remove an apartment's members (not its master), every credential of its
        people, its temp keys and its door logs; the audit log keeps all of it."""
        self._check_local()
        self.get_entity("apartments", apartment_id)
        people = [p for p in self._doc.get("people") or [] if p.get("apartment") == apartment_id]
        members = {p["id"] for p in people if p.get("role") != "master"}
        residents = {p["id"] for p in people}
        # what goes, per entity kind; the master person stays
        goes: dict[str, Callable[[Mapping[str, Any]], bool]] = {
            "people": lambda e: e["id"] in members,
            "credentials": lambda e: e["person"] in residents,
            "temp_keys": lambda e: e.get("apartment") == apartment_id,
            "reservations": lambda e: e["person"] in members,
        }
        new_doc = copy.deepcopy(self._doc)
        summary: dict[str, Any] = {}
        for kind, gone in goes.items():
            entities = new_doc.get(kind) or []
            summary[kind] = [e["id"] for e in entities if gone(e)]
            new_doc[kind] = [e for e in entities if not gone(e)]
        await self._validated_commit(
            new_doc,
            {},
            {kind: list(summary[kind]) for kind in goes},
            AuditEntry(actor, "apartments.reset", f"apartments/{apartment_id}", dict(summary)),
        )
        summary["events_redacted"] = await self.store.redact_apartment_events(
            apartment_id, actor=actor
        )
        return summary

    # --- sync ------------------------------------------------------------------------

    def sync_status(self) -> dict[str, Any]:
        cloud = self.config.cloud
        status: dict[str, Any] = {
            "enrolled": self.policy_owner == "cloud" or cloud is not None,
            "cloud_url": cloud.url if cloud else None,
            "policy_owner": self.policy_owner,
            "version": self.snapshot.version,
            "digest": self.snapshot.digest,
            "stale": False,
            "last_contact": None,
        }
        if self.sync is not None:
            status.update(self.sync.status())
        return status


def _redacted(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An entity for the audit log: hashes shortened, nothing secret."""
    out = {}
    for key, value in entity.items():
        if key.endswith("_hmac"):
            out[key] = f"{str(value)[:8]}…"
        else:
            out[key] = value
    return out
