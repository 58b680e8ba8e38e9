"""What the OSDP driver needs below libosdp: the serial channel and the reads it decodes.

- ``SerialChannel``: the byte stream libosdp's control panel talks through (a pyserial
  port, non-blocking). It also watches the replies going by (``ReplyWatch``): a reader
  that answers on the line while libosdp holds it offline is there, but refused (another
  key, no Secure Channel) — not a cut cable.
- ``card_value``: an OSDP card read (raw Wiegand bits or formatted ASCII data) as the
  credential value ``doorkeep/cards.py`` normalises.
- ``Keypad``: keypad presses into PINs (digits, ``#``/CR = enter, ``*`` = clear, a
  timeout between keys).

None of this logs or keeps a card number or a PIN beyond the read it belongs to.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import osdp
import serial

SOM = 0x53
_MAX_PACKET = 1500
#: Keys that end or clear a PIN entry. OSDP readers send ``#`` as 0x0D and ``*`` as 0x7F
#: (OSDP 2.1.7, osdp_KEYPAD); some send the ASCII characters.
_ENTER = frozenset(b"#\r")
_CLEAR = frozenset(b"*\x7f")
MAX_PIN_DIGITS = 12


def wiegand_card(bits: str) -> str:
    """A raw Wiegand bit image (``"0101..."``) as a card value.

    The one place the driver turns Wiegand bits into a card: the ``wNN:<bits>`` form,
    which doorkeep/cards.py decodes with doorkeep/wiegand.py (H10301, H10306, Corporate
    1000, H10302/H10304; parity checked), so a read and an enrolled facility+number match.
    """
    return f"w{len(bits)}:{bits}"


def card_value(event: dict[str, Any]) -> str:
    """The credential value of an OSDP card read event (ValueError if it has none)."""
    data = bytes(event.get("data") or b"")
    fmt = event.get("format")
    if fmt == osdp.CardFormat.ASCII:
        text = data.decode("ascii", errors="strict").strip()
        if not text:
            raise ValueError("card read carries no data")
        return text
    length = int(event.get("length") or 0)
    if length <= 0 or length > len(data) * 8:
        raise ValueError("card read has no bits")
    bits = "".join(format(b, "08b") for b in data)[:length]
    if fmt == osdp.CardFormat.Wiegand:
        return wiegand_card(bits)
    return f"0x{int(bits, 2):X}"  # raw, format unspecified: the bits as one number


class Keypad:
    """Collects one reader's key presses into PINs."""

    def __init__(
        self, timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._digits: list[str] = []
        self._last = 0.0

    def press(self, keys: bytes) -> list[str]:
        """Feed the keys of one keypad event; the PINs they complete (usually 0 or 1)."""
        now = self._clock()
        if self._digits and now - self._last > self.timeout_s:
            self._digits.clear()  # an abandoned entry does not prefix the next one
        self._last = now
        done: list[str] = []
        for key in keys:
            if key in _ENTER:
                if self._digits:
                    done.append("".join(self._digits))
                self._digits.clear()
            elif key in _CLEAR:
                self._digits.clear()
            elif 0x30 <= key <= 0x39 or key <= 9:  # ASCII digits, or the digit values
                self._digits.append(str(key - 0x30 if key >= 0x30 else key))
                if len(self._digits) > MAX_PIN_DIGITS:
                    self._digits.clear()
        return done


def _crc16(data: bytes) -> int:
    """OSDP's CRC-16 (polynomial 0x1021, initial value 0x1D0F)."""
    crc = 0x1D0F
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


class ReplyWatch:
    """Finds whole, well-checked OSDP replies in the received bytes; notes who sent them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buf = bytearray()
        self._clock = clock
        self.last_reply: dict[int, float] = {}  # PD address -> when it last answered

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf.extend(data)
        while True:
            start = buf.find(SOM)
            if start < 0:
                buf.clear()
                return
            del buf[:start]
            if len(buf) < 5:
                return
            length = buf[2] | buf[3] << 8
            if not 7 <= length <= _MAX_PACKET:
                del buf[:1]
                continue
            if len(buf) < length:
                return
            if self._valid(bytes(buf[:length])):
                if buf[1] & 0x80:
                    self.last_reply[buf[1] & 0x7F] = self._clock()
                del buf[:length]
            else:
                del buf[:1]

    @staticmethod
    def _valid(packet: bytes) -> bool:
        if packet[4] & 0x04:  # CRC-16, little-endian at the end
            return _crc16(packet[:-2]) == (packet[-2] | packet[-1] << 8)
        return (-sum(packet[:-1])) & 0xFF == packet[-1]

    def answered_since(self, address: int, moment: float) -> bool:
        return self.last_reply.get(address, float("-inf")) >= moment


class SerialChannel(osdp.Channel):  # type: ignore[misc]  # libosdp ships no types
    """A serial port as libosdp's channel; called from libosdp's refresh thread only."""

    def __init__(self, port: str, baudrate: int, parity: str = "N", stopbits: int = 1) -> None:
        super().__init__()
        self.watch = ReplyWatch()
        self.port = serial.serial_for_url(
            port,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            timeout=0,
            write_timeout=1,
        )

    def read(self, max_bytes: int) -> bytes:
        try:
            data: bytes = self.port.read(max_bytes)
        except serial.SerialException:
            return b""
        if data:
            self.watch.feed(data)
        return data

    def write(self, buf: bytes) -> int:
        try:
            return int(self.port.write(buf) or 0)
        except serial.SerialException:
            return 0  # the line is gone: libosdp sees a timeout and marks the reader offline

    def flush(self) -> None:
        with contextlib.suppress(serial.SerialException):
            self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()
