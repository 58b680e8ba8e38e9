"""Normalisation of credential values, so every form of one card matches one key.

A card number reaches doorkeep in many spellings: the 8-hex-digit UID an enrolment
screen shows (``00209CBF``), the decimal number printed on the card (``0002137279``), the
facility/card pair of a Wiegand 26-bit card (``32,40127``), or the raw bits a Wiegand
reader sends. All of them are reduced to one canonical form, upper-case hexadecimal
without leading zeros, before anything is hashed or compared. The rule, in order:

1. ``0x…`` or ``hex:…`` is hexadecimal; ``dec:…`` is decimal.
2. ``FC,CN`` or ``FC:CN`` (two decimal numbers) is a Wiegand 26 (H10301) facility code
   (0-255) and card number (0-65535): the value is ``FC << 16 | CN``.
3. ``w26:``, ``w34:``, ``w35:``, ``w37:`` (or the format names ``h10301:``, ``h10306:``,
   ``c1000:``, ``h10304:``, ``h10302:``) followed by the frame's bits (0s and 1s, parity
   checked), by ``FC,CN``, or for the 37-bit H10302 by the card number alone. The value is
   the frame's payload, ``FC << number_bits | CN`` (doorkeep/wiegand.py), so the bits a
   reader sends and the numbers printed on the card meet at the same value.
4. A value with a letter a-f is hexadecimal (case does not matter).
5. A value of exactly 8 digits is hexadecimal (the UID form of enrolment screens);
   any other all-digit value is decimal.

License plates are upper-cased with spaces, dashes and dots removed. PINs must be digits.
Every other kind (QR, NFC/BLE tokens, face and fingerprint template ids) is kept as given,
stripped of surrounding white space.
"""

from __future__ import annotations

import re

from doorkeep import wiegand

CARD_KINDS = frozenset({"rf_card", "uhf_card"})
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-f]+")
_FC_CN = re.compile(r"([0-9]{1,6})[,:]([0-9]{1,12})")
_PLATE_DROP = re.compile(r"[\s\-.·]+")

#: the prefixes of Wiegand forms -> the format they name (``w37`` takes H10304 FC,CN or a
#: bare H10302 number; a bit string of any of them is decoded by its length's format)
_WIEGAND_PREFIX = {
    "w26": "H10301",
    "h10301": "H10301",
    "w34": "H10306",
    "h10306": "H10306",
    "w35": "C1000",
    "c1000": "C1000",
    "w37": "H10304",
    "h10304": "H10304",
    "h10302": "H10302",
}
#: formats whose prefix also takes a bare card number: the 37-bit H10302 (no facility)
_NUMBER_ONLY = {"H10304": "H10302", "H10302": "H10302"}
_PREFIX = re.compile(r"(w26|w34|w35|w37|h10301|h10306|h10302|h10304|c1000):(.*)")
_NUMBER = re.compile(r"[0-9]{1,12}")
_W26 = wiegand.FORMATS["H10301"]


def _wiegand_form(name: str, rest: str) -> int:
    """The payload of a ``w26:``-style value: raw bits, ``FC,CN``, or (37-bit) a number."""
    fmt = wiegand.FORMATS[_WIEGAND_PREFIX[name]]
    if len(rest) == fmt.length and not set(rest) - {"0", "1"}:
        card = wiegand.decode_text(rest, fmt.name)
        if isinstance(card, wiegand.WiegandError):
            raise card
        return card.value
    match = _FC_CN.fullmatch(rest)
    if match and fmt.facility_bits:
        facility, number = int(match.group(1)), int(match.group(2))
        return wiegand.Card(fmt.name, facility, number).value
    bare = _NUMBER_ONLY.get(fmt.name)
    if _NUMBER.fullmatch(rest) and bare:
        return wiegand.Card(bare, None, int(rest)).value
    what = "FC,CN" if fmt.facility_bits else "the card number"
    extra = " or a card number (H10302)" if bare and fmt.facility_bits else ""
    raise wiegand.WiegandError(
        f"the {name} prefix takes the {fmt.length} bits of a {fmt.title} frame "
        f"(0s and 1s), or {what}{extra}"
    )


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
    prefixed = _PREFIX.fullmatch(text)
    if prefixed:
        return _wiegand_form(prefixed.group(1), prefixed.group(2))
    match = _FC_CN.fullmatch(text)
    if match:
        facility, number = int(match.group(1)), int(match.group(2))
        if facility > _W26.max_facility or number > _W26.max_number:
            raise ValueError(
                "FC,CN alone is a 26-bit H10301 card (facility 0-255, number 0-65535); "
                "for a longer card write w34:FC,CN (H10306), w35:FC,CN (Corporate 1000) "
                "or w37:FC,CN (H10304)"
            )
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
