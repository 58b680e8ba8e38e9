"""The readers of a site: their drivers, their status and the feedback they give.

Every physical reader reaches a door through the same path as the REST API:
``Readers.read`` hands the read to ``Site.present`` (decision, relay, event) and then
gives the reader its feedback (LED/buzzer) for the answer. A driver owns the link to one
or more readers (an OSDP bus, a serial port); the hub owns what the site reports about
them (``GET /readers``, ``doorkeep status``) and raises each reader alarm once per
outage, not once per poll.

Drivers register by reader type in ``DRIVERS``: a factory that takes the site config and
the ``[[reader]]`` rows of its type and returns the drivers to run. A type with no factory
(``sim``, ``mqtt``, ``http``) has no link of its own: its reads come in through REST or
MQTT, and the hub only records when it was last seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from doorkeep.errors import Conflict, NotFound

if TYPE_CHECKING:
    from edge.config import ReaderSection, SiteConfig

log = logging.getLogger(__name__)


class Feedback(StrEnum):
    """What a reader shows its user after a read (LED colour, buzzer pattern)."""

    GRANTED = "granted"
    DENIED = "denied"
    LOCKED_OUT = "locked_out"


def feedback_for(answer: Mapping[str, Any]) -> Feedback:
    """The feedback of a presentation's answer (``Site.present``)."""
    if answer.get("granted"):
        return Feedback.GRANTED
    if answer.get("reason") == "locked_out":
        return Feedback.LOCKED_OUT
    return Feedback.DENIED


class ReaderDriver(Protocol):
    """The link to one or more readers of one type."""

    async def run(self, hub: Readers) -> None:
        """Talk to the readers until cancelled; report reads with ``hub.read``."""
        ...

    async def feedback(self, reader_id: str, signal: Feedback) -> None:
        """Show ``signal`` on the reader (LED/buzzer); a no-op where it has none."""
        ...


#: reader type -> factory(site config, that type's readers) -> drivers to run
DriverFactory = Callable[["SiteConfig", Sequence["ReaderSection"]], Iterable[ReaderDriver]]
DRIVERS: dict[str, DriverFactory] = {}

Present = Callable[[str, str, str], Awaitable[dict[str, Any]]]
RaiseAlarm = Callable[..., Awaitable[dict[str, Any]]]
Now = Callable[[], datetime]


@dataclass(slots=True)
class ReaderState:
    """What the site knows of one reader's link (``GET /readers``)."""

    id: str
    type: str
    door: str
    online: bool | None = None  # None: the type has no link of its own to watch
    secure: bool | None = None  # None: not a Secure Channel reader
    last_seen: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    alarms: set[str] = field(default_factory=set)  # alarm kinds open for this reader

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "door": self.door,
            "online": self.online,
            "secure": self.secure,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "detail": dict(self.detail),
        }


