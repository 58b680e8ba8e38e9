"""OSDP readers through libosdp: one control panel per ``protocol = "osdp"`` bus.

The readers (PDs) of a bus multi-drop on its serial port by address. Every reader with
``secure = true`` (the default) is run with libosdp's ENFORCE_SECURE and its own key
(edge/readers/osdp_keys.py): the panel never talks clear text to it and never tries the
default key SCBK-D, so a reader with another key, or none, stays offline and is alarmed.
The one exception is the installer's provisioning window (``provision``): for a short
time one reader may come up with SCBK-D, gets its key with KEYSET, and must then come
back with that key; when the window closes ENFORCE_SECURE is on again whatever happened.

libosdp runs its refresh loop in a thread of its own; its callbacks only hand events to
the event loop (``call_soon_threadsafe``), and every call into the panel that takes its
lock runs in a worker thread, so the event loop never waits on the serial line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import osdp
import serial

from doorkeep.errors import Conflict
from edge.readers.hub import Feedback, Readers
from edge.readers.osdp_keys import OsdpKeys
from edge.readers.osdp_wire import Keypad, SerialChannel, card_value

if TYPE_CHECKING:
    from edge.config import BusSection, ReaderSection, SiteConfig

log = logging.getLogger(__name__)

_NOTIFY_SC = 1  # OSDP_NOTIFICATION_SC_STATUS: arg0 active, arg1 with SCBK-D
_NOTIFY_PD = 2  # OSDP_NOTIFICATION_PD_STATUS: arg0 online
_LED = osdp.CommandLEDColor
#: What each answer shows: (LED colour, LED on/off in 100 ms units, LED time in 100 ms,
#: buzzer on/off in 100 ms, beeps).
_SIGNALS: dict[Feedback, tuple[int, int, int, int, int, int]] = {
    Feedback.GRANTED: (_LED.Green, 30, 0, 30, 2, 1),
    Feedback.DENIED: (_LED.Red, 2, 2, 20, 2, 3),
    Feedback.LOCKED_OUT: (_LED.Amber, 1, 1, 50, 10, 1),
}


class _Info(osdp.PDInfo):  # type: ignore[misc]  # libosdp ships no types
    """PDInfo with the line's baud rate (libosdp times its replies by it)."""

    def __init__(self, baudrate: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.baudrate = baudrate

    def get(self) -> dict[str, Any]:
        return {**super().get(), "baud_rate": self.baudrate}


class _Panel(osdp.ControlPanel):  # type: ignore[misc]
    """libosdp's control panel without its per-PD event queues (nobody drains them here:
    the events go to our handler only, so a long run does not pile them up)."""

    def _internal_event_handler(self, pd: int, event: dict[str, Any]) -> int:
        handler = self.user_event_handler
        return int(handler(pd, event)) if handler else 0


class OsdpBus:
    """The control panel of one OSDP bus and the readers on it (a ``ReaderDriver``)."""

    #: seconds a reader may be between states (handshake) before it counts as refused
    grace_s = 3.0
    #: seconds between new attempts at an offline reader (libosdp alone waits 300 s)
    retry_s = 10.0
    #: seconds between looks at the panel's status
    poll_s = 0.5

    def __init__(self, bus: BusSection, readers: Sequence[ReaderSection], keys: OsdpKeys) -> None:
        self.bus = bus
        self.readers = list(readers)
        self.reader_ids = [r.id for r in self.readers]
        self.keys = keys
        self._index = {r.id: i for i, r in enumerate(self.readers)}
        self._addr = {r.id: int(r.address or 0) for r in self.readers}
        self._keypads = {r.id: Keypad() for r in self.readers}
        self._cp: _Panel | None = None
        self._channel: SerialChannel | None = None
        self._hub: Readers | None = None
        self._scbkd: dict[str, bool] = {}  # SC is up with the default key (provisioning only)
        self._down_since: dict[str, float] = {}  # reader -> monotonic time it left online
        self._kicked: dict[str, float] = {}
        self._identity: dict[str, tuple[int, int, int]] = {}  # PD id last seen secure
        self._windows: dict[str, asyncio.Task[None]] = {}
        self._looked: float | None = None  # monotonic time of the panel's last status

    # --- ReaderDriver ---------------------------------------------------------------------
    async def run(self, hub: Readers) -> None:
        self._hub = hub
        for r in self.readers:
            hub.mark(r.id, online=False, secure=False, bus=self.bus.id, address=self._addr[r.id])
        while True:
            try:
                channel = await asyncio.to_thread(
                    SerialChannel,
                    self.bus.port,
                    self.bus.baudrate,
                    self.bus.parity,
                    self.bus.stopbits,
                )
            except (serial.SerialException, OSError, ValueError) as err:
                for r in self.readers:
                    why = f"port {self.bus.port} cannot be opened ({err})"
                    hub.mark(r.id, online=False, reason=why)
                    await hub.alarm(r.id, "reader_offline", why)
                await asyncio.sleep(self.retry_s)
                continue
            try:
                await self._serve(hub, channel)
            finally:
                channel.close()

    async def feedback(self, reader_id: str, signal: Feedback) -> None:
        cp = self._cp
        if cp is None or not self._trusted(reader_id):
            return  # no word to a reader we do not trust (or cannot reach)
        colour, on, off, led_time, beep, beeps = _SIGNALS[signal]
        address = self._addr[reader_id]
        led = {
            "command": osdp.Command.LED,
            "reader": 0,
            "led_number": 0,
            "control_code": 1,
            "on_count": on,
            "off_count": off,
            "on_color": colour,
            "off_color": _LED.Black,
            "timer_count": led_time,
            "temporary": True,
        }
        buzzer = {
            "command": osdp.Command.Buzzer,
            "reader": 0,
            "control_code": 2,
            "on_count": beep,
            "off_count": beep,
            "rep_count": beeps,
        }
        await asyncio.to_thread(cp.submit_command, address, led)
        await asyncio.to_thread(cp.submit_command, address, buzzer)

    def stalled(self, limit_s: float) -> str | None:
        """Why this bus's panel is stuck (for the watchdog): it runs, but has given no
        status for ``limit_s`` (a status read is bounded by libosdp's own timeouts)."""
        if self._cp is None or self._looked is None:
            return None  # not running (the port cannot be opened: alarmed, retried)
        silent = time.monotonic() - self._looked
        if silent > limit_s:
            return f"OSDP bus {self.bus.id}: no status from its panel for {silent:.0f} s"
        return None

    # --- provisioning ---------------------------------------------------------------------
    async def provision(self, hub: Readers, reader_id: str, seconds: float) -> dict[str, Any]:
        """Open the provisioning window of one reader; the outcome shows in its status."""
        reader = self._reader(reader_id)
        if not reader.secure:
            raise Conflict(
                f"reader {reader_id!r} has secure = false: it gets no key (set secure = true "
                "in site.toml and restart to use Secure Channel)"
            )
        if self._cp is None:
            raise Conflict(
                f"reader {reader_id!r}: OSDP bus {self.bus.id!r} is not running "
                f"(port {self.bus.port} cannot be opened); fix the line first"
            )
        running = self._windows.get(reader_id)
        if running is not None and not running.done():
            raise Conflict(f"reader {reader_id!r} already has its provisioning window open")
        until = hub.now() + timedelta(seconds=seconds)
        hub.mark(reader_id, provisioning="open", provision_until=until.isoformat())
        log.warning(
            "reader %s: provisioning window open for %.0f s (the default key SCBK-D is "
            "accepted at address %s until %s)",
            reader_id,
            seconds,
            self._addr[reader.id],
            until.isoformat(),
        )
        self._windows[reader_id] = asyncio.create_task(
            self._window(hub, reader, seconds), name=f"osdp-provision-{reader_id}"
        )
        return {"reader": reader_id, "window_s": seconds, "until": until.isoformat()}

    async def _window(self, hub: Readers, reader: ReaderSection, seconds: float) -> None:
        cp = self._cp
        assert cp is not None
        outcome = "failed: no reader in install mode came up in the window"
        try:
            if self._secure_now(reader.id):
                outcome = "provisioned (it already had its key)"
                return
            await asyncio.to_thread(
                cp.clear_flag, self._addr[reader.id], osdp.LibFlag.EnforceSecure
            )
            await self._kick(reader)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if self._secure_now(reader.id):
                    outcome = "provisioned"
                    break
        finally:
            # ENFORCE_SECURE again, whatever happened; a reader that is not secure now is
            # dropped and comes back only with its key
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    asyncio.to_thread(
                        cp.set_flag, self._addr[reader.id], osdp.LibFlag.EnforceSecure
                    )
                )
            if not self._secure_now(reader.id):
                with contextlib.suppress(Exception):
                    await self._kick(reader)
            hub.mark(reader.id, provisioning=outcome, provision_until=None)
            log.warning("reader %s: provisioning window closed: %s", reader.id, outcome)

    # --- the panel ------------------------------------------------------------------------
    async def _serve(self, hub: Readers, channel: SerialChannel) -> None:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()

        def on_event(index: int, event: dict[str, Any]) -> int:  # libosdp's thread
            loop.call_soon_threadsafe(events.put_nowait, (index, event))
            return 0

        infos = [self._info(r, channel) for r in self.readers]
        cp = _Panel(infos, log_level=osdp.LogLevel.Warning, event_handler=on_event)
        cp.start()
        self._cp, self._channel = cp, channel
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._events(hub, events))
                tg.create_task(self._watch(hub, cp, channel))
        finally:
            self._cp = self._channel = None
            self._looked = None  # a new panel is judged from its own first status
            for task in self._windows.values():
                task.cancel()
            await asyncio.shield(asyncio.to_thread(cp.stop))

    def _info(self, reader: ReaderSection, channel: SerialChannel) -> _Info:
        flags = [osdp.LibFlag.EnableNotification]
        scbk = None
        if reader.secure:
            flags.append(osdp.LibFlag.EnforceSecure)
            scbk = self.keys.key(reader.id)
        return _Info(
            self.bus.baudrate,
            self._addr[reader.id],
            channel,
            scbk=scbk,
            name=reader.id,
            flags=flags,
        )

    async def _kick(self, reader: ReaderSection) -> None:
        """Make the panel start over with a reader now (libosdp waits minutes itself)."""
        cp = self._cp
        if cp is None:
            return
        self._kicked[reader.id] = time.monotonic()
        await asyncio.to_thread(cp.disable_pd, self._addr[reader.id])
        for _ in range(50):
            if not await asyncio.to_thread(cp.is_pd_enabled, self._addr[reader.id]):
                break
            await asyncio.sleep(0.02)
        await asyncio.to_thread(cp.enable_pd, self._addr[reader.id])

    async def _events(
        self, hub: Readers, events: asyncio.Queue[tuple[int, dict[str, Any]]]
    ) -> None:
        while True:
            index, event = await events.get()
            if not 0 <= index < len(self.readers):
                continue
            reader = self.readers[index]
            try:
                await self._event(hub, reader, event)
            except Exception:
                log.exception("reader %s: OSDP event not handled", reader.id)

    async def _event(self, hub: Readers, reader: ReaderSection, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == osdp.Event.Notification:
            if event.get("type") == _NOTIFY_SC:
                self._scbkd[reader.id] = bool(event.get("arg0")) and bool(event.get("arg1"))
            return
        if kind == osdp.Event.Status:
            await self._status(hub, reader, event)
            return
        if kind not in (osdp.Event.CardRead, osdp.Event.KeyPress):
            return
        if reader.secure and not self._secure_now(reader.id):
            # libosdp keeps such a reader offline; this is the belt to that brace
            await hub.alarm(
                reader.id,
                "reader_insecure",
                "a read came without Secure Channel and was refused",
            )
            return
        if kind == osdp.Event.CardRead:
            try:
                value = card_value(event)
            except ValueError as err:
                log.warning("reader %s: card read not used: %s", reader.id, err)
                return
            await hub.read(reader.id, "rf_card", value)
            return
        for pin in self._keypads[reader.id].press(bytes(event.get("data") or b"")):
            await hub.read(reader.id, "pin", pin)

    async def _status(self, hub: Readers, reader: ReaderSection, event: dict[str, Any]) -> None:
        if event.get("type") != osdp.StatusReportType.Local:
            return
        report = bytes(event.get("report") or b"")
        tamper = bool(report[:1] and report[0])
        power = bool(report[1:2] and report[1])
        hub.mark(reader.id, tamper=tamper, power_failure=power)
        if tamper:
            await hub.alarm(reader.id, "reader_tamper", "the reader reports tamper")
        else:
            hub.clear(reader.id, "reader_tamper")

    # --- link state and alarms ------------------------------------------------------------
    def _trusted(self, reader_id: str) -> bool:
        """Online, and with Secure Channel unless the reader is configured without it."""
        hub = self._hub
        if hub is None or not hub.state(reader_id).online:
            return False
        return self._secure_now(reader_id) or not self._reader(reader_id).secure

    def _secure_now(self, reader_id: str) -> bool:
        """Secure Channel is up with the reader's own key (not SCBK-D)."""
        hub = self._hub
        return bool(hub and hub.state(reader_id).secure) and not self._scbkd.get(reader_id)

    async def _watch(self, hub: Readers, cp: _Panel, channel: SerialChannel) -> None:
        while True:
            online, sc = await asyncio.to_thread(lambda: (cp.status(), cp.sc_status()))
            now = self._looked = time.monotonic()
            for i, reader in enumerate(self.readers):
                is_online = bool(online >> i & 1)
                secure = bool(sc >> i & 1) and not self._scbkd.get(reader.id)
                hub.mark(reader.id, online=is_online, secure=secure)
                if is_online and (secure or not reader.secure):
                    await self._up(hub, cp, reader)
                elif not is_online:
                    await self._down(hub, cp, channel, reader, now)
            await asyncio.sleep(self.poll_s)

    async def _up(self, hub: Readers, cp: _Panel, reader: ReaderSection) -> None:
        self._down_since.pop(reader.id, None)
        hub.mark(reader.id, reason="")
        for kind in ("reader_offline", "reader_insecure", "reader_replaced"):
            hub.clear(reader.id, kind)
        if reader.id not in self._identity:
            self._identity[reader.id] = await asyncio.to_thread(
                _identity, cp, self._addr[reader.id]
            )

    async def _down(
        self,
        hub: Readers,
        cp: _Panel,
        channel: SerialChannel,
        reader: ReaderSection,
        now: float,
    ) -> None:
        since = self._down_since.setdefault(reader.id, now)
        window = self._windows.get(reader.id)
        if window is not None and not window.done():
            return  # the window is the installer's: it ends in a verdict of its own
        if now - since >= self.grace_s:
            recent = now - self.retry_s - 2 * self.grace_s
            if channel.watch.answered_since(self._addr[reader.id], max(since, recent)):
                await self._refused(hub, cp, reader)
            else:
                why = f"no answer at address {self._addr[reader.id]} on {self.bus.port}"
                hub.mark(reader.id, reason=why)
                await hub.alarm(reader.id, "reader_offline", why)
        if now - self._kicked.get(reader.id, since) >= self.retry_s:
            await self._kick(reader)

    async def _refused(self, hub: Readers, cp: _Panel, reader: ReaderSection) -> None:
        """The reader answers on the line but not with Secure Channel and its own key."""
        level, _ = await asyncio.to_thread(
            cp.check_capability, self._addr[reader.id], osdp.Capability.CommunicationSecurity
        )
        identity = await asyncio.to_thread(_identity, cp, self._addr[reader.id])
        known = self._identity.get(reader.id)
        hint = "run `doorkeep reader provision " + reader.id + "` with the reader in install mode"
        if not int(level) & 1:
            kind, why = "reader_insecure", "the reader cannot do Secure Channel; it is refused"
        elif known is not None and identity != known:
            kind = "reader_replaced"
            address = self._addr[reader.id]
            why = f"another reader answers at address {address} without this key; {hint}"
        else:
            kind = "reader_insecure"
            why = f"the reader refuses Secure Channel with its key (another key or none); {hint}"
        hub.mark(reader.id, reason=why)
        await hub.alarm(reader.id, kind, why, address=self._addr[reader.id])

    def _reader(self, reader_id: str) -> ReaderSection:
        return self.readers[self._index[reader_id]]


def _identity(cp: _Panel, address: int) -> tuple[int, int, int]:
    """(vendor code, model, serial number) of the PD's last ID reply."""
    try:
        pd = cp.get_pd_id(address)
    except Exception:  # no ID reply yet
        return (0, 0, 0)
    return (int(pd.vendor_code), int(pd.model), int(pd.serial_number))


def drivers(config: SiteConfig, rows: Sequence[ReaderSection]) -> Iterable[OsdpBus]:
    """One ``OsdpBus`` per bus the site's OSDP readers sit on."""
    keys = OsdpKeys(config.site.data_dir)
    by_bus: dict[str, list[ReaderSection]] = {}
    for r in rows:
        if r.bus is not None and r.address is not None:
            by_bus.setdefault(r.bus, []).append(r)
    return [OsdpBus(config.bus(bus), readers, keys) for bus, readers in by_bus.items()]
