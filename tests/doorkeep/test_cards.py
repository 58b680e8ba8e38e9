"""Card value normalisation (docs/credentials.md): every spelling of a card, one key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorkeep import cards, wiegand


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


@pytest.mark.parametrize("name", list(wiegand.FORMATS))
@given(data=st.data())
def test_wiegand_frames_and_printed_numbers_are_one_card(name, data):
    fmt = wiegand.FORMATS[name]
    facility = data.draw(st.integers(0, fmt.max_facility)) if fmt.facility_bits else None
    card = wiegand.Card(name, facility, data.draw(st.integers(0, fmt.max_number)))
    frame = wiegand.to_text(wiegand.encode(card), fmt.length)
    prefix = {26: "w26", 34: "w34", 35: "w35", 37: "w37"}[fmt.length]
    printed = f"{prefix}:{facility},{card.number}" if facility is not None else f"w37:{card.number}"
    assert cards.normalise("rf_card", f"{prefix}:{frame}") == cards.normalise("rf_card", printed)
    if name == "H10301":
        assert cards.normalise("rf_card", f"{facility},{card.number}") == cards.normalise(
            "rf_card", printed
        )


def test_wiegand_parity_errors_are_refused():
    frame = wiegand.to_text(wiegand.encode(wiegand.Card("H10301", 32, 40127)), 26)
    assert frame == "10010000010011100101111110"
    flipped = frame[:5] + ("1" if frame[5] == "0" else "0") + frame[6:]
    with pytest.raises(ValueError, match="parity"):
        cards.card_number(f"w26:{flipped}")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "xyz",
        "256,1",
        "1,70000",
        "0xZZ",
        "w26:101",
        "w26:12345",
        "w34:65536,1",
        "w35:1,1048576",
        "w36:1,1",
    ],
)
def test_malformed_card_values_are_refused(bad):
    with pytest.raises(ValueError):
        cards.normalise("rf_card", bad)


def test_plates_drop_spaces_dashes_and_case():
    assert cards.normalise("license_plate", " b-kn 42 ") == "BKN42"


def test_pin_must_be_digits_and_error_does_not_echo_it():
    with pytest.raises(ValueError) as err:
        cards.normalise("pin", "12a4")
    assert "12a4" not in str(err.value)


# --- issue 11: facility+number forms beyond Wiegand 26 ----------------------------------
# Found: a w35: frame gave unknown_credential (not even parsed), and a 34- or 37-bit card
# could not be entered as facility code + card number at all.

# H10306 FC 1000 CN 12345, C1000 company 2000 CN 654321, H10304 FC 40000 CN 500000
W34 = "w34:1000,12345"
W35 = "w35:2000,654321"
W37 = "w37:40000,500000"


def test_a_35_bit_corporate_1000_frame_is_a_card():
    bits = "01" + format(2000, "012b") + format(654321, "020b") + "0"
    # the three parity bits of this frame, worked out by hand from the C1000 masks
    frame = _c1000_parity(bits)
    assert cards.normalise("rf_card", f"w35:{frame}") == format(2000 << 20 | 654321, "X")


@pytest.mark.parametrize(
    ("spelling", "value"),
    [(W34, 1000 << 16 | 12345), (W35, 2000 << 20 | 654321), (W37, 40000 << 19 | 500000)],
)
def test_34_35_37_bit_facility_and_number_are_cards(spelling, value):
    assert cards.normalise("rf_card", spelling) == format(value, "X")


def _c1000_parity(bits: str) -> str:
    """Fill the parity bits of a 35-bit Corporate 1000 frame, by the HID layout in bit
    positions (1 = first sent): bit 2 even over 3-4, 6-7, 9-10, ... 33-34 (skipping every
    third from 5), bit 35 odd over 2-3, 5-6, 8-9, ... (skipping every third from 4), bit 1
    odd over all the others. Written from the layout, not from the module's masks."""
    b = [int(c) for c in bits]
    b[1] = sum(b[p] for p in range(2, 34) if p % 3 != 1) % 2
    b[34] = 1 - (sum(b[p] for p in range(1, 34) if p % 3 != 0) % 2)
    b[0] = 1 - (sum(b[1:]) % 2)
    return "".join(map(str, b))
