"""An independent Modbus TCP peer for tests: a plain pymodbus server behind a fault proxy.

The server is pymodbus' own ``ModbusTcpServer`` with its own datastore (1024 coils): none
of our simulator's board models, so what it answers is what the Modbus spec and pymodbus
say, not what we think a board says. Between our bus and the server sits ``FaultProxy``, a
small asyncio TCP relay that can break the conversation the way a bad board or line does:

- ``wrong_echo``: an FC05 request is delivered to coil ``address | 0x0200`` instead, so the
  server (honestly) echoes the other coil: ``01 05 02 04 FF 00`` for a write to relay 5,
  and relay 5 does not switch;
- ``garble``: every byte of each answer's PDU is flipped (line noise the MBAP header lets
  through: Modbus TCP has no CRC);
- ``slow``: each answer is held ``slow_s`` seconds (longer than the bus' timeout);
- ``wrong_unit``: answers come back from unit id + 1 (another board answering);
- ``unplugged`` is ``ModbusPeer.unplug()``: the pymodbus server is stopped; ``plug()``
  starts a fresh one on the same port.

``ModbusPeer(strict_fc05=True)`` makes the pymodbus server itself hold to the Modbus spec
for FC05 (Write Single Coil: the value is 0xFF00 or 0x0000, anything else is an Illegal
Data Value, exception 03). pymodbus does not check this on its own: it decodes the value
as ``bool(value)``, so a Waveshare "flash" value such as 0x0009 would switch the coil on
and leave it on. ``rejected`` lists the values refused.

``coils(start, n)`` reads the server's coils with pymodbus' own client, straight from the
server (not through the proxy): the relay states as the peer holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import TYPE_CHECKING, Any, Literal, Self

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import WriteSingleCoilRequest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from rs485.sim import free_port

if TYPE_CHECKING:
    from types import TracebackType

Fault = Literal["wrong_echo", "garble", "slow", "wrong_unit"]
FAULTS: tuple[Fault, ...] = ("wrong_echo", "garble", "slow", "wrong_unit")
COILS = 1024
MBAP = 7  # bytes of the MBAP header, unit id included


def _device(unit: int) -> SimDevice:
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=[False] * COILS, datatype=DataType.BITS)],
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)],
            [SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)],
        ),
    )


COIL_ON, COIL_OFF = 0xFF00, 0x0000


def _strict_write_coil(rejected: list[int]) -> type[WriteSingleCoilRequest]:
    """pymodbus' FC05 request, refusing values the spec forbids (and noting them)."""

    class StrictWriteSingleCoil(WriteSingleCoilRequest):
        raw_value = COIL_OFF

        def decode(self, data: bytes) -> None:
            super().decode(data)
            (self.raw_value,) = struct.unpack(">H", data[2:4])

        async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
            if self.raw_value not in (COIL_ON, COIL_OFF):
                rejected.append(self.raw_value)
                return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_VALUE)
            return await super().datastore_update(context, device_id)

    return StrictWriteSingleCoil


def _frames(buf: bytearray) -> list[bytes]:
    """Whole MBAP frames at the start of ``buf`` (removed from it)."""
    out = []
    while len(buf) >= MBAP:
        (length,) = struct.unpack(">H", buf[4:6])
        if len(buf) < 6 + length:
            break
        out.append(bytes(buf[: 6 + length]))
        del buf[: 6 + length]
    return out


class FaultProxy:
    """127.0.0.1:``port`` relays Modbus TCP frames to ``upstream``, breaking them on demand."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.fault: Fault | None = None
        self.only_coils: set[int] | None = None  # wrong_echo only for these coils (None: all)
        self.slow_s = 0.5
        self.requests: list[bytes] = []  # every request PDU seen, in order
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        self.port = free_port()
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    def _spawn(self, coro: object, name: str) -> None:
        task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()  # the board is unplugged: the line is dead
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        self._spawn(self._pump(up_reader, writer, answers=True), "peer-proxy-answers")
        await self._pump(reader, up_writer, answers=False)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        buf = bytearray()
        try:
            while data := await reader.read(4096):
                buf.extend(data)
                for frame in _frames(buf):
                    out = self._answer(frame) if answers else self._request(frame)
                    if answers and self.fault == "slow":
                        self._spawn(self._late(writer, out), "peer-proxy-late")
                        continue
                    writer.write(out)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _late(self, writer: asyncio.StreamWriter, frame: bytes) -> None:
        await asyncio.sleep(self.slow_s)
        if not writer.is_closing():
            writer.write(frame)

    def _request(self, frame: bytes) -> bytes:
        pdu = frame[MBAP:]
        self.requests.append(pdu)
        if self.fault == "wrong_echo" and pdu[0] == 0x05:
            (address,) = struct.unpack(">H", pdu[1:3])
            if self.only_coils is not None and address not in self.only_coils:
                return frame
            return frame[:MBAP] + pdu[:1] + struct.pack(">H", address | 0x0200) + pdu[3:]
        return frame

    def _answer(self, frame: bytes) -> bytes:
        if self.fault == "garble":
            return frame[:MBAP] + bytes(b ^ 0xFF for b in frame[MBAP:])
        if self.fault == "wrong_unit":
            return frame[:6] + bytes(((frame[6] + 1) & 0xFF,)) + frame[MBAP:]
        return frame


class ModbusPeer:
    """A plain pymodbus Modbus TCP server (unit ``unit``) with a ``FaultProxy`` in front.

    Point the board at ``proxy.port``; ``coils()`` reads the server directly.
    """

    def __init__(self, unit: int = 1, *, strict_fc05: bool = False) -> None:
        self.unit = unit
        self.strict_fc05 = strict_fc05
        self.rejected: list[int] = []  # FC05 values the strict server refused
        self.server_port = free_port()
        self.proxy = FaultProxy(self.server_port)
        self._server: ModbusTcpServer | None = None

    async def __aenter__(self) -> Self:
        await self.plug()
        await self.proxy.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.proxy.__aexit__(exc_type, exc, tb)
        await self.unplug()

    @property
    def port(self) -> int:
        """Where the board under test connects (the proxy)."""
        return self.proxy.port

    async def plug(self) -> None:
        """Start (again) the pymodbus server; its coils start all off."""
        self._server = ModbusTcpServer(
            [_device(self.unit)],
            framer=FramerType.SOCKET,
            address=("127.0.0.1", self.server_port),
            custom_pdu=[_strict_write_coil(self.rejected)] if self.strict_fc05 else None,
        )
        await self._server.serve_forever(background=True)

    async def unplug(self) -> None:
        """Stop the pymodbus server: nothing answers any more."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def coils(self, start: int, count: int = 1) -> list[bool]:
        """The server's coils ``start..start+count-1``, read with pymodbus' own client."""
        client = AsyncModbusTcpClient("127.0.0.1", port=self.server_port)
        try:
            await client.connect()
            answer = await client.read_coils(start, count=count, device_id=self.unit)
            return list(answer.bits[:count])
        finally:
            client.close()
