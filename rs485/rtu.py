"""Modbus RTU and Modbus TCP (MBAP) framing: pure functions, no I/O.

Theory, in short. An RTU frame is ``address | PDU | CRC16 (little-endian)`` and has no
length field: a frame ends when the line has been silent for 3.5 character times. A master
that waits for the silence pays t3.5 on every answer, so instead we compute the expected
length of a frame from its function code (and byte count, where there is one), exactly as
the slaves themselves do. ``request_length``/``response_length`` follow the pymodbus
framer convention: they return the total length once enough bytes are there to know it,
and 0 while more bytes are needed.

Timing: a character is 1 start + 8 data + (parity) + 1 stop bits, i.e. 10 bits in 8N1 and
11 with parity. t3.5 is 3.5 character times, fixed at 1.75 ms above 19200 baud (Modbus over
serial line spec, section 2.5.1.1).

MBAP (Modbus TCP) is ``transaction id | protocol 0 | length | unit id | PDU`` with no CRC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from doorkeep.errors import DeviceError

__all__ = [
    "WRITE_FUNCTIONS",
    "BoardRefusedError",
    "CrcError",
    "EchoMismatchError",
    "char_time",
    "check_frame",
    "check_write_echo",
    "crc16",
    "decode_mbap",
    "encode_frame",
    "encode_mbap",
    "frame_time",
    "parse_bits",
    "parse_registers",
    "pdu_read_bits",
    "pdu_read_registers",
    "pdu_write_coil",
    "pdu_write_coils",
    "pdu_write_register",
    "request_length",
    "response_length",
    "t35",
]

MAX_ADDRESS = 247
FAST_BAUD = 19200
FAST_T35 = 0.00175  # seconds; fixed above 19200 baud by the Modbus serial line spec

# Function codes whose request has a fixed 8-byte RTU frame (address, fc, 4 bytes, crc).
_FIXED_REQUEST = frozenset({1, 2, 3, 4, 5, 6})
# Function codes whose request carries a byte count at offset 6 (fc 15/16).
_COUNTED_REQUEST = frozenset({15, 16})
# Responses: read functions carry a byte count at offset 2; writes echo 4 bytes.
_COUNTED_RESPONSE = frozenset({1, 2, 3, 4})
_ECHO_RESPONSE = frozenset({5, 6, 15, 16})


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


class CrcError(DeviceError):
    """A frame arrived whole but its CRC does not match: noise or a garbled line."""


class BoardRefusedError(DeviceError):
    """The slave answered with a Modbus exception response (function code | 0x80)."""

    def __init__(self, address: int, function: int, code: int) -> None:
        super().__init__(
            f"board {address} refused function {function:#04x} with exception code {code}"
        )
        self.address = address
        self.function = function
        self.code = code


class EchoMismatchError(DeviceError):
    """A write was answered, but not with the confirmation the Modbus spec defines for it.

    The board may have written something else (another coil, another value) or nothing:
    the write is not confirmed.
    """

    def __init__(self, request: bytes, response: bytes) -> None:
        super().__init__(
            f"write {request.hex(' ')} was answered {response.hex(' ')}, not confirmed"
        )
        self.request = request
        self.response = response


def _check_address(address: int) -> None:
    if not 0 <= address <= MAX_ADDRESS:
        raise ValueError(f"Modbus address {address} is outside 0..{MAX_ADDRESS}")


def encode_frame(address: int, pdu: bytes) -> bytes:
    """``address | pdu | crc`` (CRC low byte first, as on the wire)."""
    _check_address(address)
    if not pdu:
        raise ValueError("a PDU needs at least a function code")
    body = bytes((address,)) + pdu
    return body + struct.pack("<H", crc16(body))


def check_frame(frame: bytes) -> tuple[int, bytes]:
    """Split a whole RTU frame into ``(address, pdu)``; raise CrcError if it is damaged."""
    if len(frame) < 4:
        raise CrcError(f"frame of {len(frame)} bytes is too short")
    body, (crc,) = frame[:-2], struct.unpack("<H", frame[-2:])
    if crc16(body) != crc:
        raise CrcError(f"CRC mismatch in frame {frame.hex(' ')}")
    return body[0], body[1:]


def request_length(buf: bytes) -> int:
    """Total length of the RTU request at the start of ``buf``; 0 = need more; -1 = unknown fc."""
    if len(buf) < 2:
        return 0
    function = buf[1]
    if function in _FIXED_REQUEST:
        return 8
    if function in _COUNTED_REQUEST:
        return 0 if len(buf) < 7 else 9 + buf[6]
    return -1


def response_length(buf: bytes) -> int:
    """Total length of the RTU response at the start of ``buf``; 0 = need more; -1 = unknown."""
    if len(buf) < 2:
        return 0
    function = buf[1]
    if function & 0x80:
        return 5
    if function in _COUNTED_RESPONSE:
        return 0 if len(buf) < 3 else 5 + buf[2]
    if function in _ECHO_RESPONSE:
        return 8
    return -1


def char_time(baudrate: int, parity: str = "N") -> float:
    """Seconds per character: 10 bits in 8N1, 11 with a parity bit."""
    if baudrate <= 0:
        raise ValueError(f"baud rate {baudrate} must be positive")
    bits = 10 if parity == "N" else 11
    return bits / baudrate


def frame_time(nbytes: int, baudrate: int, parity: str = "N") -> float:
    """Seconds a frame of ``nbytes`` occupies the wire."""
    return nbytes * char_time(baudrate, parity)


def t35(baudrate: int, parity: str = "N") -> float:
    """The inter-frame silence: 3.5 characters, 1.75 ms above 19200 baud."""
    if baudrate > FAST_BAUD:
        return FAST_T35
    return 3.5 * char_time(baudrate, parity)


# --- PDU builders and parsers (the subset relay and input boards use) -------------------


def _u16(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} {value} is outside 0..65535")


def pdu_read_bits(function: int, start: int, count: int) -> bytes:
    """FC01 (coils) or FC02 (discrete inputs) for ``count`` bits from ``start``."""
    if function not in (1, 2):
        raise ValueError(f"function {function} does not read bits")
    _u16("start", start)
    if not 1 <= count <= 2000:
        raise ValueError(f"bit count {count} is outside 1..2000")
    return struct.pack(">BHH", function, start, count)


def pdu_read_registers(function: int, start: int, count: int) -> bytes:
    """FC03 (holding) or FC04 (input registers) for ``count`` registers from ``start``."""
    if function not in (3, 4):
        raise ValueError(f"function {function} does not read registers")
    _u16("start", start)
    if not 1 <= count <= 125:
        raise ValueError(f"register count {count} is outside 1..125")
    return struct.pack(">BHH", function, start, count)


def pdu_write_coil(address: int, value: int) -> bytes:
    """FC05 with a raw 16-bit value (0xFF00 on, 0x0000 off; vendors add their own)."""
    _u16("coil", address)
    _u16("value", value)
    return struct.pack(">BHH", 5, address, value)


def pdu_write_register(address: int, value: int) -> bytes:
    """FC06: one holding register."""
    _u16("register", address)
    _u16("value", value)
    return struct.pack(">BHH", 6, address, value)


def pdu_write_coils(start: int, values: tuple[bool, ...]) -> bytes:
    """FC15: several coils from ``start``."""
    _u16("start", start)
    if not 1 <= len(values) <= 1968:
        raise ValueError(f"coil count {len(values)} is outside 1..1968")
    packed = bytearray((len(values) + 7) // 8)
    for i, bit in enumerate(values):
        if bit:
            packed[i // 8] |= 1 << (i % 8)
    return struct.pack(">BHHB", 15, start, len(values), len(packed)) + bytes(packed)


def _payload(request: bytes, response: bytes) -> bytes:
    if not response or response[0] != request[0]:
        raise DeviceError(f"answer {response.hex(' ')} does not match request {request.hex(' ')}")
    if len(response) < 2 or response[1] != len(response) - 2:
        raise DeviceError(f"answer {response.hex(' ')} has a wrong byte count")
    return response[2:]


def parse_bits(request: bytes, response: bytes) -> tuple[bool, ...]:
    """The bits a FC01/FC02 ``response`` carries for ``request`` (LSB of byte 0 first)."""
    (count,) = struct.unpack(">H", request[3:5])
    data = _payload(request, response)
    if len(data) != (count + 7) // 8:
        raise DeviceError(f"answer carries {len(data)} bytes for {count} bits")
    return tuple(bool(data[i // 8] >> (i % 8) & 1) for i in range(count))


def parse_registers(request: bytes, response: bytes) -> tuple[int, ...]:
    """The registers a FC03/FC04 ``response`` carries for ``request``."""
    (count,) = struct.unpack(">H", request[3:5])
    data = _payload(request, response)
    if len(data) != 2 * count:
        raise DeviceError(f"answer carries {len(data)} bytes for {count} registers")
    return struct.unpack(f">{count}H", data)


# --- write confirmations ---------------------------------------------------------------

#: Function codes that write; their answer must confirm the write (``check_write_echo``).
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})


def check_write_echo(request: bytes, response: bytes) -> None:
    """Raise EchoMismatchError unless ``response`` confirms the write ``request`` exactly.

    Modbus application protocol v1.1b3: FC05 (write single coil) and FC06 (write single
    register) answer with an echo of the whole request PDU (sections 6.5, 6.6); FC15 (write
    multiple coils) and FC16 (write multiple registers) answer with the function code, the
    starting address and the quantity of the request, 5 bytes (sections 6.11, 6.12). An
    exception answer (function code | 0x80) confirms nothing either. Requests that do not
    write pass unchecked.
    """
    if not request or request[0] not in WRITE_FUNCTIONS:
        return
    expected = request if request[0] in (5, 6) else request[:5]
    if response != expected:
        raise EchoMismatchError(request, response)


# --- MBAP -------------------------------------------------------------------------------

MBAP_HEADER = 7


@dataclass(frozen=True, slots=True)
class MbapFrame:
    """One decoded Modbus TCP frame."""

    transaction: int
    unit: int
    pdu: bytes

    def __post_init__(self) -> None:
        _u16("transaction id", self.transaction)
        if not 0 <= self.unit <= 255:
            raise ValueError(f"unit id {self.unit} is outside 0..255")


def encode_mbap(transaction: int, unit: int, pdu: bytes) -> bytes:
    """``tid | 0 | len | unit | pdu``."""
    MbapFrame(transaction, unit, pdu)  # validates
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu


def decode_mbap(buf: bytes) -> tuple[int, MbapFrame | None]:
    """``(bytes used, frame)``; ``(0, None)`` while more bytes are needed."""
    if len(buf) < MBAP_HEADER:
        return 0, None
    transaction, protocol, length, unit = struct.unpack(">HHHB", buf[:MBAP_HEADER])
    if protocol != 0 or not 2 <= length <= 254:
        raise DeviceError(f"not a Modbus TCP header: {buf[:MBAP_HEADER].hex(' ')}")
    total = 6 + length
    if len(buf) < total:
        return 0, None
    return total, MbapFrame(transaction, unit, bytes(buf[MBAP_HEADER:total]))
