"""The bus owner: one task per port puts one prioritised transaction at a time on the wire.

Why our own framer instead of pymodbus' client: the client serialises requests in arrival
order behind a lock, so a door command queued behind a burst of input polls would wait for
all of them, and it folds CRC errors into timeouts. Here every ``request`` goes into a heap
ordered by (priority, arrival); the owner task pops the most urgent one whenever the line is
free, so a COMMAND waits at most for the one frame already on the wire.

Transport: a serial port (pyserial in non-blocking mode, read through the event loop's
reader callback; a pseudo-terminal works the same) or TCP (``tcp://host:port``) for
Ethernet boards, with RTU framing (RTU over TCP) or MBAP framing (Modbus TCP).

Failure handling: each transaction is retried ``retries`` times; a board that exhausts its
retries raises DeviceTimeout and goes offline (logged once); its next answer brings it
back online (logged once). A frame with a bad CRC or that answers the wrong question is
counted and retried, never returned. A write counts as done only when the board confirmed
it exactly (``rtu.check_write_echo``: the FC05/FC06 echo, the FC15/FC16 start and
quantity); a write answered otherwise, or refused with a Modbus exception, is retried the
same way and then raises EchoMismatchError / BoardRefusedError, with the board still
online (it answers; it did not do what it was told).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Literal, Self

import serial

from doorkeep.errors import DeviceError, DeviceTimeout
from doorkeep.link import LinkHealth
from rs485 import rtu
from rs485.stats import BoardStats, Counters

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Bus", "Priority"]

log = logging.getLogger(__name__)

# Scan: every address Modbus allows, a short wait each, so 247 silent addresses take seconds,
# not minutes. Read when a scan starts, so tests can shrink them.
SCAN_ADDRESSES = range(1, 248)
SCAN_TIMEOUT_MS = 50
# The PDU a scan sends: read one coil at 0. A board that refuses it with a Modbus exception
# still answers, which is all a scan wants to know.
SCAN_PDU = rtu.pdu_read_bits(1, 0, 1)
# Reconnect backoff for TCP links: jittered, capped.
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 10.0


class Priority(IntEnum):
    """Lower goes first. Lock/unlock commands before input polling before scans."""

    COMMAND = 0
    POLL = 10
    SCAN = 20


OnlineCallback = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class BoardLimits:
    """Per-address overrides of the bus' timeout and retries."""

    timeout_ms: int
    retries: int

    def __post_init__(self) -> None:
        if not 1 <= self.timeout_ms <= 60_000:
            raise ValueError(f"timeout_ms {self.timeout_ms} is outside 1..60000")
        if not 0 <= self.retries <= 10:
            raise ValueError(f"retries {self.retries} is outside 0..10")


@dataclass(order=True, slots=True)
class _Transaction:
    priority: int
    seq: int
    address: int = field(compare=False)
    pdu: bytes = field(compare=False)
    future: asyncio.Future[bytes] = field(compare=False)
    limits: BoardLimits = field(compare=False)
    track: bool = field(compare=False, default=True)


class _Timeout(Exception):
    pass


