"""Simulated relay/input boards behind a real pymodbus server, on a pseudo-terminal.

Layout of one ``SimulatedBus``::

    Bus (pyserial) -> tty B  ==pty==  [wire]  ==pty==  tty A <- pymodbus ModbusSerialServer

Two pty pairs joined by an in-process "wire": the client opens tty B's path exactly as it
would open /dev/ttyUSB0; pymodbus' RTU server opens tty A. The wire copies frames between
the two masters and holds each one for its real duration at the bus' baud rate (10 bits a
character in 8N1, 11 with parity), plus t3.5 for the slave to see the end of a request, so
latency measured through it means something.

The boards are models (``SimBoard``) reached from pymodbus through one custom PDU class per
function code: pymodbus does the framing, CRC and addressing; the model does what the
vendor's manual says (Waveshare's "flash on" timer switches its coil off by itself, the
Eletechsup FC06 command word, ...). ``offline`` makes a board silent; ``garble_next(n)``
flips a CRC byte in its next n answers.

``SimulatedTcpServer`` is the same boards behind pymodbus' TCP server on 127.0.0.1, with
MBAP framing (Modbus TCP) or RTU framing (RTU over TCP, as Ethernet relay boards speak).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import tty
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from rs485 import rtu

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["SIM_MODELS", "SimBoard", "SimModel", "SimulatedBus", "SimulatedTcpServer"]

log = logging.getLogger(__name__)

# Waveshare register map (Modbus RTU Relay manual).
WS_FLASH_ON = 0x0200
WS_FLASH_OFF = 0x0400
WS_ALL = 0x00FF
WS_ADDRESS_REG = 0x4000
WS_VERSION_REG = 0x8000
WS_ON, WS_OFF, WS_TOGGLE = 0xFF00, 0x0000, 0x5500
FLASH_UNIT_S = 0.1
# Eletechsup command byte (high byte of the FC06 value); the low byte is a delay in seconds.
EL_OPEN, EL_CLOSE, EL_TOGGLE, EL_LATCH, EL_MOMENTARY, EL_DELAY = 1, 2, 3, 4, 5, 6
EL_UNIT_S = 1.0
SIM_VERSION = 0x0100

# Modbus exception codes.
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3


@dataclass(frozen=True, slots=True)
class SimModel:
    """How a simulated board type behaves: which register map, how many relays and inputs."""

    protocol: Literal["waveshare", "eletechsup", "generic"]
    relays: int
    inputs: int

    def __post_init__(self) -> None:
        if not 0 <= self.relays <= 64 or not 0 <= self.inputs <= 64:
            raise ValueError(f"relays {self.relays} / inputs {self.inputs} outside 0..64")


# Keyed by the catalogue's type names (drivers/catalogue.py); rs485 may not import drivers,
# so the simulated hardware is described here, next to the simulator.
SIM_MODELS: dict[str, SimModel] = {
    "waveshare-rtu-relay-8": SimModel("waveshare", 8, 0),
    "waveshare-rtu-relay-8d": SimModel("waveshare", 8, 8),
    "waveshare-rtu-relay-16": SimModel("waveshare", 16, 0),
    "waveshare-rtu-relay-32": SimModel("waveshare", 32, 0),
    "waveshare-eth-relay-8": SimModel("waveshare", 8, 8),
    "waveshare-eth-relay-8-tcp": SimModel("waveshare", 8, 8),
    "modbus-tcp-relay-8": SimModel("generic", 8, 8),
    "modbus-tcp-relay-4": SimModel("generic", 4, 4),
    "eletechsup-r4d3b16": SimModel("eletechsup", 4, 0),
    "eletechsup-r4d3b16-8": SimModel("eletechsup", 8, 0),
    "eletechsup-r4d3b16-16": SimModel("eletechsup", 16, 0),
    "modbus-generic": SimModel("generic", 8, 8),
}


def _bits_pdu(function: int, bits: list[bool]) -> bytes:
    packed = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            packed[i // 8] |= 1 << (i % 8)
    return bytes((function, len(packed))) + bytes(packed)


def _exception(function: int, code: int) -> bytes:
    return bytes((function | 0x80, code))


class SimBoard:
    """One simulated board: coils, discrete inputs, timers, and fault switches."""

    def __init__(self, address: int, type_name: str) -> None:
        if type_name not in SIM_MODELS:
            known = ", ".join(sorted(SIM_MODELS))
            raise ValueError(f"no simulator for board type {type_name!r}; known: {known}")
        self.address = address
        self.type_name = type_name
        self.model = SIM_MODELS[type_name]
        self.coils: list[bool] = [False] * self.model.relays
        self.inputs: list[bool] = [False] * self.model.inputs
        self.offline = False
        self.requests: list[bytes] = []  # every request PDU this board received, in order
        self._garble = 0
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def set_input(self, n: int, value: bool) -> None:
        """Set discrete input ``n`` (1-based, like the terminal labels)."""
        if not 1 <= n <= len(self.inputs):
            raise ValueError(f"input {n} is outside 1..{len(self.inputs)}")
        self.inputs[n - 1] = value

    def garble_next(self, n: int = 1) -> None:
        """Corrupt the CRC of this board's next ``n`` answers."""
        self._garble += n

    def clear_faults(self) -> None:
        """Back to a healthy board: answering, nothing pending to garble."""
        self.offline = False
        self._garble = 0

    def take_garble(self) -> bool:
        """True (and one fewer pending) when the next answer must be garbled."""
        if self._garble > 0:
            self._garble -= 1
            return True
        return False

    def close(self) -> None:
        """Cancel pending timers (the simulator is going away)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # --- behaviour -----------------------------------------------------------------------

    def _later(self, channel: int, seconds: float, value: bool) -> None:
        """Set coil ``channel`` (0-based) to ``value`` after ``seconds``, like the board's timer."""
        if (old := self._timers.pop(channel, None)) is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(channel, None)
            self.coils[channel] = value

        self._timers[channel] = asyncio.get_running_loop().call_later(seconds, fire)

    def _cancel_timer(self, channel: int) -> None:
        if (old := self._timers.pop(channel, None)) is not None:
            old.cancel()

    def handle(self, pdu: bytes) -> bytes | None:
        """The answer PDU to a request PDU, or None when the board stays silent."""
        if self.offline:
            return None
        self.requests.append(pdu)
        function = pdu[0]
        handler = _HANDLERS[self.model.protocol].get(function)
        if handler is None or len(pdu) < 5:
            return _exception(function, ILLEGAL_FUNCTION)
        return handler(self, pdu)

    def _read_bits(self, pdu: bytes, source: list[bool]) -> bytes:
        start, count = struct.unpack(">HH", pdu[1:5])
        if count < 1 or start + count > len(source):
            return _exception(pdu[0], ILLEGAL_ADDRESS)
        return _bits_pdu(pdu[0], source[start : start + count])

    def _coils(self, pdu: bytes) -> bytes:
        return self._read_bits(pdu, self.coils)

    def _inputs(self, pdu: bytes) -> bytes:
        return self._read_bits(pdu, self.inputs)

    def _ws_registers(self, pdu: bytes) -> bytes:
        start, count = struct.unpack(">HH", pdu[1:5])
        table = {WS_ADDRESS_REG: self.address, WS_VERSION_REG: SIM_VERSION}
        if count != 1 or start not in table:
            return _exception(pdu[0], ILLEGAL_ADDRESS)
        return bytes((pdu[0], 2)) + struct.pack(">H", table[start])

    def _ws_write_coil(self, pdu: bytes) -> bytes:
        address, value = struct.unpack(">HH", pdu[1:5])
        n = len(self.coils)
        if address < n or address == WS_ALL:
            channels = range(n) if address == WS_ALL else (address,)
            if value not in (WS_ON, WS_OFF, WS_TOGGLE):
                return _exception(5, ILLEGAL_VALUE)
            for ch in channels:
                self._cancel_timer(ch)
                self.coils[ch] = (not self.coils[ch]) if value == WS_TOGGLE else value == WS_ON
        elif WS_FLASH_ON <= address < WS_FLASH_ON + n:
            ch = address - WS_FLASH_ON
            self.coils[ch] = True
            self._later(ch, value * FLASH_UNIT_S, value=False)
        elif WS_FLASH_OFF <= address < WS_FLASH_OFF + n:
            ch = address - WS_FLASH_OFF
            self.coils[ch] = False
            self._later(ch, value * FLASH_UNIT_S, value=True)
        else:
            return _exception(5, ILLEGAL_ADDRESS)
        return pdu  # FC05 answers with an echo

    def _write_coils(self, pdu: bytes) -> bytes:
        start, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if start + count > len(self.coils) or len(pdu) != 6 + nbytes:
            return _exception(15, ILLEGAL_ADDRESS)
        for i in range(count):
            self._cancel_timer(start + i)
            self.coils[start + i] = bool(pdu[6 + i // 8] >> (i % 8) & 1)
        return pdu[:5]

    def _generic_write_coil(self, pdu: bytes) -> bytes:
        address, value = struct.unpack(">HH", pdu[1:5])
        if address >= len(self.coils):
            return _exception(5, ILLEGAL_ADDRESS)
        if value not in (WS_ON, WS_OFF):
            return _exception(5, ILLEGAL_VALUE)
        self.coils[address] = value == WS_ON
        return pdu

    def _el_registers(self, pdu: bytes) -> bytes:
        start, count = struct.unpack(">HH", pdu[1:5])
        if start < 1 or count < 1 or start + count - 1 > len(self.coils):
            return _exception(3, ILLEGAL_ADDRESS)
        values = [int(c) for c in self.coils[start - 1 : start - 1 + count]]
        return bytes((3, 2 * count)) + struct.pack(f">{count}H", *values)

    def _el_write(self, pdu: bytes) -> bytes:
        register, value = struct.unpack(">HH", pdu[1:5])
        command, delay = value >> 8, value & 0xFF
        if not 1 <= register <= len(self.coils):
            return _exception(6, ILLEGAL_ADDRESS)
        ch = register - 1
        self._cancel_timer(ch)
        if command == EL_OPEN:
            self.coils[ch] = True
        elif command == EL_CLOSE:
            self.coils[ch] = False
        elif command == EL_TOGGLE:
            self.coils[ch] = not self.coils[ch]
        elif command == EL_LATCH:
            for i in range(len(self.coils)):
                self.coils[i] = i == ch
        elif command == EL_MOMENTARY:
            self.coils[ch] = True
            self._later(ch, EL_UNIT_S, value=False)
        elif command == EL_DELAY:
            self.coils[ch] = True
            self._later(ch, delay * EL_UNIT_S, value=False)
        else:
            return _exception(6, ILLEGAL_VALUE)
        return pdu


_Handler = Callable[[SimBoard, bytes], bytes]
# Function code tables per register map: data, not branches.
_HANDLERS: dict[str, dict[int, _Handler]] = {
    "waveshare": {
        1: SimBoard._coils,
        2: SimBoard._inputs,
        3: SimBoard._ws_registers,
        5: SimBoard._ws_write_coil,
        15: SimBoard._write_coils,
    },
    "eletechsup": {3: SimBoard._el_registers, 6: SimBoard._el_write},
    "generic": {
        1: SimBoard._coils,
        2: SimBoard._inputs,
        5: SimBoard._generic_write_coil,
        15: SimBoard._write_coils,
    },
}


def _pdu_classes(boards: dict[int, SimBoard]) -> list[type[ModbusPDU]]:
    """One pymodbus PDU class per function code, answering from our board models."""
    classes: list[type[ModbusPDU]] = []
    for function, size, count_pos in ((1, 8, 0), (2, 8, 0), (3, 8, 0), (4, 8, 0), (5, 8, 0),
                                      (6, 8, 0), (15, 0, 6), (16, 0, 6)):  # fmt: skip

        class RawPdu(ModbusPDU):
            function_code = function
            rtu_frame_size = size
            rtu_byte_count_pos = count_pos

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.payload = b""

            def decode(self, data: bytes) -> None:
                self.payload = bytes(data)

            def encode(self) -> bytes:
                return self.payload

            async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
                del context  # pymodbus' datastore is bypassed: the board model answers
                board = boards.get(device_id)
                answer = None
                if board is not None:
                    answer = board.handle(bytes((self.function_code,)) + self.payload)
                if answer is None:
                    # ignore_missing_devices=True: pymodbus then sends nothing at all.
                    raise NoSuchIdException(f"board {device_id} is silent")
                response = type(self)(dev_id=device_id, transaction_id=self.transaction_id)
                response.function_code = answer[0]
                response.payload = answer[1:]
                return response

        RawPdu.__name__ = f"SimPdu{function}"
        classes.append(RawPdu)
    return classes


def _sim_devices(addresses: list[int]) -> list[SimDevice]:
    # pymodbus wants a datastore per device id; ours answer through the custom PDUs above.
    return [
        SimDevice(id=a, simdata=[SimData(0, values=0, datatype=DataType.REGISTERS)])
        for a in addresses
    ]


def _garbler(boards: dict[int, SimBoard], address_at: int) -> Callable[[bool, bytes], bytes]:
    def trace_packet(sending: bool, packet: bytes) -> bytes:
        if sending and len(packet) > address_at:
            board = boards.get(packet[address_at])
            if board is not None and board.take_garble():
                return packet[:-1] + bytes((packet[-1] ^ 0xFF,))
        return packet

    return trace_packet


def _make_boards(boards: dict[int, str]) -> dict[int, SimBoard]:
    if not boards:
        raise ValueError("a simulated bus needs at least one board")
    for address in boards:
        if not 1 <= address <= rtu.MAX_ADDRESS:
            raise ValueError(f"board address {address} is outside 1..{rtu.MAX_ADDRESS}")
    return {a: SimBoard(a, t) for a, t in boards.items()}


class _Wire:
    """Joins two pty masters; holds every frame for its wire time (half duplex, in order)."""

    def __init__(
        self, client_fd: int, server_fd: int, baudrate: int, parity: str, delays: bool
    ) -> None:
        self._fds = {client_fd: server_fd, server_fd: client_fd}
        self._client_fd = client_fd
        self._baudrate = baudrate
        self._parity = parity
        self._delays = delays
        self._bufs: dict[int, bytearray] = {client_fd: bytearray(), server_fd: bytearray()}
        self._first: dict[int, float] = {}
        self._queue: asyncio.Queue[tuple[float, int, bytes]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._deliver(), name="rs485-sim-wire")
        for fd in self._fds:
            self._loop.add_reader(fd, self._readable, fd)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            return
        buf = self._bufs[fd]
        if not buf:
            self._first[fd] = self._loop.time()
        buf.extend(data)
        while buf:
            length_of = rtu.request_length if fd == self._client_fd else rtu.response_length
            n = length_of(bytes(buf[:7]))
            if n < 0:
                n = len(buf)  # unframeable noise: pass it on as it is
            if n == 0 or len(buf) < n:
                return
            frame = bytes(buf[:n])
            del buf[:n]
            due = self._first[fd]
            if self._delays:
                due += rtu.frame_time(n, self._baudrate, self._parity)
                if fd == self._client_fd:  # the slave sees the end of a request after t3.5
                    due += rtu.t35(self._baudrate, self._parity)
            self._queue.put_nowait((due, self._fds[fd], frame))
            self._first[fd] = self._loop.time()

    async def _deliver(self) -> None:
        while True:
            due, fd, frame = await self._queue.get()
            delay = due - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            with contextlib.suppress(OSError):
                os.write(fd, frame)

    async def close(self) -> None:
        for fd in self._fds:
            self._loop.remove_reader(fd)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SimulatedBus:
    """Several simulated boards on one RS485 line; ``port`` is the tty path a Bus opens.

    >>> async with SimulatedBus({1: "waveshare-rtu-relay-8d"}) as sim:
    ...     async with Bus("sim", sim.port) as bus: ...
    """

    def __init__(
        self,
        boards: dict[int, str],
        *,
        baudrate: int = 9600,
        parity: str = "N",
        wire_delays: bool = True,
    ) -> None:
        self.baudrate = baudrate
        self.parity = parity
        self.wire_delays = wire_delays
        self._boards = _make_boards(boards)
        self.port = ""
        self._fds: list[int] = []
        self._server: ModbusSerialServer | None = None
        self._wire: _Wire | None = None

    def board(self, address: int) -> SimBoard:
        """The simulated board at ``address`` (KeyError if there is none)."""
        return self._boards[address]

    @property
    def addresses(self) -> list[int]:
        """The simulated addresses, ascending."""
        return sorted(self._boards)

    async def __aenter__(self) -> Self:
        server_master, server_slave = os.openpty()
        client_master, client_slave = os.openpty()
        # Raw mode before anyone opens them: no echo, no line discipline mangling 0x0D/0x11.
        for fd in (server_slave, client_slave):
            tty.setraw(fd)
        self._fds = [server_master, server_slave, client_master, client_slave]
        self.port = os.ttyname(client_slave)
        self._wire = _Wire(
            client_master, server_master, self.baudrate, self.parity, self.wire_delays
        )
        self._server = ModbusSerialServer(
            _sim_devices(self.addresses),
            framer=FramerType.RTU,
            port=os.ttyname(server_slave),
            baudrate=self.baudrate,
            parity="N",  # a pty refuses parity; the wire above times frames with it
            ignore_missing_devices=True,
            custom_pdu=_pdu_classes(self._boards),
            trace_packet=_garbler(self._boards, 0),
        )
        await self._server.serve_forever(background=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        if self._wire is not None:
            await self._wire.close()
            self._wire = None
        for board in self._boards.values():
            board.close()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SimulatedTcpServer:
    """Simulated Ethernet boards: pymodbus' TCP server on 127.0.0.1:``port``.

    ``framing="mbap"`` is Modbus TCP; ``"rtu"`` is RTU over TCP (no MBAP header, CRC kept).
    """

    def __init__(self, boards: dict[int, str], *, framing: Literal["mbap", "rtu"] = "mbap") -> None:
        self.framing = framing
        self._boards = _make_boards(boards)
        self.host = "127.0.0.1"
        self.port = 0
        self._server: ModbusTcpServer | None = None

    def board(self, address: int) -> SimBoard:
        """The simulated board with unit id / address ``address``."""
        return self._boards[address]

    async def __aenter__(self) -> Self:
        self.port = free_port()
        self._server = ModbusTcpServer(
            _sim_devices(sorted(self._boards)),
            framer=FramerType.SOCKET if self.framing == "mbap" else FramerType.RTU,
            address=(self.host, self.port),
            ignore_missing_devices=True,
            custom_pdu=_pdu_classes(self._boards),
            trace_packet=_garbler(self._boards, 6 if self.framing == "mbap" else 0),
        )
        await self._server.serve_forever(background=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        for board in self._boards.values():
            board.close()
