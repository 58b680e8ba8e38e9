"""Parsers for serial card readers: bytes in, card reads and framing errors out. Pure.

Two kinds of reader talk to doorkeep over a UART (docs/hardware.md):

* **RDM6300-style 125 kHz modules** (EM4100 cards) send each read as 14 bytes:
  ``0x02``, 10 ASCII hex characters (a version/customer byte and the 32-bit card ID), 2
  ASCII hex characters of checksum (the XOR of the 5 data bytes), ``0x03``. The module
  repeats the frame for as long as the card stays on the antenna.
* **Wiegand-to-serial converters** print each Wiegand frame they receive as one line of
  ASCII (ended by CR, LF or both). :class:`WiegandTextParser` documents the forms it takes.

A parser is fed whatever bytes the port delivered (a frame may arrive in pieces, several
at once, or amid line noise) and returns :class:`CardRead` and :class:`FrameError`
events. Nothing that fails a check becomes a card: bad bytes are skipped to the next
frame start and reported once per run of garbage. Errors never carry the card number.
:class:`Repeats` drops the copies of a card held on the antenna. The driver that owns the
port is ``edge/readers/serial.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from doorkeep import wiegand

STX: Final = 0x02
ETX: Final = 0x03
RDM6300_FRAME: Final = 14
MAX_LINE: Final = 80  # a converter line longer than this is noise, not a card
_HEX_CHARS: Final = frozenset(b"0123456789ABCDEFabcdef")


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card read off the wire: its number (the value a credential matches)."""

    value: int
    source: str  # how it was framed: "rdm6300", "w26", "hex", "decimal" ...

    @property
    def text(self) -> str:
        """The value as ``cards.normalise`` takes it, unambiguously hexadecimal."""
        return f"0x{self.value:X}"


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that were not a card: what was wrong with them (never the card number)."""

    reason: str


Event = CardRead | FrameError


class Rdm6300Parser:
    """RDM6300 frames out of a byte stream (``feed`` bytes, get events)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False  # dropping the rest of a bad frame: already reported

    def feed(self, data: bytes) -> list[Event]:
        """The reads and errors in ``data`` plus what was left over from earlier bytes."""
        self._buf += data
        events: list[Event] = []
        while self._buf:
            start = self._buf.find(STX)
            if start != 0:
                # noise before a frame start (or no frame start at all): one error per run
                if not self._skipping:
                    events.append(FrameError("bytes outside a frame (noise or wrong baud rate)"))
                self._skipping = start < 0
                del self._buf[: start if start > 0 else len(self._buf)]
                continue
            self._skipping = False
            if len(self._buf) < RDM6300_FRAME:
                if STX in self._buf[1:]:  # a new frame began before this one ended
                    events.append(FrameError("frame cut short by the start of another"))
                    del self._buf[: self._buf.index(STX, 1)]
                    continue
                break  # wait for the rest of the frame
            frame = bytes(self._buf[:RDM6300_FRAME])
            event = parse_rdm6300(frame)
            if isinstance(event, FrameError) and event.reason.startswith("no end byte"):
                del self._buf[:1]  # resynchronise on the next STX inside the frame
                self._skipping = True
            else:
                del self._buf[:RDM6300_FRAME]
            events.append(event)
        return events


def parse_rdm6300(frame: bytes) -> Event:
    """One 14-byte RDM6300 frame: the card (its 32-bit ID) or what is wrong with it."""
    if len(frame) != RDM6300_FRAME or frame[0] != STX:
        return FrameError(f"an RDM6300 frame is {RDM6300_FRAME} bytes starting with 0x02")
    if frame[-1] != ETX:
        return FrameError("no end byte 0x03 where the frame should end")
    body = frame[1:-1]
    if not set(body) <= _HEX_CHARS:
        return FrameError("frame has characters other than hexadecimal digits")
    data = bytes.fromhex(body[:10].decode("ascii"))
    checksum = int(body[10:].decode("ascii"), 16)
    xor = 0
    for b in data:
        xor ^= b
    if xor != checksum:
        return FrameError("checksum mismatch (a misread; the card is read again)")
    # the first byte is the EM4100 version/customer code; the 32-bit ID is the card number
    # printed on EM cards (10 decimal digits), so that is what a credential matches
    return CardRead(int.from_bytes(data[1:], "big"), "rdm6300")