class _Link:
    """Bytes in and out of one port; incoming bytes land in ``rx`` and set ``readable``."""

    def __init__(self) -> None:
        self.rx = bytearray()
        self.readable = asyncio.Event()

    async def open(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _feed(self, data: bytes) -> None:
        if data:
            self.rx.extend(data)
            self.readable.set()


class _SerialLink(_Link):
    def __init__(self, port: str, baudrate: int, parity: str) -> None:
        super().__init__()
        self._port_name = port
        self._baudrate = baudrate
        self._parity = parity
        self._serial: serial.Serial | None = None

    async def open(self) -> None:
        # A Linux pseudo-terminal refuses parity settings (EINVAL); the simulator on a pty
        # still times frames with the configured parity, so only the tty setting is dropped.
        parity = serial.PARITY_NONE if self._port_name.startswith("/dev/pts/") else self._parity
        try:
            self._serial = serial.Serial(
                self._port_name,
                baudrate=self._baudrate,
                parity=parity,
                bytesize=8,
                stopbits=1,
                timeout=0,
                write_timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, ValueError) as err:
            raise DeviceError(f"cannot open serial port {self._port_name}: {err}") from err
        asyncio.get_running_loop().add_reader(self._serial.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        assert self._serial is not None
        try:
            self._feed(self._serial.read(self._serial.in_waiting or 1))
        except serial.SerialException:
            log.exception("read failed on %s", self._port_name)

    def write(self, data: bytes) -> None:
        if self._serial is None:
            raise DeviceError(f"serial port {self._port_name} is not open")
        try:
            self._serial.write(data)
        except serial.SerialException as err:
            raise DeviceError(f"write failed on {self._port_name}: {err}") from err

    async def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._serial.fileno())
            self._serial.close()
            self._serial = None


class _TcpLink(_Link):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._next_attempt = 0.0
        self._health = LinkHealth(
            f"{host}:{port}",
            base_s=RECONNECT_MIN_S,
            cap_s=RECONNECT_MAX_S,
            logger=log,
            broke="cannot connect to %(name)s: %(error)s",
            recovered="connected to %(name)s again",
        )

    async def open(self) -> None:
        # Connect lazily in write(): a board that is down at start-up must not stop the daemon.
        return

    async def ensure(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_attempt:
            raise DeviceError(f"{self._host}:{self._port} is unreachable; retrying later")
        try:
            async with asyncio.timeout(2.0):  # not wait_for (3.11 can swallow a cancel)
                reader, writer = await asyncio.open_connection(self._host, self._port)
        except (OSError, TimeoutError) as err:
            self._next_attempt = loop.time() + self._health.failed(err)
            raise DeviceTimeout(f"cannot connect to {self._host}:{self._port}: {err}") from err
        self._health.ok()
        self._writer = writer
        self._reader_task = asyncio.create_task(
            self._pump(reader), name=f"rs485-tcp-{self._host}:{self._port}"
        )

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(4096):
            self._feed(data)
        if self._writer is not None:
            self._writer.close()

    def write(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise DeviceError(f"{self._host}:{self._port} is not connected")
        self._writer.write(data)

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None


def _parse_tcp(port: str) -> tuple[str, int] | None:
    if not port.startswith("tcp://"):
        return None
    host, _, number = port[len("tcp://") :].rpartition(":")
    if not host or not number.isdigit():
        raise ValueError(f"TCP port {port!r} must look like tcp://HOST:PORT")
    return host.strip("[]"), int(number)


class Bus:
    """One RS485 line (or one TCP link), owned by one task. Use as ``async with``.

    ``port`` is a serial device path (``/dev/ttyUSB0``, a pty path) or ``tcp://HOST:PORT``;
    ``framer`` is ``"rtu"`` (serial, RTU over TCP) or ``"mbap"`` (Modbus TCP).
    ``clock`` timestamps statistics (``last_seen``, latency).
    """

    def __init__(
        self,
        bus_id: str,
        port: str,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        timeout_ms: int = 200,
        retries: int = 2,
        framer: Literal["rtu", "mbap"] = "rtu",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity {parity!r} must be N, E or O")
        if framer not in ("rtu", "mbap"):
            raise ValueError(f"framer {framer!r} must be rtu or mbap")
        self.bus_id = bus_id
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.framer = framer
        self.defaults = BoardLimits(timeout_ms, retries)
        self._clock = clock
        tcp = _parse_tcp(port)
        self._serial_timing = tcp is None
        self._link: _Link = _SerialLink(port, baudrate, parity) if tcp is None else _TcpLink(*tcp)
        self._queue: list[_Transaction] = []
        self._wake = asyncio.Event()
        self._seq = itertools.count()
        self._tid = itertools.count(1)
        self._limits: dict[int, BoardLimits] = {}
        self._counters: dict[int, Counters] = {}
        self._callbacks: dict[int, list[OnlineCallback]] = {}
        self._quiet_until = 0.0
        self._busy_since: float | None = None  # loop time the running transaction began
        self._tg: asyncio.TaskGroup | None = None
        self._owner: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._link.open()
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._owner = self._tg.create_task(self._run(), name=f"rs485-owner-{self.bus_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owner is not None:
            self._owner.cancel()
        if self._tg is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._tg.__aexit__(None, None, None)
        self._owner = self._tg = None
        for tx in self._queue:
            if not tx.future.done():
                tx.future.set_exception(DeviceError(f"bus {self.bus_id} closed"))
        self._queue.clear()
        await self._link.close()

    # --- public API ----------------------------------------------------------------------

    def configure_board(
        self, address: int, *, timeout_ms: int | None = None, retries: int | None = None
    ) -> None:
        """Per-board timeout and retries (defaults: the bus' own)."""
        self._limits[address] = BoardLimits(
            self.defaults.timeout_ms if timeout_ms is None else timeout_ms,
            self.defaults.retries if retries is None else retries,
        )

    async def request(self, address: int, pdu: bytes, *, priority: Priority) -> bytes:
        """Send ``pdu`` to ``address`` and return the answer's PDU.

        Raises DeviceTimeout when the board stays silent through its retries, CrcError when
        every answer was garbled, BoardRefusedError when the board refuses the request
        (a write: through its retries), EchoMismatchError when a write is answered but
        never confirmed.
        """
        return await self._submit(address, pdu, priority, self._limits_for(address), track=True)

    def stalled(self, limit_s: float) -> str | None:
        """Why this bus owner is stuck (for the watchdog), or None while it works.

        A transaction is bounded by the timeout times the tries; one running for longer
        than ``limit_s``, or an owner task that ended, means the bus no longer serves.
        """
        if self._owner is not None and self._owner.done():
            return f"bus {self.bus_id}: its owner task has ended"
        if self._busy_since is not None:
            busy = asyncio.get_running_loop().time() - self._busy_since
            if busy > limit_s:
                return f"bus {self.bus_id}: one transaction has run for {busy:.0f} s"
        return None

    def stats(self) -> dict[int, BoardStats]:
        """A snapshot of the statistics of every address this bus has talked to."""
        return {a: c.snapshot() for a, c in sorted(self._counters.items())}

    def online(self, address: int) -> bool | None:
        """True/False once the address has answered/failed; None before."""
        counters = self._counters.get(address)
        return None if counters is None else counters.online

    def on_online_change(self, address: int, callback: OnlineCallback) -> None:
        """Call ``callback(online)`` whenever ``address`` goes offline or comes back."""
        self._callbacks.setdefault(address, []).append(callback)

    async def scan(
        self, addresses: Iterable[int] | None = None, *, timeout_ms: int | None = None
    ) -> list[int]:
        """The addresses that answer (anything, even a Modbus exception), in order.

        Runs at SCAN priority, so door commands still go first; silent addresses leave no
        statistics behind.
        """
        limits = BoardLimits(SCAN_TIMEOUT_MS if timeout_ms is None else timeout_ms, 0)
        found = []
        for address in SCAN_ADDRESSES if addresses is None else addresses:
            try:
                await self._submit(address, SCAN_PDU, Priority.SCAN, limits, track=False)
            except rtu.BoardRefusedError:
                found.append(address)
            except DeviceError:
                continue
            else:
                found.append(address)
        return found

    # --- the owner task -------------------------------------------------------------------

    def _limits_for(self, address: int) -> BoardLimits:
        return self._limits.get(address, self.defaults)

    async def _submit(
        self, address: int, pdu: bytes, priority: Priority, limits: BoardLimits, *, track: bool
    ) -> bytes:
        if self._owner is None or self._owner.done():
            raise DeviceError(f"bus {self.bus_id} is not running (use it inside `async with`)")
        rtu.encode_frame(address, pdu)  # validate here so the caller sees its own mistake
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        tx = _Transaction(int(priority), next(self._seq), address, pdu, future, limits, track)
        heapq.heappush(self._queue, tx)
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            # Sit out the inter-frame silence before choosing: a command that arrives during
            # it still overtakes the poll that would otherwise have been picked already.
            await self._wait_quiet()
            tx = heapq.heappop(self._queue)
            if tx.future.done():  # the caller gave up (cancelled) while queued
                continue
            self._busy_since = asyncio.get_running_loop().time()
            try:
                answer = await self._transact(tx)
            except DeviceError as err:
                if not tx.future.done():
                    tx.future.set_exception(err)
            except Exception as err:  # keep the owner alive; the caller sees the failure
                log.exception("bus %s: transaction failed unexpectedly", self.bus_id)
                if not tx.future.done():
                    tx.future.set_exception(DeviceError(f"bus {self.bus_id}: {err}"))
            else:
                if not tx.future.done():
                    tx.future.set_result(answer)
            finally:
                self._busy_since = None

    async def _wait_quiet(self) -> None:
        delay = self._quiet_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _counter(self, address: int) -> Counters:
        counters = self._counters.get(address)
        if counters is None:
            counters = self._counters[address] = Counters(address)
        return counters

    async def _transact(self, tx: _Transaction) -> bytes:
        loop = asyncio.get_running_loop()
        counters = self._counter(tx.address) if tx.track else Counters(tx.address)
        counters.requests += 1
        last: DeviceError = DeviceTimeout(f"board {tx.address} on {self.bus_id} did not answer")
        for attempt in range(tx.limits.retries + 1):
            if attempt:
                counters.retries += 1
            await self._wait_quiet()
            self._link.rx.clear()
            tid = next(self._tid) & 0xFFFF
            if self.framer == "rtu":
                frame = rtu.encode_frame(tx.address, tx.pdu)
            else:
                frame = rtu.encode_mbap(tid, tx.address, tx.pdu)
            started = self._clock()
            wire = rtu.frame_time(len(frame), self.baudrate, self.parity)
            deadline = (
                loop.time() + (wire if self._serial_timing else 0) + tx.limits.timeout_ms / 1000
            )
            try:
                if isinstance(self._link, _TcpLink):
                    await self._link.ensure()
                self._link.write(frame)
                answer = await self._receive(tx, tid, deadline)
            except _Timeout:
                counters.timeouts += 1
                last = DeviceTimeout(
                    f"board {tx.address} on {self.bus_id} did not answer "
                    f"within {tx.limits.timeout_ms} ms ({tx.limits.retries} retries)"
                )
                continue
            except rtu.CrcError as err:
                counters.crc_errors += 1
                last = err
                continue
            except DeviceTimeout as err:
                counters.timeouts += 1
                last = err
                continue
            except DeviceError as err:
                counters.bad_frames += 1
                last = err
                continue
            finally:
                # The line must be silent for t3.5 before the next frame; on a timeout the
                # late answer may still be arriving, and rx.clear() above drops it.
                if self._serial_timing:
                    self._quiet_until = loop.time() + rtu.t35(self.baudrate, self.parity)
            counters.responses += 1
            counters.last_seen = self._clock()
            counters.record_latency(counters.last_seen - started)
            self._set_online(counters, online=True, track=tx.track)
            writes = tx.pdu[0] in rtu.WRITE_FUNCTIONS
            if answer[0] & 0x80:
                counters.exceptions += 1
                refused = rtu.BoardRefusedError(
                    tx.address, tx.pdu[0], answer[1] if len(answer) > 1 else 0
                )
                if not writes or attempt == tx.limits.retries:
                    raise refused
                last = refused  # a refused write is a failed write: try it again
                continue
            try:
                rtu.check_write_echo(tx.pdu, answer)
            except rtu.EchoMismatchError as err:
                counters.echo_errors += 1
                last = err
                continue
            return answer
        counters.failures += 1
        # A board that answered, only not with the confirmation, is on the bus: the write
        # failed, the board did not go away.
        if not isinstance(last, rtu.EchoMismatchError):
            self._set_online(counters, online=False, track=tx.track)
        raise last

    async def _receive(self, tx: _Transaction, tid: int, deadline: float) -> bytes:
        link = self._link
        loop = asyncio.get_running_loop()
        while True:
            if self.framer == "rtu":
                need = rtu.response_length(bytes(link.rx[:3]))
                if need < 0:
                    raise rtu.CrcError(f"unframeable answer {bytes(link.rx).hex(' ')}")
                if need and len(link.rx) >= need:
                    address, pdu = rtu.check_frame(bytes(link.rx[:need]))
                    del link.rx[:need]
                    if address != tx.address or pdu[0] & 0x7F != tx.pdu[0]:
                        raise DeviceError(
                            f"answer from {address} fc {pdu[0]:#04x} does not match "
                            f"request to {tx.address} fc {tx.pdu[0]:#04x}"
                        )
                    return pdu
            else:
                used, mbap = rtu.decode_mbap(bytes(link.rx))
                if mbap is not None:
                    del link.rx[:used]
                    if mbap.transaction != tid:
                        continue  # a late answer to an earlier attempt: skip it
                    if mbap.unit != tx.address or mbap.pdu[0] & 0x7F != tx.pdu[0]:
                        raise DeviceError(f"answer unit {mbap.unit} does not match the request")
                    return mbap.pdu
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _Timeout
            link.readable.clear()
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel
                # that lands as the answer arrives, and the owner task then never stops
                async with asyncio.timeout(remaining):
                    await link.readable.wait()
            except TimeoutError:
                raise _Timeout from None

    def _set_online(self, counters: Counters, *, online: bool, track: bool) -> None:
        if not track or counters.online is online:
            return
        previous, counters.online = counters.online, online
        if online and previous is False:
            log.info("bus %s: board %d answers again", self.bus_id, counters.address)
        elif not online:
            log.warning("bus %s: board %d stopped answering", self.bus_id, counters.address)
        for callback in self._callbacks.get(counters.address, ()):
            try:
                callback(online)
            except Exception:
                log.exception("online callback for board %d failed", counters.address)