class Readers:
    """The site's readers: drivers started per type, status, feedback and alarms."""

    def __init__(
        self,
        readers: Sequence[ReaderSection],
        *,
        present: Present,
        raise_alarm: RaiseAlarm,
        now: Now,
    ) -> None:
        self._present = present
        self._raise_alarm = raise_alarm
        self._now = now
        self.now = now  # the site's clock, for drivers (a provisioning window's end)
        self._states = {r.id: ReaderState(r.id, r.type, r.door) for r in readers}
        self._drivers: dict[str, ReaderDriver] = {}
        self._all: list[ReaderDriver] = []
        self._ended: list[str] = []  # drivers whose run() failed: their readers are dead

    # --- the drivers ---------------------------------------------------------------------
    def attach(self, driver: ReaderDriver, reader_ids: Iterable[str]) -> None:
        """Route feedback for ``reader_ids`` to ``driver`` and run it with the others."""
        self._all.append(driver)
        for rid in reader_ids:
            self._drivers[rid] = driver

    def attach_configured(self, config: SiteConfig) -> None:
        """Make the drivers of every reader type that has a factory in ``DRIVERS``."""
        by_type: dict[str, list[ReaderSection]] = {}
        for r in config.readers:
            by_type.setdefault(r.type, []).append(r)
        for kind, rows in by_type.items():
            factory = DRIVERS.get(kind)
            if factory is None:
                continue
            for driver in factory(config, rows):
                ids = getattr(driver, "reader_ids", None) or [r.id for r in rows]
                self.attach(driver, ids)

    async def run(self) -> None:
        """Run every attached driver until cancelled; one failing driver stops no other."""
        if not self._all:
            return
        async with asyncio.TaskGroup() as tg:
            for driver in self._all:
                tg.create_task(self._keep(driver), name=f"reader-driver-{type(driver).__name__}")

    async def _keep(self, driver: ReaderDriver) -> None:
        try:
            await driver.run(self)
        except asyncio.CancelledError:
            raise
        except Exception:
            name = _driver_name(driver)
            log.exception("reader driver %s stopped", name)
            self._ended.append(name)
            for rid, owner in self._drivers.items():
                if owner is driver:  # its readers read nothing any more: say so loudly
                    self.mark(rid, online=False, reason=f"its driver failed ({name}); see the log")

    def stalled(self, limit_s: float) -> list[str]:
        """Why reads no longer flow (the daemon's watchdog stops pinging then): a driver
        that stopped, or one whose own check (``stalled(limit_s)``, e.g. an OSDP panel
        that gave no status for ``limit_s``) says it is stuck."""
        out = [f"reader driver {name} has stopped" for name in self._ended]
        for driver in self._all:
            check = getattr(driver, "stalled", None)
            if check is not None and (why := check(limit_s)) is not None:
                out.append(why)
        return out

    # --- reads and feedback --------------------------------------------------------------
    async def read(self, reader_id: str, kind: str, value: str) -> dict[str, Any]:
        """A read from a reader: decide it like any presentation, then give feedback."""
        self.seen(reader_id)
        answer = await self._present(reader_id, kind, value)
        driver = self._drivers.get(reader_id)
        if driver is not None:
            try:
                await driver.feedback(reader_id, feedback_for(answer))
            except Exception:  # feedback is a courtesy: the door already did what it did
                log.exception("reader %s: feedback failed", reader_id)
        return answer

    # --- installer actions ---------------------------------------------------------------
    async def provision(self, reader_id: str, seconds: float) -> dict[str, Any]:
        """Open the provisioning window of an OSDP reader (edge/readers/osdp_bus.py)."""
        state = self._states.get(reader_id)
        if state is None:
            raise NotFound(f"reader {reader_id!r} is not in site.toml")
        opener = getattr(self._drivers.get(reader_id), "provision", None)
        if opener is None:
            raise Conflict(
                f"reader {reader_id!r} is a {state.type!r} reader: only OSDP readers are "
                "provisioned (and only while the daemon runs their bus)"
            )
        result: dict[str, Any] = await opener(self, reader_id, seconds)
        return result

    # --- status and alarms ---------------------------------------------------------------
    def state(self, reader_id: str) -> ReaderState:
        return self._states[reader_id]

    def seen(self, reader_id: str) -> None:
        state = self._states.get(reader_id)
        if state is not None:
            state.last_seen = self._now()

    def mark(
        self,
        reader_id: str,
        *,
        online: bool | None = None,
        secure: bool | None = None,
        **detail: Any,
    ) -> None:
        """Record what a driver learnt of a reader's link (``None`` leaves a field as it was)."""
        state = self._states[reader_id]
        if online is not None:
            state.online = online
            if online:
                state.last_seen = self._now()
        if secure is not None:
            state.secure = secure
        state.detail.update(detail)

    async def alarm(
        self, reader_id: str, kind: str, message: str, **detail: Any
    ) -> dict[str, Any] | None:
        """Raise ``kind`` for this reader once; again only after ``clear`` (an outage = one)."""
        state = self._states[reader_id]
        if kind in state.alarms:
            return None
        state.alarms.add(kind)
        return await self._raise_alarm(
            kind,
            source=f"reader:{reader_id}",
            door=state.door,
            detail={"reader": reader_id, "message": message, **detail},
        )

    def clear(self, reader_id: str, kind: str) -> None:
        """The condition behind ``kind`` is over: the next occurrence raises a new alarm."""
        with contextlib.suppress(KeyError):
            self._states[reader_id].alarms.remove(kind)

    def status(self) -> list[dict[str, Any]]:
        """Every reader of site.toml with its link state, in site.toml order."""
        return [s.as_dict() for s in self._states.values()]


def _driver_name(driver: ReaderDriver) -> str:
    ids = getattr(driver, "reader_ids", None)
    return f"{type(driver).__name__} ({', '.join(ids)})" if ids else type(driver).__name__
