"""Wiegand formats (doorkeep/wiegand.py): known answers, round trips, parity.

The fuzzing of both decoders is a reliability row: tests/reliability_/test_fuzz_readers.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorkeep import wiegand
from doorkeep.wiegand import Card, WiegandError, decode_bits, decode_text, encode, to_text

HID_HEADER_26 = (1 << 26) - 1  # proxmark3 prints 26-bit frames behind a HID preamble


@pytest.mark.parametrize(
    ("raw", "facility", "number"),
    [
        # `wiegand decode --raw ...` examples of the proxmark3 client's documentation
        (0x2006F623AE, 123, 4567),
        (0x200670012D, 56, 150),
    ],
)
def test_h10301_frames_of_the_proxmark3_docs(raw, facility, number):
    bits = raw & HID_HEADER_26
    assert decode_bits(bits, 26) == Card("H10301", facility, number)
    assert encode(Card("H10301", facility, number)) == bits


# Frames worked out by hand from the format layouts (1 = first bit sent).
KNOWN = [
    ("10010000010011100101111110", Card("H10301", 32, 40127)),  # docs/credentials.md
    ("0" + "0" * 24 + "1", Card("H10301", 0, 0)),  # trailing odd parity of nothing is 1
    ("1" + "0" * 15 + "1" + "0" * 15 + "1" + "0", Card("H10306", 1, 1)),
    ("0" * 34 + "1", Card("C1000", 0, 0)),  # bit 35 odd over zeros = 1, bit 1 then 0
    ("1" + "0" * 15 + "1" + "0" * 18 + "1" + "0", Card("H10304", 1, 1)),
    # the middle payload bit is under both parity bits: leading 1, trailing 0
    ("1" + "0" * 17 + "1" + "0" * 17 + "0", Card("H10304", 0, 1 << 17)),
    ("0" + "0" * 34 + "1" + "0", Card("H10302", None, 1)),
]


@pytest.mark.parametrize(("frame", "card"), KNOWN)
def test_known_frames_decode_and_encode(frame, card):
    assert decode_text(frame, card.format) == card
    assert to_text(encode(card), card.length) == frame


def test_a_37_bit_frame_reads_as_h10304_and_matches_its_h10302_number():
    frame = int("0" + "0" * 34 + "1" + "0", 2)
    as_default = decode_bits(frame, 37)
    assert isinstance(as_default, Card)
    assert as_default.format == "H10304"
    assert as_default.value == Card("H10302", None, 1).value


def _cards() -> st.SearchStrategy[Card]:
    def build(name: str) -> st.SearchStrategy[Card]:
        fmt = wiegand.FORMATS[name]
        facility = st.integers(0, fmt.max_facility) if fmt.facility_bits else st.none()
        return st.builds(Card, st.just(name), facility, st.integers(0, fmt.max_number))

    return st.sampled_from(list(wiegand.FORMATS)).flatmap(build)


@given(_cards())
def test_every_card_round_trips(card):
    bits = encode(card)
    assert 0 <= bits < 1 << card.length
    assert decode_bits(bits, card.length, card.format) == card
    by_length = decode_bits(bits, card.length)
    assert isinstance(by_length, Card)
    assert by_length.value == card.value


@given(_cards(), st.data())
def test_one_misread_bit_is_never_a_card(card, data):
    bits = encode(card) ^ (1 << data.draw(st.integers(0, card.length - 1)))
    result = decode_bits(bits, card.length, card.format)
    assert isinstance(result, WiegandError)
    assert "parity" in str(result)


def test_errors_say_what_is_wrong_and_never_show_the_number():
    card = Card("H10306", 4242, 31337)
    bad = decode_bits(encode(card) ^ 1, 34)
    assert isinstance(bad, WiegandError)
    assert "34-bit H10306" in str(bad)
    assert "trailing odd" in str(bad)
    assert "31337" not in str(bad)
    assert "4242" not in str(bad)
    assert "known: 26, 34, 35, 37" in str(decode_bits(0, 32))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("H10301", 256, 1), "facility code must be 0-255"),
        (("H10301", 1, 65536), "card number must be 0-65535"),
        (("C1000", 4096, 1), "facility code must be 0-4095"),
        (("H10302", 1, 1), "has no facility code"),
        (("H10304", None, 1), "needs a facility code"),
        (("H99999", 1, 1), "unknown Wiegand format"),
    ],
)
def test_impossible_cards_are_refused(args, message):
    with pytest.raises(WiegandError, match=message):
        Card(*args)
