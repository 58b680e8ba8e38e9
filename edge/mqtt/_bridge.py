"""The MQTT bridge of the site daemon: the Site's live feed out, readers and commands in.

Theory. Two named tasks live as long as the bridge: ``mqtt-feed`` reads
``Site.subscribe()`` and turns each message into publications in an outbox (it never
touches the network, so the Site is never held up by the broker), and ``mqtt-link``
connects, (re)subscribes, and while connected runs ``mqtt-send`` (drains the outbox) and
``mqtt-receive`` (dispatches inbound messages through the :data:`ROUTES` table) in a
TaskGroup. When the link breaks, both end, the outbox keeps filling (bounded, oldest
dropped first), and the link retries with jittered capped backoff, logging once when it
breaks and once when it is back. On every connect the retained truth is sent first:
discovery configs, the state of every door, ``online``; stale retained door states still
queued from the outage are dropped because the fresh snapshot supersedes them.

Inbound payloads may carry credentials (a PIN, a card number): they are never logged,
and a malformed message is dropped with a reason of our own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import unquote, urlsplit

import aiomqtt

from doorkeep.errors import ConfigError, DoorkeepError
from doorkeep.link import LinkHealth

from .discovery import DoorInfo, discovery
from .topics import OFFLINE, ONLINE, Publication, Topics, door_states, match, outbound

if TYPE_CHECKING:
    from edge.config import MqttSection
    from edge.service import Site

__all__ = ["ACTOR", "ROUTES", "Broker", "MalformedMessage", "MqttBridge", "Route"]

log = logging.getLogger(__name__)

# Module-level so tests can shrink them.
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
KEEPALIVE_S = 30
OPERATION_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 2.0
OUTBOX_MAX = 1000
PAYLOAD_MAX = 1024  # a presentation is a few dozen bytes; anything larger is not one
UNLOCK_SECONDS = 5
ACTOR: Final = "mqtt"


class MalformedMessage(DoorkeepError):
    """An inbound MQTT message is not what its topic expects (the reason never quotes it)."""


@dataclass(frozen=True, slots=True)
class Broker:
    """Where to connect, from ``[mqtt] url`` (``mqtt://[user[:pass]@]host[:port]``)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Broker:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError("[mqtt] url must look like mqtt://host:1883 or mqtts://host:8883")
        try:
            port = parts.port or (8883 if scheme == "mqtts" else 1883)
        except ValueError as err:
            raise ConfigError(f"[mqtt] url: the port is not a number: {err}") from err
        return cls(
            host=parts.hostname,
            port=port,
            tls=scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:  # never the password
        return f"{self.host}:{self.port}"


# --- inbound ------------------------------------------------------------------------------


def _presentation(payload: bytes) -> tuple[str, str]:
    """``{"kind": str, "value": str}`` -> (kind, value); MalformedMessage otherwise."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessage('expected JSON {"kind": ..., "value": ...}') from None
    if not isinstance(body, dict):
        raise MalformedMessage('expected a JSON object {"kind": ..., "value": ...}')
    kind, value = body.get("kind"), body.get("value")
    if not isinstance(kind, str) or not isinstance(value, str):
        raise MalformedMessage('"kind" and "value" must both be strings')
    return kind, value


async def _on_presentation(bridge: MqttBridge, reader: str, payload: bytes) -> None:
    if not bridge.takes_presentations(reader):
        return
    kind, value = _presentation(payload)
    await bridge.site.present(reader, kind, value, at=None, actor=ACTOR)


# Command payload -> what it does to a door (the same Site calls as the REST API).
COMMANDS: Final[Mapping[str, Callable[[Site, str], Awaitable[Any]]]] = {
    "UNLOCK": lambda site, door: site.unlock(door, UNLOCK_SECONDS, actor=ACTOR),
    "LOCK": lambda site, door: site.lock(door, actor=ACTOR),
}


async def _on_set(bridge: MqttBridge, door: str, payload: bytes) -> None:
    command = COMMANDS.get(payload.decode("utf-8", "replace").strip().upper())
    if command is None:
        raise MalformedMessage(f"a door command is one of {', '.join(COMMANDS)}")
    await command(bridge.site, door)


@dataclass(frozen=True, slots=True)
class Route:
    """An inbound topic (relative to ``<prefix>/<site>``, one ``+`` = the id) and its handler."""

    pattern: str
    handler: Callable[[MqttBridge, str, bytes], Awaitable[None]]
    commands: bool = False  # subscribed only with ``allow_commands = true``
    secret: bool = False  # the payload may hold a credential: no traceback in logs


ROUTES: Final[tuple[Route, ...]] = (
    Route("reader/+/presentation", _on_presentation, secret=True),
    Route("door/+/set", _on_set, commands=True),
)


def _admit(payload: bytes, *, retained: bool) -> None:
    """Refuse what no inbound route may act on, whatever its topic."""
    if retained:
        # a retained command or presentation would be replayed on every reconnect
        raise MalformedMessage("retained messages are ignored on this topic")
    if len(payload) > PAYLOAD_MAX:
        raise MalformedMessage(f"payload longer than {PAYLOAD_MAX} bytes")


def _reason(err: BaseException) -> str:
    """A short reason for a link failure (the first leaf of an exception group)."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return str(err) or type(err).__name__


# --- the bridge ---------------------------------------------------------------------------


class MqttBridge:
    """The site on MQTT: ``async with MqttBridge(site, settings):`` (settings: ``[mqtt]``).

    Publishes door states (retained), door events, alarms, ``status`` and Home Assistant
    discovery; takes reader presentations and, with ``allow_commands``, door commands.
    The Site never waits for the broker: while the link is down the doors work as ever.
    """

    def __init__(self, site: Site, settings: MqttSection) -> None:
        self.site = site
        self.settings = settings
        self.broker = Broker.from_url(settings.url)
        self.topics = Topics(settings.topic_prefix, site.site_id)
        self.client_id = settings.client_id or f"doorkeep-{site.site_id}"
        self.routes = tuple(r for r in ROUTES if settings.allow_commands or not r.commands)
        self._outbox: deque[Publication] = deque()
        self._wake = asyncio.Event()
        self._dropped = 0
        self._connected = False
        self._health = LinkHealth(
            f"MQTT broker {self.broker}",
            base_s=BACKOFF_BASE_S,
            cap_s=BACKOFF_CAP_S,
            logger=log,
            broke=(
                "%(name)s unreachable (%(reason)s); retrying, backoff up to %(cap_s).0f s;"
                " doors work as usual"
            ),
            recovered=(
                "%(name)s is back after %(down_s).0f s; %(dropped)d queued messages were dropped"
            ),
        )
        #: Presentations dropped per reader because it is not a ``type = "mqtt"`` reader.
        self.refused_readers: dict[str, int] = {}
        self._stopping = False
        self._session_open = False
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def takes_presentations(self, reader: str) -> bool:
        """Whether MQTT may present at ``reader``: only ``type = "mqtt"`` readers may.

        Anyone who can publish to the broker could otherwise "present" a card at a
        keypad or an OSDP reader. A refused reader is logged once and counted in
        `refused_readers`; an unknown id goes on to the Site, which refuses it.
        """
        section = next((r for r in self.site.config.readers if r.id == reader), None)
        if section is None or section.type == "mqtt":
            return True
        count = self.refused_readers.get(reader, 0)
        if count == 0:
            log.warning(
                'MQTT presentations for reader %r dropped: it is not an MQTT reader (type = "%s");'
                ' only readers with type = "mqtt" in site.toml take MQTT input',
                reader,
                section.type,
            )
        self.refused_readers[reader] = count + 1
        return False

    @property
    def connected(self) -> bool:
        """True while the broker link is up."""
        return self._connected

    def _checkpoint(self) -> None:
        """Raise CancelledError if the bridge is stopping or this session's link is over.

        Python 3.11's ``asyncio.wait_for`` (which aiomqtt awaits publications with) can
        swallow a cancellation that races the completion it waits for; the task would
        then wait forever on its next idle await. The loops call this after every such
        await, so a lost cancellation still ends them.
        """
        if self._stopping or not self._session_open:
            raise asyncio.CancelledError

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tasks = [
            self._tg.create_task(self._feed(), name="mqtt-feed"),
            self._tg.create_task(self._link(), name="mqtt-link"),
        ]
        # let mqtt-feed subscribe before the caller goes on, so nothing is missed
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tg is not None:
            await self._tg.__aexit__(None, None, None)
        self._tg, self._tasks = None, []

    # --- outbound -------------------------------------------------------------------------

    def _enqueue(self, publication: Publication) -> None:
        if len(self._outbox) >= OUTBOX_MAX:
            self._outbox.popleft()
            if self._dropped == 0:
                log.warning(
                    "MQTT outbox full (%d messages): dropping the oldest until the broker is back",
                    OUTBOX_MAX,
                )
            self._dropped += 1
        self._outbox.append(publication)
        self._wake.set()

    async def _feed(self) -> None:
        async for message in self.site.subscribe():
            try:
                publications = outbound(self.topics, message)
            except Exception:  # a feed message we cannot map must not end the bridge
                log.exception("MQTT: cannot map a live-feed %r message", message.get("topic"))
                continue
            for publication in publications:
                self._enqueue(publication)

    def _snapshot(self) -> list[Publication]:
        """The retained truth, sent first on every connect."""
        doors = [DoorInfo(d.id, d.name, d.contact is not None) for d in self.site.config.doors]
        return [
            *discovery(
                self.topics,
                doors,
                site_name=self.site.config.site.name,
                version=self.site.version,
                allow_commands=self.settings.allow_commands,
                enabled=self.settings.homeassistant,
            ),
            *door_states(self.topics, self.site.doors()),
            Publication(self.topics.status, ONLINE, retain=True),
        ]

    async def _send(self, client: aiomqtt.Client) -> None:
        try:
            while True:
                while self._outbox:
                    publication = self._outbox[0]
                    await client.publish(
                        publication.topic,
                        publication.payload,
                        qos=publication.qos,
                        retain=publication.retain,
                    )
                    # removed only once the broker has it: what a broken link cut off is
                    # sent again after the reconnect (at least once, like QoS 1 itself)
                    if self._outbox and self._outbox[0] is publication:
                        self._outbox.popleft()
                    self._checkpoint()
                self._wake.clear()
                await self._wake.wait()
                self._checkpoint()
        finally:
            self._end_session()

    def _end_session(self) -> None:
        """The link of this session is over: the other loop of the pair ends too."""
        self._session_open = False
        self._wake.set()

    # --- inbound --------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, str):
                    payload = payload.encode()
                elif not isinstance(payload, bytes | bytearray):
                    payload = b""
                await self.dispatch(str(message.topic), bytes(payload), retained=message.retain)
                self._checkpoint()
        finally:
            self._end_session()

    async def dispatch(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """Handle one inbound message by the :data:`ROUTES` table; never raises."""
        for route in self.routes:
            key = match(self.topics.filter(route.pattern), topic)
            if key is None:
                continue
            try:
                _admit(payload, retained=retained)
                await route.handler(self, key, payload)
            except (DoorkeepError, ValueError) as err:
                # our own and the Site's validation messages never quote the value
                log.warning("MQTT message on %s dropped: %s", topic, err)
            except Exception as err:
                log.error(  # noqa: TRY400 - a traceback could quote the payload
                    "MQTT message on %s failed: %s",
                    topic,
                    type(err).__name__,
                    exc_info=not route.secret,
                )
            return

    # --- the link -------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            will=aiomqtt.Will(self.topics.status, OFFLINE, qos=1, retain=True),
            keepalive=KEEPALIVE_S,
            timeout=OPERATION_TIMEOUT_S,
            tls_context=ssl.create_default_context() if self.broker.tls else None,
            logger=logging.getLogger(f"{__name__}.client"),
        )

    async def _link(self) -> None:
        while True:
            try:
                await self._session()
            except Exception as err:  # every failure is a broken link: retry
                if self._stopping:
                    # the disconnect while stopping failed and replaced the
                    # cancellation: stop all the same
                    raise asyncio.CancelledError from err
                self._connected = False
                delay = self._health.failed(err, reason=_reason(err))  # logs once per outage
            else:
                delay = self._health.backoff.next()
            if self._stopping:
                raise asyncio.CancelledError
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        async with self._client() as client:
            self._session_open = True
            for route in self.routes:
                await client.subscribe(self.topics.filter(route.pattern), qos=1)
                self._checkpoint()
            fresh = self._snapshot()
            self._outbox = deque([*fresh, *(p for p in self._outbox if not p.retain)])
            self._wake.set()
            self._link_up()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._send(client), name="mqtt-send")
                    tg.create_task(self._receive(client), name="mqtt-receive")
            except asyncio.CancelledError:
                # stopping: a clean DISCONNECT does not fire the will, so say it ourselves
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        client.publish(self.topics.status, OFFLINE, qos=1, retain=True),
                        STOP_TIMEOUT_S,
                    )
                self._connected = False
                raise

    def _link_up(self) -> None:
        self._connected = True
        if self._health.ok(dropped=self._dropped):  # logs "is back" after an outage
            self._dropped = 0
        else:
            log.info("MQTT bridge connected to %s as %s", self.broker, self.client_id)
