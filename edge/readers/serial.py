"""The driver of ``type = "serial"`` readers: one serial port per reader (pyserial).

The port is opened non-blocking and watched with ``loop.add_reader`` on its file
descriptor, so no read ever waits on the event loop: each wake-up takes the bytes that
are there and feeds the reader's parser (doorkeep/serialframes.py). Cards become
presentations through ``Readers.read`` one after another; frames that fail their checks
only count (``framing_errors`` in ``GET /readers``). A card held on the antenna, which an
RDM6300 repeats many times a second, is one presentation (``repeat_ms``).

A port that cannot be opened, or that goes away (USB converter unplugged), marks the
reader offline and raises one ``reader_offline`` alarm for the outage; the driver retries
with a jittered, capped back-off and clears the alarm when the port is back. Card numbers
never reach a log line.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import serial

from doorkeep.serialframes import CardRead, FrameError, Rdm6300Parser, Repeats, WiegandTextParser
from edge.config.serialreaders import SerialReaderOptions, serial_options
from edge.readers.hub import DRIVERS, Feedback, Readers

if TYPE_CHECKING:
    from edge.config import ReaderSection, SiteConfig

log = logging.getLogger(__name__)

RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0
READ_CHUNK = 4096
ALARM = "reader_offline"

Parser = Rdm6300Parser | WiegandTextParser


def _open(options: SerialReaderOptions) -> serial.Serial:
    """Open the port non-blocking (``timeout=0``: a read returns what is there)."""
    return serial.serial_for_url(options.port, baudrate=options.baudrate, timeout=0, exclusive=True)


def _parser(options: SerialReaderOptions) -> Parser:
    if options.format == "wiegand-text":
        return WiegandTextParser(options.digits)
    return Rdm6300Parser()


class SerialReader:
    """One serial reader: its port, parser, repeat filter and error count."""

    def __init__(
        self,
        reader_id: str,
        options: SerialReaderOptions,
        *,
        open_port: Callable[[SerialReaderOptions], serial.Serial] = _open,
    ) -> None:
        self.reader_id = reader_id
        self.reader_ids = [reader_id]
        self.options = options
        self._open_port = open_port
        self.framing_errors = 0

    async def feedback(self, reader_id: str, signal: Feedback) -> None:
        """RDM6300 modules and converters have no LED or buzzer line doorkeep drives."""

    async def run(self, hub: Readers) -> None:
        """Keep the port open and its reads flowing until cancelled."""
        delay = RETRY_MIN_S
        while True:
            try:
                port = await asyncio.to_thread(self._open_port, self.options)
            except (serial.SerialException, OSError, ValueError) as err:
                await self._down(hub, f"serial port {self.options.port} cannot be opened: {err}")
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            try:
                why = await self._serve(hub, port)
            finally:
                port.close()
            await self._down(hub, f"serial port {self.options.port} went away: {why}")

    async def _down(self, hub: Readers, message: str) -> None:
        state = hub.state(self.reader_id)
        if state.online is not False:
            log.warning("reader %s: %s", self.reader_id, message)
        hub.mark(self.reader_id, online=False, reason=message)
        await hub.alarm(self.reader_id, ALARM, message, port=self.options.port)

    async def _serve(self, hub: Readers, port: serial.Serial) -> str:
        """Read the open port until it fails; return why it failed."""
        loop = asyncio.get_running_loop()
        parser = _parser(self.options)
        repeats = Repeats(self.options.repeat_ms / 1000)
        inbox: asyncio.Queue[CardRead | str] = asyncio.Queue()

        def readable() -> None:
            try:
                data = port.read(READ_CHUNK)
            except (serial.SerialException, OSError) as err:
                loop.remove_reader(fd)
                inbox.put_nowait(str(err) or type(err).__name__)
                return
            for event in parser.feed(data):
                if isinstance(event, FrameError):
                    self._count(hub, event)
                elif repeats.fresh(event.value, loop.time()):
                    inbox.put_nowait(event)

        fd = port.fileno()
        loop.add_reader(fd, readable)
        if hub.state(self.reader_id).online is False:
            log.info("reader %s: serial port %s is back", self.reader_id, self.options.port)
        hub.mark(
            self.reader_id,
            online=True,
            reason=None,
            port=self.options.port,
            format=self.options.format,
            framing_errors=self.framing_errors,
        )
        hub.clear(self.reader_id, ALARM)
        try:
            while True:
                item = await inbox.get()
                if isinstance(item, str):
                    return item
                try:
                    await hub.read(self.reader_id, "rf_card", item.text)
                except Exception:  # one failed presentation must not take the reader down
                    log.exception("reader %s: a read could not be presented", self.reader_id)
        finally:
            loop.remove_reader(fd)

    def _count(self, hub: Readers, error: FrameError) -> None:
        self.framing_errors += 1
        hub.mark(
            self.reader_id, framing_errors=self.framing_errors, last_framing_error=error.reason
        )


def serial_readers(config: SiteConfig, readers: Sequence[ReaderSection]) -> Iterable[SerialReader]:
    """The driver factory for ``DRIVERS["serial"]``: one driver per reader."""
    del config
    return [SerialReader(r.id, serial_options(r.options)) for r in readers]


DRIVERS["serial"] = serial_readers
