"""Wiegand card formats: raw bit images <-> facility code + card number. Pure, no I/O.

A Wiegand reader sends a card as a fixed number of bits, first bit first. doorkeep keeps
such a frame as an integer ``bits`` plus its ``length``: the first bit sent is the most
significant bit of ``bits``. Every format here puts one parity bit last and one or two
first; the bits between them are the *payload*, ``facility << number_bits | number``.
The payload is what a card matches on (docs/credentials.md): a card enrolled as facility
code + number and the same card read as raw bits reduce to the same value.

The formats and their parity masks follow the proxmark3 client's
``client/src/wiegand_formats.c`` (RfidResearchGroup/proxmark3, GPL; no code is copied,
only the published bit layouts): masks are over the frame with bit 0 = the last bit sent.

==========  ======  ========  ======  ==============================================
format      length  facility  number  parity
==========  ======  ========  ======  ==============================================
H10301      26      8         16      first: even over the next 12; last: odd over
                                      the 12 before it
H10306      34      16        16      first: even over 16; last: odd over 16
C1000       35      12        20      HID Corporate 1000: bit 2 even and the last bit
                                      odd over interleaved thirds, bit 1 odd over all
H10304      37      16        19      first: even over 18; last: odd over 18 (the
                                      middle payload bit is in both)
H10302      37      -         35      as H10304, the payload is the card number
==========  ======  ========  ======  ==============================================

Parity is always checked: a frame that fails it is a misread and is refused with a
:class:`WiegandError` saying which check failed, never turned into a card. Errors never
contain the card's bits or number (a card number is a credential).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


class WiegandError(ValueError):
    """A bit image or a facility/number pair that is not a valid card of a format."""


@dataclass(frozen=True, slots=True)
class Parity:
    """One parity bit: its position (bit 0 = last sent), even or odd, and what it covers."""

    bit: int
    odd: bool
    mask: int  # the frame bits it covers (never itself)
    name: str  # "leading even" ... for error messages


@dataclass(frozen=True, slots=True)
class Format:
    """A Wiegand card format: its length, fields and parity bits (computed in order)."""

    name: str
    length: int
    facility_bits: int  # 0: the format has no facility code
    number_bits: int
    parity: tuple[Parity, ...]
    title: str

    @property
    def payload_bits(self) -> int:
        return self.facility_bits + self.number_bits

    @property
    def max_facility(self) -> int:
        return (1 << self.facility_bits) - 1

    @property
    def max_number(self) -> int:
        return (1 << self.number_bits) - 1


def _lead_trail(length: int, span: int) -> tuple[Parity, ...]:
    """The common layout: first bit even over the next ``span``, last odd over ``span``."""
    top = length - 1
    return (
        Parity(top, odd=False, mask=((1 << span) - 1) << (top - span), name="leading even"),
        Parity(0, odd=True, mask=((1 << span) - 1) << 1, name="trailing odd"),
    )


FORMATS: Final[dict[str, Format]] = {
    f.name: f
    for f in (
        Format("H10301", 26, 8, 16, _lead_trail(26, 12), "26-bit H10301"),
        Format("H10306", 34, 16, 16, _lead_trail(34, 16), "34-bit H10306"),
        Format(
            "C1000",
            35,
            12,
            20,
            (  # order matters: each later bit covers the earlier ones
                Parity(33, odd=False, mask=1 << 32 | 0xB6DB6DB6, name="second (even)"),
                Parity(0, odd=True, mask=3 << 32 | 0x6DB6DB6C, name="trailing odd"),
                Parity(34, odd=True, mask=(1 << 34) - 1, name="leading (odd, whole frame)"),
            ),
            "35-bit HID Corporate 1000",
        ),
        Format("H10304", 37, 16, 19, _lead_trail(37, 18), "37-bit H10304"),
        Format("H10302", 37, 0, 35, _lead_trail(37, 18), "37-bit H10302"),
    )
}
#: the format a raw frame of each length is read as. H10302 and H10304 share length and
#: parity: a 37-bit frame is shown as H10304, and its payload (what matches) is the same.
BY_LENGTH: Final[dict[int, Format]] = {
    26: FORMATS["H10301"],
    34: FORMATS["H10306"],
    35: FORMATS["C1000"],
    37: FORMATS["H10304"],
}
MAX_LENGTH: Final = 128  # longer "frames" are refused before any arithmetic


@dataclass(frozen=True, slots=True)
class Card:
    """A card decoded from (or encoded to) a Wiegand frame."""

    format: str
    facility: int | None  # None: the format has none (H10302)
    number: int

    def __post_init__(self) -> None:
        fmt = FORMATS.get(self.format)
        if fmt is None:
            raise WiegandError(f"unknown Wiegand format {self.format!r}; known: {_names()}")
        if (self.facility is None) != (fmt.facility_bits == 0):
            raise WiegandError(
                f"{fmt.title} has no facility code"
                if fmt.facility_bits == 0
                else f"{fmt.title} needs a facility code"
            )
        if self.facility is not None and not 0 <= self.facility <= fmt.max_facility:
            raise WiegandError(f"{fmt.title} facility code must be 0-{fmt.max_facility}")
        if not 0 <= self.number <= fmt.max_number:
            raise WiegandError(f"{fmt.title} card number must be 0-{fmt.max_number}")

    @property
    def value(self) -> int:
        """The payload: what a stored credential of this card matches."""
        fmt = FORMATS[self.format]
        return (self.facility or 0) << fmt.number_bits | self.number

    @property
    def length(self) -> int:
        return FORMATS[self.format].length


def _names() -> str:
    return ", ".join(FORMATS)


def _parity_ok(frame: int, p: Parity) -> bool:
    ones = (frame & p.mask).bit_count() + (frame >> p.bit & 1)
    return ones % 2 == (1 if p.odd else 0)


def encode(card: Card) -> int:
    """The frame of ``card`` (``card.length`` bits, first bit sent most significant)."""
    fmt = FORMATS[card.format]
    frame = card.value << 1
    for p in fmt.parity:
        if not _parity_ok(frame, p):
            frame |= 1 << p.bit
    return frame


def decode_bits(bits: int, length: int, format_name: str | None = None) -> Card | WiegandError:
    """The card in a raw frame of ``length`` bits, or the reason it is not one.

    ``format_name`` picks a format of that length by name (H10302 for a 37-bit frame without
    facility code); by default the format of ``BY_LENGTH``. Never raises: any length and
    any integer get a :class:`WiegandError` that says what is wrong.
    """
    if isinstance(length, bool) or not isinstance(length, int):
        return WiegandError("Wiegand frame length must be a whole number of bits")
    if isinstance(bits, bool) or not isinstance(bits, int):
        return WiegandError("Wiegand frame bits must be an integer")
    known = ", ".join(str(n) for n in BY_LENGTH)
    fmt = FORMATS.get(format_name) if format_name is not None else BY_LENGTH.get(length)
    if fmt is None:
        if format_name is not None:
            return WiegandError(f"unknown Wiegand format {format_name!r}; known: {_names()}")
        return WiegandError(f"no supported Wiegand format has {length} bits (known: {known})")
    if fmt.length != length:
        return WiegandError(f"{fmt.title} frames are {fmt.length} bits, not {length}")
    if not 0 <= bits < (1 << length):
        return WiegandError(f"Wiegand frame does not fit in {length} bits")
    for p in fmt.parity:
        if not _parity_ok(bits, p):
            return WiegandError(
                f"{fmt.title} frame fails its {p.name} parity check (a misread; present "
                "the card again, or check the reader's format setting)"
            )
    payload = bits >> 1 & ((1 << fmt.payload_bits) - 1)
    number = payload & fmt.max_number
    facility = payload >> fmt.number_bits if fmt.facility_bits else None
    return Card(fmt.name, facility, number)


def decode_text(text: str, format_name: str | None = None) -> Card | WiegandError:
    """:func:`decode_bits` of a frame written as a string of 0 and 1, first bit first."""
    if not text or len(text) > MAX_LENGTH or set(text) - {"0", "1"}:
        return WiegandError(f"a Wiegand frame is written as 0s and 1s only, 1-{MAX_LENGTH} of them")
    return decode_bits(int(text, 2), len(text), format_name)


def to_text(bits: int, length: int) -> str:
    """The frame as 0s and 1s, first bit first (the inverse of :func:`decode_text`)."""
    return format(bits, f"0{length}b")