def rdm6300_frame(card_id: int, version: int = 0) -> bytes:
    """The frame an RDM6300 sends for a card (the inverse of :func:`parse_rdm6300`)."""
    if not 0 <= card_id < 1 << 32 or not 0 <= version < 1 << 8:
        raise ValueError("an EM4100 card is a version byte and a 32-bit ID")
    data = bytes([version]) + card_id.to_bytes(4, "big")
    xor = 0
    for b in data:
        xor ^= b
    return bytes([STX]) + f"{data.hex().upper()}{xor:02X}".encode("ascii") + bytes([ETX])


_TAGGED = re.compile(r"W(26|34|35|37)[:=\s]\s*([0-9A-F]+)")
_HEX_LINE = re.compile(r"[0-9A-F]{1,16}")
_DEC_LINE = re.compile(r"[0-9]{1,20}")


class WiegandTextParser:
    """Lines of a Wiegand-to-serial converter, one card per line (CR, LF or CRLF).

    Accepted lines (spaces around them ignored, letters in either case):

    * ``W26:0A1B2C`` (also ``W26=``/``W26 ``; 34, 35, 37): the frame's payload in hex,
      parity already checked and stripped by the converter;
    * the whole frame as 26, 34, 35 or 37 characters of ``0``/``1``: parity is checked
      here (doorkeep/wiegand.py);
    * digits only: the payload, hexadecimal (``digits = "hex"``, e.g. the 6 characters
      ``XXYYZZ`` of a 26-bit frame that WIE232-style converters print) or decimal
      (``digits = "decimal"``, e.g. the 10 digits some converters print).

    Anything else is a :class:`FrameError`; so is a line longer than ``MAX_LINE``.
    """

    def __init__(self, digits: str = "hex") -> None:
        if digits not in ("hex", "decimal"):
            raise ValueError('digits must be "hex" or "decimal"')
        self._decimal = digits == "decimal"
        self._buf = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[Event]:
        """The reads and errors of every complete line in ``data`` and earlier bytes."""
        self._buf += data
        events: list[Event] = []
        while True:
            ends = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
            if not ends:
                break
            end = min(ends)
            line, self._buf = bytes(self._buf[:end]), self._buf[end + 1 :]
            if self._overlong:
                self._overlong = False
                continue  # the tail of a line already reported
            if line.strip():
                events.append(self.parse_line(line))
        if len(self._buf) > MAX_LINE:
            events.append(FrameError(f"a line longer than {MAX_LINE} characters"))
            self._buf.clear()
            self._overlong = True
        return events

    def parse_line(self, raw: bytes) -> Event:
        """One line without its end: the card or what is wrong with it."""
        if len(raw) > MAX_LINE:
            return FrameError(f"a line longer than {MAX_LINE} characters")
        try:
            line = raw.decode("ascii").strip().upper()
        except UnicodeDecodeError:
            return FrameError("a line with bytes that are not ASCII (wrong baud rate?)")
        if len(line) in wiegand.BY_LENGTH and not set(line) - {"0", "1"}:
            card = wiegand.decode_text(line)
            if isinstance(card, wiegand.WiegandError):
                return FrameError(str(card))
            return CardRead(card.value, f"w{len(line)}")
        tagged = _TAGGED.fullmatch(line)
        if tagged:
            fmt = wiegand.BY_LENGTH[int(tagged.group(1))]
            value = int(tagged.group(2), 16)
            if value >> fmt.payload_bits:
                return FrameError(f"a W{fmt.length} payload has at most {fmt.payload_bits} bits")
            return CardRead(value, f"w{fmt.length}")
        if self._decimal and _DEC_LINE.fullmatch(line):
            return CardRead(int(line), "decimal")
        if not self._decimal and _HEX_LINE.fullmatch(line):
            return CardRead(int(line, 16), "hex")
        return FrameError("a line that is no card format this reader is set to accept")


class Repeats:
    """Drops the copies of one card held on the antenna (time passed in, seconds).

    A read of the card seen last is a repeat while it comes within ``hold_s`` of the
    previous copy: the window slides with every copy, so a card left on the reader opens
    once, and presenting it again after lifting it for ``hold_s`` opens again.
    """

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._last: int | None = None
        self._at = 0.0

    def fresh(self, value: int, now: float) -> bool:
        """True if this read is a new presentation, False if a repeat to drop."""
        repeat = value == self._last and now - self._at < self.hold_s
        self._last, self._at = value, now
        return not repeat
