"""Normalisation of credential values, so every form of one card matches one key.

A card number reaches doorkeep in many spellings: the 8-hex-digit UID an enrolment
screen shows (``00209CBF``), the decimal number printed on the card (``0002137279``), the
facility/card pair of a Wiegand 26-bit card (``32,40127``), or the raw bits a Wiegand
reader sends. All of them are reduced to one canonical form, upper-case hexadecimal
without leading zeros, before anything is hashed or compared. The rule, in order:

1. ``0x…`` or ``hex:…`` is hexadecimal; ``dec:…`` is decimal.
2. ``FC,CN`` or ``FC:CN`` (two decimal numbers) is a Wiegand 26 facility code (0-255) and
   card number (0-65535): the value is ``FC << 16 | CN``.
3. ``w26:<bits>``, ``w34:<bits>``, ``w37:<bits>`` are raw Wiegand frames: parity is
   checked, then the data bits between the parity bits are the value.
4. A value with a letter a-f is hexadecimal (case does not matter).
5. A value of exactly 8 digits is hexadecimal (the UID form of enrolment screens);
   any other all-digit value is decimal.

License plates are upper-cased with spaces, dashes and dots removed. PINs must be digits.
Every other kind (QR, NFC/BLE tokens, face and fingerprint template ids) is kept as given,
stripped of surrounding white space.
"""

from __future__ import annotations

import re

CARD_KINDS = frozenset({"rf_card", "uhf_card"})
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-f]+")
_FC_CN = re.compile(r"([0-9]{1,3})[,:]([0-9]{1,5})")
_PLATE_DROP = re.compile(r"[\s\-.·]+")

# Wiegand frame lengths -> (data bits, even-parity span, odd-parity span) over the frame.
_WIEGAND = {
    26: 24,
    34: 32,
    37: 35,
}


def _wiegand_value(bits: str) -> int:
    """The data bits of a Wiegand frame with its two parity bits checked.

    The leading bit is even parity over the first half of the data bits, the trailing
    bit odd parity over the second half (the common H10301/H10304 layout).
    """
    n = len(bits)
    if n not in _WIEGAND or set(bits) - {"0", "1"}:
        raise ValueError(f"not a 26-, 34- or 37-bit Wiegand frame: {len(bits)} bits")
    data = bits[1:-1]
    half = (len(data) + 1) // 2
    first, second = data[:half], data[len(data) - half :]
    if (bits[0].count("1") + first.count("1")) % 2 != 0:
        raise ValueError("Wiegand frame fails its leading (even) parity check")
    if (bits[-1].count("1") + second.count("1")) % 2 != 1:
        raise ValueError("Wiegand frame fails its trailing (odd) parity check")
    return int(data, 2)


def wiegand_frame(value: int, bits: int) -> str:
    """Encode ``value`` as a Wiegand frame of ``bits`` bits (inverse of the decoder)."""
    data_bits = _WIEGAND[bits]
    if not 0 <= value < (1 << data_bits):
        raise ValueError(f"value {value} does not fit a {bits}-bit Wiegand frame")
    data = format(value, f"0{data_bits}b")
    half = (data_bits + 1) // 2
    first, second = data[:half], data[data_bits - half :]
    lead = "1" if first.count("1") % 2 else "0"
    trail = "0" if second.count("1") % 2 else "1"
    return lead + data + trail


def card_number(value: str) -> int:
    """The card number that ``value`` spells, by the module's rule; ValueError if none."""
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError("card value is empty")
    if text.startswith(("0x", "hex:")):
        digits = text.split(":", 1)[1] if text.startswith("hex:") else text[2:]
        if not _HEX.fullmatch(digits):
            raise ValueError("hex card value has characters other than 0-9 and a-f")
        return int(digits, 16)
    if text.startswith("dec:"):
        digits = text[4:]
        if not _DIGITS.fullmatch(digits):
            raise ValueError("decimal card value has characters other than digits")
        return int(digits)
    if text[:4] in ("w26:", "w34:", "w37:"):
        return _wiegand_value(text[4:])
    match = _FC_CN.fullmatch(text)
    if match:
        facility, number = int(match.group(1)), int(match.group(2))
        if facility > 255 or number > 65535:
            raise ValueError("Wiegand 26 facility code must be 0-255 and card number 0-65535")
        return facility << 16 | number
    if _DIGITS.fullmatch(text):
        return int(text, 16) if len(text) == 8 else int(text)
    if _HEX.fullmatch(text):
        return int(text, 16)
    raise ValueError("card value is not hex, decimal, FC,CN or a Wiegand frame")


def normalise(kind: str, value: str) -> str:
    """The canonical form of a credential value of ``kind``; ValueError if malformed.

    The error message never repeats the value itself: it may be a secret.
    """
    if not isinstance(value, str):
        raise ValueError("credential value must be a string")
    if kind in CARD_KINDS:
        return format(card_number(value), "X")
    if kind == "pin":
        pin = value.strip()
        if not _DIGITS.fullmatch(pin):
            raise ValueError("PIN must be digits only")
        return pin
    if kind == "license_plate":
        plate = _PLATE_DROP.sub("", value).upper()
        if not plate or not plate.isalnum():
            raise ValueError("license plate must be letters and digits")
        return plate
    stripped = value.strip()
    if not stripped:
        raise ValueError("credential value is empty")
    return stripped
