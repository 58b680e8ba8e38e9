"""What may be known about a credential value once it is hashed: its *facts*.

A hashed credential carries no value, yet two things need to know something about it:
the library shows a masked form of each PIN and card, and the third-party lock
formats (``doorkeep.lockformats``) check a value's length and alphabet. So when a value is
hashed (``doorkeep.credhash.hash_document``) these facts are recorded beside the HMAC,
never the value:

- ``length``: characters of the value as entered, without white space;
- ``charset``: ``digits`` (0-9 only), ``hex`` (0-9 and a-f, at least one letter) or
  ``other``;
- ``masked``: what the library shows. A PIN is one dot per digit (its digits are never
  kept); other kinds show their last four canonical characters when the value has at
  least eight, else dots only.

A PIN's length is all it gives away (2-8 digits, the policy allows every length). A
card's last four hex digits are 16 of its 32 or more bits, and without the site's secret
the HMAC cannot be searched for the rest.
"""

from __future__ import annotations

from typing import Any

from doorkeep import cards

__all__ = ["TAIL", "carry_facts", "value_facts"]

#: How many trailing characters of a (non-PIN) value the masked form shows.
TAIL = 4
_DOT = "•"
_HEX_LETTERS = frozenset("abcdef")
_HEX = frozenset("0123456789abcdef")


def value_facts(kind: str, value: str) -> dict[str, Any]:
    """The facts of a plaintext ``value`` of ``kind`` (it must normalise)."""
    entered = "".join(value.split())
    lower = entered.lower()
    if entered.isdigit() and entered.isascii():
        charset = "digits"
    elif lower and set(lower) <= _HEX and set(lower) & _HEX_LETTERS:
        charset = "hex"
    else:
        charset = "other"
    facts: dict[str, Any] = {"length": len(entered), "charset": charset}
    canonical = cards.normalise(kind, value)
    if kind == "pin" or len(canonical) < 2 * TAIL:
        facts["masked"] = _DOT * min(len(entered), 8)
    else:
        facts["masked"] = "…" + canonical[-TAIL:]
    return facts


def carry_facts(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the facts of ``old`` when it keeps the same hashed value without any.

    A client that edits a credential's label sends back its hashed form; when it leaves
    out ``value_facts``, the facts of the unchanged value stay.
    """
    if (
        old is not None
        and "value" not in new
        and "value_facts" not in new
        and "value_facts" in old
        and new.get("value_hmac") == old.get("value_hmac")
    ):
        return {**new, "value_facts": old["value_facts"]}
    return new
