"""Card value normalisation (docs/credentials.md): every spelling of a card, one key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorkeep import cards


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("00209CBF", "209CBF"),  # 8 digits/letters: the UID form, hex
        ("00209cbf", "209CBF"),
        ("0x209CBF", "209CBF"),
        ("hex:209cbf", "209CBF"),
        ("dec:2137279", "209CBF"),
        ("2137279", "209CBF"),  # all digits, not 8 long: decimal
        ("0002137279", "209CBF"),  # the 10-digit number printed on cards
        ("32,40127", "209CBF"),  # Wiegand 26 facility,card
        ("32:40127", "209CBF"),
        ("12345678", "12345678"),  # exactly 8 digits: hex
        ("13579", "350B"),
    ],
)
def test_card_spellings_normalise_to_one_canonical_hex(spelling, canonical):
    assert cards.normalise("rf_card", spelling) == canonical


@pytest.mark.parametrize("bits", [26, 34, 37])
@given(data=st.data())
def test_wiegand_frames_round_trip(bits, data):
    value = data.draw(st.integers(0, (1 << cards._WIEGAND[bits]) - 1))
    frame = cards.wiegand_frame(value, bits)
    assert len(frame) == bits
    assert cards.card_number(f"w{bits}:{frame}") == value


def test_wiegand_parity_errors_are_refused():
    frame = cards.wiegand_frame(0x209CBF, 26)
    flipped = frame[:5] + ("1" if frame[5] == "0" else "0") + frame[6:]
    with pytest.raises(ValueError, match="parity"):
        cards.card_number(f"w26:{flipped}")


@pytest.mark.parametrize("bad", ["", "xyz", "256,1", "1,70000", "0xZZ", "w26:101"])
def test_malformed_card_values_are_refused(bad):
    with pytest.raises(ValueError):
        cards.normalise("rf_card", bad)


def test_plates_drop_spaces_dashes_and_case():
    assert cards.normalise("license_plate", " b-kn 42 ") == "BKN42"


def test_pin_must_be_digits_and_error_does_not_echo_it():
    with pytest.raises(ValueError) as err:
        cards.normalise("pin", "12a4")
    assert "12a4" not in str(err.value)
